"""Input files, below the loaders: bytes, UTF-8 text, headers, format detection.

What :mod:`rechash.data.loaders` (interaction logs) and :mod:`rechash.data.features`
(side-feature tables, :func:`read_frame`) both read through: transparent gzip/bz2/xz
decompression by magic bytes, the UTF-8 check (a byte-order mark skipped; UTF-16/32, NUL
bytes and non-UTF-8 bytes refused with line and byte offset), pyarrow's CSV reader with
its parse errors located by line, header checks, and :func:`detect_format`. The rules
are documented in the :mod:`rechash.data.loaders` docstring. This module imports no other
module of :mod:`rechash.data`.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from rechash import columns as C
from rechash.errors import DataError

FORMATS = ("adjacency", "movielens", "recbole", "csv", "tsv", "parquet")
#: The parts of a split, in order; also the file stems of a split directory.
SPLIT_NAMES = ("train", "valid", "test")
_RECBOLE_TYPES = {"token": "categorical", "token_seq": "multi", "float": "numeric"}
INT64_MAX = np.iinfo(np.int64).max


# ---- bytes: compression, encoding -----------------------------------------------------------------
_COMPRESSION_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
_OPENERS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
_WIDE_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)
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


def base_name(path: Path) -> tuple[str, str, str]:
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
                    raise DataError(
                        f"{self.path}: {name} text (byte-order mark {bom.hex(' ').upper()}); "
                        f"rechash reads UTF-8 text: re-save the file as UTF-8"
                    )
            if block.startswith(_UTF8_BOM):
                block = block[len(_UTF8_BOM) :]
        nul = block.find(b"\x00")
        pending = len(self.decoder.getstate()[0])
        if pending or final or not block.isascii():
            try:
                self.decoder.decode(block, final)
            except UnicodeDecodeError as exc:
                at = max(exc.start - pending, 0)
                if not 0 <= nul < at:
                    raise self._error(
                        block,
                        at,
                        f"byte 0x{block[at]:02x}: {exc.reason}"
                        if at < len(block)
                        else "a truncated character at the end",
                    ) from None
        if nul >= 0:
            raise self._error(block, nul, "a NUL byte: binary data or UTF-16 text without a byte-order mark")
        self.newlines += block.count(b"\n")
        self.offset += len(block)
        return block

    def _error(self, block: bytes, at: int, what: str) -> DataError:
        line = self.newlines + block.count(b"\n", 0, at) + 1
        return DataError(
            f"{self.path}:{line}: not UTF-8 text ({what}, at byte {self.offset + at:,}); re-save the file as UTF-8"
        )


def _decompression_error(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path}: corrupt {_compression(path)} data ({first_line(exc)})")


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


def read_bytes(path: Path) -> bytes:
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
        check.feed(bytes(view[start : start + _BLOCK]))
    check.feed(b"", final=True)
    return raw[len(_UTF8_BOM) :] if raw.startswith(_UTF8_BOM) else raw


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


def physical_line(path: Path, header_lines: int, row: int) -> int:
    """1-based line number of data row ``row`` (blank lines are not rows); error path only."""
    with _open_binary(path) as fh:
        seen = -1
        for lineno, line in enumerate(fh, 1):
            if lineno > header_lines and line.strip():
                seen += 1
                if seen == row:
                    return lineno
    return header_lines + row + 1


# ---- headers ---------------------------------------------------------------------------------
def recbole_header(path: Path) -> list[tuple[str, str]]:
    """``(name, type)`` of each field of a RecBole typed header (``user_id:token<TAB>...``)."""
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
    check_unique(path, [n for n, _ in fields], "1")
    return [(n, t) for n, t in fields]


def read_header(path: Path, sep: str) -> list[str]:
    """The header row of a CSV/TSV file (checked UTF-8, a BOM removed)."""
    return next(csv.reader(io.StringIO(_read_head(path), newline=""), delimiter=sep), None) or []


def check_unique(path: Path, names: Sequence[str], line: str | None) -> None:
    """Refuse a header that names one column twice."""
    seen: dict[str, int] = {}
    for k, name in enumerate(names, 1):
        if name in seen:
            where = f"{path}:{line}" if line else f"{path}"
            raise DataError(
                f"{where}: column {name!r} appears twice in the {'header' if line else 'schema'} "
                f"(columns {seen[name]} and {k}); rename one"
            )
        seen[name] = k


# ---- text tables -----------------------------------------------------------------------------
def read_text(
    path: Path,
    sep: str,
    *,
    names=None,
    skip_rows=0,
    types=None,
    include=None,
    quote=True,
    source=None,
    fields_desc: str = "fields",
) -> pa.Table:
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
    text = read_bytes(path).decode("utf-8")
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
            return DataError(
                f"{path}:{lineno}: expected {fields_desc}, got {len(fields)} fields: {lines[lineno - 1][:60]!r}"
            )
        for name, value in zip(header, fields):
            kind = (types or {}).get(name)
            if kind is None or pa.types.is_string(kind) or value.strip() == "":
                continue
            try:
                number = (int if pa.types.is_integer(kind) else float)(value)
            except ValueError:
                what = "an integer" if pa.types.is_integer(kind) else "a number"
                return DataError(f"{path}:{lineno}: column {name!r}: expected {what}, got {value!r}")
            if pa.types.is_integer(kind) and not -INT64_MAX - 1 <= number <= INT64_MAX:
                return DataError(f"{path}:{lineno}: column {name!r}: expected an integer within int64, got {value!r}")
    return DataError(f"{path}: cannot parse ({first_line(exc)})")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ---- format detection ------------------------------------------------------------------------
def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its name, else from its first lines.

    Raises :class:`DataError` when the file is missing, empty, of no known format or
    ambiguous (the message names the candidates and ``--format``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    stem, suffix, _ = base_name(path)  # train.csv.gz is a CSV file
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


# ---- side-feature tables ------------------------------------------------------------------------
def read_frame(path: Path, format: str | None = None, id_col: str | None = None):
    """A side-feature table as a DataFrame: ``(frame, kinds, where, id_col)``.

    The id column (``id_col``, else ``user_id``/``item_id`` when present, else the first
    column) is read as text. RecBole files give kinds from their typed header (token ->
    categorical, token_seq -> multi, float -> numeric); CSV/TSV/Parquet give none."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    fmt = format or {".user": "recbole", ".item": "recbole", ".inter": "recbole"}.get(base_name(path)[1].lower())
    fmt = fmt or detect_format(path)
    kinds: dict[str, str] = {}
    if fmt == "parquet":
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
        check_unique(path, names, None)
    elif fmt == "recbole":
        fields = recbole_header(path)
        names = [n for n, _ in fields]
        for n, t in fields:
            if t not in _RECBOLE_TYPES:
                raise DataError(f"{path}:1: column {n!r} has type {t}, which side features do not support; drop it")
            kinds[n] = _RECBOLE_TYPES[t]
    elif fmt in ("csv", "tsv"):
        names = read_header(path, "," if fmt == "csv" else "\t")
        check_unique(path, names, "1")
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
    table = read_text(
        path,
        "\t" if fmt != "csv" else ",",
        names=names if fmt == "recbole" else None,
        skip_rows=1 if fmt == "recbole" else 0,
        types=types,
        quote=fmt != "recbole",
    )
    return table.to_pandas(), kinds, lambda row: f"{path}:{physical_line(path, 1, row)}", id_col
