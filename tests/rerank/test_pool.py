"""The learned pool re-ranker (rechash.rerank.pool): trained on validation only, reorders the
Hamming pool and nothing else, saved and loaded without pickle to identical lists, refused
clearly when a feature or file is wrong, and served to folded-in users."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

import rechash.rerank.pool as P
from rechash.als.fit import fit_als
from rechash.data.synthetic import synthetic_split
from rechash.errors import DataError, ModelError
from rechash.hasher.twin_tower import TwinTowerHasher
from rechash.models.code import CodeRecommender
from rechash.rank.metrics import hit_matrix

FAST = dict(epochs=2, batch_size=128, negatives=64, lr=0.02, progress=False, threads=1)


@pytest.fixture(scope="module")
def split():
    return synthetic_split(seed=3, n_users=400, n_items=150, n_clusters=5, mean_activity=30.0, min_activity=8)


@pytest.fixture(scope="module")
def captured(split):
    """A fit with an ALS teacher, the ranker training's inputs recorded."""
    seen = {}
    real = P.fit_on_validation

    def spy(*args, **kwargs):
        seen["args"] = args
        ranker, info = real(*args, **kwargs)
        return ranker, info

    P.fit_on_validation = spy
    try:
        als = fit_als(split.train, factors=16, regularization=1.0, alpha=10.0, iterations=5, num_threads=1)
        model = TwinTowerHasher(16, seed=0, **FAST).fit(split.train, split.valid, teacher=als)
    finally:
        P.fit_on_validation = real
    return model, seen


@pytest.fixture(scope="module")
def model(captured):
    """The fitted model with its ranker attached whether or not validation kept it (tiny data)."""
    model, _ = captured
    if model.ranker_ is None:
        user_z, train, valid = model._validation_data()
        model.ranker_, _ = P.fit_on_validation(
            model.encode_items(),
            model.item_floats(),
            model.teacher_.item_factors,
            user_z,
            model.teacher_.user_factors,
            train,
            valid,
            seed=0,
        )
    return model


def test_trained_on_validation_labels_only(split, captured) -> None:
    model, seen = captured
    info = model.training_run()["ranker"]
    assert set(info) >= {"kept", "valid_recall", "users", "rounds", "features"}
    item_codes, _, _, user_z, _, train, valid = seen["args"]
    assert (train != split.train.matrix.tocsr()).nnz == 0  # the features read train only
    assert (valid != split.valid.matrix.tocsr()).nnz == 0  # the labels are validation interactions, never test
    np.testing.assert_array_equal(user_z, model.user_floats())  # floats of the train histories (valid given)
    users = np.flatnonzero(np.diff(valid.indptr))[:50]
    pools = P.serving_pools(item_codes, model.encode_users(users, refined=False), train[users])
    labels = hit_matrix(pools, users, valid)
    assert not (labels & hit_matrix(pools, users, split.test.matrix.tocsr())).any()  # disjoint splits: no test label


def test_without_valid_the_holdout_never_enters_the_features(split) -> None:
    seen = {}
    real = P.fit_on_validation

    def spy(*args, **kwargs):
        seen["train"], seen["valid"] = args[5], args[6]
        return real(*args, **kwargs)

    P.fit_on_validation = spy
    try:
        m = TwinTowerHasher(16, seed=0, **FAST).fit(split.train, teacher=None)
    finally:
        P.fit_on_validation = real
    assert m.holdout_ > 0 and seen["valid"].nnz == m.holdout_
    assert seen["train"].multiply(seen["valid"]).nnz == 0  # the ranker's histories lack the held-out items
    assert (seen["train"] + seen["valid"] != sp.csr_matrix(split.train.matrix, dtype=seen["train"].dtype)).nnz == 0


def test_learned_lists_only_reorder_the_pool(split, model) -> None:
    rec = CodeRecommender.from_model(model, reranker="learned")
    assert rec.reranker == "learned"
    users = np.arange(60)
    ids, scores = rec.recommend(users, N=10)
    seen = split.train.matrix.tocsr()
    pools = P.serving_pools(model.encode_items(), model.encode_users(users, refined=False), seen[users])
    for row in range(len(users)):
        got = ids[row][ids[row] >= 0]
        assert set(got.tolist()) <= set(pools[row][pools[row] >= 0].tolist())
        assert not set(got.tolist()) & set(seen[users[row]].indices.tolist())
        assert (np.diff(scores[row][ids[row] >= 0]) <= 0).all()
    one = np.stack([rec.recommend(int(u), N=10)[0] for u in users[:5]])  # the online path: one user at a time
    np.testing.assert_array_equal(one, ids[:5])


def test_the_default_is_learned_exactly_when_kept(captured) -> None:
    model, _ = captured
    rec = CodeRecommender.from_model(model)
    assert rec.reranker == ("learned" if model.ranker_info_["kept"] else "dot")
    off = TwinTowerHasher(16, seed=0, learned_rerank=False, **FAST)
    assert off.config.learned_rerank is False


