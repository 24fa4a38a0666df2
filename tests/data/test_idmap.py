"""IdMap (hypothesis properties) and Interactions construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rechash.data import IdMap, Interactions
from rechash.data.idmap import format_id
from rechash.errors import DataError

ids = st.one_of(
    st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=60),
    st.lists(st.integers(0, 500), min_size=1, max_size=60),  # the dense lookup-table path
    st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=60),
)


@settings(max_examples=60, deadline=None)
@given(ids)
def test_idmap_round_trip(values):
    idmap, internal = IdMap.from_values(values)
    assert len(idmap) == len(set(values))
    assert list(idmap.to_external(internal)) == values
    assert np.array_equal(
        idmap.to_internal(np.array(values, dtype=object if isinstance(values[0], str) else None)), internal
    )
    assert set(internal.tolist()) == set(range(len(idmap)))
    assert list(idmap.external_ids) == sorted(set(values))  # comparable ids are ordered ascending
    back = IdMap.from_frame(idmap.to_frame("user_id").sample(frac=1, random_state=0), "user_id")
    assert back == idmap


@settings(max_examples=60, deadline=None)
@given(ids, ids)
def test_idmap_extend_keeps_positions(first, more):
    if type(first[0]) is not type(more[0]):
        more = [str(v) for v in more] if isinstance(first[0], str) else [hash(v) % 1000 for v in more]
    idmap, _ = IdMap.from_values(first)
    extended = idmap.extend(more)
    assert list(extended.external_ids[: len(idmap)]) == list(idmap.external_ids)
    assert set(extended.external_ids) == set(first) | set(more)
    # a list, not np.asarray: numpy's fixed-width strings drop trailing NUL characters
    assert np.array_equal(extended.to_internal(first), idmap.to_internal(first))


def test_idmap_unknown_ids():
    idmap = IdMap([0, 1, 5])
    assert idmap.to_internal(np.array([5, 7, -1]), strict=False).tolist() == [2, -1, -1]
    with pytest.raises(DataError, match="unknown item 7"):
        idmap.to_internal(np.array([7]), what="item")
    assert idmap.to_internal(np.array([1, 5]), dtype=np.int32).dtype == np.int32
    with pytest.raises(DataError):
        IdMap([1, 1])
    assert IdMap(range(4)).is_range and not IdMap([0, 2]).is_range and not IdMap(["0", "1"]).is_range


def test_from_arrays_merges_duplicates_and_sorts():
    inter = Interactions.from_arrays(
        np.array([1, 0, 1, 1, 0]),
        np.array([2, 1, 0, 2, 1]),
        IdMap(range(2)),
        IdMap(range(3)),
        weights=np.array([1, 2, 3, 4, 5.0]),
        timestamps=np.array([10, 20, 30, 5, 1.0]),
    )
    assert inter.duplicates_merged == 2 and inter.nnz == 3
    assert inter.matrix.indptr.tolist() == [0, 1, 3] and inter.matrix.indices.tolist() == [1, 0, 2]
    assert inter.matrix.data.tolist() == [7, 3, 5] and inter.timestamps.tolist() == [20, 30, 10]
    with pytest.raises(DataError, match="user ids must lie in 0..1"):
        Interactions.from_arrays(np.array([2]), np.array([0]), IdMap(range(2)), IdMap(range(3)))


def test_from_arrays_large_unsorted_rows_match_scipy():
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 50, 20000), rng.integers(0, 300, 20000)
    w = rng.random(20000).astype(np.float32)
    inter = Interactions.from_arrays(u, i, IdMap(range(50)), IdMap(range(300)), w)
    import scipy.sparse as sp

    ref = sp.csr_matrix((w, (u, i)), shape=(50, 300))
    ref.sum_duplicates()
    assert np.array_equal(inter.matrix.indptr, ref.indptr) and np.array_equal(inter.matrix.indices, ref.indices)
    assert np.allclose(inter.matrix.data, ref.data, rtol=1e-5)
    assert inter.duplicates_merged == 20000 - ref.nnz


def test_subset_compact_and_describe():
    inter = Interactions.from_arrays(
        np.array([0, 0, 2, 2, 2]),
        np.array([0, 3, 0, 1, 3]),
        IdMap(["a", "b", "c"]),
        IdMap([10, 11, 12, 13]),
        timestamps=np.arange(5.0),
    )
    part = inter.subset(np.array([True, False, True, False, True]), dropped="test")
    assert part.nnz == 3 and part.dropped == {"test": 2} and part.user_ids is inter.user_ids
    assert part.timestamps.tolist() == [0, 2, 4]
    small = part.compact()
    assert list(small.user_ids.external_ids) == ["a", "c"] and list(small.item_ids.external_ids) == [10, 13]
    assert pd.DataFrame(small.to_frame()).equals(pd.DataFrame(part.to_frame()))
    d = inter.describe()
    assert (d["users"], d["users with interactions"], d["items with interactions"], d["interactions"]) == (3, 2, 3, 5)
    assert d["user activity"]["max"] == 3 and d["item popularity"]["max"] == 2
    assert 0 < d["item popularity"]["gini"] < 1


@pytest.mark.parametrize("strict", [True, False])
def test_idmap_refuses_ids_of_the_other_kind(strict):
    ints, strs = IdMap([1, 2, 3]), IdMap(["a", "b"])
    with pytest.raises(DataError, match=r"^user ids are integers \(int64\) but '1' \(str\) was given$"):
        ints.to_internal(["1"], strict=strict, what="user id")
    for query in (np.array(["1", "2"]), pd.Series(["2", "1"]), pd.Index(["1"])):
        with pytest.raises(DataError, match=r"ids are integers \(int64\) but '\d' \(str_?\) was given"):
            ints.to_internal(query, strict=strict)
    with pytest.raises(DataError, match=r"^item ids are strings \(\w+\) but 7 \(int64\) was given$"):
        strs.to_internal(np.array([7, 1]), strict=strict, what="item id")
    with pytest.raises(DataError, match=r"ids are strings \(\w+\) but 7 \(int\) was given"):
        strs.to_internal([None, 7], strict=strict)
    # right kinds, empty queries and queries mixing kinds (matched id by id) are answered
    assert ints.to_internal(np.array([], dtype=object), strict=strict).tolist() == []
    assert strs.to_internal(np.array([], dtype=np.int64), strict=strict).tolist() == []
    assert ints.to_internal(["7", 3], strict=False).tolist() == [-1, 2]
    assert IdMap([1, "a"]).to_internal(["a", 1, "b"], strict=False).tolist() == [1, 0, -1]
    assert (ints.kind, strs.kind, IdMap([1, "a"]).kind, IdMap([]).kind) == ("integer", "string", "other", "other")


def test_idmap_messages_print_plain_ids():
    with pytest.raises(DataError, match=r"^unknown user id 99999 \(1 unknown in total\)$"):
        IdMap(np.arange(5)).to_internal(np.array([99999]), what="user id")
    with pytest.raises(DataError, match=r"^unknown id 'u9' \(2 unknown in total\)$"):
        IdMap(["u1"]).to_internal(np.array(["u9", "u8"]))
    with pytest.raises(DataError, match=r"^IdMap: external ids must be unique, 5 appears twice$"):
        IdMap(np.array([5, 6, 5]))
    assert (format_id(np.int64(7)), format_id(np.str_("a")), format_id("b"), format_id(2.5)) == (
        "7",
        "'a'",
        "'b'",
        "2.5",
    )
    assert format_id("x" * 100).endswith("...") and len(format_id("x" * 100)) == 60
