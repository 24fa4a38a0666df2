"""The one ordering rule of every list rechash returns.

Rows of candidate ids (``-1`` padding) are ordered by sort keys (each ascending, the first
most significant), then by item id ascending; padding sorts last and stays ``-1`` / ``-inf``.
:func:`order_rows` is the primitive (of every recommender's lists, the full-catalog oracle
:func:`rechash.rank.topk.topk_rows` and the pool ranker's ranks); :func:`top_by_score`
(score descending) and :func:`order_pool` (distance, then score descending) are its two
common uses, :func:`pad_lists` its padding. The indexes' own (distance, id) order and the
one-user compiled kernel (:mod:`rechash.models.online`) follow the same rule, tested against it.
"""

from __future__ import annotations

import numpy as np

from rechash.errors import DataError


def pad_lists(ids: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lists cut or padded (-1 / -inf) to exactly ``n`` columns."""
    if ids.shape[1] >= n:
        return ids[:, :n], scores[:, :n]
    pad = ((0, 0), (0, n - ids.shape[1]))
    return np.pad(ids, pad, constant_values=-1), np.pad(scores, pad, constant_values=-np.inf)


def order_rows(ids: np.ndarray, keys: list[np.ndarray], limit: int | None = None) -> np.ndarray:
    """Column positions that order each row of ``ids``: by ``keys`` (arrays of ``ids``'s shape,
    each ascending, the first most significant), then by id ascending; entries with id -1
    (padding) last whatever their keys. Cut to ``limit`` columns when given."""
    valid = ids >= 0
    big = np.iinfo(np.int64).max
    masked = [
        np.where(valid, key, np.inf if np.issubdtype(np.asarray(key).dtype, np.floating) else big) for key in keys
    ]
    order = np.lexsort((np.where(valid, ids, big), *reversed(masked)), axis=-1)
    return order if limit is None else order[..., :limit]


def _check_scores(ids: np.ndarray, scores: np.ndarray, what: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != ids.shape:
        raise DataError(f"{what} returned shape {scores.shape}, expected {ids.shape}")
    if np.isnan(scores[ids >= 0]).any():
        raise DataError(f"{what} returned NaN scores")
    return scores


def top_by_score(ids: np.ndarray, scores: np.ndarray, k: int, hamming: np.ndarray | None = None):
    """The ``k`` best of each row by score descending, then item id ascending: ``(ids,
    scores, hamming)`` of ``k`` columns, -1 / -inf / -1 padded (``hamming`` carried along, or
    None). An entry scored -inf counts as absent."""
    scores = _check_scores(ids, scores, "the re-ranker")
    valid = ids >= 0
    scores = np.where(valid, scores, -np.inf)
    order = order_rows(ids, [-scores], k)
    out_ids = np.take_along_axis(ids, order, axis=1)
    vals = np.take_along_axis(scores, order, axis=1)
    out_ids[~valid.any(axis=1, keepdims=True) | np.isneginf(vals)] = -1
    ham = None if hamming is None else np.where(out_ids >= 0, np.take_along_axis(hamming, order, axis=1), -1)
    if out_ids.shape[1] < k:
        pad = ((0, 0), (0, k - out_ids.shape[1]))
        out_ids, vals = pad_lists(out_ids, vals, k)
        ham = None if ham is None else np.pad(ham, pad, constant_values=-1)
    return out_ids, vals, ham


def order_pool(dist: np.ndarray, ids: np.ndarray, scores, limit: int | None):
    """Hamming pools ordered by (distance, score descending, id), cut to ``limit``: ``(dist,
    ids, scores)``; ``scores`` (the tie-break, ``(n, C)``) travel with the items, -inf at padding."""
    scores = _check_scores(ids, scores, "tie_break")
    order = order_rows(ids, [dist.astype(np.int64), -scores], limit)
    valid = np.take_along_axis(ids, order, axis=1) >= 0
    return (
        np.take_along_axis(dist, order, axis=1),
        np.take_along_axis(ids, order, axis=1),
        np.where(valid, np.take_along_axis(scores, order, axis=1), -np.inf),
    )
