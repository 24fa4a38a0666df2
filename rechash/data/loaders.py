"""Loaders: interaction logs in their file formats -> validated :class:`Interactions`.

Formats, detected from the file name and then its first lines, or named with ``format=``
(``--format`` on the command line):

``adjacency``
    One line per user, ``user item item ...``, whitespace-separated non-negative integers
    that are already internal ids (the LightGCN family's ``train.txt``/``valid.txt``/
    ``test.txt``). As in the LightGCN code, the id universe of a file spans its split
    siblings: when ``train.txt``, ``valid.txt`` or ``test.txt`` lie beside it, users are
    ``0..max user id + 1`` and items ``0..max item id + 1`` over all of them, so loading
    ``ml-1m/train.txt`` alone gives 6,039 users x 3,628 items (3,583 with a train
    interaction). Ids map to themselves. Weights are 1.
``movielens``
    ``u.data`` (tab-separated ``user item rating timestamp``, no header) and
    ``ratings.dat`` (``user::item::rating::timestamp``). Integer ids; the rating becomes
    the weight (see :func:`rechash.data.splits.to_implicit`).
``recbole``
    RecBole atomic ``.inter`` files: tab-separated with a typed header
    (``user_id:token  item_id:token  rating:float  timestamp:float``). ``rating`` is the
    weight, ``timestamp`` the timestamp. The sibling ``.user``/``.item`` files, when
    present, are attached as side features (:mod:`rechash.data.features`).
``csv``, ``tsv``, ``parquet``
    Tables with a header; the user, item and the optional weight and timestamp columns
    are named with ``user_col``/``item_col``/``weight_col``/``timestamp_col`` or found
    by their usual names (``user_id``/``user``/``userId``..., ``rating``/``weight``...,
    ``timestamp``/``time``...). Timestamps may be numbers or date strings.

Bytes. Text inputs are UTF-8; a UTF-8 byte-order mark is skipped and CRLF line endings
are read like LF. gzip, bz2 and xz files are decompressed transparently, recognised by
their magic bytes (``train.txt.gz`` and a gzip file named ``log.csv`` both work; the
compression suffix is ignored when the format is detected from the name). Parquet is
also recognised by its magic bytes. A UTF-16/32 file (byte-order mark), a NUL byte
(binary data, UTF-16 without a mark) or bytes that are not UTF-8 (Latin-1, cp1252) are
refused with the line and byte offset, never printed.

Ids. Whitespace around ids is stripped in every format (``" 1"`` and ``"1"`` are one
user). In text formats (CSV, TSV, RecBole) the whole id column is classified:

* every value a canonical integer (``0``, ``42``, ``-7``: no ``+``, no leading zeros)
  within int64 -> int64 ids;
* else, when every value is a number and one of them is not an int64 id (``3.5``,
  ``1.0``, ``1e19``, ``inf``, ``18446744073709551615``) -> refused, naming its line:
  those are ids garbled by a float or unsigned conversion, or no ids at all;
* else the column holds labels and every id stays text: a column with any non-number
  (``u17``) or a zero-padded integer (``007``) keeps all its ids as text, so ``7`` and
  ``007`` are two ids (mixed types within a column follow this rule).

Across the files of one :func:`load_many`, if any file's ids are text the integer ids
of the others are compared as their text (``7`` is ``"7"``). Parquet keeps its column
types: integer columns (uint64 values above int64 are refused), float columns whose
values are integers of at most 2^53 (else refused: ``1e19`` is no exact id), string
columns (never converted to numbers), dictionary columns of those; nested, binary,
boolean or decimal id columns are refused naming the column and its type. Ids are
ordered ascending in the :class:`IdMap`.

Adjacency id space. Adjacency ids are internal ids: users ``0..max user id``, items
``0..max item id``. An id space larger than ``max(10 x distinct ids, 1,000,000)``
(:data:`DENSE_ID_FACTOR`, :data:`DENSE_ID_FLOOR`; over the file and its split siblings)
is refused before anything is allocated, naming the line of the largest id: an id of
1.5e9 would otherwise allocate arrays for 1.5 billion ids. Renumber such ids, or give
them as CSV/TSV with a header, whose ids are mapped through the :class:`IdMap`. Ids of
more than 18 digits are refused by the parser.

Weights are finite, non-negative and at most the float32 maximum (3.4e38); weights of
duplicate rows whose sum overflows float32 are refused too.

Timestamps are stored as float64 seconds since the epoch (UTC). Date strings and
Parquet timestamp/date columns are converted exactly. Numeric timestamps are in the unit
named by ``timestamp_unit`` (``"s"``, ``"ms"``, ``"us"``, ``"ns"``), or, by default
(``"auto"``), in the unit their largest absolute value points to: below 1e11 seconds
(up to year 5138), below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.
Timestamps outside years 1..9999 are refused.

Header. A header (CSV, TSV, RecBole, a Parquet schema) that names one column twice is
refused, naming the column.

Named inputs: ``synthetic`` (the embedded default dataset, :mod:`rechash.data.synthetic`)
and the public datasets of :mod:`rechash.data.datasets` (``ml-100k``, ``ml-1m``).
A directory stands for the one interaction file in it (``train.*`` first).

Every bad input raises :class:`DataError` naming the file and line (or row) and column.
Duplicated (user, item) rows are merged (weights summed, latest timestamp kept) and
counted in ``Interactions.duplicates_merged``; nothing is dropped.
"""
from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from rechash import columns as C
from rechash.data.idmap import IdMap
from rechash.data.interactions import Interactions
from rechash.data.splits import SPLIT_NAMES, Split
from rechash.errors import DataError

FORMATS = ("adjacency", "movielens", "recbole", "csv", "tsv", "parquet")
ROLES = ("user", "item", "weight", "timestamp")

