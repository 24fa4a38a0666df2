"""Interactions: the one validated dataset every stage after ``data`` consumes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash import columns as C
from rechash.data.idmap import IdMap
from rechash.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from rechash.data.features import SideFeatures


@dataclass(frozen=True, eq=False)
class Interactions:
    """A user x item CSR matrix of weights (float32) plus both id maps.

    ``matrix`` is canonical: sorted column indices, no duplicate entries, shape
    ``(len(user_ids), len(item_ids))``. ``timestamps``, when present, is a float64 array
    (seconds since the epoch) aligned with ``matrix.data``. ``duplicates_merged`` counts
    input rows merged into an existing (user, item) entry (weights summed, latest
    timestamp kept). ``dropped`` counts entries removed on purpose, by reason (for
    example ``{"k_core": 120, "threshold": 4000}``). ``user_features`` / ``item_features``
    are optional :class:`~rechash.data.features.SideFeatures` aligned to the id maps.
    Splits and filters keep the id maps, so every part of a split shares them.
    """

    matrix: sp.csr_matrix
    user_ids: IdMap
    item_ids: IdMap
    timestamps: np.ndarray | None = None
    duplicates_merged: int = 0
    source: str = field(default="<memory>")
    dropped: Mapping[str, int] = field(default_factory=dict)
    user_features: "SideFeatures | None" = None
    item_features: "SideFeatures | None" = None

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
        for side, ids in (("user", self.user_ids), ("item", self.item_ids)):
            feats = getattr(self, f"{side}_features")
            if feats is not None and feats.n_rows != len(ids):
                raise DataError(f"Interactions.{side}_features has {feats.n_rows} rows, expected {len(ids)}")

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
        """Build from internal id arrays; duplicates are merged (weights summed, latest
        timestamp kept) and counted in ``duplicates_merged``. Runs in O(n) time and memory."""
        from rechash.data._kernels import coo_to_csr

        shape = (len(user_ids), len(item_ids))
        users = np.asarray(users)
        items = np.asarray(items)
        n = len(users)
        if len(items) != n or (weights is not None and len(weights) != n) or (
            timestamps is not None and len(timestamps) != n
        ):
            raise DataError("Interactions.from_arrays: users, items, weights and timestamps differ in length")
        for what, arr, size in (("user", users, shape[0]), ("item", items, shape[1])):
            if n and (arr.min() < 0 or arr.max() >= size):
                raise DataError(f"Interactions.from_arrays: internal {what} ids must lie in 0..{size - 1}")
        w = np.empty(0, np.float32) if weights is None else np.ascontiguousarray(weights, dtype=np.float32)
        ts = np.empty(0, np.float64) if timestamps is None else np.ascontiguousarray(timestamps, dtype=np.float64)
        indptr, indices, data, tout, nnz = coo_to_csr(
            np.ascontiguousarray(users, dtype=np.int32),
            np.ascontiguousarray(items, dtype=np.int32),
            w, ts, shape[0], weights is not None, timestamps is not None,
        )
        if nnz < n:  # release the tail left by merged duplicates
            indices, data, tout = indices[:nnz].copy(), data[:nnz].copy(), tout[:nnz].copy()
            if weights is not None and not np.isfinite(data).all():  # summed duplicates overflowed float32
                k = int(np.argmax(~np.isfinite(data)))
                row = int(np.searchsorted(indptr, k, side="right") - 1)
                raise DataError(
                    f"{source}: the weights of user {user_ids.to_external([row]).tolist()[0]!r} and item "
                    f"{item_ids.to_external([indices[k]]).tolist()[0]!r}, summed over duplicate rows, overflow float32"
                )
        return cls(
            _csr(data, indices, indptr, shape), user_ids, item_ids,
            tout if timestamps is not None else None, n - nnz, source,
        )

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
        return self.rows(), self.matrix.indices.astype(np.int64), self.matrix.data

    def rows(self) -> np.ndarray:
        """Internal user id of every entry (int64, aligned with ``matrix.data``)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.matrix.indptr))

    def subset(self, mask: np.ndarray, *, dropped: str | None = None) -> "Interactions":
        """The entries where ``mask`` (aligned with ``matrix.data``) is True; id maps and
        side features kept. With ``dropped=REASON`` the removed entries are counted in
        ``dropped[REASON]``; without, the rest is assumed to live on elsewhere (a split)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.nnz,):
            raise DataError(f"Interactions.subset: mask must have shape ({self.nnz},), got {mask.shape}")
        m = self.matrix
        kept_before = np.zeros(self.nnz + 1, dtype=np.int64)
        np.cumsum(mask, out=kept_before[1:])
        indptr = kept_before[m.indptr]
        counts = dict(self.dropped)
        if dropped is not None:
            counts[dropped] = counts.get(dropped, 0) + int(self.nnz - mask.sum())
        return dataclasses.replace(
            self,
            matrix=_csr(m.data[mask], m.indices[mask], indptr, m.shape),
            timestamps=None if self.timestamps is None else self.timestamps[mask],
            dropped=counts,
        )

    def with_weights(self, data: np.ndarray) -> "Interactions":
        """The same entries with new weights (aligned with ``matrix.data``)."""
        m = self.matrix
        return dataclasses.replace(self, matrix=_csr(np.asarray(data, np.float32), m.indices, m.indptr, m.shape))

    def compact(self) -> "Interactions":
        """Drop users and items without interactions from the id maps (new maps, new ids)."""
        users, items, w = self.coo()
        ukeep = np.flatnonzero(np.diff(self.matrix.indptr) > 0)
        ikeep = np.flatnonzero(np.bincount(items, minlength=self.n_items) > 0)
        uidx = np.full(self.n_users, -1, np.int64)
        uidx[ukeep] = np.arange(len(ukeep))
        iidx = np.full(self.n_items, -1, np.int64)
        iidx[ikeep] = np.arange(len(ikeep))
        user_ids = IdMap(self.user_ids.external_ids[ukeep])
        item_ids = IdMap(self.item_ids.external_ids[ikeep])
        out = Interactions.from_arrays(uidx[users], iidx[items], user_ids, item_ids, w, self.timestamps, self.source)
        feats = {
            f"{side}_features": None if f is None else f.take(keep, ids)
            for side, f, keep, ids in (
                ("user", self.user_features, ukeep, user_ids),
                ("item", self.item_features, ikeep, item_ids),
            )
        }
        return dataclasses.replace(out, duplicates_merged=self.duplicates_merged, dropped=dict(self.dropped), **feats)

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

    def describe(self) -> dict:
        """Summary statistics (the numbers ``rechash data stats`` prints).

        Activity percentiles are over users with at least one interaction; popularity
        skew is over the whole item catalogue (items without interactions count as 0):
        the Gini coefficient of item counts and the share of interactions held by the
        most popular 1% / 10% of items.
        """
        activity = np.diff(self.matrix.indptr)
        popularity = np.bincount(self.matrix.indices, minlength=self.n_items)
        active = activity[activity > 0]
        cells = self.n_users * self.n_items
        stats = {
            "users": self.n_users,
            "users with interactions": int(len(active)),
            "items": self.n_items,
            "items with interactions": int((popularity > 0).sum()),
            "interactions": self.nnz,
            "density": self.nnz / cells if cells else 0.0,
            "duplicates merged": int(self.duplicates_merged),
            "dropped": {k: int(v) for k, v in self.dropped.items()},
        }
        q = [0, 10, 25, 50, 75, 90, 99, 100]
        stats["user activity"] = dict(zip(
            ["min", "p10", "p25", "p50", "p75", "p90", "p99", "max"],
            [float(v) for v in np.percentile(active, q)] if len(active) else [0.0] * len(q),
        ))
        ranked = np.sort(popularity)[::-1].astype(np.float64)
        total = ranked.sum()
        top = lambda share: float(ranked[: max(1, int(np.ceil(share * len(ranked))))].sum() / total) if total else 0.0
        stats["item popularity"] = {
            "gini": _gini(ranked[::-1]),
            "top 1% share": top(0.01),
            "top 10% share": top(0.10),
            "max": int(ranked[0]) if len(ranked) else 0,
        }
        w = self.matrix.data
        stats["weights"] = (
            {"min": float(w.min()), "mean": float(w.mean()), "max": float(w.max()), "binary": bool(np.all(w == 1))}
            if len(w) else {}
        )
        if self.timestamps is not None and len(self.timestamps):
            stats["timestamps"] = {"min": float(self.timestamps.min()), "max": float(self.timestamps.max())}
        for side in ("user", "item"):
            feats = getattr(self, f"{side}_features")
            if feats is not None:
                stats[f"{side} features"] = {f.name: f.kind for f in feats.features}
        return stats


def _gini(ascending: np.ndarray) -> float:
    """Gini coefficient of non-negative values sorted ascending (0 = equal, ->1 = skewed)."""
    n, total = len(ascending), ascending.sum()
    if n == 0 or total == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ ascending / (n * total))


def _csr(data, indices, indptr, shape) -> sp.csr_matrix:
    """CSR from arrays already canonical (sorted, no duplicates), flagged as such."""
    m = sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    m.has_sorted_indices = True
    m.has_canonical_format = True
    return m
