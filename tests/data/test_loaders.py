"""Loaders: a round trip for every format, format detection, every validation error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rechash.data import detect_format, load, load_many, load_split
from rechash.errors import DataError


# ---- round trips: write with pandas, read with the loader, compare --------------------------
def _adjacency_text(frame: pd.DataFrame) -> str:
    groups = frame.groupby("user_id")["item_id"].apply(lambda s: " ".join(map(str, s)))
    return "".join(f"{u} {items}\n" for u, items in groups.items())


def test_adjacency_round_trip(frame, write, triples):
    path = write("log.txt", _adjacency_text(frame))
    inter = load(path)
    assert detect_format(path) == "adjacency"
    assert triples(inter) == {(u, i, 1.0) for u, i in zip(frame.user_id, frame.item_id)}
    # ids are internal ids: the universe is 0..max, ids map to themselves
    assert inter.n_users == frame.user_id.max() + 1 and inter.n_items == frame.item_id.max() + 1
    assert inter.user_ids.is_range and inter.timestamps is None


def test_adjacency_universe_spans_split_siblings(write):
    train = write("d/train.txt", "0 0 1\n1 2\n")
    write("d/valid.txt", "1 3\n")
    write("d/test.txt", "2 5\n4 1\n")
    inter = load(train)
    assert (inter.n_users, inter.n_items, inter.nnz) == (5, 6, 3)
    assert int((inter.matrix.getnnz(axis=0) > 0).sum()) == 3  # items with interactions
    parts = load_many([train, train.with_name("valid.txt"), train.with_name("test.txt")])
    assert all(p.user_ids is parts[0].user_ids and p.item_ids is parts[0].item_ids for p in parts)
    assert [p.nnz for p in parts] == [3, 1, 2]
    split = load_split(train.parent)
    assert [p.nnz for p in split] == [3, 1, 2]


def test_adjacency_user_without_items_and_blank_lines(write):
    inter = load(write("a.txt", "0 1 2\n\n3\n1 0\n"))
    assert (inter.n_users, inter.n_items, inter.nnz) == (4, 3, 3)


def test_movielens_udata_round_trip(frame, write, triples):
    path = write("u.data", frame.to_csv(sep="\t", header=False, index=False))
    inter = load(path)
    expected = set(zip(frame.user_id, frame.item_id, frame.rating, frame.timestamp.astype(float)))
    assert triples(inter, with_ts=True) == expected


def test_movielens_ratings_dat_round_trip(frame, write, triples):
    lines = frame.astype({"rating": int}).astype(str).agg("::".join, axis=1)
    path = write("ratings.dat", "\n".join(lines) + "\n")
    inter = load(path)
    assert triples(inter, with_ts=True) == set(
        zip(frame.user_id, frame.item_id, frame.rating, frame.timestamp.astype(float))
    )
    # content sniffing finds it under another name too
    assert detect_format(write("r.txt", path.read_text())) == "movielens"


def test_recbole_round_trip_with_side_features(frame, write, triples):
    typed = frame.rename(
        columns={
            "user_id": "user_id:token",
            "item_id": "item_id:token",
            "rating": "rating:float",
            "timestamp": "timestamp:float",
        }
    )
    path = write("ml/ml.inter", typed.to_csv(sep="\t", index=False))
    users = pd.DataFrame(
        {"user_id:token": [1, 2, 3, 99], "age:token": ["24", "", "53", "30"], "height:float": [1.8, 1.6, None, 1.7]}
    )
    write("ml/ml.user", users.to_csv(sep="\t", index=False))
    items = pd.DataFrame({"item_id:token": range(1, 13), "genre:token_seq": ["a b", "b", "", "c a"] * 3})
    write("ml/ml.item", items.to_csv(sep="\t", index=False))
    inter = load(path)
    assert triples(inter, with_ts=True) == set(
        zip(frame.user_id, frame.item_id, frame.rating, frame.timestamp.astype(float))
    )
    uf, itf = inter.user_features, inter.item_features
    assert uf.n_rows == inter.n_users and itf.n_rows == inter.n_items
    row = inter.user_ids.to_internal([1])[0]
    age = uf["age"]
    assert age.kind == "categorical" and age.vocab[age.values[row]] == "24"
    assert age.values[inter.user_ids.to_internal([2])[0]] == 0  # empty token -> missing code
    assert uf.unmatched == 1  # user 99 has no interaction
    assert uf["height"].kind == "numeric" and uf["height"].values[row] == pytest.approx(1.8)
    genre = itf["genre"]
    r = inter.item_ids.to_internal([4])[0]
    assert [genre.vocab[c] for c in genre.values[genre.offsets[r] : genre.offsets[r + 1]]] == ["c", "a"]
    assert not load(path, side=False).user_features


@pytest.mark.parametrize("fmt,sep", [("csv", ","), ("tsv", "\t")])
def test_delimited_round_trip_with_aliases(frame, write, triples, fmt, sep):
    renamed = frame.rename(columns={"user_id": "userId", "item_id": "movieId"})
    path = write(f"log.{fmt}", renamed.to_csv(sep=sep, index=False))
    inter = load(path)
    assert triples(inter, with_ts=True) == set(
        zip(frame.user_id, frame.item_id, frame.rating, frame.timestamp.astype(float))
    )


def test_csv_named_columns_string_ids_and_dates(write, triples):
    df = pd.DataFrame(
        {
            "who": ["ann", "bob", "ann", "007"],
            "what": ["x", "y", "y", "x"],
            "plays": [3, 1, 2, 5],
            "when": ["2020-01-01", "2020-01-02T10:00:00", "2020-01-03", "2020-01-04"],
        }
    )
    path = write("plays.csv", df.to_csv(index=False))
    inter = load(path, user_col="who", item_col="what", weight_col="plays", timestamp_col="when")
    assert set(inter.user_ids.external_ids) == {"ann", "bob", "007"}  # "007" is not a canonical int
    assert triples(inter) == {("ann", "x", 3.0), ("bob", "y", 1.0), ("ann", "y", 2.0), ("007", "x", 5.0)}
    ts = inter.to_frame().set_index(["user_id", "item_id"])["timestamp"]
    assert ts[("bob", "y")] == pd.Timestamp("2020-01-02T10:00:00", tz="UTC").timestamp()


@pytest.mark.parametrize("ids", ["int", "str"])
def test_parquet_round_trip(frame, tmp_path, triples, ids):
    df = frame.copy()
    if ids == "str":
        df["user_id"] = "u" + df.user_id.astype(str)
    df["timestamp"] = pd.to_datetime(df.timestamp, unit="s")
    path = tmp_path / "log.parquet"
    df.to_parquet(path, row_group_size=7)  # several row groups
    inter = load(path)
    expected = set(zip(df.user_id, df.item_id, df.rating, frame.timestamp.astype(float)))
    assert triples(inter, with_ts=True) == expected


def test_load_many_shares_one_union_map(frame, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.csv"
    frame.iloc[:20].to_parquet(a)
    frame.iloc[20:].assign(user_id=frame.user_id.iloc[20:] + 100).to_csv(b, index=False)
    first, second = load_many([a, b])
    assert first.user_ids is second.user_ids and first.item_ids is second.item_ids
    assert first.n_users == frame.user_id.iloc[:20].nunique() + frame.user_id.iloc[20:].nunique()
    assert first.nnz == 20 and second.nnz == 20


def test_directory_stands_for_its_file(frame, tmp_path):
    frame.to_csv(tmp_path / "log.csv", index=False)
    assert load(tmp_path).nnz == len(frame)


def test_duplicates_are_merged_and_counted(write):
    inter = load(write("d.csv", "user_id,item_id,weight,timestamp\n1,a,1,10\n1,a,2,30\n1,b,1,5\n1,a,1,20\n"))
    assert inter.duplicates_merged == 2 and inter.nnz == 2
    f = inter.to_frame().set_index("item_id")
    assert f.loc["a", "weight"] == 4 and f.loc["a", "timestamp"] == 30


def test_synthetic_name_resolves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inter = load("synthetic")
    assert inter.source == "synthetic" and 500_000 < inter.nnz < 1_000_000


# ---- detection ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,text,fmt",
    [
        ("train.txt", "0 1 2\n1 0\n", "adjacency"),
        ("x.txt", "0\t1\t2\n1\t0\n", "adjacency"),
        ("x.txt", "1\t2\t3.5\t99\n", "movielens"),
        ("x.txt", "1::2::3::4\n", "movielens"),
        ("x.txt", "user_id:token\titem_id:token\n1\t2\n", "recbole"),
        ("x.txt", "user,item\n1,2\n", "csv"),
        ("x.txt", "user\titem\n1\t2\n", "tsv"),
        ("u.data", "1\t2\t3\t4\n", "movielens"),
        ("x.inter", "", "recbole"),
    ],
)
def test_detect_format(write, name, text, fmt):
    assert detect_format(write(name, text)) == fmt


# ---- every bad-input class: DataError naming the file, line/row and column -----------------
def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    assert "nope.csv: no such file" in _error(load, tmp_path / "nope.csv")


def test_unknown_format(write):
    path = write("notes.txt", "hello world\nfoo bar\n")
    assert "notes.txt: unknown format" in _error(load, path)
    assert "unknown format 'xml'" in _error(load, path, format="xml")


def test_ambiguous_format(write):
    message = _error(load, write("log.txt", "1\t2\t3\t4\n5\t6\t7\t8\n"))
    assert "log.txt: ambiguous format" in message and "adjacency" in message and "movielens" in message
    assert load(write("log2.txt", "1\t2\t3\t4\n"), format="movielens").nnz == 1


def test_missing_columns(write):
    path = write("x.csv", "user_id,product\n1,2\n")
    assert "x.csv: missing item column" in _error(load, path)
    assert "missing column 'sku'" in _error(load, path, item_col="sku")


@pytest.mark.parametrize(
    "name,text",
    [
        ("train.txt", ""),
        ("x.csv", "user_id,item_id\n"),
        ("x.inter", ""),
        ("u.data", ""),
        ("y.txt", "\n\n"),
    ],
)
def test_empty_file(write, name, text):
    assert "empty" in _error(load, write(name, text))


def test_empty_parquet(tmp_path):
    path = tmp_path / "e.parquet"
    pd.DataFrame({"user_id": pd.Series([], dtype=int), "item_id": pd.Series([], dtype=int)}).to_parquet(path)
    assert "e.parquet: empty" in _error(load, path)


def test_malformed_lines(write):
    assert "u.data:3: expected tab-separated" in _error(load, write("u.data", "1\t2\t3\t4\n1\t3\t3\t4\n1\t4\t3\n"))
    assert "x.csv:3: expected" in _error(load, write("x.csv", "user_id,item_id\n1,2\n1,2,3\n"))
    assert "ratings.dat:2: expected" in _error(load, write("ratings.dat", "1::2::3::4\n1::2\n"))
    assert "x.inter:2: expected" in _error(load, write("x.inter", "user_id:token\titem_id:token\n1\n"))
    assert "x.inter:1: column 2" in _error(load, write("x.inter", "user_id:token\titem_id\n1\t2\n"))


def test_empty_or_nan_ids(write, tmp_path):
    assert "x.csv:5: column 'user_id': empty or missing user id" in _error(
        load, write("x.csv", "user_id,item_id\n1,2\n\n3,4\n,5\n")
    )
    assert "y.csv:2: column 'item_id': empty or missing item id" in _error(
        load, write("y.csv", "user_id,item_id\n1,NaN\n")
    )
    path = tmp_path / "n.parquet"
    pd.DataFrame({"user_id": [1.0, np.nan], "item_id": [1, 2]}).to_parquet(path)
    assert "n.parquet: row 2: column 'user_id'" in _error(load, path)
    path = tmp_path / "s.parquet"
    pd.DataFrame({"user_id": ["a", None], "item_id": [1, 2]}).to_parquet(path)
    assert "s.parquet: row 2: column 'user_id': empty or missing" in _error(load, path)


def test_non_integer_ids_where_integers_are_required(write, tmp_path):
    assert "train.txt:2:3: expected non-negative integer ids" in _error(load, write("train.txt", "0 1\n1 x2 3\n"))
    assert "'-1'" in _error(load, write("t2.txt", "0 -1\n"), format="adjacency")
    assert "u.data:2: column 'user_id': expected an integer, got 'abc'" in _error(
        load, write("u.data", "1\t2\t3\t4\nabc\t2\t3\t4\n")
    )
    path = tmp_path / "f.parquet"
    pd.DataFrame({"user_id": [1.0, 1.5], "item_id": [1, 2]}).to_parquet(path)
    assert "f.parquet: row 2: column 'user_id': expected an integer or string user id" in _error(load, path)


@pytest.mark.parametrize(
    "value,what", [("-1", "non-negative"), ("inf", "finite"), ("nan", "missing weight"), ("abc", "expected a number")]
)
def test_bad_weights(write, value, what):
    message = _error(load, write("w.csv", f"user_id,item_id,weight\n1,2,1\n1,3,{value}\n"))
    assert "w.csv:3: column 'weight'" in message and what in message


def test_bad_weight_in_recbole_float_column(write):
    message = _error(load, write("x.inter", "user_id:token\titem_id:token\trating:float\n1\t2\tfive\n"))
    assert "x.inter:2: column 'rating': expected a number, got 'five'" in message


def test_timestamp_that_does_not_parse(write, tmp_path):
    message = _error(load, write("t.csv", "user_id,item_id,timestamp\n1,2,2020-01-01\n1,3,yesterday\n"))
    assert "t.csv:3: column 'timestamp': expected a number or a date, got 'yesterday'" in message
    assert "u.data:1: column 'timestamp'" in _error(load, write("u.data", "1\t2\t3\tnoon\n"))


# ---- the real datasets (skipped when ../shared/data is absent) --------------------------------
def test_ml1m_train_counts(shared_data):
    inter = load(shared_data / "ml-1m" / "train.txt")
    assert (inter.n_users, inter.n_items, inter.nnz) == (6039, 3628, 590733)
    assert inter.describe()["items with interactions"] == 3583
    split = load_split(shared_data / "ml-1m")
    assert [p.nnz for p in split] == [590733, 80897, 164848]


def test_ml100k_counts(shared_data):
    inter = load(shared_data / "ml-100k" / "ml-100k.inter")
    assert (inter.n_users, inter.n_items, inter.nnz) == (943, 1682, 100000)
    assert inter.user_features.n_rows == 943 and inter.item_features["class"].cardinality > 10
