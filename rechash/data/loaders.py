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

Layers. This module is the top of the data layer: the format readers, named inputs and
:func:`load`/:func:`load_many`/:func:`load_split`. What it shares lies below it and never
imports it: :mod:`rechash.data.files` (bytes, UTF-8 text, headers, :func:`detect_format`,
:func:`read_frame`), :mod:`rechash.data.tables` (the table of role columns and the
validation and id mapping above, shared with :meth:`Interactions.from_frame`) and
:mod:`rechash.data.writers` (:func:`save`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rechash import columns as C
from rechash.data.files import (
    FORMATS,
    base_name,
    check_unique,
    detect_format,
    first_line,
    read_bytes,
    read_frame,  # noqa: F401 - re-exported
    read_header,
    read_text,
    recbole_header,
)
from rechash.data.interactions import Interactions
from rechash.data.splits import SPLIT_NAMES, Split
from rechash.data.tables import (
    ALIASES,  # noqa: F401 - re-exported
    ROLES,
    TIMESTAMP_UNITS,
    IdUnion,
    Table,
    collect_ids,
    column_numbers,
    map_ids,
    parquet_type_ok,
    pick_columns,
)
from rechash.data.writers import save  # noqa: F401 - re-exported: rechash.data.save
from rechash.errors import DataError

#: Adjacency ids are internal ids 0..max; the id space may exceed the distinct ids by this.
DENSE_ID_FACTOR, DENSE_ID_FLOOR = 10, 1_000_000


# ---- format readers: path -> Table ---------------------------------------------------------
def _parse_adjacency(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """``(users, items, largest user id)``: a line ``u`` alone still declares user ``u``."""
    from rechash.data._kernels import parse_int_lines

    raw = read_bytes(path)
    values, lines, n, bad = parse_int_lines(np.frombuffer(raw, dtype=np.uint8))
    if bad >= 0:  # file:line:column of the bad character, and the token holding it
        line_start = raw.rfind(b"\n", 0, bad) + 1
        line_end = raw.find(b"\n", bad)
        line = raw[line_start : line_end if line_end >= 0 else len(raw)]
        col = bad - line_start
        token = line[max(line.rfind(b" ", 0, col), line.rfind(b"\t", 0, col)) + 1 :].split()[0]
        lineno = raw.count(b"\n", 0, bad) + 1
        text = token.decode(errors="replace")
        why = " (more than 18 digits: beyond any id space rechash can hold)" if text.isdigit() else ""
        raise DataError(
            f"{path}:{lineno}:{col + 1}: expected non-negative integer ids 'user item item ...', got {text[:40]!r}{why}"
        )
    if n == 0:
        raise DataError(f"{path}: empty file, expected lines 'user item item ...'")
    first = np.ones(n, dtype=bool)
    first[1:] = lines[1:] != lines[:-1]
    heads = np.flatnonzero(first)
    counts = np.diff(np.append(heads, n)) - 1
    return np.repeat(values[heads], counts), values[~first], int(values[heads].max())


def _read_adjacency(path: Path, parsed: dict, **_) -> Table:
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
    return Table(
        path,
        "adjacency",
        {"user": "user", "item": "item"},
        len(users),
        arrow=pa.table({"user": users, "item": items}),
        text=False,
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
        raw = read_bytes(p)
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
    raise DataError(
        f"{family[0]}: {role} id {top} needs an id space of {size:,} {role}s for {distinct:,} "
        f"distinct {role}s; renumber the ids, or use CSV with a user_id,item_id header"
    )


def _siblings(path: Path) -> list[Path]:
    """The other split files (train/valid/test, same suffix) beside a split file."""
    stem, suffix, comp = base_name(path)
    if stem.lower() not in SPLIT_NAMES:
        return []
    return [
        p for s in SPLIT_NAMES if (p := path.with_name(s + suffix + comp)) != path and p.is_file() and p.stat().st_size
    ]


def _read_movielens(path: Path, **_) -> Table:
    raw = read_bytes(path)
    double = b"::" in raw[:4096]
    if double:
        raw = raw.replace(b"::", b"\t")
    names = [C.USER_ID, C.ITEM_ID, "rating", C.TIMESTAMP]
    types = {C.USER_ID: pa.int64(), C.ITEM_ID: pa.int64(), "rating": pa.float64(), C.TIMESTAMP: pa.int64()}
    table = read_text(
        path,
        "\t",
        names=names,
        types=types,
        quote=False,
        source=io.BytesIO(raw),
        fields_desc="'user::item::rating::timestamp'" if double else "tab-separated 'user item rating timestamp'",
    )
    return Table(
        path,
        "movielens",
        {"user": C.USER_ID, "item": C.ITEM_ID, "weight": "rating", "timestamp": C.TIMESTAMP},
        table.num_rows,
        arrow=table,
        text=False,
    )


def _read_recbole(path: Path, opts: dict, **_) -> Table:
    fields = recbole_header(path)
    names = [n for n, _ in fields]
    roles = pick_columns(path, names, opts, defaults={"weight": ("rating",)})
    types = {n: (pa.float64() if t == "float" else pa.string()) for n, t in fields}
    table = read_text(
        path,
        "\t",
        names=names,
        skip_rows=1,
        types={c: types[c] for c in roles.values()},
        include=list(roles.values()),
        quote=False,
        fields_desc="tab-separated fields as in the header",
    )
    return Table(path, "recbole", roles, table.num_rows, arrow=table, header_lines=1)


def _read_delimited(path: Path, opts: dict, fmt: str, **_) -> Table:
    sep = opts.get("sep") or ("," if fmt == "csv" else "\t")
    header = read_header(path, sep)
    if not header:
        raise DataError(f"{path}: empty file, expected a header line naming the columns")
    check_unique(path, header, "1")
    roles = pick_columns(path, header, opts)
    types = {col: pa.string() for col in roles.values()}  # numbers are parsed and located later
    table = read_text(
        path, sep, types=types, include=list(roles.values()), fields_desc=f"{len(header)} {fmt.upper()} fields"
    )
    return Table(path, fmt, roles, table.num_rows, arrow=table, header_lines=1)


def _read_parquet(path: Path, opts: dict, **_) -> Table:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    schema = pf.schema_arrow
    check_unique(path, schema.names, None)
    roles = pick_columns(path, schema.names, opts)
    for role, name in roles.items():
        kind = schema.field(name).type
        if not parquet_type_ok(role, kind):
            expected = {
                "user": "integers or strings",
                "item": "integers or strings",
                "weight": "numbers",
                "timestamp": "numbers, timestamps, dates or date strings",
            }[role]
            raise DataError(f"{path}: column {name!r} ({role}) has Parquet type {kind}; expected {expected}")
    if pf.metadata.num_rows == 0:
        raise DataError(f"{path}: empty file, no rows")
    return Table(path, "parquet", roles, pf.metadata.num_rows, parquet=pf, text=False)


_READERS = {
    "adjacency": _read_adjacency,
    "movielens": _read_movielens,
    "recbole": _read_recbole,
    "csv": _read_delimited,
    "tsv": _read_delimited,
    "parquet": _read_parquet,
}


# ---- inputs: names, directories ---------------------------------------------------------------


def _resolve_dir(path: Path) -> Path:
    """The interaction file a directory stands for: ``train.*``, else its only log file."""
    files = sorted(p for p in path.iterdir() if p.is_file())
    for group in (
        [p for p in files if base_name(p)[0].lower() == "train"],
        [
            p
            for p in files
            if base_name(p)[1].lower() in (".inter", ".parquet", ".pq", ".csv", ".tsv")
            or p.name.lower() in ("u.data", "ratings.dat")
        ],
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


def _build(tables: list[Table], side: bool) -> list[Interactions]:
    maps = {}
    for role in ("user", "item"):
        acc = IdUnion()
        for t in tables:
            if role in t.universe:
                acc.add(np.arange(t.universe[role], dtype=np.int64))
            collect_ids(t, role, acc)
        maps[role] = acc.idmap()
    out = []
    pool = pa.default_memory_pool()
    for t in tables:
        users = map_ids(t, "user", maps["user"])
        items = map_ids(t, "item", maps["item"])
        weights = column_numbers(t, "weight", np.float32)
        stamps = column_numbers(t, "timestamp", np.float64)
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
    names = [n for n, _ in recbole_header(path)]
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
    return load_many(
        [path],
        format=format,
        user_col=user_col,
        item_col=item_col,
        weight_col=weight_col,
        timestamp_col=timestamp_col,
        sep=sep,
        timestamp_unit=timestamp_unit,
        side=side,
    )[0]


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
    stem, suffix, comp = base_name(train)
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