#: Column names tried, in order and case-insensitively, when a role is not named.
ALIASES = {
    "user": (C.USER_ID, "user", "userid", "uid", "customer_id", "visitor_id", "session_id"),
    "item": (C.ITEM_ID, "item", "itemid", "iid", "movie_id", "movieid", "product_id", "artist_id", "track_id"),
    "weight": (C.WEIGHT, "rating", "count", "play_count", "playcount", "plays", "value"),
    "timestamp": (C.TIMESTAMP, "time", "ts", "datetime", "date", "event_time"),
}
_RECBOLE_TYPES = {"token": "categorical", "token_seq": "multi", "float": "numeric"}
_CANONICAL_INT = r"^(0|-?[1-9][0-9]{0,17})$"  # side features (features.py): up to 18 digits
_CANONICAL_INT64 = r"^(0|-?[1-9][0-9]{0,18})$"  # ids: up to 19 digits, range checked
_BEYOND_INT64 = r"^-?[1-9][0-9]{19,}$"  # canonical integers of 20+ digits
_INT_SYNTAX = r"^[+-]?[0-9]+$"
_NUMBER = r"(?i)^[+-]?((([0-9]+\.?[0-9]*)|(\.[0-9]+))(e[+-]?[0-9]+)?|inf|infinity|nan)$"
_INT64_MAX = np.iinfo(np.int64).max
_FLOAT_EXACT = 2.0 ** 53  # integers a float64 holds exactly
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Timestamp units: seconds per unit, and the magnitude below which ``"auto"`` picks each.
TIMESTAMP_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_AUTO_UNIT_BELOW = (("s", 1e11), ("ms", 1e14), ("us", 1e17))  # else "ns"
_SECONDS_RANGE = (-62135596800.0, 253402300799.0)  # 0001-01-01 .. 9999-12-31 (UTC)
#: Adjacency ids are internal ids 0..max; the id space may exceed the distinct ids by this.
DENSE_ID_FACTOR, DENSE_ID_FLOOR = 10, 1_000_000


# ---- bytes: compression, encoding -----------------------------------------------------------------
_COMPRESSION_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
_OPENERS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
_WIDE_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
              (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))
_UTF8_BOM = codecs.BOM_UTF8
_BLOCK = 1 << 24


def _compression(path: Path) -> str | None:
    """``gzip``, ``bz2`` or ``xz`` from the file's magic bytes (not its name), else None."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    return next((name for magic, name in _COMPRESSION_MAGIC if head.startswith(magic)), None)


def _open_binary(path: Path):
    """The file's bytes, decompressed when it is gzip/bz2/xz (by magic bytes)."""
    comp = _compression(path)
    return open(path, "rb") if comp is None else _OPENERS[comp](path, "rb")


def _base_name(path: Path) -> tuple[str, str, str]:
    """``(stem, suffix, compression suffix)`` of a file name: ``train.txt.gz`` ->
    ``("train", ".txt", ".gz")``, ``train.txt`` -> ``("train", ".txt", "")``."""
    name = path.name
    comp = next((c for c in _COMPRESSION_SUFFIXES if name.lower().endswith(c) and len(name) > len(c)), "")
    base = Path(name[: len(name) - len(comp)])
    return base.stem, base.suffix, comp


class _Utf8Check:
    """Incremental check that a byte stream is UTF-8 text: no UTF-16/32 byte-order mark,
    no NUL byte, valid UTF-8. A UTF-8 byte-order mark at the start is removed. ASCII
    blocks are checked at C speed (``bytes.isascii``); others go through the codec."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # bytes checked so far (after a BOM)
        self.newlines = 0
        self.first = True
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, block: bytes, final: bool = False) -> bytes:
        if self.first and (block or final):
            self.first = False
            for bom, name in _WIDE_BOMS:
                if block.startswith(bom):
                    raise DataError(f"{self.path}: {name} text (byte-order mark {bom.hex(' ').upper()}); "
                                    f"rechash reads UTF-8 text: re-save the file as UTF-8")
            if block.startswith(_UTF8_BOM):
                block = block[len(_UTF8_BOM):]
        nul = block.find(b"\x00")
        pending = len(self.decoder.getstate()[0])
        if pending or final or not block.isascii():
            try:
                self.decoder.decode(block, final)
            except UnicodeDecodeError as exc:
                at = max(exc.start - pending, 0)
                if not 0 <= nul < at:
                    raise self._error(block, at, f"byte 0x{block[at]:02x}: {exc.reason}" if at < len(block)
                                      else "a truncated character at the end") from None
        if nul >= 0:
            raise self._error(block, nul, "a NUL byte: binary data or UTF-16 text without a byte-order mark")
        self.newlines += block.count(b"\n")
        self.offset += len(block)
        return block

    def _error(self, block: bytes, at: int, what: str) -> DataError:
        line = self.newlines + block.count(b"\n", 0, at) + 1
        return DataError(f"{self.path}:{line}: not UTF-8 text ({what}, at byte {self.offset + at:,}); "
                         f"re-save the file as UTF-8")


def _decompression_error(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path}: corrupt {_compression(path)} data ({_first_line(exc)})")


class _TextStream(io.RawIOBase):
    """A file-like view of a (decompressed) text file that checks UTF-8 as it is read;
    pyarrow's CSV reader reads from it. The first error is kept in ``error``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.fh = _open_binary(path)
        self.check = _Utf8Check(path)
        self.error: DataError | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            block = self.fh.read(size if size is not None and size >= 0 else -1)
            return self.check.feed(block, final=not block)
        except DataError as exc:
            self.error = self.error or exc
            raise
        except (OSError, EOFError, lzma.LZMAError) as exc:
            self.error = self.error or _decompression_error(self.path, exc)
            raise self.error from None

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.fh.close()
        super().close()


