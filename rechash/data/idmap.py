"""IdMap: the only place external ids (any hashable, strings included) meet internal ids 0..n-1."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from rechash.errors import DataError, ModelError

#: pandas' inferred type -> the id kind that :meth:`IdMap.to_internal` checks.
_KINDS = {"integer": "integer", "string": "string"}
#: how a message names an id kind (plural)
KIND_WORDS = {"integer": "integers", "string": "strings"}


def format_id(value, limit: int = 60) -> str:
    """An id as messages print it: the ``repr`` of the plain Python value (``99999``,
    ``'u1'``; never ``np.int64(99999)``), cut to ``limit`` characters."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value) -> str:
    """``int``, ``str``, ``int64``...: the type of an id as messages name it."""
    return type(value).__name__


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
            raise DataError(f"IdMap: external ids must be unique, {format_id(dup)} appears twice")
        self._index = index
        self._lut: np.ndarray | None = None

    @classmethod
    def from_values(cls, values: Iterable) -> tuple[IdMap, np.ndarray]:
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
        return ext.dtype.kind in "iu" and (
            len(ext) == 0 or (ext[0] == 0 and ext[-1] == len(ext) - 1 and ext.is_monotonic_increasing)
        )

    @property
    def kind(self) -> str:
        """``"integer"`` or ``"string"`` when every external id is of that kind, else
        ``"other"`` (floats, mixed types, tuples...; an empty map is ``"other"``)."""
        return _KINDS.get(self._index.inferred_type, "other")

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)}, dtype={self._index.dtype})"

    def __contains__(self, external) -> bool:
        return external in self._index

    def to_internal(self, external: Iterable, *, strict: bool = True, what: str = "id", dtype=np.int64) -> np.ndarray:
        """Internal ids of ``external`` (``dtype``, int64 by default).

        Unknown ids raise :class:`DataError`, or map to -1 when ``strict=False``. Ids of the
        wrong kind raise :class:`DataError` in both modes, naming the expected and the given
        type: string ids queried against a map of integer ids, or integer ids against a map
        of string ids (``"user ids are integers (int64) but '1' (str) was given"``; ``what``
        names the ids). The kind is that of the query as a whole: a query mixing both kinds
        is matched id by id (the ids of the other kind are unknown). Maps of non-negative
        integers answer integer arrays through a dense lookup table (no hashing).
        """
        external = external if isinstance(external, (pd.Index, pd.Series, np.ndarray)) else list(external)
        self.check_kind(external, what)
        idx = self._lookup(external)
        if idx is None:
            idx = self._index.get_indexer(external)
        if strict and len(idx) and idx.min() < 0:
            bad = np.asarray(external, dtype=object)[idx < 0]
            raise DataError(f"unknown {what} {format_id(bad[0])} ({len(bad)} unknown in total)")
        return idx.astype(dtype, copy=False)

    def check_kind(self, external, what: str = "id") -> None:
        """Raise :class:`DataError` when ``external`` (an array, Series, Index or list) is
        all strings and this map holds integer ids, or all integers and it holds strings."""
        mine = self.kind
        if mine == "other" or not len(external):
            return
        dtype = getattr(external, "dtype", None)
        if dtype is not None and dtype.kind in "iu":
            given = "integer"  # the common case, answered without a pass over the values
        else:
            given = _KINDS.get(pd.api.types.infer_dtype(external, skipna=True))
        if given is None or given == mine:
            return
        values = external.to_numpy() if isinstance(external, (pd.Index, pd.Series)) else external
        first = next(v for v in values if not pd.isna(v))
        raise DataError(
            f"{what}s are {KIND_WORDS[mine]} ({self._index.dtype}) but {format_id(first)} "
            f"({_type_name(first)}) was given"
        )

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

    def extend(self, values: Iterable) -> IdMap:
        """A new IdMap with the unseen ``values`` appended (existing ids keep their position)."""
        new, _ = IdMap.from_values(values)
        unseen = new._index[~new._index.isin(self._index)]
        return IdMap(self._index.append(unseen)) if len(unseen) else self

    def to_frame(self, column: str) -> pd.DataFrame:
        """``DataFrame`` with columns ``index`` (internal id) and ``column`` (external id)."""
        return pd.DataFrame({"index": np.arange(len(self), dtype=np.int64), column: self.external_ids})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, column: str) -> IdMap:
        """Inverse of :meth:`to_frame`; validates that ``index`` is exactly 0..n-1."""
        if "index" not in frame.columns or column not in frame.columns:
            raise DataError(f"id map table needs columns 'index' and {column!r}, got {list(frame.columns)}")
        order = frame["index"].to_numpy()
        if not np.array_equal(np.sort(order), np.arange(len(frame))):
            raise DataError(f"id map table column 'index' must hold 0..{len(frame) - 1} exactly once")
        return cls(frame[column].to_numpy()[np.argsort(order)])


def read_idmap(f: Path, column: str, n: int) -> IdMap:
    """The :class:`IdMap` of a Parquet id table written by :meth:`IdMap.to_frame`, checked to hold
    ``n`` ids; :class:`rechash.errors.ModelError` naming the file otherwise."""
    try:
        m = IdMap.from_frame(pd.read_parquet(f), column)
    except Exception as exc:
        raise ModelError(f"{f}: unreadable id map ({exc})") from None
    if len(m) != n:
        raise ModelError(f"{f}: {len(m)} ids, the configuration says {n}")
    return m
