"""The table of role columns every input becomes, and its validation and id mapping.

A :class:`Table` holds the raw ``user``/``item``/``weight``/``timestamp`` columns of one
input (a file the loaders read, or a DataFrame given to
:meth:`~rechash.data.interactions.Interactions.from_frame`) before id mapping. The
functions here are the one validation path of both: ids (the canonical-integer rule,
:data:`CANONICAL_INT`), weights, timestamps (:data:`TIMESTAMP_UNITS`), the union of ids
into an :class:`~rechash.data.idmap.IdMap` (:class:`IdUnion`) and the mapping onto it.
The rules are documented in the :mod:`rechash.data.loaders` docstring. Below the loaders
and :mod:`rechash.data.interactions`: imports only :mod:`rechash.data.files` and
:mod:`rechash.data.idmap`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rechash import columns as C
from rechash.data.files import INT64_MAX, physical_line
from rechash.data.idmap import IdMap
from rechash.errors import DataError

ROLES = ("user", "item", "weight", "timestamp")

#: Column names tried, in order and case-insensitively, when a role is not named.
ALIASES = {
    "user": (C.USER_ID, "user", "userid", "uid", "customer_id", "visitor_id", "session_id"),
    "item": (C.ITEM_ID, "item", "itemid", "iid", "movie_id", "movieid", "product_id", "artist_id", "track_id"),
    "weight": (C.WEIGHT, "rating", "count", "play_count", "playcount", "plays", "value"),
    "timestamp": (C.TIMESTAMP, "time", "ts", "datetime", "date", "event_time"),
}
CANONICAL_INT = r"^(0|-?[1-9][0-9]{0,17})$"  # side features (features.py): up to 18 digits
_CANONICAL_INT64 = r"^(0|-?[1-9][0-9]{0,18})$"  # ids: up to 19 digits, range checked
_BEYOND_INT64 = r"^-?[1-9][0-9]{19,}$"  # canonical integers of 20+ digits
_INT_SYNTAX = r"^[+-]?[0-9]+$"
_NUMBER = r"(?i)^[+-]?((([0-9]+\.?[0-9]*)|(\.[0-9]+))(e[+-]?[0-9]+)?|inf|infinity|nan)$"
_FLOAT_EXACT = 2.0**53  # integers a float64 holds exactly
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Timestamp units: seconds per unit, and the magnitude below which ``"auto"`` picks each.
TIMESTAMP_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_AUTO_UNIT_BELOW = (("s", 1e11), ("ms", 1e14), ("us", 1e17))  # else "ns"
_SECONDS_RANGE = (-62135596800.0, 253402300799.0)  # 0001-01-01 .. 9999-12-31 (UTC)


# ---- one table of raw columns, before id mapping -----------------------------------------
@dataclass
class Table:
    """Raw columns of one input file (in memory, or a Parquet file read by row group)."""

    path: Path
    format: str
    columns: dict[str, str]
    n_rows: int
    arrow: pa.Table | None = None
    parquet: pq.ParquetFile | None = None
    header_lines: int = 0
    text: bool = True
    universe: dict[str, int] = field(default_factory=dict)
    kept: dict[str, np.ndarray] = field(default_factory=dict)  # int32 ids kept from the first pass
    id_kinds: dict[str, str] = field(default_factory=dict)  # text id columns: "int" or "str"
    timestamp_unit: str = "auto"

    def chunks(self, role: str) -> Iterator[tuple[int, pa.Array]]:
        """``(row offset, chunk)`` of a role's column; Parquet is read a row group at a time."""
        name, offset = self.columns[role], 0
        if self.arrow is not None:
            groups: Iterable = [self.arrow.column(name)]
        else:
            groups = (
                self.parquet.read_row_group(g, columns=[name]).column(0) for g in range(self.parquet.num_row_groups)
            )
        for group in groups:
            for chunk in group.chunks:
                yield offset, chunk
                offset += len(chunk)

    def where(self, row: int, role: str | None = None) -> str:
        """``file:line`` (text) or ``file: row N`` (Parquet), plus the column."""
        col = f": column {self.columns[role]!r}" if role else ""
        if self.arrow is None:
            return f"{self.path}: row {row + 1}{col}"
        return f"{self.path}:{physical_line(self.path, self.header_lines, row)}{col}"