def _read_bytes(path: Path) -> bytes:
    """The whole (decompressed) file, checked to be UTF-8 text, without a BOM."""
    try:
        with _open_binary(path) as fh:
            raw = fh.read()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise _decompression_error(path, exc) from None
    if raw.isascii() and raw.find(b"\x00") < 0:
        return raw  # the common case: C-speed scans, no copy
    check = _Utf8Check(path)
    view = memoryview(raw)
    for start in range(0, len(raw), _BLOCK):
        check.feed(bytes(view[start: start + _BLOCK]))
    check.feed(b"", final=True)
    return raw[len(_UTF8_BOM):] if raw.startswith(_UTF8_BOM) else raw


def _read_head(path: Path, size: int = 1 << 20) -> str:
    """The first ``size`` bytes (decompressed), checked and decoded; a character cut at
    the end of the head is dropped."""
    try:
        with _open_binary(path) as fh:
            head = fh.read(size)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise _decompression_error(path, exc) from None
    head = _Utf8Check(path).feed(head, final=len(head) < size)
    return head.decode("utf-8", errors="ignore")  # checked: only a cut last character is dropped


# ---- one table of raw columns, before id mapping -----------------------------------------
@dataclass
class _Table:
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
            groups = (self.parquet.read_row_group(g, columns=[name]).column(0) for g in range(self.parquet.num_row_groups))
        for group in groups:
            for chunk in group.chunks:
                yield offset, chunk
                offset += len(chunk)

    def where(self, row: int, role: str | None = None) -> str:
        """``file:line`` (text) or ``file: row N`` (Parquet), plus the column."""
        col = f": column {self.columns[role]!r}" if role else ""
        if self.arrow is None:
            return f"{self.path}: row {row + 1}{col}"
        return f"{self.path}:{_physical_line(self.path, self.header_lines, row)}{col}"


def _physical_line(path: Path, header_lines: int, row: int) -> int:
    """1-based line number of data row ``row`` (blank lines are not rows); error path only."""
    with _open_binary(path) as fh:
        seen = -1
        for lineno, line in enumerate(fh, 1):
            if lineno > header_lines and line.strip():
                seen += 1
                if seen == row:
                    return lineno
    return header_lines + row + 1


