"""Exact float search (the ceiling every approximate index is measured against) and popularity.

Both are thin :class:`~rechash.baselines.recommender.Recommender` s over the evaluation
oracle :func:`rechash.evaluation.full_ranking`: every item is scored, excluded items are
removed, ties go to the smaller item id.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rechash.baselines.embeddings import FloatEmbeddings
from rechash.baselines.recommender import Recommendations, check_exclude, check_users
from rechash.data.interactions import Interactions
from rechash.evaluation.ranking import full_ranking


class ExactRecommender:
    """Brute-force maximum inner product over all items of a :class:`FloatEmbeddings`."""

    def __init__(self, embeddings: FloatEmbeddings, batch_size: int = 1024) -> None:
        self.embeddings = embeddings
        self.batch_size = batch_size

    @property
    def index_bytes(self) -> int:
        """Bytes of the item matrix (float32), the whole serving index of exact search."""
        return int(self.embeddings.item_factors.nbytes)

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> Recommendations:
        emb = self.embeddings
        users = check_users(users, len(emb.user_factors))
        exclude = check_exclude(exclude, int(users.max(initial=-1)) + 1, len(emb.item_factors))
        ids, scores = full_ranking(emb.scores, users, k, exclude, batch_size=self.batch_size)
        return Recommendations(users, ids, scores)


class PopularityRecommender:
    """Most popular training items first (score = summed training weight), the floor arm."""

    def __init__(self, train: Interactions) -> None:
        self.popularity = np.asarray(train.matrix.sum(axis=0), dtype=np.float64).ravel()
        self.n_users = train.n_users

    @property
    def index_bytes(self) -> int:
        return int(self.popularity.nbytes)

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> Recommendations:
        users = check_users(users, self.n_users)
        exclude = check_exclude(exclude, int(users.max(initial=-1)) + 1, len(self.popularity))
        ids, scores = full_ranking(lambda b: np.broadcast_to(self.popularity, (len(b), len(self.popularity))), users, k, exclude)
        return Recommendations(users, ids, scores)
