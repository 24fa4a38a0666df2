"""A first stage re-ranked: any recommender's candidates scored by a :class:`~rechash.rerank.base.Reranker`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rechash.errors import DataError
from rechash.models.base import Recommendations, RecommenderBase
from rechash.rank.order import top_by_score
from rechash.rerank.base import Reranker


class RerankedRecommender(RecommenderBase):
    """A first-stage recommender's ``n_candidates`` re-ranked by a :class:`Reranker` to ``N``
    (e.g. exact ALS top 200 re-ranked by a learned scorer). Hamming distances of the first
    stage, when it has them, are carried onto the kept items. Users folded in from a
    history are not served (a re-ranker keyed by user id cannot score them)."""

    def __init__(
        self, first_stage: RecommenderBase, reranker: Reranker, n_candidates: int = 200, batch_size: int = 256
    ) -> None:
        if n_candidates < 1:
            raise DataError(f"RerankedRecommender: n_candidates must be >= 1, got {n_candidates}")
        self.first_stage = first_stage
        self.reranker = reranker
        self.n_candidates = int(n_candidates)
        self.batch_size = int(batch_size)
        self.user_ids, self.item_ids = first_stage.user_ids, first_stage.item_ids
        self.seen, self.item_popularity = first_stage.seen, first_stage.item_popularity

    @property
    def index_bytes(self) -> int:
        return int((getattr(self.first_stage, "index_bytes", 0) or 0) + (getattr(self.reranker, "index_bytes", 0) or 0))

    def candidates(self, users: np.ndarray, n: int, exclude: sp.csr_matrix | None = None):
        """The first stage's top ``n`` (the candidate set before re-ranking)."""
        rows = None if exclude is None else sp.csr_matrix(exclude)[users]
        return self.first_stage._rank(np.asarray(users, dtype=np.int64), None, n, rows, None)

    def _similar(self, side, ids, n, exclude, allowed):
        """The first stage's similarity lists (a user-keyed re-ranker does not score item pairs)."""
        return self.first_stage._similar(side, ids, n, exclude, allowed)

    def _rank(self, users, queries, n, exclude, items) -> Recommendations:
        cands = self.first_stage._rank(users, queries, max(self.n_candidates, n), exclude, items)
        m = len(users)
        ids = np.full((m, n), -1, dtype=np.int64)
        scores = np.full((m, n), -np.inf)
        hamming = None if cands.hamming is None else np.full((m, n), -1, dtype=np.int32)
        for s in range(0, m, self.batch_size):
            e = min(m, s + self.batch_size)
            block = cands.items[s:e]
            b_scores = np.asarray(self.reranker.score(users[s:e], block), dtype=np.float64)
            b_ham = None if hamming is None else cands.hamming[s:e]
            b_ids, b_vals, b_ham = top_by_score(block, b_scores, n, b_ham)
            ids[s:e], scores[s:e] = b_ids, b_vals
            if hamming is not None:
                hamming[s:e] = b_ham
        return Recommendations(users, ids, scores, hamming)
