"""Per-user top-K metrics under the protocol of DESIGN.md.

Recall@K = hits / |test items|; NDCG@K with binary gains and ideal DCG over
min(|test|, K); HR@K = any hit; Precision@K = hits / K; MRR@K = 1 / rank of the first
hit (0 when none); MAP@K = sum of precision at each hit / min(|test|, K). Users without
test items are left out of every average.
"""
from __future__ import annotations

from typing import Sequence

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