# ---- role columns -----------------------------------------------------------------------------
def parquet_type_ok(role: str, t: pa.DataType) -> bool:
    """Types a role column may have: ids integer, float (integral) or string; weights and
    timestamps numbers or strings, timestamps also timestamp/date. Never nested or binary."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    text = pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or text:
        return True
    if role in ("weight", "timestamp") and (pa.types.is_boolean(t) or pa.types.is_decimal(t)):
        return True
    return role == "timestamp" and (pa.types.is_timestamp(t) or pa.types.is_date(t))


def pick_columns(path: Path, names: Sequence[str], opts: dict, defaults: dict | None = None) -> dict[str, str]:
    """Role -> column name: the named option, else the first alias present."""
    lower = {str(n).lower(): n for n in names}
    roles = {}
    for role in ROLES:
        wanted = opts.get(f"{role}_col")
        if wanted is not None:
            if wanted not in names:
                raise DataError(f"{path}: missing column {wanted!r} ({role}); columns are {list(names)}")
            roles[role] = wanted
            continue
        for alias in (defaults or {}).get(role, ()) + ALIASES[role]:
            if alias.lower() in lower:
                roles[role] = lower[alias.lower()]
                break
        else:
            if role in ("user", "item"):
                raise DataError(
                    f"{path}: missing {role} column: expected one of {list(ALIASES[role])} or name it with "
                    f"--{role}-col; columns are {list(names)}"
                )
    if roles["user"] == roles["item"]:
        raise DataError(f"{path}: the user and item columns must differ, both are {roles['user']!r}")
    return roles


def show(value) -> str:
    """repr of a value without numpy's type wrapper (``1.5``, not ``np.float64(1.5)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


# ---- the shared validation / mapping path -----------------------------------------------------
def id_chunk(table: Table, role: str, offset: int, chunk: pa.Array) -> np.ndarray | pd.Series:
    """Validated ids of one chunk: int64 array for integer ids, else a string Series
    (whitespace around string ids stripped)."""
    if pa.types.is_dictionary(chunk.type):
        chunk = chunk.dictionary_decode()
    if chunk.null_count:
        row = offset + pc.index(chunk.is_null(), True).as_py()
        raise DataError(f"{table.where(row, role)}: empty or missing {role} id")
    t = chunk.type
    if pa.types.is_integer(t):
        values = chunk.to_numpy()
        if t == pa.uint64() and len(values) and values.max() > INT64_MAX:
            k = int(np.argmax(values > INT64_MAX))
            raise DataError(
                f"{table.where(offset + k, role)}: expected a {role} id within int64 "
                f"(at most {INT64_MAX}), got {show(values[k])}"
            )
        return values.astype(np.int64, copy=False)
    if pa.types.is_floating(t):
        values = chunk.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.floor(values)) | (np.abs(values) > _FLOAT_EXACT)
        if bad.any():
            k = int(np.argmax(bad))
            why = (
                " (a float beyond 2^53 is not an exact id; store ids as int64 or strings)"
                if (np.isfinite(values[k]) and values[k] == np.floor(values[k]))
                else ""
            )
            raise DataError(
                f"{table.where(offset + k, role)}: expected an integer or string {role} id, got {show(values[k])}{why}"
            )
        return values.astype(np.int64)
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if not text and not getattr(pa.types, "is_string_view", bool)(t):  # Parquet: refused up front
        raise DataError(f"{table.where(offset, role)}: expected integer or string ids, got type {t}")
    if table.text and _text_id_kind(table, role) == "int":  # trimmed, canonical: no empty id
        return chunk.cast(pa.int64()).to_numpy()
    stripped = chunk if table.text else pc.utf8_trim_whitespace(chunk)
    empty = pc.equal(pc.utf8_length(stripped), 0)
    if pc.any(empty).as_py():
        raise DataError(f"{table.where(offset + pc.index(empty, True).as_py(), role)}: empty or missing {role} id")
    return stripped.to_pandas()


