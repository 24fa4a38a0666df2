"""Exact float search, Annoy (MIPS transform), the recommendation table, implicit ALS/BPR."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rechash import columns as C
from rechash.als.fit import fit_als, fit_bpr, grid_search
from rechash.data import IdMap, Interactions
from rechash.data.embeddings import FloatEmbeddings
from rechash.errors import DataError, MissingExtraError
from rechash.models.annoy import AnnoyItemIndex, AnnoyRecommender, mips_augment
from rechash.models.base import Recommendations, RecommenderBase
from rechash.models.exact import ExactRecommender, PopularityRecommender


def _embeddings(n_users=40, n_items=120, d=6, seed=0) -> FloatEmbeddings:
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0, 0.5, size=(n_items, 1))  # unequal norms: MIPS != cosine
    return FloatEmbeddings(rng.normal(size=(n_users, d)), rng.normal(size=(n_items, d)) * scale)


def _exclude(n_users, n_items, per_user=7, seed=1) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_users), per_user)
    cols = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))


def _top(rec, users, k, exclude=None):
    """implicit's ``recommend`` for ``users`` with ``exclude`` (indexed by user id) filtered."""
    rows = None if exclude is None else exclude[users]
    return rec.recommend(users, rows, N=k, filter_already_liked_items=rows is not None)


def _brute_force(emb: FloatEmbeddings, users, k, exclude):
    scores = emb.scores(users).astype(np.float64)
    out = []
    for r, u in enumerate(users):
        s = scores[r].copy()
        s[exclude[u].indices] = -np.inf
        order = np.lexsort((np.arange(len(s)), -s))[:k]
        out.append(order)
    return np.array(out)


def test_exact_matches_brute_force_with_exclusion_and_ties():
    emb = _embeddings()
    items = emb.item_factors.copy()
    items[10] = items[3]  # an exact tie: smaller id first
    emb = FloatEmbeddings(emb.user_factors, items)
    ex = _exclude(40, 120)
    users = np.arange(40)
    ids, scores = _top(ExactRecommender(emb), users, 15, ex)
    np.testing.assert_array_equal(ids, _brute_force(emb, users, 15, ex))
    want = np.take_along_axis(emb.scores(users).astype(np.float64), ids, axis=1)
    np.testing.assert_allclose(scores, want, rtol=1e-5)
    # the training items given as ``seen`` are filtered the same way when no rows are passed
    np.testing.assert_array_equal(ExactRecommender(emb, seen=ex).recommend(users, N=15)[0], ids)
    assert isinstance(ExactRecommender(emb), RecommenderBase)
    assert ExactRecommender(emb).index_bytes == 120 * 6 * 4


