"""One conformance suite for every recommender (implicit's RecommenderBaseTestMixin idea).

Every recommender of :mod:`rechash.models.base`'s contract, and every pool policy of
``CodeRecommender`` (top-k, fixed radius, adaptive; dot, codes-only, none with each tie
rule; from a model and from floats), passes the same checks: list sizes and padding,
seen items filtered inside retrieval, whitelist and blacklist, batch equals one by one,
deterministic ties, new users from a history, unknown users per the documented policy,
similarity lists, and save/load round trips.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rechash import columns as C
from rechash.data import synthetic
from rechash.data.embeddings import FloatEmbeddings
from rechash.errors import DataError
from rechash.index.candidates import CandidatePolicy
from rechash.models.annoy import AnnoyRecommender
from rechash.models.base import RecommenderBase
from rechash.models.code import CodeRecommender, load_recommender
from rechash.models.exact import ExactRecommender, PopularityRecommender
from rechash.models.reranked import RerankedRecommender
from rechash.rerank import CodesOnlyReranker, DotReranker

N = 10


@pytest.fixture(scope="module")
def data():
    return synthetic(n_users=80, n_items=60, mean_activity=12, seed=3)


@pytest.fixture(scope="module")
def model(data):
    from rechash.hasher.twin_tower import TwinTowerHasher

    return TwinTowerHasher(32, epochs=2, seed=0, progress=False).fit(data, teacher=None)


@pytest.fixture(scope="module")
def als(data):
    rng = np.random.default_rng(0)
    return FloatEmbeddings(
        rng.standard_normal((data.n_users, 16)),
        rng.standard_normal((data.n_items, 16)),
        fold_in={"regularization": 0.1, "alpha": 2.0},
        user_ids=data.user_ids,
        item_ids=data.item_ids,
    )


def _build(name: str, data, model, als) -> RecommenderBase:
    seen = data.matrix
    if name == "code+dot":
        return CodeRecommender.from_model(model, seen=seen)
    if name == "code+dot small pool":
        return CodeRecommender.from_model(model, seen=seen, pool=CandidatePolicy.top_k(12))
    if name == "code hamming popularity":
        return CodeRecommender.from_model(model, seen=seen, reranker=None)
    if name == "code hamming id":
        return CodeRecommender.from_model(model, seen=seen, reranker=None, tie_rule="id")
    if name == "code codes-only":
        return CodeRecommender.from_model(
            model, seen=seen, reranker=CodesOnlyReranker(model.user_floats(), model.encode_items())
        )
    if name == "code radius":
        return CodeRecommender.from_model(model, seen=seen, pool=CandidatePolicy.fixed_radius(10, 40))
    if name == "code adaptive":
        return CodeRecommender.from_model(model, seen=seen, pool=CandidatePolicy.adaptive(15, 30))
    if name == "code from floats":
        return CodeRecommender.from_floats(als, bits=16, seen=seen)
    if name == "exact":
        return ExactRecommender(als, seen=seen)
    if name == "annoy":
        return AnnoyRecommender.build(als, n_trees=5, search_k=100_000, seed=0, seen=seen)
    if name == "popularity":
        return PopularityRecommender(data)
    if name == "exact top-20 + dot":
        return RerankedRecommender(
            ExactRecommender(als, seen=seen), DotReranker(als.user_factors, als.item_factors), 20
        )
    raise AssertionError(name)


KINDS = [
    "code+dot",
    "code+dot small pool",
    "code hamming popularity",
    "code hamming id",
    "code codes-only",
    "code radius",
    "code adaptive",
    "code from floats",
    "exact",
    "annoy",
    "popularity",
    "exact top-20 + dot",
]
#: pools bounded by a radius may hold fewer than N items
BOUNDED = {"code radius"}
#: recommenders whose re-ranker is keyed by user id cannot serve users folded in from a history
NO_FOLD_IN = {"code codes-only", "exact top-20 + dot"}
SAVABLE = {"code+dot", "code from floats", "exact", "annoy", "popularity"}


@pytest.fixture(scope="module", params=KINDS)
def case(request, data, model, als):
    return request.param, _build(request.param, data, model, als), data


def _seen(data, u):
    return set(data.matrix[u].indices.tolist())


def _valid(ids):
    return ids[ids >= 0]


def test_lists_have_n_items_sorted_and_padded(case) -> None:
    name, rec, data = case
    users = np.arange(data.n_users)
    ids, scores = rec.recommend(users, data.matrix[users], N=N)
    assert ids.shape == scores.shape == (len(users), N) and scores.dtype == np.float32
    for u in users:
        got = _valid(ids[u])
        assert len(set(got.tolist())) == len(got), "no duplicates"
        assert (ids[u][: len(got)] >= 0).all(), "padding only at the end"
        assert np.isneginf(scores[u][len(got) :]).all()
        if name not in BOUNDED:
            assert len(got) == min(N, data.n_items - len(_seen(data, u)))
        if not name.startswith("code hamming") and name not in (
            "code radius",
            "code adaptive",
            "code+dot small pool",
            "annoy",
        ):
            assert (np.diff(scores[u][: len(got)]) <= 1e-6).all(), "score descending"
    # a heavy user with fewer unseen items than N: padded, never a seen item
    heavy = int(np.argmax(np.diff(data.matrix.indptr)))
    n_big = data.n_items - len(_seen(data, heavy)) + 3
    ids, scores = rec.recommend(heavy, data.matrix[heavy], N=n_big)
    assert len(ids) == n_big and (ids[-3:] == -1).all() and np.isneginf(scores[-3:]).all()


def test_seen_items_are_filtered_inside_retrieval(case) -> None:
    name, rec, data = case
    users = np.arange(data.n_users)
    ids, _ = rec.recommend(users, data.matrix[users], N=N)
    none_given, _ = rec.recommend(users, None, N=N)  # the training items the recommender holds
    np.testing.assert_array_equal(ids, none_given)
    for u in users:
        assert not _seen(data, u) & set(_valid(ids[u]).tolist())
    kept, _ = rec.recommend(users, data.matrix[users], N=N, filter_already_liked_items=False)
    assert any(_seen(data, u) & set(_valid(kept[u]).tolist()) for u in users) or name in BOUNDED


def test_whitelist_and_blacklist(case) -> None:
    name, rec, data = case
    users = np.arange(20)
    allowed = np.arange(0, data.n_items, 3)
    ids, _ = rec.recommend(users, data.matrix[users], N=N, items=allowed)
    banned = np.arange(0, data.n_items, 2)
    ids2, _ = rec.recommend(users, data.matrix[users], N=N, filter_items=banned)
    for u in users:
        assert np.isin(_valid(ids[u]), allowed).all()
        if name not in BOUNDED:
            assert len(_valid(ids[u])) == min(N, len(set(allowed.tolist()) - _seen(data, u)))
        assert not np.isin(_valid(ids2[u]), banned).any()
        assert not _seen(data, u) & set(_valid(ids2[u]).tolist())
    with pytest.raises(DataError, match="not both"):
        rec.recommend(0, None, N=N, items=allowed, filter_items=banned)


def test_batch_equals_one_by_one_and_is_deterministic(case) -> None:
    name, rec, data = case
    users = np.arange(15)
    ids, scores = rec.recommend(users, data.matrix[users], N=N)
    for u in users:
        one, one_scores = rec.recommend(int(u), data.matrix[u], N=N)
        np.testing.assert_array_equal(one, ids[u])
        np.testing.assert_allclose(one_scores, scores[u], rtol=1e-5)
    again, _ = rec.recommend(users, data.matrix[users], N=N)
    np.testing.assert_array_equal(again, ids)


def test_new_users_from_a_history(case) -> None:
    name, rec, data = case
    history = data.matrix[[4, 5]]
    if name in NO_FOLD_IN:
        with pytest.raises(DataError):
            rec.recommend([0, 1], history, N=N, recalculate_user=True)
        return
    ids, scores = rec.recommend([0, 1], history, N=N, recalculate_user=True)
    assert ids.shape == (2, N)
    for r, u in enumerate((4, 5)):
        assert not _seen(data, u) & set(_valid(ids[r]).tolist())
    with pytest.raises(DataError, match="needs user_items"):
        rec.recommend(0, None, N=N, recalculate_user=True)


def test_unknown_users_follow_the_policy_and_are_counted(case) -> None:
    name, rec, data = case
    ext = data.user_ids.external_ids
    items = data.item_ids.external_ids
    new_a, new_b = -1, -2  # not in the data's integer ids
    history = pd.DataFrame({C.USER_ID: [new_a, new_a, new_a], C.ITEM_ID: [items[1], items[2], 10**9]})
    frame = rec.recommend_frame(np.array([ext[0], new_a, new_b]), N, history=history)
    report = frame.attrs["report"]
    assert report["known"] == 1 and report["history_rows_unknown_item"] == 1
    folded = name not in NO_FOLD_IN
    assert report["from_history"] == int(folded) and report["popular_fallback"] == 2 - int(folded)
    sizes = frame.groupby(C.USER_ID).size().to_dict()
    assert sizes[new_b] == N and (sizes[ext[0]] == N or name in BOUNDED)
    assert not set(frame.loc[frame[C.USER_ID] == new_a, C.ITEM_ID]) & {items[1], items[2]}
    fallback = frame[frame[C.USER_ID] == new_b]
    assert fallback[C.HAMMING].isna().all() and ((fallback[C.SCORE] > 0) & (fallback[C.SCORE] <= 1)).all()
    popular = rec.recommend_frame(np.array([new_a]), N, history=history, unknown="popular")
    assert popular.attrs["report"]["popular_fallback"] == 1
    with pytest.raises(DataError, match="unknown to the model"):
        rec.recommend_frame(np.array([new_b]), N, unknown="error")
    with pytest.raises(DataError, match="integers"):
        rec.recommend_frame(np.array(["0"]), N)  # a string id against integer ids is refused, not a cold user


def test_similar_items_put_the_item_first_without_duplicates(case) -> None:
    name, rec, data = case
    ids, scores = rec.similar_items(np.arange(10), N=N)
    assert ids.shape == (10, N)
    for i in range(10):
        assert ids[i, 0] == i and scores[i, 0] == pytest.approx(1.0)
        got = _valid(ids[i])
        assert len(set(got.tolist())) == len(got) == N
    one, _ = rec.similar_items(3, N=5, filter_items=[3, 7])
    assert 3 not in one and 7 not in one
    if name == "popularity":
        with pytest.raises(DataError):
            rec.similar_users(0, N=5)
        return
    users, _ = rec.similar_users(np.arange(5), N=5)
    assert (users[:, 0] == np.arange(5)).all()


def test_save_and_load_round_trip(case, tmp_path) -> None:
    name, rec, data = case
    if name not in SAVABLE:
        return
    rec.save(tmp_path / "rec")
    back = load_recommender(tmp_path / "rec")
    assert type(back) is type(rec)
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(back.recommend(users, None, N=N)[0], rec.recommend(users, None, N=N)[0])
    if rec.can_fold_in:
        h = data.matrix[[4]]
        np.testing.assert_array_equal(
            back.recommend([0], h, N=N, recalculate_user=True)[0], rec.recommend([0], h, N=N, recalculate_user=True)[0]
        )


def test_argument_errors_name_the_argument(case) -> None:
    name, rec, data = case
    with pytest.raises(DataError, match="N must be"):
        rec.recommend(0, None, N=0)
    with pytest.raises(DataError, match="userid"):
        rec.recommend(data.n_users + 5, None, N=N)
    with pytest.raises(DataError, match="one row per requested user"):
        rec.recommend([0, 1], data.matrix[[0]], N=N)
