"""IdMap: the only place external ids (any hashable, strings included) meet internal ids 0..n-1."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from rechash.errors import DataError


class IdMap:
    """A bijection between external ids and internal ids ``0..len(self)-1``.

    Internal id ``i`` stands for ``external_ids[i]``. Built from observed values with
    :meth:`from_values`, which orders ids ascending when they are mutually comparable
    (so 0-based integer ids map to themselves) and by first appearance otherwise.
    """

    __slots__ = ("_index", "_lut")

    def __init__(self, external_ids: Iterable) -> None:
        index = pd.Index(external_ids if not isinstance(external_ids, pd.Index) else external_ids)
        if index.hasnans:
            raise DataError("IdMap: external ids must not contain NaN or None")
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise DataError(f"IdMap: external ids must be unique, {dup!r} appears twice")
        self._index = index
        self._lut: np.ndarray | None = None

    @classmethod
    def from_values(cls, values: Iterable) -> tuple["IdMap", np.ndarray]:
        """Map raw values to a new IdMap; returns ``(idmap, internal ids of values)``."""
        values = pd.Series(values) if not isinstance(values, (pd.Series, pd.Index)) else values
        try:
            codes, uniques = pd.factorize(values, sort=True)
        except TypeError:  # mixed, non-comparable types: keep first appearance
            codes, uniques = pd.factorize(values, sort=False)
        if (codes < 0).any():
            raise DataError("IdMap: ids must not be NaN or None")
        return cls(uniques), codes.astype(np.int64)

    @property
    def external_ids(self) -> np.ndarray:
        """External ids as an array, position = internal id."""
        return self._index.to_numpy()

    @property
    def is_range(self) -> bool:
        """True when the external ids are exactly the integers 0..n-1 (internal = external)."""
        ext = self._index
        return ext.dtype.kind in "iu" and (len(ext) == 0 or (ext[0] == 0 and ext[-1] == len(ext) - 1
                                                              and ext.is_monotonic_increasing))

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)}, dtype={self._index.dtype})"

    def __contains__(self, external) -> bool:
        return external in self._index

    def to_internal(
        self, external: Iterable, *, strict: bool = True, what: str = "id", dtype=np.int64
    ) -> np.ndarray:
        """Internal ids of ``external`` (``dtype``, int64 by default).

        Unknown ids raise :class:`DataError`, or map to -1 when ``strict=False``. Maps of
        non-negative integers answer integer arrays through a dense lookup table (no hashing).
        """
        external = external if isinstance(external, (pd.Index, pd.Series, np.ndarray)) else list(external)
        idx = self._lookup(external)
        if idx is None:
            idx = self._index.get_indexer(external)
        if strict and len(idx) and idx.min() < 0:
            bad = np.asarray(external, dtype=object)[idx < 0]
            raise DataError(f"unknown {what} {bad[0]!r} ({len(bad)} unknown in total)")
        return idx.astype(dtype, copy=False)

    def _lookup(self, external) -> np.ndarray | None:
        """Dense-table mapping of an integer array, or None when that path does not apply."""
        values = np.asarray(external) if isinstance(external, (np.ndarray, pd.Series, pd.Index)) else None
        if values is None or values.dtype.kind not in "iu" or not len(values) or self._index.dtype.kind not in "iu":
            return None
        if self._lut is None:  # built once; empty when the ids are too sparse for a table
            ext = self._index.to_numpy()
            dense = bool(len(ext)) and ext.min() >= 0 and ext.max() <= 4 * len(ext) + (1 << 20)
            self._lut = np.full(int(ext.max()) + 1 if dense else 0, -1, dtype=np.int32)
            if dense:
                self._lut[ext] = np.arange(len(ext), dtype=np.int32)
        lut = self._lut
        if not len(lut):
            return None
        lo, hi = values.min(), values.max()
        if lo < 0 or hi >= len(lut):
            out = np.full(len(values), -1, dtype=np.int32)
            inside = (values >= 0) & (values < len(lut))
            out[inside] = lut[values[inside]]
            return out
        return lut[values]

    def to_external(self, internal: Iterable[int] | np.ndarray) -> np.ndarray:
        """External ids of internal ids (raises IndexError when out of range)."""
        internal = np.asarray(internal, dtype=np.int64)
        if internal.size and (internal.min() < 0 or internal.max() >= len(self)):
            raise IndexError(f"internal ids must lie in 0..{len(self) - 1}")
        return self.external_ids[internal]

    def extend(self, values: Iterable) -> "IdMap":
        """A new IdMap with the unseen ``values`` appended (existing ids keep their position)."""
        new, _ = IdMap.from_values(values)
        unseen = new._index[~new._index.isin(self._index)]
        return IdMap(self._index.append(unseen)) if len(unseen) else self

    def to_frame(self, column: str) -> pd.DataFrame:
        """``DataFrame`` with columns ``index`` (internal id) and ``column`` (external id)."""
        return pd.DataFrame({"index": np.arange(len(self), dtype=np.int64), column: self.external_ids})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, column: str) -> "IdMap":
        """Inverse of :meth:`to_frame`; validates that ``index`` is exactly 0..n-1."""
        if "index" not in frame.columns or column not in frame.columns:
            raise DataError(f"id map table needs columns 'index' and {column!r}, got {list(frame.columns)}")
        order = frame["index"].to_numpy()
        if not np.array_equal(np.sort(order), np.arange(len(frame))):
            raise DataError(f"id map table column 'index' must hold 0..{len(frame) - 1} exactly once")
        return cls(frame[column].to_numpy()[np.argsort(order)])
