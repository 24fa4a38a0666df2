"""Re-rankers: score a candidate pool with a light real-valued model and keep the top N.

- :mod:`~rechash.rerank.base`: the :class:`Reranker` contract, :func:`rerank` and the
  ordering of scored pools;
- :mod:`~rechash.rerank.dot`: dot products of float vectors (:class:`DotReranker`) or of the
  user's floats with the items' bits (:class:`CodesOnlyReranker`);
- :mod:`~rechash.rerank.pool`: :class:`PoolRanker`, the LightGBM ranking model a fit trains
  on validation pools (the default re-ranker when it beats the dot product);
- :mod:`~rechash.rerank.learned`: a scikit-learn scorer for any first stage, and
  :class:`RerankedRecommender`.
"""
from rechash.rerank.base import Reranker, order_online, rerank, top_by_score
from rechash.rerank.dot import CodesOnlyReranker, DotReranker, dot_rows
from rechash.rerank.learned import LEARNED_FEATURES, LEARNED_MODELS, LearnedReranker, RerankedRecommender

__all__ = [
    "Reranker", "rerank", "top_by_score", "order_online",
    "DotReranker", "CodesOnlyReranker", "dot_rows",
    "LearnedReranker", "RerankedRecommender", "LEARNED_FEATURES", "LEARNED_MODELS",
]
