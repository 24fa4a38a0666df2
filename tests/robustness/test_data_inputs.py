"""Data inputs: every bad input class of the data layer through ``rechash data stats``
(exit 2, one stderr line naming the file and the line/row or column, no traceback, no
bytes of the input echoed), and the inputs that must be accepted, checked by what loads.

Rules under test (rechash/data/loaders.py docstring, data/README.md): ids beyond int64 or
not integral refused; weights non-finite or beyond float32 refused; numeric timestamps in
s/ms/us/ns by magnitude; adjacency id spaces above max(10 x distinct ids, 1e6) refused
before allocation; nested/binary Parquet columns refused; UTF-8 BOM, CRLF, gzip/bz2/xz
accepted, other encodings refused; whitespace around ids stripped; duplicate columns
refused; types mixed in a column follow the int/number/label rule.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rechash.data import load, load_many

from .robust_helpers import assert_refused, cli, cli_process

U64 = 2**64 - 1


def _parquet(**columns):
    """A writer of a Parquet file holding ``columns`` (pyarrow arrays or lists)."""

    def write(path: Path) -> None:
        names = [n.rstrip("_") for n in columns]  # "user_id_" lets a test name a column twice
        pq.write_table(
            pa.Table.from_arrays(
                [pa.array(v) if not isinstance(v, pa.Array) else v for v in columns.values()], names=names
            ),
            path,
        )

    return write


def _text(text: str, encoding: str = "utf-8", compress=None):
    def write(path: Path) -> None:
        data = text.encode(encoding)
        path.write_bytes(compress(data) if compress else data)

    return write


def _bytes(data: bytes):
    return lambda path: path.write_bytes(data)


def _recbole_with_items(items_text: str, encoding: str = "utf-8"):
    """An ``.inter`` file with an ``.item`` side-feature file beside it."""

    def write(path: Path) -> None:
        path.write_text("user_id:token\titem_id:token\n1\t10\n2\t20\n")
        path.with_suffix(".item").write_bytes(items_text.encode(encoding))

    return write


def _adjacency_family(**parts: str):
    """train/valid/test files of one split directory; the case's file is the first."""

    def write(path: Path) -> None:
        for name, text in parts.items():
            path.with_name(f"{name}.txt").write_text(text)

    return write


_GARBAGE = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
_CORRUPT_GZIP = gzip.compress(b"user_id,item_id\n" + b"1,2\n" * 1000)[:40] + b"\x00garbage" * 8

