"""Recommenders of the one contract (:class:`~rechash.models.base.RecommenderBase`).

``base`` (the contract and the list type) <- ``exact`` (float inner product, popularity),
``annoy`` (Annoy over floats), ``code`` (:class:`CodeRecommender`: Hamming pool, then a
re-ranker; ``online`` its one-user compiled fast path), ``reranked`` (any first stage re-ranked);
``persistence`` writes and reads the directory of every recommender but the hasher. Import
from the modules (or ``rechash``).
"""
