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
    ``timestamp``/``time``...). Timestamps may be numbers (seconds) or date strings.

In text formats an id column whose every value is a canonical integer (``0``, ``42``,
``-7``; no leading zeros) becomes int64, otherwise the ids stay strings; Parquet keeps
its column types. Ids are ordered ascending in the :class:`IdMap`.

Named inputs: ``synthetic`` (the embedded default dataset, :mod:`rechash.data.synthetic`)
and the public datasets of :mod:`rechash.data.datasets` (``ml-100k``, ``ml-1m``).
A directory stands for the one interaction file in it (``train.*`` first).

Every bad input raises :class:`DataError` naming the file and line (or row) and column.
Duplicated (user, item) rows are merged (weights summed, latest timestamp kept) and
counted in ``Interactions.duplicates_merged``; nothing is dropped.
"""
from __future__ import annotations

import csv
import io
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
_CANONICAL_INT = r"^(0|-?[1-9][0-9]{0,17})$"


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
    with open(path, "rb") as fh:
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

    raw = path.read_bytes()
    values, lines, n, bad = parse_int_lines(np.frombuffer(raw, dtype=np.uint8))
    if bad >= 0:  # file:line:column of the bad character, and the token holding it
        line_start = raw.rfind(b"\n", 0, bad) + 1
        line_end = raw.find(b"\n", bad)
        line = raw[line_start: line_end if line_end >= 0 else len(raw)]
        col = bad - line_start
        token = line[max(line.rfind(b" ", 0, col), line.rfind(b"\t", 0, col)) + 1:].split()[0]
        lineno = raw.count(b"\n", 0, bad) + 1
        raise DataError(
            f"{path}:{lineno}:{col + 1}: expected non-negative integer ids "
            f"'user item item ...', got {token.decode(errors='replace')[:40]!r}"
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
    for p in [path] + _siblings(path):
        if p not in parsed:
            parsed[p] = _parse_adjacency(p)
        _, its, top_user = parsed[p]
        n_users, n_items = max(n_users, top_user + 1), max(n_items, int(its.max(initial=-1)) + 1)
    return _Table(
        path, "adjacency", {"user": "user", "item": "item"}, len(users),
        arrow=pa.table({"user": users, "item": items}), text=False,
        universe={"user": n_users, "item": n_items},
    )


def _siblings(path: Path) -> list[Path]:
    """The other split files (train/valid/test, same suffix) beside a split file."""
    if path.stem.lower() not in SPLIT_NAMES:
        return []
    return [p for s in SPLIT_NAMES
            if (p := path.with_name(s + path.suffix)) != path and p.is_file() and p.stat().st_size]


def _read_movielens(path: Path, **_) -> _Table:
    raw = path.read_bytes()
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
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().rstrip("\r\n")
    if not header.strip():
        raise DataError(f"{path}: empty file, expected a RecBole typed header 'name:type<TAB>...'")
    fields = [f.rsplit(":", 1) for f in header.split("\t")]
    for col, f in enumerate(fields, 1):
        if len(f) != 2 or f[1] not in ("token", "token_seq", "float", "float_seq"):
            raise DataError(
                f"{path}:1: column {col}: expected a RecBole typed header field 'name:type' "
                f"(type token, token_seq, float or float_seq), got {':'.join(f)!r}"
            )
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
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        header = next(csv.reader(fh, delimiter=sep), None)
    if not header:
        raise DataError(f"{path}: empty file, expected a header line naming the columns")
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
    roles = _pick_columns(path, pf.schema_arrow.names, opts)
    if pf.metadata.num_rows == 0:
        raise DataError(f"{path}: empty file, no rows")
    return _Table(path, "parquet", roles, pf.metadata.num_rows, parquet=pf, text=False)


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
    try:
        table = pacsv.read_csv(
            source if source is not None else path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip_rows, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"' if quote else False),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=include, strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        raise _diagnose(path, sep, quote, names, skip_rows, types, fields_desc, exc) from None
    if table.num_rows == 0:
        raise DataError(f"{path}: empty file, no data rows")
    return table


def _diagnose(path, sep, quote, names, skip_rows, types, fields_desc, exc) -> DataError:
    """Find the line behind a pyarrow parse/convert error (slow scan, error path only)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        text = fh.read()
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
                (int if pa.types.is_integer(kind) else float)(value)
            except ValueError:
                what = "an integer" if pa.types.is_integer(kind) else "a number"
                return DataError(f"{path}:{lineno}: column {name!r}: expected {what}, got {value!r}")
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
    name, suffix = path.name.lower(), path.suffix.lower()
    by_suffix = {".parquet": "parquet", ".pq": "parquet", ".inter": "recbole", ".csv": "csv", ".tsv": "tsv"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    if suffix in (".user", ".item"):
        raise DataError(f"{path}: a RecBole side-feature file, not interactions; load it with load_side_features")
    if name in ("u.data", "ratings.dat"):
        return "movielens"
    with open(path, "rb") as fh:
        head = fh.read(65536)
    lines = [ln for ln in head.decode("utf-8", errors="replace").splitlines()[:50] if ln.strip()]
    if len(head) == 65536 and len(lines) > 1:
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
        if path.stem.lower() in SPLIT_NAMES:
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
        [p for p in files if p.stem.lower() == "train"],
        [p for p in files if p.suffix.lower() in (".inter", ".parquet", ".pq", ".csv", ".tsv")
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
    """Validated ids of one chunk: int64 array for integer ids, else a string Series."""
    if chunk.null_count:
        row = offset + pc.index(chunk.is_null(), True).as_py()
        raise DataError(f"{table.where(row, role)}: empty or missing {role} id")
    t = chunk.type
    if pa.types.is_integer(t):
        return chunk.to_numpy().astype(np.int64, copy=False)
    if pa.types.is_floating(t):
        values = chunk.to_numpy()
        bad = ~np.isfinite(values) | (values != np.floor(values))
        if bad.any():
            k = int(np.argmax(bad))
            raise DataError(f"{table.where(offset + k, role)}: expected an integer or string {role} id, got {_show(values[k])}")
        return values.astype(np.int64)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        chunk = chunk.cast(pa.string())
    stripped = pc.utf8_trim_whitespace(chunk)
    empty = pc.equal(pc.utf8_length(stripped), 0)
    if pc.any(empty).as_py():
        raise DataError(f"{table.where(offset + pc.index(empty, True).as_py(), role)}: empty or missing {role} id")
    if table.text and pc.all(pc.match_substring_regex(chunk, _CANONICAL_INT)).as_py():
        return chunk.cast(pa.int64()).to_numpy()
    return chunk.to_pandas()


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


def _number_chunk(table: _Table, role: str, offset: int, chunk: pa.Array) -> np.ndarray:
    """Validated float64 values of a weight or timestamp chunk."""
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
            return _number_chunk(table, role, offset, chunk.cast(pa.float64()))
        except pa.ArrowInvalid:  # not all numbers: dates (timestamps), or an error to locate
            pass
        series = chunk.cast(pa.string()).to_pandas()
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
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
    bad = ~np.isfinite(values) | ((values < 0) if role == "weight" else False)
    if np.any(bad):
        k = int(np.argmax(bad))
        what = "a finite, non-negative weight" if role == "weight" else "a finite timestamp"
        raise DataError(f"{table.where(offset + k, role)}: expected {what}, got {_show(values[k])}")
    return values


def _numbers(table: _Table, role: str, dtype) -> np.ndarray | None:
    if role not in table.columns:
        return None
    out = np.empty(table.n_rows, dtype=dtype)
    for offset, chunk in table.chunks(role):
        out[offset: offset + len(chunk)] = _number_chunk(table, role, offset, chunk)
    return out


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
    side: bool = True,
) -> Interactions:
    """Load one interaction file (or ``"synthetic"``, ``"ml-100k"``, ``"ml-1m"``, a directory).

    ``format`` is one of :data:`FORMATS` (detected when omitted); the ``*_col`` options name
    the columns of CSV/TSV/Parquet/RecBole inputs and ``sep`` overrides the CSV/TSV
    delimiter. ``side`` attaches RecBole ``.user``/``.item`` side features. See the module
    docstring for the formats, id rules and errors.
    """
    return load_many([path], format=format, user_col=user_col, item_col=item_col, weight_col=weight_col,
                     timestamp_col=timestamp_col, sep=sep, side=side)[0]


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
    unknown = set(options) - {f"{r}_col" for r in ROLES} - {"sep"}
    if unknown:
        raise TypeError(f"load_many() got unexpected options {sorted(unknown)}")
    resolved = [_resolve(p, format) for p in paths]
    if any(fmt == "synthetic" for _, fmt in resolved):
        if len(resolved) > 1:
            raise DataError("synthetic: the embedded dataset cannot be combined with other inputs")
        from rechash.data.synthetic import synthetic

        return [synthetic()]
    parsed: dict = {}
    tables = [_READERS[fmt](p, opts=options, fmt=fmt, parsed=parsed) for p, fmt in resolved]
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
    if train.stem.lower() != "train":
        raise DataError(f"{p}: expected a split directory or file named train.* (with test.* beside it)")
    parts = {s: train.with_name(s + train.suffix) for s in SPLIT_NAMES}
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
    fmt = format or {".user": "recbole", ".item": "recbole", ".inter": "recbole"}.get(path.suffix.lower())
    fmt = fmt or detect_format(path)
    kinds: dict[str, str] = {}
    if fmt == "parquet":
        names = pq.ParquetFile(path).schema_arrow.names
    elif fmt == "recbole":
        fields = _recbole_header(path)
        names = [n for n, _ in fields]
        for n, t in fields:
            if t not in _RECBOLE_TYPES:
                raise DataError(f"{path}:1: column {n!r} has type {t}, which side features do not support; drop it")
            kinds[n] = _RECBOLE_TYPES[t]
    elif fmt in ("csv", "tsv"):
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            names = next(csv.reader(fh, delimiter="," if fmt == "csv" else "\t"), None) or []
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