def _text_id_kind(table: Table, role: str) -> str:
    """``"int"`` or ``"str"`` for a whole text id column (all its chunks), by the rule of
    the :mod:`rechash.data.loaders` docstring; refuses numbers that are not int64 ids. Vectorised (pyarrow).
    The column is replaced by its whitespace-trimmed values in ``table.arrow``."""
    if role in table.id_kinds:
        return table.id_kinds[role]
    name = table.columns[role]
    index = table.arrow.schema.get_field_index(name)
    column = pc.utf8_trim_whitespace(table.arrow.column(index))
    table.arrow = table.arrow.set_column(index, name, column)
    canonical = pc.match_substring_regex(column, _CANONICAL_INT64)
    all_canonical = pc.all(canonical).as_py()
    if all_canonical and (pc.max(pc.utf8_length(column)).as_py() or 0) < 19:
        kind = "int"  # the common case: one regex pass
    elif not all_canonical and not pc.all(pc.match_substring_regex(column, _NUMBER)).as_py():
        kind = "str"  # a label (u17, abc) makes every id of the column a label
    else:
        length = pc.utf8_length(column)  # 19 digits: compare with the int64 bounds as text
        beyond = pc.or_(
            pc.match_substring_regex(column, _BEYOND_INT64),
            pc.and_(
                canonical,
                pc.or_(
                    pc.and_(pc.equal(length, 19), pc.greater(column, str(INT64_MAX))),
                    pc.and_(pc.equal(length, 20), pc.greater(column, str(-INT64_MAX - 1))),
                ),
            ),
        )
        bad = pc.or_(beyond, pc.invert(pc.match_substring_regex(column, _INT_SYNTAX)))
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            value = column[row].as_py()
            if re.fullmatch(_INT_SYNTAX, value):
                why = "beyond int64"
            else:
                number = float(value)
                integral = np.isfinite(number) and number == int(number)
                why = (
                    ("beyond int64" if abs(number) >= 2.0**63 else "an integer written as a float")
                    if integral
                    else ("not an integer")
                )
            raise DataError(
                f"{table.where(row, role)}: expected an integer {role} id within int64, got "
                f"{value[:40]!r} ({why}; a column of numbers holds integer ids)"
            )
        kind = "int" if all_canonical else "str"  # leading zeros or a sign ('007', '+7'): labels
    table.id_kinds[role] = kind
    return kind


class IdUnion:
    """Accumulates the distinct ids of a role over many chunks and files."""

    def __init__(self) -> None:
        self.presence = np.zeros(0, dtype=bool)  # dense path for small non-negative ints
        self.ints: list[np.ndarray] = []
        self.strs: list[pd.Series] = []

    def add(self, values) -> None:
        if isinstance(values, np.ndarray):
            if len(values) and values.min() >= 0 and values.max() < 4 * len(values) + (1 << 22):
                top = int(values.max()) + 1
                if top > len(self.presence):
                    self.presence = np.concatenate([self.presence, np.zeros(top - len(self.presence), bool)])
                self.presence[values] = True
            else:
                self.ints.append(pd.unique(values))
        else:
            self.strs.append(pd.Series(pd.unique(values)))

    def idmap(self) -> IdMap:
        ints = np.concatenate([np.flatnonzero(self.presence)] + self.ints)
        if not self.strs:
            return IdMap(np.unique(ints)) if self.ints else IdMap(ints)
        strs = pd.concat(self.strs + [pd.Series(ints).astype(str)], ignore_index=True)
        return IdMap.from_values(pd.unique(strs))[0]


def collect_ids(table: Table, role: str, acc: IdUnion) -> None:
    """First pass over a role's column: distinct ids into ``acc``; integer ids that fit
    int32 are kept (``table.kept``) so that the second pass maps them in place."""
    if table.text and pa.types.is_string(table.arrow.schema.field(table.columns[role]).type):
        _text_id_kind(table, role)  # classify (and trim) the whole column before its chunks
    kept = np.empty(table.n_rows, dtype=np.int32)
    for offset, chunk in table.chunks(role):
        values = id_chunk(table, role, offset, chunk)
        acc.add(values)
        if (
            kept is not None
            and isinstance(values, np.ndarray)
            and (not len(values) or (values.min() >= -(2**31) and values.max() < 2**31))
        ):
            kept[offset : offset + len(values)] = values
        else:
            kept = None
    if kept is not None:
        table.kept[role] = kept


def map_ids(table: Table, role: str, idmap: IdMap) -> np.ndarray:
    """Internal ids (int32) of a table's role column, filled chunk by chunk."""
    as_str = idmap.external_ids.dtype.kind not in "iu"
    out = table.kept.pop(role, None)
    if out is not None and not as_str:
        for start in range(0, len(out), 1 << 20):
            block = out[start : start + (1 << 20)]
            block[:] = idmap.to_internal(block, dtype=np.int32, what=f"{role} id")
        return out
    out = np.empty(table.n_rows, dtype=np.int32)
    for offset, chunk in table.chunks(role):
        values = id_chunk(table, role, offset, chunk)
        if as_str and isinstance(values, np.ndarray):
            values = pd.Series(values).astype(str)
        out[offset : offset + len(values)] = idmap.to_internal(values, dtype=np.int32, what=f"{role} id")
    return out