# ---- format readers: path -> _Table ---------------------------------------------------------
def _parse_adjacency(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """``(users, items, largest user id)``: a line ``u`` alone still declares user ``u``."""
    from rechash.data._kernels import parse_int_lines

    raw = _read_bytes(path)
    values, lines, n, bad = parse_int_lines(np.frombuffer(raw, dtype=np.uint8))
    if bad >= 0:  # file:line:column of the bad character, and the token holding it
        line_start = raw.rfind(b"\n", 0, bad) + 1
        line_end = raw.find(b"\n", bad)
        line = raw[line_start: line_end if line_end >= 0 else len(raw)]
        col = bad - line_start
        token = line[max(line.rfind(b" ", 0, col), line.rfind(b"\t", 0, col)) + 1:].split()[0]
        lineno = raw.count(b"\n", 0, bad) + 1
        text = token.decode(errors="replace")
        why = " (more than 18 digits: beyond any id space rechash can hold)" if text.isdigit() else ""
        raise DataError(
            f"{path}:{lineno}:{col + 1}: expected non-negative integer ids "
            f"'user item item ...', got {text[:40]!r}{why}"
        )
    if n == 0:
        raise DataError(f"{path}: empty file, expected lines 'user item item ...'")
    first = np.ones(n, dtype=bool)
    first[1:] = lines[1:] != lines[:-1]
    heads = np.flatnonzero(first)
    counts = np.diff(np.append(heads, n)) - 1
    return np.repeat(values[heads], counts), values[~first], int(values[heads].max())


def _read_adjacency(path: Path, parsed: dict, **_) -> _Table:
    if path not in parsed:
        parsed[path] = _parse_adjacency(path)
    users, items, _ = parsed[path]
    n_users = n_items = 0
    family = [path] + _siblings(path)
    for p in family:
        if p not in parsed:
            parsed[p] = _parse_adjacency(p)
        _, its, top_user = parsed[p]
        n_users, n_items = max(n_users, top_user + 1), max(n_items, int(its.max(initial=-1)) + 1)
    _check_id_space(family, parsed, "user", n_users)
    _check_id_space(family, parsed, "item", n_items)
    return _Table(
        path, "adjacency", {"user": "user", "item": "item"}, len(users),
        arrow=pa.table({"user": users, "item": items}), text=False,
        universe={"user": n_users, "item": n_items},
    )


def _check_id_space(family: list[Path], parsed: dict, role: str, size: int) -> None:
    """Refuse, before anything is allocated, an adjacency id space ``0..max id`` that is
    more than ``max(DENSE_ID_FACTOR x distinct ids, DENSE_ID_FLOOR)`` ids: adjacency ids
    are internal ids, and an id like 1.5e9 would allocate arrays for every id below it."""
    if size <= DENSE_ID_FLOOR:
        return  # every published split: no extra pass
    arrays = [np.unique(parsed[p][0] if role == "user" else parsed[p][1]) for p in family]
    distinct = len(np.unique(np.concatenate(arrays)))
    if size <= max(DENSE_ID_FACTOR * distinct, DENSE_ID_FLOOR):
        return
    from rechash.data._kernels import parse_int_lines

    top = size - 1
    for p in family:  # error path: locate the largest id
        raw = _read_bytes(p)
        values, lines, n, _ = parse_int_lines(np.frombuffer(raw, dtype=np.uint8))
        first = np.ones(n, dtype=bool)
        first[1:] = lines[1:] != lines[:-1]
        hits = np.flatnonzero((values == top) & (first if role == "user" else ~first))
        if len(hits):
            lineno = int(lines[hits[0]]) + 1
            raise DataError(
                f"{p}:{lineno}: {role} id {top} needs an id space of {size:,} {role}s for {distinct:,} "
                f"distinct {role}s (adjacency ids are internal ids 0..max id, at most max({DENSE_ID_FACTOR} "
                f"x distinct, {DENSE_ID_FLOOR:,})); renumber the ids, or use CSV with a user_id,item_id header"
            )
    raise DataError(f"{family[0]}: {role} id {top} needs an id space of {size:,} {role}s for {distinct:,} "
                    f"distinct {role}s; renumber the ids, or use CSV with a user_id,item_id header")


def _siblings(path: Path) -> list[Path]:
    """The other split files (train/valid/test, same suffix) beside a split file."""
    stem, suffix, comp = _base_name(path)
    if stem.lower() not in SPLIT_NAMES:
        return []
    return [p for s in SPLIT_NAMES
            if (p := path.with_name(s + suffix + comp)) != path and p.is_file() and p.stat().st_size]


def _read_movielens(path: Path, **_) -> _Table:
    raw = _read_bytes(path)
    double = b"::" in raw[:4096]
    if double:
        raw = raw.replace(b"::", b"\t")
    names = [C.USER_ID, C.ITEM_ID, "rating", C.TIMESTAMP]
    types = {C.USER_ID: pa.int64(), C.ITEM_ID: pa.int64(), "rating": pa.float64(), C.TIMESTAMP: pa.int64()}
    table = _read_text(
        path, "\t", names=names, types=types, quote=False, source=io.BytesIO(raw),
        fields_desc="'user::item::rating::timestamp'" if double else "tab-separated 'user item rating timestamp'",
    )
    return _Table(
        path, "movielens", {"user": C.USER_ID, "item": C.ITEM_ID, "weight": "rating", "timestamp": C.TIMESTAMP},
        table.num_rows, arrow=table, text=False,
    )


def _recbole_header(path: Path) -> list[tuple[str, str]]:
    header = _read_head(path).split("\n", 1)[0].rstrip("\r")
    if not header.strip():
        raise DataError(f"{path}: empty file, expected a RecBole typed header 'name:type<TAB>...'")
    fields = [f.rsplit(":", 1) for f in header.split("\t")]
    for col, f in enumerate(fields, 1):
        if len(f) != 2 or f[1] not in ("token", "token_seq", "float", "float_seq"):
            raise DataError(
                f"{path}:1: column {col}: expected a RecBole typed header field 'name:type' "
                f"(type token, token_seq, float or float_seq), got {':'.join(f)!r}"
            )
    _check_unique(path, [n for n, _ in fields], "1")
    return [(n, t) for n, t in fields]


def _read_recbole(path: Path, opts: dict, **_) -> _Table:
    fields = _recbole_header(path)
    names = [n for n, _ in fields]
    roles = _pick_columns(path, names, opts, defaults={"weight": ("rating",)})
    types = {n: (pa.float64() if t == "float" else pa.string()) for n, t in fields}
    table = _read_text(
        path, "\t", names=names, skip_rows=1, types={c: types[c] for c in roles.values()},
        include=list(roles.values()), quote=False, fields_desc="tab-separated fields as in the header",
    )
    return _Table(path, "recbole", roles, table.num_rows, arrow=table, header_lines=1)


def _read_delimited(path: Path, opts: dict, fmt: str, **_) -> _Table:
    sep = opts.get("sep") or ("," if fmt == "csv" else "\t")
    header = _header(path, sep)
    if not header:
        raise DataError(f"{path}: empty file, expected a header line naming the columns")
    _check_unique(path, header, "1")
    roles = _pick_columns(path, header, opts)
    types = {col: pa.string() for col in roles.values()}  # numbers are parsed and located later
    table = _read_text(
        path, sep, types=types, include=list(roles.values()), fields_desc=f"{len(header)} {fmt.upper()} fields"
    )
    return _Table(path, fmt, roles, table.num_rows, arrow=table, header_lines=1)


def _read_parquet(path: Path, opts: dict, **_) -> _Table:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
    schema = pf.schema_arrow
    _check_unique(path, schema.names, None)
    roles = _pick_columns(path, schema.names, opts)
    for role, name in roles.items():
        kind = schema.field(name).type
        if not _parquet_type_ok(role, kind):
            expected = {"user": "integers or strings", "item": "integers or strings",
                        "weight": "numbers", "timestamp": "numbers, timestamps, dates or date strings"}[role]
            raise DataError(f"{path}: column {name!r} ({role}) has Parquet type {kind}; expected {expected}")
    if pf.metadata.num_rows == 0:
        raise DataError(f"{path}: empty file, no rows")
    return _Table(path, "parquet", roles, pf.metadata.num_rows, parquet=pf, text=False)


def _parquet_type_ok(role: str, t: pa.DataType) -> bool:
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


def _header(path: Path, sep: str) -> list[str]:
    """The header row of a CSV/TSV file (checked UTF-8, a BOM removed)."""
    return next(csv.reader(io.StringIO(_read_head(path), newline=""), delimiter=sep), None) or []


def _check_unique(path: Path, names: Sequence[str], line: str | None) -> None:
    """Refuse a header that names one column twice."""
    seen: dict[str, int] = {}
    for k, name in enumerate(names, 1):
        if name in seen:
            where = f"{path}:{line}" if line else f"{path}"
            raise DataError(f"{where}: column {name!r} appears twice in the {'header' if line else 'schema'} "
                            f"(columns {seen[name]} and {k}); rename one")
        seen[name] = k


_READERS = {
    "adjacency": _read_adjacency,
    "movielens": _read_movielens,
    "recbole": _read_recbole,
    "csv": _read_delimited,
    "tsv": _read_delimited,
    "parquet": _read_parquet,
}


def _pick_columns(path: Path, names: Sequence[str], opts: dict, defaults: dict | None = None) -> dict[str, str]:
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


def _read_text(path: Path, sep: str, *, names=None, skip_rows=0, types=None, include=None, quote=True,
               source=None, fields_desc: str = "fields") -> pa.Table:
    """pyarrow's multi-threaded CSV reader; parse errors are located by :func:`_diagnose`."""
    stream = _TextStream(path) if source is None else None
    try:
        table = pacsv.read_csv(
            source if source is not None else stream,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip_rows, block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"' if quote else False),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=include, strings_can_be_null=True),
        )
    except Exception as exc:  # noqa: BLE001 - a stream error first, then pyarrow's
        if stream is not None and stream.error is not None:
            raise stream.error from None
        if isinstance(exc, DataError):
            raise
        if not isinstance(exc, pa.ArrowInvalid):
            raise
        raise _diagnose(path, sep, quote, names, skip_rows, types, fields_desc, exc) from None
    finally:
        if stream is not None:
            stream.close()
    if table.num_rows == 0:
        raise DataError(f"{path}: empty file, no data rows")
    return table


def _diagnose(path, sep, quote, names, skip_rows, types, fields_desc, exc) -> DataError:
    """Find the line behind a pyarrow parse/convert error (slow scan, error path only)."""
    text = _read_bytes(path).decode("utf-8")
    if sep == "\t" and "::" in text[:4096]:
        text = text.replace("::", "\t")
    lines = text.splitlines()
    rows = csv.reader(lines, delimiter=sep, quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE)
    header = names
    for lineno, fields in enumerate(rows, 1):
        if lineno <= skip_rows or not lines[lineno - 1].strip():
            continue
        if header is None:
            header = fields
            continue
        if len(fields) != len(header):
            return DataError(f"{path}:{lineno}: expected {fields_desc}, got {len(fields)} fields: {lines[lineno - 1][:60]!r}")
        for name, value in zip(header, fields):
            kind = (types or {}).get(name)
            if kind is None or pa.types.is_string(kind) or value.strip() == "":
                continue
            try:
                number = (int if pa.types.is_integer(kind) else float)(value)
            except ValueError:
                what = "an integer" if pa.types.is_integer(kind) else "a number"
                return DataError(f"{path}:{lineno}: column {name!r}: expected {what}, got {value!r}")
            if pa.types.is_integer(kind) and not -_INT64_MAX - 1 <= number <= _INT64_MAX:
                return DataError(f"{path}:{lineno}: column {name!r}: expected an integer within int64, got {value!r}")
    return DataError(f"{path}: cannot parse ({_first_line(exc)})")


def _show(value) -> str:
    """repr of a value without numpy's type wrapper (``1.5``, not ``np.float64(1.5)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ---- format detection ------------------------------------------------------------------------
def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its name, else from its first lines.

    Raises :class:`DataError` when the file is missing, empty, of no known format or
    ambiguous (the message names the candidates and ``--format``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    stem, suffix, _ = _base_name(path)  # train.csv.gz is a CSV file
    name, suffix = (stem + suffix).lower(), suffix.lower()
    by_suffix = {".parquet": "parquet", ".pq": "parquet", ".inter": "recbole", ".csv": "csv", ".tsv": "tsv"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    if suffix in (".user", ".item"):
        raise DataError(f"{path}: a RecBole side-feature file, not interactions; load it with load_side_features")
    if name in ("u.data", "ratings.dat"):
        return "movielens"
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        return "parquet"
    if magic == b"PK\x03\x04":
        raise DataError(f"{path}: a ZIP archive, not an interaction file; extract it first")
    text = _read_head(path, 65536)
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    if len(text.encode()) >= 65536 - 3 and len(lines) > 1:
        lines = lines[:-1]  # possibly cut
    if not lines:
        raise DataError(f"{path}: empty file")
    first = lines[0]
    if "\t" in first and all(re.fullmatch(r"[^:\s]+:(token|token_seq|float|float_seq)", f) for f in first.split("\t")):
        return "recbole"
    if "::" in first:
        return "movielens"
    ints_only = re.fullmatch(r"[\d\s]+", first) is not None  # a bad later line is reported by the parser
    if all(re.fullmatch(r"[\d.\t\r]+", ln) and len(ln.split("\t")) == 4 for ln in lines):
        if not ints_only:
            return "movielens"  # a number with a dot is never an adjacency id
        if stem.lower() in SPLIT_NAMES:
            return "adjacency"
        raise DataError(f"{path}: ambiguous format, candidates: adjacency, movielens; name it with --format")
    if ints_only:
        return "adjacency"
    for fmt, sep in (("tsv", "\t"), ("csv", ",")):
        if sep in first:
            return fmt
    raise DataError(f"{path}: unknown format; name it with --format (one of {', '.join(FORMATS)})")


def _resolve_dir(path: Path) -> Path:
    """The interaction file a directory stands for: ``train.*``, else its only log file."""
    files = sorted(p for p in path.iterdir() if p.is_file())
    for group in (
        [p for p in files if _base_name(p)[0].lower() == "train"],
        [p for p in files if _base_name(p)[1].lower() in (".inter", ".parquet", ".pq", ".csv", ".tsv")
         or p.name.lower() in ("u.data", "ratings.dat")],
    ):
        if len(group) == 1:
            return group[0]
        if len(group) > 1:
            raise DataError(f"{path}: ambiguous directory, candidates: {', '.join(p.name for p in group)}; pass a file")
    raise DataError(f"{path}: no interaction file in this directory")


def _resolve(path: str | Path, format: str | None) -> tuple[Path | None, str | None]:
    """``(file, format)``, or ``(None, "synthetic")`` for the embedded default."""
    from rechash.data import datasets

    p = Path(path)
    if not p.exists():
        if str(path) == "synthetic":
            return None, "synthetic"
        if str(path) in datasets.DATASETS:
            spec = datasets.DATASETS[str(path)]
            return datasets.fetch(str(path)), format or spec.format
        raise DataError(f"{p}: no such file (named datasets: synthetic, {', '.join(datasets.DATASETS)})")
    if p.is_dir():
        p = _resolve_dir(p)
    if format is not None and format not in FORMATS:
        raise DataError(f"{p}: unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    return p, format or detect_format(p)


# ---- the shared validation / mapping path -----------------------------------------------------
def _id_chunk(table: _Table, role: str, offset: int, chunk: pa.Array) -> np.ndarray | pd.Series:
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
        if t == pa.uint64() and len(values) and values.max() > _INT64_MAX:
            k = int(np.argmax(values > _INT64_MAX))
            raise DataError(f"{table.where(offset + k, role)}: expected a {role} id within int64 "
                            f"(at most {_INT64_MAX}), got {_show(values[k])}")
        return values.astype(np.int64, copy=False)
    if pa.types.is_floating(t):
        values = chunk.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.floor(values)) | (np.abs(values) > _FLOAT_EXACT)
        if bad.any():
            k = int(np.argmax(bad))
            why = " (a float beyond 2^53 is not an exact id; store ids as int64 or strings)" if (
                np.isfinite(values[k]) and values[k] == np.floor(values[k])) else ""
            raise DataError(f"{table.where(offset + k, role)}: expected an integer or string {role} id, "
                            f"got {_show(values[k])}{why}")
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


def _text_id_kind(table: _Table, role: str) -> str:
    """``"int"`` or ``"str"`` for a whole text id column (all its chunks), by the rule of
    the module docstring; refuses numbers that are not int64 ids. Vectorised (pyarrow).
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
        beyond = pc.or_(pc.match_substring_regex(column, _BEYOND_INT64), pc.and_(canonical, pc.or_(
            pc.and_(pc.equal(length, 19), pc.greater(column, str(_INT64_MAX))),
            pc.and_(pc.equal(length, 20), pc.greater(column, str(-_INT64_MAX - 1))))))
        bad = pc.or_(beyond, pc.invert(pc.match_substring_regex(column, _INT_SYNTAX)))
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            value = column[row].as_py()
            if re.fullmatch(_INT_SYNTAX, value):
                why = "beyond int64"
            else:
                number = float(value)
                integral = np.isfinite(number) and number == int(number)
                why = ("beyond int64" if abs(number) >= 2.0**63 else "an integer written as a float") if integral else (
                    "not an integer")
            raise DataError(f"{table.where(row, role)}: expected an integer {role} id within int64, got "
                            f"{value[:40]!r} ({why}; a column of numbers holds integer ids)")
        kind = "int" if all_canonical else "str"  # leading zeros or a sign ('007', '+7'): labels
    table.id_kinds[role] = kind
    return kind


class _Union:
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


def _collect_ids(table: _Table, role: str, acc: _Union) -> None:
    """First pass over a role's column: distinct ids into ``acc``; integer ids that fit
    int32 are kept (``table.kept``) so that the second pass maps them in place."""
    if table.text and pa.types.is_string(table.arrow.schema.field(table.columns[role]).type):
        _text_id_kind(table, role)  # classify (and trim) the whole column before its chunks
    kept = np.empty(table.n_rows, dtype=np.int32)
    for offset, chunk in table.chunks(role):
        values = _id_chunk(table, role, offset, chunk)
        acc.add(values)
        if kept is not None and isinstance(values, np.ndarray) and (
            not len(values) or (values.min() >= -(2**31) and values.max() < 2**31)
        ):
            kept[offset: offset + len(values)] = values
        else:
            kept = None
    if kept is not None:
        table.kept[role] = kept


def _map_ids(table: _Table, role: str, idmap: IdMap) -> np.ndarray:
    """Internal ids (int32) of a table's role column, filled chunk by chunk."""
    as_str = idmap.external_ids.dtype.kind not in "iu"
    out = table.kept.pop(role, None)
    if out is not None and not as_str:
        for start in range(0, len(out), 1 << 20):
            block = out[start: start + (1 << 20)]
            block[:] = idmap.to_internal(block, dtype=np.int32, what=f"{role} id")
        return out
    out = np.empty(table.n_rows, dtype=np.int32)
    for offset, chunk in table.chunks(role):
        values = _id_chunk(table, role, offset, chunk)
        if as_str and isinstance(values, np.ndarray):
            values = pd.Series(values).astype(str)
        out[offset: offset + len(values)] = idmap.to_internal(values, dtype=np.int32, what=f"{role} id")
    return out


def _number_chunk(table: _Table, role: str, offset: int, chunk: pa.Array, numeric: list | None = None) -> np.ndarray:
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
                dtype=np.float64, na_value=np.nan)
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
        raise DataError(f"{table.where(offset + k, role)}: expected {what}, got {_show(values[k])}")
    if role == "weight" and len(values) and values.max() > _FLOAT32_MAX:
        k = int(np.argmax(values > _FLOAT32_MAX))
        raise DataError(f"{table.where(offset + k, role)}: expected a weight that fits float32 "
                        f"(at most {_FLOAT32_MAX:.7g}), got {_show(values[k])}")
    if numeric is not None:
        numeric.append((offset, len(values)))
    return values


