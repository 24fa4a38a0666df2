"""Vectorised mini-batch sampling from a CSR interaction matrix (no per-sample Python)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp


class PairSampler:
    """Shuffled (user, positive item) pairs: every training interaction once per epoch."""

    def __init__(self, matrix: sp.csr_matrix, batch_size: int) -> None:
        matrix = matrix.tocsr()
        self.users = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        self.items = matrix.indices.astype(np.int64)
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def epoch(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = rng.permutation(len(self.users))
        for start in range(0, len(order), self.batch_size):
            sel = order[start : start + self.batch_size]
            yield self.users[sel], self.items[sel]


class NegativeSampler:
    """Shared negatives per batch, uniform or popularity**power, with their log-probabilities.

    Asked for at least as many negatives as there are items, it returns every item once
    (:meth:`exhaustive`): the softmax is then exact over the catalog, with no duplicates and
    no logQ correction (every item is present with probability 1).

    ``log_q`` is the log of the per-draw probability relative to uniform (``log(q_j * N)``),
    so the logQ correction is zero for uniform sampling and removes popularity bias otherwise.
    """

    def __init__(self, item_counts: np.ndarray, kind: str = "uniform", power: float = 1.0) -> None:
        if kind not in ("uniform", "popularity"):
            raise ValueError(f"negative sampling must be 'uniform' or 'popularity', got {kind!r}")
        n = len(item_counts)
        self.kind = kind
        if kind == "uniform":
            self.prob = np.full(n, 1.0 / n)
        else:
            w = np.power(np.asarray(item_counts, dtype=np.float64) + 1.0, power)
            self.prob = w / w.sum()
        self.cdf = np.cumsum(self.prob)
        self.cdf[-1] = 1.0
        self.log_q = np.log(self.prob * n).astype(np.float32)

    def exhaustive(self, k: int) -> bool:
        """Whether ``k`` negatives mean the whole catalog."""
        return k >= len(self.prob)

    def sample(self, k: int, rng: np.random.Generator) -> np.ndarray:
        if self.exhaustive(k):
            return np.arange(len(self.prob), dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(0, len(self.prob), size=k, dtype=np.int64)
        return np.searchsorted(self.cdf, rng.random(k), side="right").astype(np.int64)


def item_log_popularity(item_counts: np.ndarray) -> np.ndarray:
    """``log(p_j * N)`` with ``p_j`` the share of interactions of item j: the logQ of in-batch items."""
    counts = np.asarray(item_counts, dtype=np.float64) + 1e-3
    p = counts / counts.sum()
    return np.log(p * len(counts)).astype(np.float32)


def sample_history(
    matrix: sp.csr_matrix, users: np.ndarray, leave_out: np.ndarray, cap: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(items, weights)`` of shape ``(len(users), cap)``: each user's whole history when it has at
    most ``cap`` items, else ``cap`` draws with replacement (an unbiased estimate of the weighted
    mean). ``leave_out[r]`` (the positive being predicted) and padding get weight 0, so a history
    encoder never sees its own target."""
    start = matrix.indptr[users].astype(np.int64)
    length = matrix.indptr[users + 1].astype(np.int64) - start
    slots = np.arange(cap, dtype=np.int64)[None, :]
    short = length[:, None] <= cap
    drawn = np.floor(rng.random((len(users), cap)) * length[:, None]).astype(np.int64)
    offset = np.where(short, slots, drawn)
    valid = offset < length[:, None]
    pos = np.where(valid, start[:, None] + offset, 0)
    items = matrix.indices[pos].astype(np.int64)
    weights = np.where(valid & (items != np.asarray(leave_out)[:, None]), matrix.data[pos], 0.0)
    return items, weights.astype(np.float32)


def accidental_hits(positives: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ``(row, col)`` with ``candidates[col] == positives[row]`` in O((b + C) log C), without
    the dense ``b x C`` comparison."""
    order = np.argsort(candidates, kind="stable")
    ordered = candidates[order]
    left = np.searchsorted(ordered, positives, side="left")
    counts = np.searchsorted(ordered, positives, side="right") - left
    rows = np.repeat(np.arange(len(positives), dtype=np.int64), counts)
    within = np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, order[np.repeat(left, counts) + within].astype(np.int64)


def holdout_mask(
    matrix: sp.csr_matrix,
    rng: np.random.Generator,
    share: float = 0.1,
    low: int = 500,
    high: int = 10_000,
    min_items: int = 3,
) -> np.ndarray:
    """Entries (aligned with ``matrix.data``) to hold out as validation when none is given:
    one uniformly drawn interaction from each of ``clip(share * E, low, high)`` users drawn
    among the ``E`` users with at least ``min_items`` training interactions (all of them
    when fewer). The rest stays in train; the held-out entries are not put back after
    training (early stopping needs them unseen)."""
    matrix = matrix.tocsr()
    lengths = np.diff(matrix.indptr)
    eligible = np.flatnonzero(lengths >= min_items)
    n = min(len(eligible), int(np.clip(round(share * len(eligible)), low, high)))
    users = np.sort(rng.choice(eligible, size=n, replace=False))
    picks = matrix.indptr[users] + np.floor(rng.random(n) * lengths[users]).astype(np.int64)
    mask = np.zeros(matrix.nnz, dtype=bool)
    mask[picks] = True
    return mask