def _number_chunk(table: Table, role: str, offset: int, chunk: pa.Array, numeric: list | None = None) -> np.ndarray:
    """Validated float64 values of a weight or timestamp chunk. ``numeric`` collects
    ``(offset, length)`` of timestamp chunks given as numbers (their unit is not known yet)."""
    if pa.types.is_dictionary(chunk.type):
        chunk = chunk.dictionary_decode()
    t = chunk.type
    if chunk.null_count:
        row = offset + pc.index(chunk.is_null(), True).as_py()
        raise DataError(f"{table.where(row, role)}: missing {role}")
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        if role != "timestamp":
            raise DataError(f"{table.where(offset, role)}: expected a number, got a date")
        seconds = chunk.cast(pa.timestamp("us", tz=getattr(t, "tz", None))).cast(pa.int64()).to_numpy() / 1e6
        return seconds.astype(np.float64)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        values = chunk.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    else:
        try:
            return _number_chunk(table, role, offset, chunk.cast(pa.float64()), numeric)
        except pa.ArrowInvalid:  # not all numbers: dates (timestamps), or an error to locate
            pass
        series = chunk.cast(pa.string()).to_pandas()
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        dates = None
        if role == "timestamp" and np.isnan(values).any():
            dates = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
            if dates.isna().any():  # other layouts, element by element
                dates = dates.fillna(pd.to_datetime(series[dates.isna()], errors="coerce", utc=True, format="mixed"))
            values = ((dates - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        if np.isnan(values).any():
            k = int(np.argmax(np.isnan(values)))
            what = "a number or a date" if role == "timestamp" else "a number"
            raise DataError(f"{table.where(offset + k, role)}: expected {what}, got {series.iloc[k]!r}")
        if dates is not None:
            return values  # dates, converted exactly: no unit to detect
    bad = ~np.isfinite(values) | ((values < 0) if role == "weight" else False)
    if np.any(bad):
        k = int(np.argmax(bad))
        what = "a finite, non-negative weight" if role == "weight" else "a finite timestamp"
        raise DataError(f"{table.where(offset + k, role)}: expected {what}, got {show(values[k])}")
    if role == "weight" and len(values) and values.max() > _FLOAT32_MAX:
        k = int(np.argmax(values > _FLOAT32_MAX))
        raise DataError(
            f"{table.where(offset + k, role)}: expected a weight that fits float32 "
            f"(at most {_FLOAT32_MAX:.7g}), got {show(values[k])}"
        )
    if numeric is not None:
        numeric.append((offset, len(values)))
    return values


def column_numbers(table: Table, role: str, dtype) -> np.ndarray | None:
    """Validated values (as ``dtype``) of a weight or timestamp column, timestamps in
    seconds; None when the table has no such column."""
    if role not in table.columns:
        return None
    out = np.empty(table.n_rows, dtype=dtype)
    numeric: list = [] if role == "timestamp" else None
    for offset, chunk in table.chunks(role):
        out[offset : offset + len(chunk)] = _number_chunk(table, role, offset, chunk, numeric)
    if role == "timestamp":
        _to_seconds(table, out, numeric)
    return out


def _timestamp_unit(table: Table, out: np.ndarray, numeric: list) -> str:
    """The unit of numeric timestamps: ``table.timestamp_unit``, or by magnitude when
    ``"auto"`` (the largest absolute value below 1e11: seconds; 1e14: ms; 1e17: us; else ns)."""
    if table.timestamp_unit != "auto":
        return table.timestamp_unit
    top = max(float(np.abs(out[o : o + n]).max(initial=0.0)) for o, n in numeric)
    return next((unit for unit, below in _AUTO_UNIT_BELOW if top < below), "ns")


def _to_seconds(table: Table, out: np.ndarray, numeric: list) -> None:
    """Numeric timestamps (the ``numeric`` row ranges) to seconds, in place; then refuses
    any timestamp outside years 1..9999."""
    unit = _timestamp_unit(table, out, numeric) if numeric else "s"
    scale = TIMESTAMP_UNITS[unit]
    if scale != 1.0:
        for o, n in numeric:
            out[o : o + n] /= scale
    lo, hi = _SECONDS_RANGE
    bad = (out < lo) | (out > hi)
    if bad.any():
        k = int(np.argmax(bad))
        given = any(o <= k < o + n for o, n in numeric)
        value = f"{show(out[k] * scale)} read as {unit}" if given else f"{show(out[k])} s"
        raise DataError(
            f"{table.where(k, 'timestamp')}: timestamp {value} is outside years 1..9999 (UTC); numeric "
            f"timestamps are s, ms, us or ns by magnitude, or as named with load(..., timestamp_unit=)"
        )