def _numbers(table: _Table, role: str, dtype) -> np.ndarray | None:
    if role not in table.columns:
        return None
    out = np.empty(table.n_rows, dtype=dtype)
    numeric: list = [] if role == "timestamp" else None
    for offset, chunk in table.chunks(role):
        out[offset: offset + len(chunk)] = _number_chunk(table, role, offset, chunk, numeric)
    if role == "timestamp":
        _to_seconds(table, out, numeric)
    return out


def _timestamp_unit(table: _Table, out: np.ndarray, numeric: list) -> str:
    """The unit of numeric timestamps: ``table.timestamp_unit``, or by magnitude when
    ``"auto"`` (the largest absolute value below 1e11: seconds; 1e14: ms; 1e17: us; else ns)."""
    if table.timestamp_unit != "auto":
        return table.timestamp_unit
    top = max(float(np.abs(out[o: o + n]).max(initial=0.0)) for o, n in numeric)
    return next((unit for unit, below in _AUTO_UNIT_BELOW if top < below), "ns")


def _to_seconds(table: _Table, out: np.ndarray, numeric: list) -> None:
    """Numeric timestamps (the ``numeric`` row ranges) to seconds, in place; then refuses
    any timestamp outside years 1..9999."""
    unit = _timestamp_unit(table, out, numeric) if numeric else "s"
    scale = TIMESTAMP_UNITS[unit]
    if scale != 1.0:
        for o, n in numeric:
            out[o: o + n] /= scale
    lo, hi = _SECONDS_RANGE
    bad = (out < lo) | (out > hi)
    if bad.any():
        k = int(np.argmax(bad))
        given = any(o <= k < o + n for o, n in numeric)
        value = f"{_show(out[k] * scale)} read as {unit}" if given else f"{_show(out[k])} s"
        raise DataError(
            f"{table.where(k, 'timestamp')}: timestamp {value} is outside years 1..9999 (UTC); numeric "
            f"timestamps are s, ms, us or ns by magnitude, or as named with load(..., timestamp_unit=)")


