"""The recommender abstraction every arm of a comparison implements.

A :class:`Recommender` turns internal user ids into a :class:`Recommendations` block:
``(n_users, k)`` item ids padded with -1, scores padded with -inf and, for Hamming arms,
distances padded with -1. ``to_frame`` turns it into the candidate / recommendation table
shared by rechash and the baselines (columns of :data:`rechash.columns.CANDIDATE_COLUMNS`:
``user_id, item_id, rank, score, hamming``; ``hamming`` is a nullable ``Int32`` that is
``<NA>`` for float arms).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash import columns as C
from rechash.data.idmap import IdMap
from rechash.errors import DataError


@dataclass(frozen=True)
class Recommendations:
    """Top-k lists of ``users`` (internal ids): ``items`` / ``scores`` / ``hamming`` are ``(n, k)``."""

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    hamming: np.ndarray | None = None

    def __post_init__(self) -> None:
        users = np.asarray(self.users, dtype=np.int64)
        items = np.asarray(self.items, dtype=np.int64)
        scores = np.asarray(self.scores, dtype=np.float64)
        if items.ndim != 2 or items.shape != scores.shape or len(items) != len(users):
            raise DataError(
                f"Recommendations: items {items.shape} and scores {scores.shape} must be (n_users, k) for {len(users)} users"
            )
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "scores", scores)
        if self.hamming is not None:
            hamming = np.asarray(self.hamming, dtype=np.int32)
            if hamming.shape != items.shape:
                raise DataError(f"Recommendations: hamming {hamming.shape} must match items {items.shape}")
            object.__setattr__(self, "hamming", hamming)

    @property
    def k(self) -> int:
        return self.items.shape[1]

    def head(self, k: int) -> "Recommendations":
        """The first ``k`` columns (a prefix of every list)."""
        ham = None if self.hamming is None else self.hamming[:, :k]
        return Recommendations(self.users, self.items[:, :k], self.scores[:, :k], ham)

    def to_frame(self, user_ids: IdMap | None = None, item_ids: IdMap | None = None) -> pd.DataFrame:
        """Tidy table ``user_id, item_id, rank, score, hamming`` (one row per non-padding entry).

        Ids are internal unless the id maps are given, in which case they are external.
        Ranks run 1..k per user in list order.
        """
        valid = self.items >= 0
        rows, cols = np.nonzero(valid)
        users = self.users[rows]
        items = self.items[rows, cols]
        ham = pd.array(
            self.hamming[rows, cols] if self.hamming is not None else np.full(len(rows), pd.NA),
            dtype="Int32",
        )
        return pd.DataFrame(
            {
                C.USER_ID: user_ids.to_external(users) if user_ids is not None else users,
                C.ITEM_ID: item_ids.to_external(items) if item_ids is not None else items,
                C.RANK: (cols + 1).astype(np.int32),
                C.SCORE: self.scores[rows, cols],
                C.HAMMING: ham,
            },
            columns=list(C.CANDIDATE_COLUMNS),
        )


@runtime_checkable
class Recommender(Protocol):
    """Anything that recommends ``k`` items per user, never an item of ``exclude``'s row.

    ``exclude`` is a users x items CSR indexed by internal user id (the training items).
    Optional attributes read by the comparison: ``index_bytes`` (bytes of the serving
    index over the whole catalog) and ``candidates(users, n, exclude)`` (the first-stage
    candidate set when the recommender re-ranks one; defaults to ``recommend``).
    """

    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> Recommendations:
        ...


def check_users(users: np.ndarray, n_users: int, what: str = "users") -> np.ndarray:
    """Validate internal user ids (1-D ints in ``0..n_users-1``) and return them as int64."""
    users = np.asarray(users)
    if users.ndim != 1 or (users.size and not np.issubdtype(users.dtype, np.integer)):
        raise DataError(f"{what}: expected a 1-D array of internal integer ids, got {users.dtype} {users.shape}")
    users = users.astype(np.int64)
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise DataError(f"{what}: internal ids must lie in 0..{n_users - 1}, got {users.min()}..{users.max()}")
    return users


def check_exclude(exclude: sp.csr_matrix | None, n_users: int, n_items: int) -> sp.csr_matrix | None:
    """Validate an exclusion matrix (users x items, canonical CSR) or pass ``None`` through."""
    if exclude is None:
        return None
    if exclude.shape[1] != n_items or exclude.shape[0] < n_users:
        raise DataError(f"exclude: expected a (>={n_users}, {n_items}) users x items matrix, got {exclude.shape}")
    return exclude if isinstance(exclude, sp.csr_matrix) else sp.csr_matrix(exclude)
