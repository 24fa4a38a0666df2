"""Interactions: the one validated dataset every stage after ``data`` consumes."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from rechash import columns as C
from rechash.data.files import check_unique
from rechash.data.idmap import IdMap, format_id
from rechash.data.tables import (
    TIMESTAMP_UNITS,
    IdUnion,
    Table,
    collect_ids,
    column_numbers,
    id_chunk,
    map_ids,
    parquet_type_ok,
    pick_columns,
)
from rechash.errors import DataError

logger = logging.getLogger(__name__)

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
    example ``{"k_core": 120, "threshold": 4000}``; :meth:`from_frame` counts the input
    rows it drops for ids not in the given maps as ``unknown_user`` / ``unknown_item``).
    ``user_features`` / ``item_features``
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
    user_features: SideFeatures | None = None
    item_features: SideFeatures | None = None

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
    ) -> Interactions:
        """Build from internal id arrays; duplicates are merged (weights summed, latest
        timestamp kept) and counted in ``duplicates_merged``. Runs in O(n) time and memory."""
        from rechash.data._kernels import coo_to_csr

        shape = (len(user_ids), len(item_ids))
        users = np.asarray(users)
        items = np.asarray(items)
        n = len(users)
        if (
            len(items) != n
            or (weights is not None and len(weights) != n)
            or (timestamps is not None and len(timestamps) != n)
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
            w,
            ts,
            shape[0],
            weights is not None,
            timestamps is not None,
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
            _csr(data, indices, indptr, shape),
            user_ids,
            item_ids,
            tout if timestamps is not None else None,
            n - nnz,
            source,
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        user_col: str | None = C.USER_ID,
        item_col: str | None = C.ITEM_ID,
        weight_col: str | Literal[False] | None = None,
        timestamp_col: str | Literal[False] | None = None,
        *,
        user_ids: IdMap | Sequence | None = None,
        item_ids: IdMap | Sequence | None = None,
        unknown: Literal["error", "drop"] = "error",
        timestamp_unit: str = "auto",
        source: str = "DataFrame",
    ) -> Interactions:
        """Interactions from a table of rows ``user, item[, weight][, timestamp]``.

        The inverse of :meth:`to_frame`, and the path of :func:`rechash.data.load`: the
        frame's columns go through the loaders' validation, id mapping and duplicate merging
        exactly as a Parquet file's do (see :mod:`rechash.data.loaders`), so a frame and the
        same table written to Parquet give the same Interactions.

        Columns. ``user_col``/``item_col`` name the id columns (``None``: found by their
        usual names, as :func:`~rechash.data.load` does). ``weight_col``/``timestamp_col``
        name the optional columns; ``None`` takes them by their usual names when present
        (``weight``, ``rating``, ``count``...; ``timestamp``, ``time``, ``ts``...) and
        ``False`` ignores them. Without weights every row weighs 1.

        Ids are integers (int columns; float columns of integral values) or strings (str,
        object or categorical columns; whitespace around them stripped), one kind per
        column: a column mixing ids of both kinds, or holding other values (tuples, bools),
        is refused (``.astype(str)`` makes any ids strings). Without ``user_ids``, the user
        id map holds the distinct ids of the column **in ascending order** (integers
        numerically, strings by code point), the order :func:`~rechash.data.load` uses;
        likewise for items.

        Existing id maps. ``user_ids``/``item_ids`` (an :class:`IdMap` or the external ids
        in internal order) map the ids onto those maps instead, e.g. a valid or test frame
        onto the train maps. Ids of the other kind (string ids against integer maps or the
        reverse) are refused. Rows whose id is not in a given map are refused with
        ``unknown="error"`` (the default; the message names the first such id, its row and
        the count); with ``unknown="drop"`` they are dropped, counted in
        :attr:`dropped` (``"unknown_user"``: rows whose user is unknown; ``"unknown_item"``:
        rows whose user is known but item is not; input rows, before duplicates merge),
        and logged as a warning naming the counts and the first unknown ids.

        Weights must be finite, non-negative numbers that fit float32; timestamps numbers
        (``timestamp_unit``: ``"s"``, ``"ms"``, ``"us"``, ``"ns"``, or ``"auto"`` by
        magnitude), datetimes or date strings, stored as float64 seconds since the epoch.
        Duplicate (user, item) rows are merged (weights summed, latest timestamp kept) and
        counted in :attr:`duplicates_merged`. Every problem raises one :class:`DataError`
        line naming ``source``, the row (index label) and the column.

        Round trip: ``from_frame(inter.to_frame(), user_ids=inter.user_ids,
        item_ids=inter.item_ids)`` reproduces ``inter``'s matrix, id maps, weights and
        timestamps exactly. Without the maps, ``from_frame(inter.to_frame())`` rebuilds them
        from the rows: exact when every user and item has an interaction and the maps are in
        ascending order (as :func:`~rechash.data.load` and this method build them).
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{source}: expected a pandas DataFrame, got {type(frame).__name__}")
        if unknown not in ("error", "drop"):
            raise DataError(f"{source}: unknown must be 'error' or 'drop', got {unknown!r}")
        if timestamp_unit != "auto" and timestamp_unit not in TIMESTAMP_UNITS:
            raise DataError(
                f"{source}: timestamp unit: expected auto, {', '.join(TIMESTAMP_UNITS)}, got {timestamp_unit!r}"
            )
        names = list(frame.columns)
        check_unique(source, [str(n) for n in names], None)
        opts = {
            "user_col": user_col,
            "item_col": item_col,
            "weight_col": weight_col or None,
            "timestamp_col": timestamp_col or None,
        }
        roles = pick_columns(source, names, opts)
        for role, given in (("weight", weight_col), ("timestamp", timestamp_col)):
            if given is False:
                roles.pop(role, None)
        table = _frame_table(frame, roles, source, timestamp_unit)
        maps = {"user": user_ids, "item": item_ids}
        internal, unknowns = {}, {}
        for role in ("user", "item"):
            given = maps[role]
            if given is None:  # the loaders' path: the column's distinct ids, ascending
                acc = IdUnion()
                collect_ids(table, role, acc)
                maps[role] = acc.idmap()
                internal[role] = map_ids(table, role, maps[role])
                continue
            if not isinstance(given, IdMap):
                try:
                    given = IdMap(given)
                except DataError as exc:
                    raise DataError(f"{source}: {role}_ids: {exc}") from None
            maps[role] = given
            out = np.empty(table.n_rows, dtype=np.int64)
            for offset, chunk in table.chunks(role):
                values = id_chunk(table, role, offset, chunk)
                try:
                    out[offset : offset + len(values)] = given.to_internal(values, strict=False, what=f"{role} id")
                except DataError as exc:  # ids of the other kind
                    raise DataError(f"{source}: column {table.columns[role]!r}: {exc}") from None
            internal[role] = out
            unknowns[role] = out < 0
        weights = column_numbers(table, "weight", np.float32)
        stamps = column_numbers(table, "timestamp", np.float64)
        users, items = internal["user"], internal["item"]
        keep, dropped = _known_rows(frame, table, roles, unknowns, unknown, source)
        if keep is not None:
            users, items = users[keep], items[keep]
            weights = None if weights is None else weights[keep]
            stamps = None if stamps is None else stamps[keep]
        inter = cls.from_arrays(users, items, maps["user"], maps["item"], weights, stamps, source)
        return dataclasses.replace(inter, dropped=dropped) if dropped else inter

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

    def subset(self, mask: np.ndarray, *, dropped: str | None = None) -> Interactions:
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

    def with_weights(self, data: np.ndarray) -> Interactions:
        """The same entries with new weights (aligned with ``matrix.data``)."""
        m = self.matrix
        return dataclasses.replace(self, matrix=_csr(np.asarray(data, np.float32), m.indices, m.indptr, m.shape))

    def compact(self) -> Interactions:
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
        """Tidy table in external ids: ``user_id, item_id, weight[, timestamp]``, one row
        per entry in CSR order (users by internal id, then items by internal id); weights
        float32, timestamps float64 seconds. The inverse of :meth:`from_frame` (see there:
        the id maps travel separately, users and items without interactions have no row)."""
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
        stats["user activity"] = dict(
            zip(
                ["min", "p10", "p25", "p50", "p75", "p90", "p99", "max"],
                [float(v) for v in np.percentile(active, q)] if len(active) else [0.0] * len(q),
            )
        )
        ranked = np.sort(popularity)[::-1].astype(np.float64)
        total = ranked.sum()

        def top(share):
            return float(ranked[: max(1, int(np.ceil(share * len(ranked))))].sum() / total) if total else 0.0

        stats["item popularity"] = {
            "gini": _gini(ranked[::-1]),
            "top 1% share": top(0.01),
            "top 10% share": top(0.10),
            "max": int(ranked[0]) if len(ranked) else 0,
        }
        w = self.matrix.data
        stats["weights"] = (
            {"min": float(w.min()), "mean": float(w.mean()), "max": float(w.max()), "binary": bool(np.all(w == 1))}
            if len(w)
            else {}
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


def _known_rows(frame, table, roles, unknowns: dict, unknown: str, source: str):
    """``(rows to keep or None when all are, dropped counts)`` for rows whose ids are not in
    the given maps (``unknowns``: role -> mask); with ``unknown="error"`` the first one raises."""
    bad = np.zeros(table.n_rows, dtype=bool)
    for mask in unknowns.values():
        bad |= mask
    if not bad.any():
        return None, {}
    report = []
    for role in ("user", "item"):
        if role not in unknowns or not unknowns[role].any():
            continue
        rows = np.flatnonzero(unknowns[role])
        first = frame[roles[role]].iloc[rows[0]]
        if unknown == "error":
            raise DataError(
                f"{table.where(int(rows[0]), role)}: {role} id {format_id(first)} is not in the given "
                f"{role}_ids ({_rows(len(rows))} with an unknown {role} id); pass unknown='drop' to drop "
                f"such rows (counted in Interactions.dropped)"
            )
        report.append(f"{_rows(len(rows))} with an unknown {role} id (first {format_id(first)})")
    user_bad = unknowns.get("user", np.zeros_like(bad))
    counts = (("unknown_user", user_bad), ("unknown_item", bad & ~user_bad))
    dropped = {reason: int(mask.sum()) for reason, mask in counts if mask.any()}
    logger.warning(
        "%s: dropped %d of %d rows with ids not in the given id maps: %s",
        source,
        int(bad.sum()),
        table.n_rows,
        "; ".join(report),
    )
    return ~bad, dropped


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


@dataclass
class _FrameTable(Table):
    """The :class:`~rechash.data.tables.Table` of an in-memory frame: rows located by index label."""

    labels: pd.Index | None = None

    def where(self, row: int, role: str | None = None) -> str:
        col = f": column {self.columns[role]!r}" if role else ""
        label = format_id(self.labels[row]) if self.labels is not None and 0 <= row < len(self.labels) else row
        return f"{self.path}: row {label}{col}"


_EXPECTED = {
    "user": "integers or strings",
    "item": "integers or strings",
    "weight": "numbers",
    "timestamp": "numbers, datetimes or date strings",
}


def _frame_table(frame: pd.DataFrame, roles: dict, source: str, timestamp_unit: str):
    """The role columns of ``frame`` as an Arrow-backed table (types kept, as Parquet's
    are); a column Arrow cannot hold in one type is refused naming a value."""
    arrays, columns = {}, {}
    for role, name in roles.items():
        key = str(name)
        columns[role] = key
        if key in arrays:
            continue
        series = frame[name]
        try:
            arr = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            raise _mixed_column(series, role, key, source) from None
        if pa.types.is_null(arr.type):  # no values (or only nulls): located as missing later
            arr = pa.nulls(len(arr), pa.int64() if role in ("user", "item") else pa.float64())
        if not parquet_type_ok(role, arr.type):
            raise DataError(
                f"{source}: column {key!r} ({role}) has type {series.dtype} ({arr.type}); expected {_EXPECTED[role]}"
            )
        arrays[key] = arr
    table = pa.table(arrays)
    return _FrameTable(
        source, "frame", columns, len(frame), arrow=table, text=False, timestamp_unit=timestamp_unit, labels=frame.index
    )


def _mixed_column(series: pd.Series, role: str, name: str, source: str) -> DataError:
    """The error for a column whose values are of several types (ints and strings...)."""
    values = series.dropna()
    kinds = values.map(lambda v: type(v).__name__)
    if role in ("user", "item"):
        k = int(np.argmax((kinds != kinds.iloc[0]).to_numpy())) if len(kinds) else 0
        first, other = values.iloc[0], values.iloc[k]
        return DataError(
            f"{source}: row {format_id(values.index[k])}: column {name!r}: {role} ids mix types, "
            f"{format_id(first)} ({type(first).__name__}) and {format_id(other)} ({type(other).__name__}); "
            f"give one kind, integers or strings (e.g. .astype(str))"
        )
    numeric = values.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)))
    k = int(np.argmax(~numeric.to_numpy())) if len(values) else 0
    return DataError(
        f"{source}: row {format_id(values.index[k])}: column {name!r}: expected "
        f"{'a number' if role == 'weight' else 'a number or a date'}, got {format_id(values.iloc[k])}"
    )


def _csr(data, indices, indptr, shape) -> sp.csr_matrix:
    """CSR from arrays already canonical (sorted, no duplicates), flagged as such."""
    m = sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    m.has_sorted_indices = True
    m.has_canonical_format = True
    return m