def _build(tables: list[_Table], side: bool) -> list[Interactions]:
    maps = {}
    for role in ("user", "item"):
        acc = _Union()
        for t in tables:
            if role in t.universe:
                acc.add(np.arange(t.universe[role], dtype=np.int64))
            _collect_ids(t, role, acc)
        maps[role] = acc.idmap()
    out = []
    pool = pa.default_memory_pool()
    for t in tables:
        users = _map_ids(t, "user", maps["user"])
        items = _map_ids(t, "item", maps["item"])
        weights = _numbers(t, "weight", np.float32)
        stamps = _numbers(t, "timestamp", np.float64)
        pool.release_unused()  # hand Arrow's freed read buffers back before the CSR build
        inter = Interactions.from_arrays(users, items, maps["user"], maps["item"], weights, stamps, str(t.path))
        del users, items, weights, stamps
        if side and t.format == "recbole":
            inter = _attach_recbole_features(inter, t.path)
        out.append(inter)
    return out


def _attach_recbole_features(inter: Interactions, path: Path) -> Interactions:
    import dataclasses

    from rechash.data.features import load_side_features

    found = {}
    for side, ids in (("user", inter.user_ids), ("item", inter.item_ids)):
        side_path = path.with_suffix(f".{side}")
        if side_path.is_file():
            found[f"{side}_features"] = load_side_features(side_path, ids, id_col=_recbole_id(side_path, side))
    return dataclasses.replace(inter, **found) if found else inter


