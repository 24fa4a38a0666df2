"""Splits (hypothesis: disjoint and covering), filters, save/reload, the synthetic generator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rechash.data import (
    IdMap,
    Interactions,
    k_core,
    load_many,
    load_split,
    save_split,
    split_leave_last,
    split_random,
    split_time,
    synthetic,
    synthetic_split,
    to_implicit,
)
from rechash.errors import DataError


def _random_interactions(seed: int, n_users: int, n_items: int, n: int) -> Interactions:
    rng = np.random.default_rng(seed)
    return Interactions.from_arrays(
        rng.integers(0, n_users, n),
        rng.integers(0, n_items, n),
        IdMap(range(n_users)),
        IdMap(range(n_items)),
        weights=rng.integers(1, 6, n).astype(np.float32),
        timestamps=rng.integers(0, 50, n).astype(float),
    )


def _keys(inter: Interactions) -> set:
    users, items, _ = inter.coo()
    return set(zip(users.tolist(), items.tolist()))


def _check_partition(inter: Interactions, split) -> None:
    parts = [_keys(p) for p in split]
    assert sum(len(p) for p in parts) == inter.nnz  # disjoint ...
    assert set().union(*parts) == _keys(inter)  # ... and covering
    assert all(p.user_ids is inter.user_ids and p.item_ids is inter.item_ids for p in split)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 30),
    st.integers(1, 40),
    st.integers(0, 400),
    st.sampled_from([(0.8, 0.1, 0.1), (0.5, 0.5), (0.6, 0.0, 0.4), (1.0, 0.0, 0.0)]),
)
def test_splits_are_disjoint_and_covering(seed, n_users, n_items, n, ratios):
    inter = _random_interactions(seed, n_users, n_items, n)
    for split in (split_random(inter, ratios, seed=seed), split_leave_last(inter, 2, 1), split_time(inter, ratios)):
        _check_partition(inter, split)
    split = split_random(inter, ratios, seed=seed)
    again = split_random(inter, ratios, seed=seed)
    assert all(_keys(a) == _keys(b) for a, b in zip(split, again))  # deterministic for a seed
    # every user with interactions keeps at least one in train when train has a share
    active = np.diff(inter.matrix.indptr) > 0
    assert np.all(np.diff(split.train.matrix.indptr)[active] > 0)


def test_random_split_shares_and_seed():
    inter = synthetic(n_users=300, n_items=200, mean_activity=40, seed=1)
    a = split_random(inter, (0.8, 0.1, 0.1), seed=0)
    shares = np.array([p.nnz for p in a]) / inter.nnz
    assert np.allclose(shares, [0.8, 0.1, 0.1], atol=0.02)
    assert _keys(split_random(inter, seed=1).test) != _keys(a.test)
    with pytest.raises(DataError, match="ratios"):
        split_random(inter, (0.8, 0.3))


def test_leave_last_takes_the_latest_and_breaks_ties_by_item():
    ts = np.array([5, 9, 9, 1, 3.0])
    inter = Interactions.from_arrays(
        np.array([0, 0, 0, 0, 1]), np.array([0, 1, 2, 3, 0]), IdMap(range(2)), IdMap(range(4)), timestamps=ts
    )
    train, valid, test = split_leave_last(inter, n_test=1, n_valid=1)
    assert _keys(test) == {(0, 2)} and _keys(valid) == {(0, 1)}  # tie at t=9: larger item id is later
    assert _keys(train) == {(0, 0), (0, 3), (1, 0)}  # a single interaction stays in train
    no_time = Interactions.from_arrays(np.array([0]), np.array([0]), IdMap([0]), IdMap([0]))
    with pytest.raises(DataError, match="needs timestamps"):
        split_leave_last(no_time)


def test_time_split_cuts():
    inter = _random_interactions(3, 20, 30, 300)
    train, valid, test = split_time(inter, cuts=(20, 40))
    assert (
        train.timestamps.max() < 20 <= valid.timestamps.min() and valid.timestamps.max() < 40 <= test.timestamps.min()
    )


def test_k_core_and_threshold_count_what_they_drop():
    inter = _random_interactions(5, 60, 80, 900)
    core = k_core(inter, 5)
    assert core.dropped["k_core"] == inter.nnz - core.nnz > 0
    rows = np.diff(core.matrix.indptr)
    cols = np.bincount(core.matrix.indices, minlength=core.n_items)
    assert np.all((rows == 0) | (rows >= 5)) and np.all((cols == 0) | (cols >= 5))
    implicit = to_implicit(core, 4)
    assert implicit.dropped == {"k_core": core.dropped["k_core"], "threshold": int((core.matrix.data < 4).sum())}
    assert np.all(implicit.matrix.data == 1) and implicit.user_ids is inter.user_ids


@pytest.mark.parametrize("kind", ["adjacency", "parquet"])
def test_save_split_round_trip(tmp_path, kind):
    inter = _random_interactions(9, 30, 40, 500)
    if kind == "adjacency":
        inter = Interactions.from_arrays(*inter.coo()[:2], inter.user_ids, inter.item_ids)
    split = split_random(inter, seed=2)
    written = save_split(split, tmp_path)
    assert {p.name for p in written} >= {"user_ids.parquet", "item_ids.parquet"}
    assert (tmp_path / ("train.txt" if kind == "adjacency" else "train.parquet")).is_file()
    again = load_split(tmp_path)
    for a, b in zip(split, again):
        assert (
            a.to_frame()
            .sort_values(["user_id", "item_id"])
            .reset_index(drop=True)
            .equals(b.to_frame().sort_values(["user_id", "item_id"]).reset_index(drop=True))
        )
    assert load_many([tmp_path / p.name for p in written if "train" in p.name])[0].nnz == split.train.nnz


def test_synthetic_is_deterministic_and_structured():
    a = synthetic(n_users=400, n_items=300, n_clusters=6, seed=3)
    b = synthetic(n_users=400, n_items=300, n_clusters=6, seed=3)
    assert _keys(a) == _keys(b) and np.array_equal(a.timestamps, b.timestamps)
    assert _keys(synthetic(n_users=400, n_items=300, n_clusters=6, seed=4)) != _keys(a)
    assert a.duplicates_merged == 0 and np.all(a.matrix.data == 1)
    d = a.describe()
    assert d["item popularity"]["gini"] > 0.3  # power-law popularity
    assert d["user activity"]["p90"] > 2 * d["user activity"]["p10"]  # skewed activity
    # taste clusters: item-item co-occurrence is far from independent
    m = a.matrix.toarray()
    co = np.corrcoef(m.T[np.asarray(m.sum(0)).ravel() > 5])
    assert np.nanmean(np.abs(co[np.triu_indices_from(co, 1)])) > 0.02


def test_synthetic_split_default():
    train, valid, test = synthetic_split(n_users=500, n_items=400)
    assert train.nnz > 4 * test.nnz > 0 and valid.nnz > 0 and train.user_ids is test.user_ids
