"""The re-ranker contract: score a candidate set and keep the top N, never adding to it.

Candidates are ``(n_users, C)`` internal item ids padded with -1; the result is ``(ids,
scores)`` of shape ``(n_users, k)``, sorted by score descending then item id ascending, -1 /
-inf padded.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from rechash.errors import DataError
from rechash.rank.order import top_by_score


@runtime_checkable
class Reranker(Protocol):
    """Scores (user, candidate item) pairs; ``rerank`` orders and trims each candidate row."""

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Float scores ``(n_users, C)`` for the candidate ids (values at -1 padding are ignored)."""
        ...


def rerank(reranker: Reranker, users: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of each candidate row by ``reranker.score``; ties by item id; never adds items."""
    users = np.asarray(users, dtype=np.int64)
    candidates = np.asarray(candidates, dtype=np.int64)
    if candidates.ndim != 2 or len(candidates) != len(users):
        raise DataError(f"rerank: candidates must be (n_users, C) for {len(users)} users, got {candidates.shape}")
    ids, vals, _ = top_by_score(candidates, reranker.score(users, candidates), k)  # checks shape and NaN
    return ids, vals