def test_mips_augmentation_turns_inner_product_into_euclidean():
    emb = _embeddings()
    aug, m = mips_augment(emb.item_factors)
    assert np.allclose(np.linalg.norm(aug, axis=1), m, rtol=1e-5)
    q = np.hstack([emb.user_factors, np.zeros((40, 1))])
    dist = ((q[:, None, :] - aug[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(
        np.argsort(dist, axis=1)[:, :5], np.argsort(-emb.scores(np.arange(40)), axis=1)[:, :5]
    )


@pytest.mark.parametrize("metric", ["mips", "dot"])
def test_annoy_with_full_budget_equals_exact_search(metric):
    pytest.importorskip("annoy")
    emb = _embeddings()
    ex = _exclude(40, 120)
    users = np.arange(40)
    ann = AnnoyRecommender.build(emb, metric=metric, n_trees=10, search_k=100_000, seed=3)
    got_ids, got_scores = _top(ann, users, 10, ex)
    want_ids, want_scores = _top(ExactRecommender(emb), users, 10, ex)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5)
    assert ann.index_bytes > 0 and ann.build_seconds >= 0


def test_annoy_filters_seen_items_is_deterministic_and_degrades_with_small_budget():
    pytest.importorskip("annoy")
    emb = _embeddings(n_items=400)
    ex = _exclude(40, 400, per_user=30)
    users = np.arange(40)
    a = AnnoyRecommender.build(emb, n_trees=8, search_k=60, seed=5)
    b = AnnoyRecommender.build(emb, n_trees=8, search_k=60, seed=5)
    (ra, ra_scores), (rb, _) = _top(a, users, 20, ex), _top(b, users, 20, ex)
    np.testing.assert_array_equal(ra, rb)
    for u in users:
        row = ra[u][ra[u] >= 0]
        assert not np.isin(row, ex[u].indices).any()
        assert len(np.unique(row)) == len(row)
        assert np.all(np.diff(ra_scores[u][: len(row)]) <= 0)
    exact = _top(ExactRecommender(emb), users, 20, ex)[0]
    hits_small = np.mean([np.isin(r, e).mean() for r, e in zip(ra, exact)])
    hits_big = np.mean([np.isin(r, e).mean() for r, e in zip(_top(a.with_search_k(50_000), users, 20, ex)[0], exact)])
    assert hits_small < hits_big == 1.0


def test_annoy_angular_scores_are_cosines():
    pytest.importorskip("annoy")
    emb = _embeddings()
    ann = AnnoyRecommender.build(emb, metric="angular", n_trees=10, search_k=100_000)
    ids, scores = ann.recommend(np.arange(5), N=5)
    u, it = emb.user_factors[:5], emb.item_factors
    cos = (u @ it.T) / np.linalg.norm(u, axis=1)[:, None] / np.linalg.norm(it, axis=1)[None, :]
    np.testing.assert_array_equal(ids, np.argsort(-cos, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(cos, axis=1)[:, ::-1][:, :5], rtol=1e-5)


def test_annoy_rejects_bad_input():
    pytest.importorskip("annoy")
    emb = _embeddings()
    with pytest.raises(DataError, match="metric"):
        AnnoyItemIndex(emb.item_factors, metric="hamming")
    with pytest.raises(DataError, match="n_trees"):
        AnnoyItemIndex(emb.item_factors, n_trees=0)


def test_missing_annoy_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "annoy", None)
    with pytest.raises(MissingExtraError, match=r"rechash\[baselines\]"):
        AnnoyItemIndex(_embeddings().item_factors)


def test_recommendation_table_schema_and_external_ids():
    recs = Recommendations(
        np.array([0, 2]), np.array([[3, 1, -1], [0, 2, 1]]), np.array([[0.9, 0.5, -np.inf], [0.3, 0.2, 0.1]])
    )
    users, items = IdMap(["a", "b", "c"]), IdMap([10, 11, 12, 13])
    frame = recs.to_frame(users, items)
    assert tuple(frame.columns) == C.CANDIDATE_COLUMNS
    assert frame[C.USER_ID].tolist() == ["a", "a", "c", "c", "c"]
    assert frame[C.ITEM_ID].tolist() == [13, 11, 10, 12, 11]
    assert frame[C.RANK].tolist() == [1, 2, 1, 2, 3]
    assert frame[C.HAMMING].isna().all() and str(frame[C.HAMMING].dtype) == "Int32"
    with_codes = Recommendations(recs.users, recs.items, recs.scores, np.array([[4, 5, -1], [1, 2, 2]]))
    assert with_codes.to_frame()[C.HAMMING].tolist() == [4, 5, 1, 2, 2]
    assert recs.k == 3
    with pytest.raises(DataError):
        Recommendations(np.array([0]), np.zeros((2, 3)), np.zeros((2, 3)))


def test_popularity_recommender():
    m = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0]], dtype=np.float32))
    train = Interactions(m, IdMap(range(3)), IdMap(range(4)))
    ids, scores = PopularityRecommender(train).recommend(np.arange(3), m, N=2)
    np.testing.assert_array_equal(ids, [[2, 3], [0, 3], [0, 2]])
    np.testing.assert_array_equal(scores, [[1, 0], [1, 0], [1, 1]])  # summed training weight


def _tiny_interactions(seed=0) -> tuple[Interactions, Interactions]:
    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 50
    taste = rng.integers(0, 3, n_users)
    rows, cols = [], []
    for u in range(n_users):
        items = rng.choice(np.arange(taste[u] * 15, taste[u] * 15 + 20) % n_items, 10, replace=False)
        rows += [u] * 10
        cols += list(items)
    users, items = IdMap(range(n_users)), IdMap(range(n_items))
    full = Interactions.from_arrays(np.array(rows), np.array(cols), users, items)
    mask = np.random.default_rng(seed + 1).random(full.nnz) < 0.8
    return full.subset(mask), full.subset(~mask)


def test_als_is_deterministic_and_grid_search_picks_the_best_point():
    pytest.importorskip("implicit")
    train, valid = _tiny_interactions()
    a = fit_als(train, factors=8, iterations=3, seed=1, num_threads=1)
    b = fit_als(train, factors=8, iterations=3, seed=1, num_threads=1)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    best, table = grid_search(
        fit_als,
        train,
        valid,
        {"regularization": (0.01, 100.0)},
        fixed={"factors": 8, "iterations": 3, "num_threads": 1},
    )
    assert len(table) == 2 and table["valid_recall@20"].is_monotonic_decreasing
    assert best["regularization"] == table.loc[0, "regularization"] and best["factors"] == 8
    bpr = fit_bpr(train, factors=8, iterations=5, seed=2)
    assert bpr.item_factors.shape == (50, 9)  # implicit keeps a bias column
    np.testing.assert_array_equal(bpr.item_factors, fit_bpr(train, factors=8, iterations=5, seed=2).item_factors)
