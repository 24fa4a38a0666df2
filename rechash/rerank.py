"""Re-rankers: score a candidate set with a light real-valued model and keep the top N.

A re-ranker may only reorder or trim a candidate set, never add to it. Candidates are
``(n_users, C)`` internal item ids padded with -1; the result is ``(ids, scores)`` of
shape ``(n_users, k)``, sorted by score descending then item id ascending, -1 / -inf
padded.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from rechash.errors import DataError


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
    scores = np.asarray(reranker.score(users, candidates), dtype=np.float64)
    if scores.shape != candidates.shape:
        raise DataError(f"rerank: scorer returned shape {scores.shape}, expected {candidates.shape}")
    valid = candidates >= 0
    scores = np.where(valid, scores, -np.inf)
    # sort by (score desc, item id asc); padding goes last
    order = np.lexsort((np.where(valid, candidates, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
    ids = np.take_along_axis(candidates, order, axis=1)
    vals = np.take_along_axis(scores, order, axis=1)
    ids[~np.isfinite(vals)] = -1
    if ids.shape[1] < k:
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=-np.inf)
    return ids, vals


class DotReranker:
    """Float dot product ``<u, i>`` over the candidates (towers' floats or any external model)."""

    def __init__(self, user_vectors: np.ndarray, item_vectors: np.ndarray) -> None:
        if user_vectors.ndim != 2 or item_vectors.ndim != 2 or user_vectors.shape[1] != item_vectors.shape[1]:
            raise DataError(
                f"DotReranker: expected (users, d) and (items, d), got {user_vectors.shape} and {item_vectors.shape}"
            )
        self.user_vectors = np.ascontiguousarray(user_vectors, dtype=np.float32)
        self.item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        items = self.item_vectors[np.maximum(candidates, 0)]  # (u, C, d)
        return np.einsum("ucd,ud->uc", items, self.user_vectors[users], optimize=True)