# (case id, file name, writer, substrings the one stderr line must hold)
BAD = [
    # ids beyond int64 or not integral: CSV/TSV/RecBole/u.data/Parquet/adjacency
    ("csv-uint64-id", "x.csv", _text(f"user_id,item_id\n1,2\n{U64},3\n"), ["x.csv:3", "'user_id'", "beyond int64"]),
    ("csv-float-id-1e19", "x.csv", _text("user_id,item_id\n1,2\n1e19,3\n"), ["x.csv:3", "'user_id'", "'1e19'"]),
    ("csv-id-3.5", "x.csv", _text("user_id,item_id\n1,2\n2,3.5\n"), ["x.csv:3", "'item_id'", "not an integer"]),
    ("csv-id-1.0", "x.csv", _text("user_id,item_id\n1.0,2\n2,3\n"), ["x.csv:2", "'user_id'", "'1.0'"]),
    ("csv-id-inf", "x.csv", _text("user_id,item_id\n1,2\ninf,3\n"), ["x.csv:3", "'user_id'", "'inf'"]),
    (
        "csv-id-20-digits",
        "x.csv",
        _text("user_id,item_id\n1,2\n-99999999999999999999,3\n"),
        ["x.csv:3", "beyond int64"],
    ),
    ("csv-id-int64-max+1", "x.csv", _text("user_id,item_id\n9223372036854775808,2\n"), ["x.csv:2", "beyond int64"]),
    (
        "csv-id-int64-min-1",
        "x.csv",
        _text("user_id,item_id\n1,2\n-9223372036854775809,2\n"),
        ["x.csv:3", "beyond int64"],
    ),
    ("tsv-float-id", "x.tsv", _text("user_id\titem_id\n1\t2\n2\t2.5\n"), ["x.tsv:3", "'item_id'", "'2.5'"]),
    (
        "recbole-uint64-id",
        "x.inter",
        _text(f"user_id:token\titem_id:token\n{U64}\t1\n"),
        ["x.inter:2", "'user_id'", "beyond int64"],
    ),
    (
        "recbole-float-id-3.5",
        "x.inter",
        _text("user_id:float\titem_id:token\n1\t1\n3.5\t1\n"),
        ["x.inter:3", "'user_id'", "3.5"],
    ),
    ("udata-uint64-id", "u.data", _text(f"1\t2\t3\t4\n{U64}\t2\t3\t4\n"), ["u.data:2", "'user_id'", "within int64"]),
    ("udata-float-id", "u.data", _text("1\t2\t3\t4\n1e19\t2\t3\t4\n"), ["u.data:2", "'user_id'", "'1e19'"]),
    (
        "parquet-uint64-id",
        "x.parquet",
        _parquet(user_id=pa.array([1, U64], pa.uint64()), item_id=[1, 2]),
        ["x.parquet: row 2", "'user_id'", str(U64)],
    ),
    (
        "parquet-float-id-1e19",
        "x.parquet",
        _parquet(user_id=[1.0, 1e19], item_id=[1, 2]),
        ["x.parquet: row 2", "'user_id'", "1e+19"],
    ),
    (
        "parquet-float-id-2^53+2",
        "x.parquet",
        _parquet(user_id=[1, 2], item_id=[1.0, 2.0**53 + 2]),
        ["x.parquet: row 2", "'item_id'", "2^53"],
    ),
    (
        "parquet-float-id-3.5",
        "x.parquet",
        _parquet(user_id=[3.5, 1.0], item_id=[1, 2]),
        ["x.parquet: row 1", "'user_id'", "3.5"],
    ),
    (
        "parquet-float-id-nan",
        "x.parquet",
        _parquet(user_id=[1.0, float("nan")], item_id=[1, 2]),
        ["x.parquet: row 2", "'user_id'"],
    ),
    ("adjacency-uint64-id", "train.txt", _text(f"0 1\n1 {U64}\n"), ["train.txt:2:", "more than 18 digits"]),
    ("adjacency-id-3.5", "train.txt", _text("0 1\n1 3.5\n"), ["train.txt:2:4", "'3.5'"]),
    ("adjacency-id-1e19", "train.txt", _text("0 1\n1 1e19\n"), ["train.txt:2:4", "'1e19'"]),
    ("adjacency-negative-id", "log.txt", _text("0 1\n-1 2\n"), ["log.txt:2:1", "'-1'"]),
    # weights: non-finite or beyond float32
    (
        "csv-weight-3.5e38",
        "x.csv",
        _text("user_id,item_id,weight\n1,2,1\n1,3,3.5e38\n"),
        ["x.csv:3", "'weight'", "float32"],
    ),
    ("csv-weight-1e300", "x.csv", _text("user_id,item_id,rating\n1,2,1e300\n"), ["x.csv:2", "'rating'", "float32"]),
    ("csv-weight-inf", "x.csv", _text("user_id,item_id,weight\n1,2,1\n1,3,inf\n"), ["x.csv:3", "'weight'", "finite"]),
    (
        "csv-weight-negative",
        "x.csv",
        _text("user_id,item_id,weight\n1,3,-2\n"),
        ["x.csv:2", "'weight'", "non-negative"],
    ),
    (
        "csv-weights-sum-overflow",
        "x.csv",
        _text("user_id,item_id,weight\n7,8,3e38\n7,8,3e38\n"),
        ["x.csv", "user 7", "item 8", "float32"],
    ),
    ("udata-rating-3.5e38", "u.data", _text("1\t2\t3.5e38\t4\n"), ["u.data:1", "'rating'", "float32"]),
    (
        "parquet-weight-1e300",
        "x.parquet",
        _parquet(user_id=[1, 2], item_id=[1, 2], weight=[1.0, 1e300]),
        ["x.parquet: row 2", "'weight'", "float32"],
    ),
    (
        "parquet-weight-nan",
        "x.parquet",
        _parquet(user_id=[1, 2], item_id=[1, 2], weight=[float("nan"), 1.0]),
        ["x.parquet: row 1", "'weight'", "finite"],
    ),
    (
        "parquet-weight-inf",
        "x.parquet",
        _parquet(user_id=[1, 2], item_id=[1, 2], weight=[1.0, float("inf")]),
        ["x.parquet: row 2", "'weight'", "finite"],
    ),
    # timestamps outside years 1..9999 whatever their unit
    (
        "csv-timestamp-1e30",
        "x.csv",
        _text("user_id,item_id,timestamp\n1,2,1600000000\n1,3,1e30\n"),
        ["x.csv:3", "'timestamp'", "years 1..9999"],
    ),
    ("csv-timestamp-inf", "x.csv", _text("user_id,item_id,timestamp\n1,2,inf\n"), ["x.csv:2", "'timestamp'", "finite"]),
    (
        "parquet-timestamp-1e25",
        "x.parquet",
        _parquet(user_id=[1, 2], item_id=[1, 2], timestamp=[1.6e9, 1e25]),
        ["x.parquet: row 2", "'timestamp'", "years 1..9999"],
    ),
    # adjacency id spaces that would need more memory than the data justifies
    (
        "adjacency-item-1.5e9",
        "train.txt",
        _text("0 1 2\n1 1500000000\n"),
        ["train.txt:2", "item id 1500000000", "id space"],
    ),
    (
        "adjacency-user-1e17",
        "train.txt",
        _text("0 1\n100000000000000000 2\n"),
        ["train.txt:2", "user id 100000000000000000"],
    ),
    (
        "adjacency-sibling-item-2e6",
        "train.txt",
        _adjacency_family(train="0 1\n", valid="1 2\n", test="0 3\n2 2000000\n"),
        ["test.txt:2", "item id 2000000"],
    ),
    # Parquet nested or binary id/weight/timestamp columns
    ("parquet-list-id", "x.parquet", _parquet(user_id=[[1], [2]], item_id=[1, 2]), ["x.parquet", "'user_id'", "list<"]),
    (
        "parquet-struct-id",
        "x.parquet",
        _parquet(user_id=[1, 2], item_id=[{"a": 1}, {"a": 2}]),
        ["x.parquet", "'item_id'", "struct<"],
    ),
    (
        "parquet-binary-id",
        "x.parquet",
        _parquet(user_id=[b"\x00\xff", b"b"], item_id=[1, 2]),
        ["x.parquet", "'user_id'", "type binary"],
    ),
    (
        "parquet-map-id",
        "x.parquet",
        _parquet(user_id=pa.array([[("a", 1)], [("b", 2)]], pa.map_(pa.string(), pa.int64())), item_id=[1, 2]),
        ["x.parquet", "'user_id'", "map<"],
    ),
    (
        "parquet-bool-id",
        "x.parquet",
        _parquet(user_id=[True, False], item_id=[1, 2]),
        ["x.parquet", "'user_id'", "type bool"],
    ),
    (
        "parquet-list-weight",
        "x.parquet",
        _parquet(user_id=[1, 2], item_id=[1, 2], weight=[[1.0], [2.0]]),
        ["x.parquet", "'weight'", "list<"],
    ),
    (
        "parquet-struct-timestamp",
        "x.parquet",
        _parquet(user_id=[1, 2], item_id=[1, 2], timestamp=[{"s": 1}, {"s": 2}]),
        ["x.parquet", "'timestamp'", "struct<"],
    ),
    (
        "parquet-binary-timestamp",
        "x.parquet",
        _parquet(user_id=[1, 2], item_id=[1, 2], timestamp=[b"1", b"2"]),
        ["x.parquet", "'timestamp'", "binary"],
    ),
    # encodings other than UTF-8, binary data, corrupt compression
    ("utf16le-bom-csv", "x.csv", _text("\ufeffuser_id,item_id\n1,2\n", "utf-16-le"), ["x.csv", "UTF-16", "FF FE"]),
    ("utf16be-bom-csv", "x.csv", _text("\ufeffuser_id,item_id\n1,2\n", "utf-16-be"), ["x.csv", "UTF-16", "FE FF"]),
    ("utf16-no-bom-csv", "x.csv", _text("user_id,item_id\n1,2\n", "utf-16-le"), ["x.csv:1", "NUL byte"]),
    ("utf32-bom-txt", "x.txt", _text("\ufeff0 1\n", "utf-32-le"), ["x.txt", "UTF-32"]),
    ("utf16-adjacency", "train.txt", _text("\ufeff0 1 2\n1 2\n", "utf-16"), ["train.txt", "UTF-16"]),
    ("latin1-csv-id", "x.csv", _text("user_id,item_id\n1,2\ncaf\xe9,3\n", "latin-1"), ["x.csv:3", "not UTF-8", "0xe9"]),
    ("latin1-csv-header", "x.csv", _text("user_id,item_id,r\xe9sum\xe9\n1,2,x\n", "latin-1"), ["x.csv:1", "not UTF-8"]),
    (
        "latin1-unused-column",
        "x.csv",
        _text("user_id,item_id,note\n1,2,ok\n" + "1,3,ok\n" * 5 + "2,3,na\xefve\n", "latin-1"),
        ["x.csv:8", "not UTF-8"],
    ),
    ("latin1-adjacency", "log.txt", _text("0 1\n1 \xe9\n", "latin-1"), ["log.txt:2", "not UTF-8"]),
    ("latin1-udata", "u.data", _text("1\t2\t3\t4\n\xe9\t2\t3\t4\n", "latin-1"), ["u.data:2", "not UTF-8"]),
    ("binary-garbage-csv", "x.csv", _bytes(_GARBAGE), ["x.csv:", "not UTF-8"]),
    ("binary-garbage-txt", "x.txt", _bytes(_GARBAGE), ["x.txt:", "not UTF-8"]),
    ("gzip-of-utf16", "x.csv", _text("\ufeffuser_id,item_id\n1,2\n", "utf-16-le", gzip.compress), ["x.csv", "UTF-16"]),
    (
        "gzip-of-latin1",
        "x.csv.gz",
        _text("user_id,item_id\nj\xfcrgen,2\n", "latin-1", gzip.compress),
        ["x.csv.gz:2", "not UTF-8"],
    ),
    ("corrupt-gzip", "x.csv", _bytes(_CORRUPT_GZIP), ["x.csv", "corrupt gzip data"]),
    ("truncated-xz", "train.txt", _bytes(lzma.compress(b"0 1 2\n" * 1000)[:-30]), ["train.txt", "corrupt xz data"]),
    ("zip-archive", "ratings.txt", _bytes(b"PK\x03\x04" + bytes(60)), ["ratings.txt", "ZIP archive"]),
    # duplicate column names
    (
        "csv-duplicate-column",
        "x.csv",
        _text("user_id,item_id,user_id\n1,2,3\n"),
        ["x.csv:1", "'user_id' appears twice", "columns 1 and 3"],
    ),
    (
        "csv-duplicate-unused-column",
        "x.csv",
        _text("user_id,item_id,note,note\n1,2,a,b\n"),
        ["x.csv:1", "'note' appears twice"],
    ),
    (
        "tsv-duplicate-column",
        "x.tsv",
        _text("user_id\titem_id\trating\trating\n1\t2\t3\t4\n"),
        ["x.tsv:1", "'rating' appears twice"],
    ),
    (
        "recbole-duplicate-column",
        "x.inter",
        _text("user_id:token\titem_id:token\titem_id:token\n1\t2\t3\n"),
        ["x.inter:1", "'item_id' appears twice"],
    ),
    (
        "parquet-duplicate-column",
        "x.parquet",
        _parquet(user_id=[1], item_id=[2], user_id_=[3]),
        ["x.parquet", "'user_id' appears twice"],
    ),
    (
        "recbole-item-latin1",
        "x.inter",
        _recbole_with_items("item_id:token\tgenre:token\n10\tcom\xe9die\n", "latin-1"),
        ["x.item:2", "not UTF-8"],
    ),
    (
        "recbole-item-duplicate-column",
        "x.inter",
        _recbole_with_items("item_id:token\tgenre:token\tgenre:token\n10\ta\tb\n"),
        ["x.item:1", "'genre' appears twice"],
    ),
    (
        "csv-bom-duplicate-column",
        "x.csv",
        _text("\ufeffuser_id,item_id,user_id\r\n1,2,3\r\n"),
        ["x.csv:1", "'user_id' appears twice"],
    ),
]


