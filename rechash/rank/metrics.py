"""Per-user top-K metrics under the protocol of DESIGN.md.

Recall@K = hits / |test items|; NDCG@K with binary gains and ideal DCG over
min(|test|, K); HR@K = any hit; Precision@K = hits / K; MRR@K = 1 / rank of the first
hit (0 when none); MAP@K = sum of precision at each hit / min(|test|, K). Users without
test items are left out of every average. Also: candidate recall against candidate-set
size, item coverage, overlap with a reference list.

Difference with implicit's ``ranking_metrics_at_k`` (checked in tests on identical lists):
ndcg and map agree exactly (same gains, same min(|test|, K) ideal and denominators, same
mean over users with test items); implicit's "precision" is sum(hits) / sum(min(|test|,
K)) over all users (micro-averaged, capped), not the mean of hits / K used here; see
:func:`implicit_precision`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

METRICS = ("recall", "ndcg", "hr", "precision", "mrr", "map")


def hit_matrix(recommended: np.ndarray, users: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(len(users), K)``: is ``recommended[i, j]`` among ``users[i]``'s truth items."""
    truth = truth.tocsr()
    n_items = truth.shape[1]
    rows = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr))
    keys = np.sort(rows * n_items + truth.indices)
    rec = np.asarray(recommended, dtype=np.int64)
    query = np.asarray(users, dtype=np.int64)[:, None] * n_items + rec
    pos = np.clip(np.searchsorted(keys, query), 0, max(len(keys) - 1, 0))
    return (rec >= 0) & (len(keys) > 0) & (keys[pos] == query if len(keys) else False)


def per_user_metrics(
    recommended: np.ndarray,
    users: np.ndarray,
    truth: sp.csr_matrix,
    ks: Sequence[int] = (20,),
) -> pd.DataFrame:
    """Per-user metrics for lists ``recommended[i]`` of ``users[i]`` against ``truth`` rows.

    Returns a DataFrame indexed by internal user id (users with at least one truth item
    only) with columns ``f"{metric}@{k}"`` for every metric in :data:`METRICS`.
    """
    users = np.asarray(users, dtype=np.int64)
    n_truth = np.diff(truth.tocsr().indptr)[users]
    keep = n_truth > 0
    hits = hit_matrix(recommended, users, truth)[keep].astype(np.float64)
    n_truth = n_truth[keep].astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        h = hits[:, :k]
        width = h.shape[1]
        discounts = 1.0 / np.log2(np.arange(2, width + 2))
        n_hits = h.sum(axis=1)
        ideal_len = np.minimum(n_truth, k).astype(int)
        ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])[ideal_len]
        first = np.where(n_hits > 0, h.argmax(axis=1) + 1, 0)
        precision_at = np.cumsum(h, axis=1) / np.arange(1, width + 1)
        out[f"recall@{k}"] = n_hits / n_truth
        out[f"ndcg@{k}"] = (h * discounts).sum(axis=1) / ideal
        out[f"hr@{k}"] = (n_hits > 0).astype(np.float64)
        out[f"precision@{k}"] = n_hits / k
        out[f"mrr@{k}"] = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
        out[f"map@{k}"] = (precision_at * h).sum(axis=1) / np.minimum(n_truth, k)
    return pd.DataFrame(out, index=pd.Index(users[keep], name="user"))


def candidate_recall(
    candidates: np.ndarray, users: np.ndarray, truth: sp.csr_matrix, sizes: Sequence[int]
) -> pd.DataFrame:
    """Per-user share of truth items inside the first ``c`` candidates, for each ``c`` in ``sizes``.

    ``candidates[i]`` is user ``users[i]``'s candidate list in first-stage order (-1 padded);
    the candidate set of size ``c`` is its prefix. Columns ``candidate_recall@{c}``, users
    with at least one truth item only (the same rows as :func:`per_user_metrics`).
    """
    sizes = sorted({int(c) for c in sizes})
    if not sizes or sizes[0] <= 0:
        raise ValueError(f"candidate sizes must be positive, got {sizes}")
    users = np.asarray(users, dtype=np.int64)
    n_truth = np.diff(truth.tocsr().indptr)[users]
    keep = n_truth > 0
    hits = np.cumsum(hit_matrix(candidates, users, truth)[keep], axis=1, dtype=np.float64)
    width = hits.shape[1]
    out = {
        f"candidate_recall@{c}": (hits[:, min(c, width) - 1] if width else np.zeros(keep.sum())) / n_truth[keep]
        for c in sizes
    }
    return pd.DataFrame(out, index=pd.Index(users[keep], name="user"))


def item_coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalog's ``n_items`` that appear in at least one list (-1 padding ignored)."""
    rec = np.asarray(recommended, dtype=np.int64)
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    return float(np.unique(rec[rec >= 0]).size / n_items)


def overlap(recommended: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-row ``|rec ∩ ref| / |ref|`` of two aligned ``(n, K)`` id arrays (-1 padding ignored).

    With ``reference`` the exact float top-K of the same users this is the recall of an
    approximate index against exact search (1.0 = identical sets). Rows whose reference is
    empty get NaN.
    """
    rec = np.asarray(recommended, dtype=np.int64)
    ref = np.asarray(reference, dtype=np.int64)
    if rec.ndim != 2 or ref.ndim != 2 or len(rec) != len(ref):
        raise ValueError(f"overlap: expected two (n, K) arrays with one n, got {rec.shape} and {ref.shape}")
    valid_ref = ref >= 0
    same = (ref[:, :, None] == rec[:, None, :]) & valid_ref[:, :, None]
    n_ref = valid_ref.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_ref > 0, same.any(axis=2).sum(axis=1) / n_ref, np.nan)


def implicit_precision(per_user: pd.DataFrame, truth: sp.csr_matrix, k: int) -> float:
    """implicit's ``ranking_metrics_at_k`` "precision": sum of hits / sum of min(|test|, K).

    It is micro-averaged and capped at min(|test|, K), i.e. a capped recall, not hits / K;
    this converts the per-user ``recall@k`` column of :func:`per_user_metrics` into it.
    """
    n_truth = np.diff(truth.tocsr().indptr)[per_user.index.to_numpy()].astype(np.float64)
    hits = per_user[f"recall@{k}"].to_numpy() * n_truth
    return float(hits.sum() / np.minimum(n_truth, k).sum())
