"""Re-rankers: score a candidate pool with a light real-valued model and keep the top N.

- :mod:`~rechash.rerank.base`: the :class:`Reranker` contract and :func:`rerank` (ordered
  by :mod:`rechash.rank.order`);
- :mod:`~rechash.rerank.dot`: dot products of float vectors (:class:`DotReranker`) or of the
  user's floats with the items' bits (:class:`CodesOnlyReranker`);
- :mod:`~rechash.rerank.pool`: :class:`PoolRanker`, the LightGBM ranking model a fit trains
  on validation pools (the default re-ranker when it beats the dot product);
- :mod:`~rechash.rerank.learned`: a scikit-learn scorer for any first stage (served by
  :class:`rechash.models.reranked.RerankedRecommender`).
"""

from rechash._moved import moved_name
from rechash.rerank.base import Reranker, rerank
from rechash.rerank.dot import CodesOnlyReranker, DotReranker, dot_rows
from rechash.rerank.learned import LEARNED_FEATURES, LEARNED_MODELS, LearnedReranker

__all__ = [
    "Reranker",
    "rerank",
    "DotReranker",
    "CodesOnlyReranker",
    "dot_rows",
    "LearnedReranker",
    "LEARNED_FEATURES",
    "LEARNED_MODELS",
]


def __getattr__(name: str):
    return moved_name(__name__, name)
