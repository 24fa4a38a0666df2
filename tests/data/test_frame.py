"""Interactions.from_frame / to_frame: DataFrames in and out, on the loaders' validation path."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from rechash.data import IdMap, Interactions, load
from rechash.errors import DataError


def _str_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(user_id="u" + frame.user_id.astype(str), item_id="m" + frame.item_id.astype(str))


def _same(a: Interactions, b: Interactions) -> None:
    """Equal matrix (structure and float32 weights), id maps and timestamps."""
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(a.matrix, name), getattr(b.matrix, name))
    assert a.matrix.shape == b.matrix.shape and a.matrix.dtype == b.matrix.dtype
    assert a.user_ids == b.user_ids and a.item_ids == b.item_ids
    if a.timestamps is None:
        assert b.timestamps is None
    else:
        np.testing.assert_array_equal(a.timestamps, b.timestamps)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "np." not in message, message
    return message


def test_round_trip_string_ids_weights_timestamps(frame):
    df = _str_frame(frame).rename(columns={"rating": "weight"})
    df["weight"] = df["weight"] * 0.7  # not integral: float32 rounding must survive the trip
    inter = Interactions.from_frame(df, timestamp_col="timestamp")
    assert inter.user_ids.kind == "string" and inter.nnz == len(df) and inter.timestamps is not None
    assert list(inter.user_ids.external_ids) == sorted(set(df.user_id))  # ascending, the loaders' order
    _same(Interactions.from_frame(inter.to_frame()), inter)  # every id active, maps ascending: exact
    # a split part keeps the full maps: ids without interactions travel with the maps
    part = inter.subset((np.arange(inter.nnz) % 3 == 0) & (inter.rows() != 0))  # user 0 left without rows
    assert np.diff(part.matrix.indptr).min() == 0
    back = Interactions.from_frame(part.to_frame(), user_ids=part.user_ids, item_ids=part.item_ids)
    _same(back, part)
    assert back.dropped == {} and back.duplicates_merged == 0


def test_round_trip_keeps_given_map_order():
    users, items = IdMap(["z", "a", "m"]), IdMap([30, 10, 20])  # not ascending
    inter = Interactions.from_arrays(
        np.array([0, 2, 2]),
        np.array([1, 0, 2]),
        users,
        items,
        weights=np.array([0.5, 2, 3]),
        timestamps=np.array([1.0, 2.5, 3]),
    )
    _same(Interactions.from_frame(inter.to_frame(), user_ids=users, item_ids=items), inter)


def test_frame_matches_the_parquet_loader(frame, tmp_path):
    df = _str_frame(frame)
    path = tmp_path / "log.parquet"
    df.to_parquet(path)
    a, b = Interactions.from_frame(df), load(path)
    _same(a, b)
    assert a.source == "DataFrame"


def test_ids_order_duplicates_and_unweighted():
    df = pd.DataFrame({"user_id": [10, 2, 10, 7], "item_id": ["b", "a", "b", "c"]})
    inter = Interactions.from_frame(df)
    assert inter.user_ids.external_ids.tolist() == [2, 7, 10] and list(inter.item_ids.external_ids) == ["a", "b", "c"]
    assert inter.duplicates_merged == 1 and inter.timestamps is None
    assert inter.matrix.toarray().tolist() == [[1, 0, 0], [0, 0, 1], [0, 2, 0]]  # unweighted duplicates count


def test_columns_named_found_or_ignored(frame):
    df = frame.rename(columns={"user_id": "userId", "item_id": "sku"})
    inter = Interactions.from_frame(df, user_col=None, item_col="sku")  # userId by its usual name
    assert inter.matrix.data.tolist() == Interactions.from_frame(frame).matrix.data.tolist()
    assert sorted(set(inter.matrix.data)) != [1.0] and inter.timestamps is not None  # rating, timestamp found
    bare = Interactions.from_frame(df, "userId", "sku", weight_col=False, timestamp_col=False)
    assert set(bare.matrix.data) == {1.0} and bare.timestamps is None


def test_datetimes_units_and_index_labels(frame):
    df = frame.assign(when=pd.to_datetime(frame.timestamp, unit="s"), ms=frame.timestamp * 1000)
    a = Interactions.from_frame(df, timestamp_col="when")
    b = Interactions.from_frame(df, timestamp_col="ms", timestamp_unit="ms")
    np.testing.assert_array_equal(a.timestamps, Interactions.from_frame(frame).timestamps)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    shifted = frame.set_axis(np.arange(len(frame)) + 100).astype({"rating": object})
    shifted.loc[103, "rating"] = -1.0
    with pytest.raises(DataError, match=r"^DataFrame: row 103: column 'rating': expected a finite, non-negative"):
        Interactions.from_frame(shifted)


def test_empty_frame():
    empty = pd.DataFrame({"user_id": [], "item_id": []})
    assert Interactions.from_frame(empty).matrix.shape == (0, 0)
    part = Interactions.from_frame(empty, user_ids=IdMap(["a", "b"]), item_ids=IdMap([1, 2, 3]))
    assert part.matrix.shape == (2, 3) and part.nnz == 0


@pytest.mark.parametrize(
    "df, kwargs, message",
    [
        (
            pd.DataFrame({"uid": [1], "item_id": [2]}),
            {},
            r"^DataFrame: missing column 'user_id' \(user\); columns are \['uid', 'item_id'\]$",
        ),
        (pd.DataFrame({"user_id": [1], "item_id": [2]}), {"weight_col": "w"}, r"missing column 'w' \(weight\)"),
        (pd.DataFrame([[1, 2, 3]], columns=["user_id", "item_id", "user_id"]), {}, "column 'user_id' appears twice"),
        (
            pd.DataFrame({"user_id": [1, None, 3], "item_id": [1, 2, 3]}),
            {},
            r"^DataFrame: row 1: column 'user_id': empty or missing user id$",
        ),
        (
            pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", None]}),
            {},
            r"^DataFrame: row 1: column 'item_id': empty or missing item id$",
        ),
        (pd.DataFrame({"user_id": ["a", "  "], "item_id": [1, 2]}), {}, "row 1: column 'user_id': empty or missing"),
        (
            pd.DataFrame({"user_id": [1, "a"], "item_id": [1, 2]}),
            {},
            r"^DataFrame: row 1: column 'user_id': user ids mix types, 1 \(int\) and 'a' \(str\); .*astype\(str\)",
        ),
        (pd.DataFrame({"user_id": [(1, 2)], "item_id": [1]}), {}, r"column 'user_id' \(user\) has type object"),
        (pd.DataFrame({"user_id": [1.5], "item_id": [1]}), {}, "expected an integer or string user id, got 1.5"),
        (
            pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "weight": [1.0, "x"]}),
            {},
            r"^DataFrame: row 1: column 'weight': expected a number, got 'x'$",
        ),
        (
            pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "weight": ["1", "x"]}),
            {},
            r"row 1: column 'weight': expected a number, got 'x'",
        ),
        (
            pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "weight": [1.0, np.inf]}),
            {},
            r"^DataFrame: row 1: column 'weight': expected a finite, non-negative weight, got inf$",
        ),
        (
            pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "weight": [1.0, -2.0]}),
            {},
            "expected a finite, non-negative weight, got -2.0",
        ),
        (
            pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "weight": [np.nan, 1.0]}),
            {},
            r"^DataFrame: row 0: column 'weight': missing weight$",
        ),
        (pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "weight": [1.0, 1e39]}), {}, "fits float32"),
        (
            pd.DataFrame({"user_id": [1], "item_id": [1], "timestamp": ["soon"]}),
            {},
            "column 'timestamp': expected a number or a date, got 'soon'",
        ),
        (pd.DataFrame({"user_id": [1], "item_id": [1]}), {"unknown": "ignore"}, "unknown must be 'error' or 'drop'"),
        (pd.DataFrame({"user_id": [1], "item_id": [1]}), {"timestamp_unit": "h"}, "timestamp unit"),
        (pd.DataFrame({"user_id": [1], "item_id": [1]}), {"source": "valid"}, None),
    ],
)
def test_validators_name_column_and_expectation(df, kwargs, message):
    if message is None:
        assert Interactions.from_frame(df, **kwargs).source == "valid"
        return
    with pytest.raises(DataError, match=message) as exc:
        Interactions.from_frame(df, **kwargs)
    _one_line(exc)


def test_wrong_id_type_against_given_maps():
    train = Interactions.from_frame(pd.DataFrame({"user_id": [1, 2, 3], "item_id": ["a", "b", "c"]}))
    valid = pd.DataFrame({"user_id": ["1", "2"], "item_id": ["a", "b"]})
    with pytest.raises(
        DataError,
        match=r"^DataFrame: column 'user_id': user ids are integers \(int64\) but '1' "
        r"\(str\) was given$",
    ):
        Interactions.from_frame(valid, user_ids=train.user_ids, item_ids=train.item_ids)
    valid = pd.DataFrame({"user_id": [1, 2], "item_id": [7, 8]})
    with pytest.raises(DataError, match=r"item ids are strings \(str\) but 7 \(int64\) was given"):
        Interactions.from_frame(valid, user_ids=train.user_ids, item_ids=train.item_ids)
    with pytest.raises(DataError, match="user ids are integers"):  # also in drop mode: never silently dropped
        Interactions.from_frame(valid.astype({"user_id": str}), user_ids=train.user_ids, unknown="drop")


def test_unknown_ids_error_or_drop_counted(caplog):
    train = Interactions.from_frame(pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": [1, 2, 3]}))
    test = pd.DataFrame(
        {"user_id": ["a", "zz", "b", "zz", "yy"], "item_id": [1, 2, 99, 4, 3], "weight": [1.0, 2, 3, 4, 5]}
    )
    with pytest.raises(
        DataError,
        match=r"^DataFrame: row 1: column 'user_id': user id 'zz' is not in the given "
        r"user_ids \(3 rows with an unknown user id\); pass unknown='drop'",
    ) as exc:
        Interactions.from_frame(test, user_ids=train.user_ids, item_ids=train.item_ids)
    _one_line(exc)
    with caplog.at_level(logging.WARNING, logger="rechash.data.interactions"):
        part = Interactions.from_frame(test, user_ids=train.user_ids, item_ids=train.item_ids, unknown="drop")
    assert part.dropped == {"unknown_user": 3, "unknown_item": 1}  # rows counted once: user first
    assert part.nnz == 1 and part.user_ids is train.user_ids and part.matrix.shape == (3, 3)
    assert part.to_frame()[["user_id", "item_id", "weight"]].values.tolist() == [["a", 1, 1.0]]
    assert "dropped 4 of 5 rows" in caplog.text and "first 'zz'" in caplog.text and "first 99" in caplog.text
    assert part.describe()["dropped"] == {"unknown_user": 3, "unknown_item": 1}
    # only one map given: the other is built from the frame, ascending
    one = Interactions.from_frame(test, user_ids=train.user_ids, unknown="drop")
    assert one.dropped == {"unknown_user": 3} and one.item_ids.external_ids.tolist() == [1, 2, 3, 4, 99]
    with pytest.raises(DataError, match="item id 99 is not in the given item_ids"):
        Interactions.from_frame(test[test.user_id.isin(["a", "b"])], user_ids=train.user_ids, item_ids=train.item_ids)
    with pytest.raises(DataError, match="user_ids: IdMap: external ids must be unique, 'a' appears twice"):
        Interactions.from_frame(test, user_ids=["a", "a"])