def _recbole_id(path: Path, side: str) -> str:
    names = [n for n, _ in _recbole_header(path)]
    return f"{side}_id" if f"{side}_id" in names else names[0]


# ---- public API -------------------------------------------------------------------------------
def load(
    path: str | Path,
    format: str | None = None,
    *,
    user_col: str | None = None,
    item_col: str | None = None,
    weight_col: str | None = None,
    timestamp_col: str | None = None,
    sep: str | None = None,
    timestamp_unit: str = "auto",
    side: bool = True,
) -> Interactions:
    """Load one interaction file (or ``"synthetic"``, ``"ml-100k"``, ``"ml-1m"``, a directory).

    ``format`` is one of :data:`FORMATS` (detected when omitted); the ``*_col`` options name
    the columns of CSV/TSV/Parquet/RecBole inputs and ``sep`` overrides the CSV/TSV
    delimiter. ``timestamp_unit`` is the unit of numeric timestamps: ``"s"``, ``"ms"``,
    ``"us"``, ``"ns"`` or ``"auto"`` (by magnitude, see the module docstring). ``side``
    attaches RecBole ``.user``/``.item`` side features. See the module docstring for the
    formats, id rules and errors.
    """
    return load_many([path], format=format, user_col=user_col, item_col=item_col, weight_col=weight_col,
                     timestamp_col=timestamp_col, sep=sep, timestamp_unit=timestamp_unit, side=side)[0]