def test_saved_model_loads_with_identical_lists(model, tmp_path) -> None:
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "ranker.txt").is_file() and (tmp_path / "m" / "ranker.npz").is_file()
    users = np.arange(40)
    a = CodeRecommender.from_model(model, reranker="learned").recommend(users, N=10)
    b = CodeRecommender.load(tmp_path / "m", reranker="learned").recommend(users, N=10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1])
    c = CodeRecommender.load(tmp_path / "m")  # auto: a saved ranker is served by default
    assert c.reranker == "learned"
    np.testing.assert_array_equal(c.recommend(users, N=10)[0], a[0])


def test_folded_in_users_are_served(split, model) -> None:
    rec = CodeRecommender.from_model(model, reranker="learned")
    history = split.train.matrix.tocsr()[:5]
    ids, _ = rec.recommend(np.arange(5), history, N=10, recalculate_user=True)
    assert (ids >= 0).all()
    for row in range(5):
        assert not set(ids[row].tolist()) & set(history[row].indices.tolist())


def test_bad_or_missing_features_are_refused(model, tmp_path) -> None:
    ranker = model.ranker_
    arrays, text = ranker.state()
    teacherless = P.PoolRanker(ranker.item_codes, ranker.item_towers, None, ranker.popularity, ranker.item_item)
    with pytest.raises(ModelError, match="features"):
        teacherless.set_booster(ranker.booster)  # a model fitted on teacher features, tables without them
    with pytest.raises(ModelError, match="LightGBM"):
        P.PoolRanker.from_state(ranker.item_codes, ranker.item_towers, ranker.item_teacher, arrays, "not a model", "x")
    missing = {k: v for k, v in arrays.items() if k != "popularity"}
    with pytest.raises(ModelError, match="corrupted learned re-ranker"):
        P.PoolRanker.from_state(ranker.item_codes, ranker.item_towers, ranker.item_teacher, missing, text, "x")
    users = P.PoolUsers(
        model.encode_users(np.arange(3), refined=False),
        model.user_floats(np.arange(3)),
        None,
        sp.csr_matrix((3, len(ranker.item_codes))),
    )
    with pytest.raises(DataError, match="teacher"):
        ranker.score(users, np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(DataError, match="learned"):
        CodeRecommender(model.encode_items(), user_codes=model.encode_users(refined=False), reranker="learned")
    # a tampered model file is refused at load, naming it
    model.save(tmp_path / "m")
    (tmp_path / "m" / "ranker.txt").write_text(text.replace("feature_names=teacher", "feature_names=other"))
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    from rechash.io.store import sha256

    f = tmp_path / "m" / "ranker.txt"
    cfg["files"]["ranker.txt"] = {"bytes": f.stat().st_size, "sha256": sha256(f)}
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="ranker.txt"):
        TwinTowerHasher.load(tmp_path / "m")


def test_added_items_extend_the_ranker(model) -> None:
    ranker = model.ranker_
    n = len(ranker.item_codes)
    grown = ranker.extended(
        np.vstack([ranker.item_codes, ranker.item_codes[:3]]),
        np.vstack([ranker.item_towers, ranker.item_towers[:3]]),
        np.vstack([ranker.item_teacher, ranker.item_teacher[:3]]),
    )
    assert grown.popularity[n:].sum() == 0 and all(m.shape == (n + 3, n + 3) for m in grown.item_item.values())
    assert all(m[:, n:].nnz == 0 for m in grown.item_item.values())


def test_trees_score_as_lightgbm_does() -> None:
    import lightgbm as lgb

    from rechash.rerank.trees import Trees

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 5))
    x[:100, 2] = 0.0  # ties on a threshold's side and exact zeros
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + 0.3 * rng.standard_normal(2000) > 0).astype(float)
    for params in ({"objective": "binary"}, {"objective": "binary", "zero_as_missing": True}):
        booster = lgb.train(
            {**params, "num_leaves": 7, "verbose": -1, "num_threads": 1, "seed": 0},
            lgb.Dataset(x, y, feature_name=[f"f{i}" for i in range(5)]),
            num_boost_round=30,
        )
        trees = Trees.from_text(booster.model_to_string(), "m")
        assert trees.n_trees == 30 and trees.feature_names == tuple(f"f{i}" for i in range(5))
        np.testing.assert_allclose(trees.predict(x), booster.predict(x, raw_score=True), rtol=1e-9, atol=1e-9)
    with pytest.raises(ModelError, match="not a LightGBM text model"):
        Trees.from_text("tree\nfeature_names=a\n\nTree=0\nnum_leaves=3\nleaf_value=1 2\n", "m")


def test_fitted_on_at_most_max_fit_users_with_a_positive(model) -> None:
    """Users whose pool holds a validation item are capped by a seeded sample; below the cap the
    fit is the uncapped one."""
    user_z, train, valid = model._validation_data()
    args = (model.encode_items(), model.item_floats(), model.teacher_.item_factors, user_z, model.teacher_.user_factors)
    _, full = P.fit_on_validation(*args, train, valid, seed=0)
    n = full["users"]["fit"] + full["users"]["holdout"]
    assert n > 60
    _, capped = P.fit_on_validation(*args, train, valid, seed=0, max_fit_users=60)
    assert capped["users"]["fit"] + capped["users"]["holdout"] == 60
    _, same = P.fit_on_validation(*args, train, valid, seed=0, max_fit_users=n)
    assert same["valid_recall"] == full["valid_recall"] and same["users"] == full["users"]