@pytest.mark.parametrize("name, write, needles", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_line(name, write, needles, tmp_path, capsys) -> None:
    path = tmp_path / name
    write(path)
    status, out, err = cli(["data", "stats", path], capsys)
    assert_refused(status, err, needles[0])
    for needle in needles[1:]:
        assert needle in err, err
    assert f"error: {tmp_path / needles[0].split(':')[0]}" in err, err  # the file at fault, by its path
    assert err.isprintable() or err[:-1].isprintable(), repr(err)  # no bytes of the input echoed
    assert out == ""


# ---- accepted inputs: what loads is right ------------------------------------------------------
def _ids(inter, side: str) -> list:
    return getattr(inter, f"{side}_ids").external_ids.tolist()


def _pairs(inter) -> set:
    f = inter.to_frame()
    return set(zip(f.user_id.tolist(), f.item_id.tolist()))


CSV = "user_id,item_id,rating,timestamp\n1,10,4,1600000000\n2,10,5,1600000100\n2,20,3,1600000200\n"
PAIRS = {(1, 10), (2, 10), (2, 20)}
ADJ = "0 1 2\n1 2\n"  # users 0..1, items 0..2
ADJ_PAIRS = {(0, 1), (0, 2), (1, 2)}


def _check_csv(inter) -> None:
    assert _pairs(inter) == PAIRS and _ids(inter, "user") == [1, 2] and _ids(inter, "item") == [10, 20]
    assert inter.matrix.data.tolist() == [4.0, 5.0, 3.0]
    assert inter.timestamps.tolist() == [1600000000.0, 1600000100.0, 1600000200.0]


def _check_adj(inter) -> None:
    assert _pairs(inter) == ADJ_PAIRS and inter.user_ids.is_range and inter.n_items == 3


def _timestamps(expected):
    def check(inter) -> None:
        assert inter.timestamps.tolist() == pytest.approx(expected, rel=0, abs=1e-6)

    return check


def _all(*checks):
    def check(inter) -> None:
        for c in checks:
            c(inter)

    return check


# (case id, file name, writer, check of the loaded Interactions, load options)
GOOD = [
    ("csv-utf8-bom", "x.csv", _text("\ufeff" + CSV), _check_csv, {}),
    ("csv-crlf", "x.csv", _text(CSV.replace("\n", "\r\n")), _check_csv, {}),
    ("csv-bom-crlf", "x.csv", _text("\ufeff" + CSV.replace("\n", "\r\n")), _check_csv, {}),
    ("tsv-bom-crlf", "x.tsv", _text("\ufeff" + CSV.replace(",", "\t").replace("\n", "\r\n")), _check_csv, {}),
    (
        "recbole-bom-crlf",
        "x.inter",
        _text(
            "\ufeffuser_id:token\titem_id:token\trating:float\ttimestamp:float\r\n1\t10\t4\t1600000000\r\n2\t10\t5\t1600000100\r\n"
            "2\t20\t3\t1600000200\r\n"
        ),
        _check_csv,
        {},
    ),
    (
        "udata-crlf",
        "u.data",
        _text("1\t10\t4\t1600000000\r\n2\t10\t5\t1600000100\r\n2\t20\t3\t1600000200\r\n"),
        _check_csv,
        {},
    ),
    (
        "ratings-dat-bom",
        "ratings.dat",
        _text("\ufeff1::10::4::1600000000\n2::10::5::1600000100\n2::20::3::1600000200\n"),
        _check_csv,
        {},
    ),
    ("adjacency-bom-crlf", "train.txt", _text("\ufeff" + ADJ.replace("\n", "\r\n")), _check_adj, {}),
    ("adjacency-detected-bom", "log.txt", _text("\ufeff" + ADJ), _check_adj, {}),
    ("csv-gzip-suffix", "x.csv.gz", _text(CSV, compress=gzip.compress), _check_csv, {}),
    ("csv-gzip-magic-only", "x.csv", _text(CSV, compress=gzip.compress), _check_csv, {}),
    ("csv-gzip-bom-crlf", "x.csv", _text("\ufeff" + CSV.replace("\n", "\r\n"), compress=gzip.compress), _check_csv, {}),
    ("tsv-bz2", "x.tsv.bz2", _text(CSV.replace(",", "\t"), compress=bz2.compress), _check_csv, {}),
    ("csv-xz-no-suffix", "interactions", _text(CSV, compress=lzma.compress), _check_csv, {}),
    ("adjacency-xz", "train.txt.xz", _text(ADJ, compress=lzma.compress), _check_adj, {}),
    ("adjacency-gzip-no-suffix", "log", _text(ADJ, compress=gzip.compress), _check_adj, {}),
    (
        "udata-gzip",
        "u.data",
        _text("1\t10\t4\t1600000000\n2\t10\t5\t1600000100\n2\t20\t3\t1600000200\n", compress=gzip.compress),
        _check_csv,
        {},
    ),
    (
        "recbole-float-ids",
        "x.inter",
        _text("user_id:float\titem_id:token\n1.0\t 5\n2\t5\n"),
        lambda i: _ids(i, "user") == [1, 2] and _ids(i, "item") == [5],
        {},
    ),
    (
        "csv-utf8-labels",
        "x.csv",
        _text("user_id,item_id\nJürgen,çà\n東京,çà\n"),
        lambda i: _ids(i, "user") == ["Jürgen", "東京"] and _ids(i, "item") == ["çà"],
        {},
    ),
    # whitespace around ids stripped: " 1", "1 " and "1" are one user
    (
        "csv-whitespace-ids",
        "x.csv",
        _text("user_id,item_id\n 1,10\n1 ,20\n1, 30 \n"),
        lambda i: _ids(i, "user") == [1] and _ids(i, "item") == [10, 20, 30],
        {},
    ),
    (
        "csv-whitespace-labels",
        "x.csv",
        _text("user_id,item_id\n a,x\na ,y\n\ta,x\n"),
        lambda i: _ids(i, "user") == ["a"] and i.nnz == 2 and i.duplicates_merged == 1,
        {},
    ),
    ("tsv-whitespace-ids", "x.tsv", _text("user_id\titem_id\n 1 \t2\n1\t3\n"), lambda i: _ids(i, "user") == [1], {}),
    (
        "parquet-whitespace-ids",
        "x.parquet",
        _parquet(user_id=[" a", "a", "a "], item_id=["x", " y", "x"]),
        lambda i: _ids(i, "user") == ["a"] and _ids(i, "item") == ["x", "y"],
        {},
    ),
    # types mixed within a column: labels win, numbers that are no int64 ids are refused (BAD)
    (
        "csv-int-and-label",
        "x.csv",
        _text("user_id,item_id\n1,10\nu2,10\n"),
        lambda i: _ids(i, "user") == ["1", "u2"],
        {},
    ),
    (
        "csv-float-among-labels",
        "x.csv",
        _text("user_id,item_id\n3.5,10\nabc,10\n"),
        lambda i: _ids(i, "user") == ["3.5", "abc"],
        {},
    ),
    ("csv-zero-padded", "x.csv", _text("user_id,item_id\n007,1\n7,1\n"), lambda i: _ids(i, "user") == ["007", "7"], {}),
    (
        "csv-int64-bounds",
        "x.csv",
        _text("user_id,item_id\n9223372036854775807,1\n-9223372036854775808,1\n"),
        lambda i: _ids(i, "user") == [-(2**63), 2**63 - 1],
        {},
    ),
    (
        "parquet-integral-floats",
        "x.parquet",
        _parquet(user_id=[1.0, 2.0], item_id=[2.0**53, 3.0]),
        lambda i: _ids(i, "user") == [1, 2] and _ids(i, "item") == [3, 2**53],
        {},
    ),
    (
        "parquet-uint64-small",
        "x.parquet",
        _parquet(user_id=pa.array([1, 2], pa.uint64()), item_id=[1, 1]),
        lambda i: _ids(i, "user") == [1, 2],
        {},
    ),
    (
        "parquet-dictionary-ids",
        "x.parquet",
        _parquet(user_id=pa.array(["b", "a", "b"]).dictionary_encode(), item_id=[1, 2, 3]),
        lambda i: _ids(i, "user") == ["a", "b"] and i.nnz == 3,
        {},
    ),
    # weights up to float32 max
    (
        "csv-weight-float32-max",
        "x.csv",
        _text("user_id,item_id,weight\n1,2,3.4e38\n"),
        lambda i: np.isfinite(i.matrix.data).all() and i.matrix.data[0] == np.float32(3.4e38),
        {},
    ),
    # numeric timestamps: s, ms, us, ns detected by magnitude, or named
    (
        "csv-timestamps-s",
        "x.csv",
        _text("user_id,item_id,timestamp\n1,2,1600000000\n1,3,1600000001.5\n"),
        _timestamps([1600000000.0, 1600000001.5]),
        {},
    ),
    (
        "csv-timestamps-ms",
        "x.csv",
        _text("user_id,item_id,timestamp\n1,2,1600000000000\n1,3,1600000001500\n"),
        _timestamps([1600000000.0, 1600000001.5]),
        {},
    ),
    (
        "csv-timestamps-us",
        "x.csv",
        _text("user_id,item_id,timestamp\n1,2,1600000000000000\n1,3,1600000001500000\n"),
        _timestamps([1600000000.0, 1600000001.5]),
        {},
    ),
    (
        "parquet-timestamps-ns",
        "x.parquet",
        _parquet(user_id=[1, 1], item_id=[2, 3], timestamp=[1600000000 * 10**9, 1600000001500000000]),
        _timestamps([1600000000.0, 1600000001.5]),
        {},
    ),
    (
        "parquet-timestamps-ms",
        "x.parquet",
        _parquet(user_id=[1, 1], item_id=[2, 3], timestamp=[1600000000000, 1600000001500]),
        _timestamps([1600000000.0, 1600000001.5]),
        {},
    ),
    (
        "udata-timestamps-ms",
        "u.data",
        _text("1\t2\t3\t1600000000000\n1\t3\t3\t1600000001500\n"),
        _timestamps([1600000000.0, 1600000001.5]),
        {},
    ),
    (
        "csv-timestamps-named-ms",
        "x.csv",
        _text("user_id,item_id,timestamp\n1,2,5000\n1,3,7500\n"),
        _timestamps([5.0, 7.5]),
        {"timestamp_unit": "ms"},
    ),
    (
        "csv-timestamps-small-seconds",
        "x.csv",
        _text("user_id,item_id,timestamp\n1,2,0\n1,3,86400\n"),
        _timestamps([0.0, 86400.0]),
        {},
    ),
    (
        "csv-dates-exact",
        "x.csv",
        _text("user_id,item_id,timestamp\n1,2,2020-09-13T12:26:40Z\n1,3,2020-09-13\n"),
        _timestamps([1600000000.0, 1599955200.0]),
        {},
    ),
    # adjacency id spaces inside the rule
    (
        "adjacency-ids-below-floor",
        "train.txt",
        _text("0 1\n1 999999\n"),
        lambda i: i.n_items == 1_000_000 and i.nnz == 2,
        {},
    ),
    (
        "adjacency-dense-enough",
        "train.txt",
        _text("0 " + " ".join(str(k * 10) for k in range(120_000)) + "\n"),
        lambda i: i.n_items == 1_199_991 and i.nnz == 120_000,
        {},
    ),
    # side features beside a RecBole file: BOM, CRLF and padded ids still match
    (
        "recbole-item-bom-crlf-padded",
        "x.inter",
        _recbole_with_items("\ufeffitem_id:token\tgenre:token\r\n 10 \tcomédie\r\n20\tdrame\r\n"),
        lambda i: (
            i.item_features.missing == 0
            and i.item_features.unmatched == 0
            and i.item_features["genre"].vocab[i.item_features["genre"].values].tolist() == ["comédie", "drame"]
        ),
        {},
    ),
    # a header read through the BOM: the first column is found by its usual name
    ("csv-bom-named-columns", "x.csv", _text("\ufeffuserId,movieId\n1,10\n"), lambda i: _pairs(i) == {(1, 10)}, {}),
]


@pytest.mark.parametrize("name, write, check, options", [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_accepted_input_loads_right(name, write, check, options, tmp_path, capsys) -> None:
    path = tmp_path / name
    write(path)
    inter = load(path, **options)
    result = check(inter)
    assert result is None or bool(result), f"{name}: {inter.to_frame()}"
    if not options:  # the CLI reads it too (stats prints the timestamps as dates)
        status, out, err = cli(["data", "stats", path], capsys)
        assert status == 0 and err == "", err
        assert f"interactions: {inter.nnz:,}" in out
        if inter.timestamps is not None:
            assert "timestamps: " in out


def test_millisecond_timestamps_in_data_stats(tmp_path, capsys) -> None:
    """Before: ``year 52671 is out of range`` and a traceback."""
    path = tmp_path / "ms.csv"
    path.write_text("user_id,item_id,timestamp\n1,1,1600000000000\n2,3,1700000000000\n")
    status, out, err = cli(["data", "stats", path], capsys)
    assert status == 0 and "timestamps: 2020-09-13 .. 2023-11-14 (UTC)" in out, err


def test_mixed_files_compare_ids_as_text(tmp_path) -> None:
    """One file of labels makes the integer ids of the others compare as text."""
    (tmp_path / "a.csv").write_text("user_id,item_id\n7,1\n8,1\n")
    (tmp_path / "b.csv").write_text("user_id,item_id\nu9,1\n 7,2\n")
    a, b = load_many([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert a.user_ids is b.user_ids and _ids(a, "user") == ["7", "8", "u9"]
    assert _pairs(b) == {("u9", 1), ("7", 2)}  # the item column is integers in both


def test_unknown_timestamp_unit(tmp_path) -> None:
    from rechash.errors import DataError

    (tmp_path / "x.csv").write_text(CSV)
    with pytest.raises(DataError, match="timestamp unit: expected auto, s, ms, us, ns, got 'min'"):
        load(tmp_path / "x.csv", timestamp_unit="min")


def test_bad_input_in_a_real_process(tmp_path) -> None:
    """The same contract through ``python -m rechash`` (warnings would show here)."""
    path = tmp_path / "x.csv"
    path.write_bytes(gzip.compress(b"user_id,item_id\n1,2\n" + _GARBAGE))
    proc = cli_process(["data", "stats", path])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and out == "", err
    assert err.startswith(f"error: {path}:3: not UTF-8 text") and err.count("\n") == 1 and err[:-1].isprintable(), err