def load_many(
    paths: Sequence[str | Path],
    format: str | None = None,
    **options,
) -> list[Interactions]:
    """Load several files (e.g. train/valid/test) sharing one union of id maps.

    Takes the options of :func:`load`. Ids are mapped once over all files, so internal id
    ``k`` means the same user (item) in every result.
    """
    side = options.pop("side", True)
    unit = options.pop("timestamp_unit", None) or "auto"
    unknown = set(options) - {f"{r}_col" for r in ROLES} - {"sep"}
    if unknown:
        raise TypeError(f"load_many() got unexpected options {sorted(unknown)}")
    if unit != "auto" and unit not in TIMESTAMP_UNITS:
        raise DataError(f"timestamp unit: expected auto, {', '.join(TIMESTAMP_UNITS)}, got {unit!r}")
    resolved = [_resolve(p, format) for p in paths]
    if any(fmt == "synthetic" for _, fmt in resolved):
        if len(resolved) > 1:
            raise DataError("synthetic: the embedded dataset cannot be combined with other inputs")
        from rechash.data.synthetic import synthetic

        return [synthetic()]
    parsed: dict = {}
    tables = [_READERS[fmt](p, opts=options, fmt=fmt, parsed=parsed) for p, fmt in resolved]
    for t in tables:
        t.timestamp_unit = unit
    return _build(tables, side)


def load_split(path: str | Path, format: str | None = None, **options):
    """A :class:`~rechash.data.splits.Split` from a split directory or a ``train`` file.

    ``path`` is a directory holding ``train.*`` and ``test.*`` (``valid.*`` optional, an
    empty part when absent), or one of those files, or ``"synthetic"`` (the default split
    of :func:`rechash.data.synthetic.synthetic_split`). The parts share one id map.
    """
    if str(path) == "synthetic" and not Path(path).exists():
        from rechash.data.synthetic import synthetic_split

        return synthetic_split()
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or directory")
    train = _resolve_dir(p) if p.is_dir() else p
    stem, suffix, comp = _base_name(train)
    if stem.lower() != "train":
        raise DataError(f"{p}: expected a split directory or file named train.* (with test.* beside it)")
    parts = {s: train.with_name(s + suffix + comp) for s in SPLIT_NAMES}
    if not parts["test"].is_file():
        raise DataError(f"{parts['test']}: no such file (a split needs train and test parts)")
    names = [s for s in SPLIT_NAMES if parts[s].is_file()]
    loaded = dict(zip(names, load_many([parts[s] for s in names], format=format, **options)))
    if "valid" not in loaded:
        loaded["valid"] = loaded["train"].subset(np.zeros(loaded["train"].nnz, dtype=bool))
    return Split(loaded["train"], loaded["valid"], loaded["test"])


def read_frame(path: Path, format: str | None = None, id_col: str | None = None):
    """A side-feature table as a DataFrame: ``(frame, kinds, where, id_col)``.

    The id column (``id_col``, else ``user_id``/``item_id`` when present, else the first
    column) is read as text. RecBole files give kinds from their typed header (token ->
    categorical, token_seq -> multi, float -> numeric); CSV/TSV/Parquet give none."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    fmt = format or {".user": "recbole", ".item": "recbole", ".inter": "recbole"}.get(_base_name(path)[1].lower())
    fmt = fmt or detect_format(path)
    kinds: dict[str, str] = {}
    if fmt == "parquet":
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
        _check_unique(path, names, None)
    elif fmt == "recbole":
        fields = _recbole_header(path)
        names = [n for n, _ in fields]
        for n, t in fields:
            if t not in _RECBOLE_TYPES:
                raise DataError(f"{path}:1: column {n!r} has type {t}, which side features do not support; drop it")
            kinds[n] = _RECBOLE_TYPES[t]
    elif fmt in ("csv", "tsv"):
        names = _header(path, "," if fmt == "csv" else "\t")
        _check_unique(path, names, "1")
    else:
        raise DataError(f"{path}: side features must be RecBole, CSV, TSV or Parquet, got {fmt}")
    if not names:
        raise DataError(f"{path}: empty file")
    id_col = id_col or next((c for c in (C.USER_ID, C.ITEM_ID) if c in names), names[0])
    if id_col not in names:
        raise DataError(f"{path}: missing id column {id_col!r}; columns are {list(names)}")
    if fmt == "parquet":
        return pq.read_table(path).to_pandas(), kinds, lambda row: f"{path}: row {row + 1}", id_col
    types = {n: pa.float64() for n, k in kinds.items() if k == "numeric"}
    types.update({n: pa.string() for n in names if n not in types})
    if fmt != "recbole":
        types = {id_col: pa.string()}
    table = _read_text(path, "\t" if fmt != "csv" else ",", names=names if fmt == "recbole" else None,
                       skip_rows=1 if fmt == "recbole" else 0, types=types, quote=fmt != "recbole")
    return table.to_pandas(), kinds, lambda row: f"{path}:{_physical_line(path, 1, row)}", id_col


def save(inter: Interactions, path: str | Path, format: str | None = None) -> Path:
    """Write interactions as adjacency text (``.txt``) or Parquet (``.parquet``).

    Adjacency text writes the external ids, one line per user with interactions, and keeps
    neither weights nor timestamps; it needs non-negative integer ids. Parquet keeps
    everything: ``user_id, item_id, weight[, timestamp]`` in external ids.
    """
    path = Path(path)
    format = format or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "adjacency")
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "parquet":
        pq.write_table(pa.Table.from_pandas(inter.to_frame(), preserve_index=False), path)
        return path
    if format != "adjacency":
        raise DataError(f"{path}: can write adjacency or parquet, not {format!r}")
    for what, ids in (("user", inter.user_ids), ("item", inter.item_ids)):
        ext = ids.external_ids
        if ext.dtype.kind not in "iu" or (len(ext) and ext.min() < 0):
            raise DataError(f"{path}: adjacency text needs non-negative integer {what} ids; write Parquet instead")
    m = inter.matrix
    users = inter.user_ids.external_ids
    items = inter.item_ids.external_ids[m.indices].astype(str)
    with open(path, "w", encoding="utf-8") as fh:
        for u in np.flatnonzero(np.diff(m.indptr)):
            fh.write(f"{users[u]} {' '.join(items[m.indptr[u]: m.indptr[u + 1]])}\n")
    return path
