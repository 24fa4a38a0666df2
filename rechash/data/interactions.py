"""Interactions: the one validated dataset every stage after ``data`` consumes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash import columns as C
from rechash.data.idmap import IdMap
from rechash.errors import DataError


@dataclass(frozen=True, eq=False)
class Interactions:
    """A user x item CSR matrix of weights (float32) plus both id maps.

    ``matrix`` is canonical: sorted column indices, no duplicate entries, shape
    ``(len(user_ids), len(item_ids))``. ``timestamps``, when present, is a float64 array
    aligned with ``matrix.data``. ``duplicates_merged`` counts input rows merged into an
    existing (user, item) entry (weights summed, latest timestamp kept).
    """

    matrix: sp.csr_matrix
    user_ids: IdMap
    item_ids: IdMap
    timestamps: np.ndarray | None = None
    duplicates_merged: int = 0
    source: str = field(default="<memory>")

    def __post_init__(self) -> None:
        m = self.matrix
        if not sp.isspmatrix_csr(m) and not isinstance(m, sp.csr_array):
            raise DataError("Interactions.matrix must be a scipy CSR matrix")
        if m.shape != (len(self.user_ids), len(self.item_ids)):
            raise DataError(
                f"Interactions.matrix has shape {m.shape}, id maps have "
                f"{len(self.user_ids)} users and {len(self.item_ids)} items"
            )
        if self.timestamps is not None and len(self.timestamps) != m.nnz:
            raise DataError("Interactions.timestamps must align with matrix.data")

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        user_ids: IdMap,
        item_ids: IdMap,
        weights: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        source: str = "<memory>",
    ) -> "Interactions":
        """Build from internal id arrays; duplicates are merged and counted."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        n = len(users)
        w = np.ones(n, dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
        shape = (len(user_ids), len(item_ids))
        order = np.lexsort((items, users))
        users, items, w = users[order], items[order], w[order]
        ts = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)[order]
        keep = np.ones(n, dtype=bool)
        if n:
            keep[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
        duplicates = int(n - keep.sum())
        if duplicates:
            group = np.cumsum(keep) - 1
            w = np.bincount(group, weights=w).astype(np.float32)
            if ts is not None:
                merged_ts = np.full(int(keep.sum()), -np.inf)
                np.maximum.at(merged_ts, group, ts)
                ts = merged_ts
            users, items = users[keep], items[keep]
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=shape[0]), out=indptr[1:])
        matrix = sp.csr_matrix((w, items.astype(np.int32), indptr), shape=shape)
        return cls(matrix, user_ids, item_ids, ts, duplicates, source)

    # ---- views ----------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(users, items, weights)`` internal arrays in CSR order."""
        users = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.matrix.indptr))
        return users, self.matrix.indices.astype(np.int64), self.matrix.data

    def subset(self, mask: np.ndarray) -> "Interactions":
        """The entries where ``mask`` (aligned with ``matrix.data``) is True; id maps kept."""
        users, items, w = self.coo()
        ts = None if self.timestamps is None else self.timestamps[mask]
        return Interactions.from_arrays(
            users[mask], items[mask], self.user_ids, self.item_ids, w[mask], ts, self.source
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy table in external ids: ``user_id, item_id, weight[, timestamp]``."""
        users, items, w = self.coo()
        frame = pd.DataFrame(
            {
                C.USER_ID: self.user_ids.to_external(users),
                C.ITEM_ID: self.item_ids.to_external(items),
                C.WEIGHT: w,
            }
        )
        if self.timestamps is not None:
            frame[C.TIMESTAMP] = self.timestamps
        return frame
