"""The re-ranker contract: score a candidate set and keep the top N, never adding to it.

Candidates are ``(n_users, C)`` internal item ids padded with -1; the result is ``(ids,
scores)`` of shape ``(n_users, k)``, sorted by score descending then item id ascending, -1 /
-inf padded.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numba
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
    ids, vals, _ = top_by_score(candidates, scores, k)
    return ids, vals


def top_by_score(ids: np.ndarray, scores: np.ndarray, k: int, hamming: np.ndarray | None = None):
    """The ``k`` best of each row by score descending, then item id ascending: ``(ids,
    scores, hamming)`` with -1 / -inf / -1 padding (``hamming`` carried along, or None)."""
    valid = ids >= 0
    if np.isnan(scores[valid]).any():
        raise DataError("the re-ranker returned NaN scores")
    scores = np.where(valid, scores, -np.inf)
    order = np.lexsort((np.where(valid, ids, np.iinfo(np.int64).max), -scores), axis=1)[:, :k]
    out_ids = np.take_along_axis(ids, order, axis=1)
    vals = np.take_along_axis(scores, order, axis=1)
    out_ids[~valid.any(axis=1, keepdims=True) | np.isneginf(vals)] = -1
    ham = None if hamming is None else np.where(out_ids >= 0, np.take_along_axis(hamming, order, axis=1), -1)
    if out_ids.shape[1] < k:
        pad = ((0, 0), (0, k - out_ids.shape[1]))
        out_ids = np.pad(out_ids, pad, constant_values=-1)
        vals = np.pad(vals, pad, constant_values=-np.inf)
        ham = None if ham is None else np.pad(ham, pad, constant_values=-1)
    return out_ids, vals, ham


@numba.njit(cache=True, nogil=True)
def order_online(dist, scores, pool, n, by_score):  # pragma: no cover - compiled
    """Positions of one user's top ``n`` in a pool given in item-id order: the ``pool``
    best by (distance, score desc, id), then by (score desc, id) when ``by_score`` (a
    re-ranker), else kept in that Hamming order. Stable sorts carry the id tie rule.

    With a re-ranker one sort does: walking the pool by (score desc, id), every item
    nearer than the cut-off distance is in the pool and the first ``pool - #nearer``
    items at the cut-off are the ones (distance, score desc, id) would keep."""
    by_s = np.argsort(-scores, kind="mergesort")
    if not by_score:
        return by_s[np.argsort(dist[by_s], kind="mergesort")][: min(pool, n)]
    cut = dist.max() if dist.shape[0] else 0
    quota = pool
    for i in range(dist.shape[0]):
        quota -= dist[i] < cut
    out = np.empty(min(n, dist.shape[0]), dtype=np.int64)
    k = 0
    for i in by_s:
        if k == out.shape[0]:
            break
        if dist[i] == cut:
            if quota == 0:
                continue
            quota -= 1
        out[k] = i
        k += 1
    return out[:k]

