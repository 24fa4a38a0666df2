from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rechash.baselines import fit_als
from rechash.codes import hamming_distances
from rechash.errors import DataError, ModelError
from rechash.evaluation import full_ranking, per_user_metrics
from rechash.model import TwinTowerHasher, code_diagnostics, hamming_recall


def test_loss_decreases(split, fast):
    m = TwinTowerHasher(16, seed=1, init="random", **{**fast, "epochs": 4}).fit(split.train)
    losses = [log.loss for log in m.history_]
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.05


def test_codes_beat_random_and_shapes(fitted, split):
    assert fitted.encode_users().shape == (split.train.n_users, 2)
    assert fitted.encode_items([0, 3]).dtype == np.uint8
    assert fitted.user_floats().shape == (split.train.n_users, 16)
    assert fitted.bits == 16 and len(fitted.item_ids) == split.train.n_items
    r = hamming_recall(fitted.encode_users(), fitted.encode_items(), split.test.matrix, split.train.matrix)
    rng = np.random.default_rng(0)
    rand = rng.integers(0, 256, size=(split.train.n_users + split.train.n_items, 2), dtype=np.uint8)
    r0 = hamming_recall(rand[: split.train.n_users], rand[split.train.n_users :], split.test.matrix, split.train.matrix)
    assert r > r0 + 0.1
    # validation was evaluated with binary codes: epoch 0 (init) plus trained epochs
    assert [log.epoch for log in fitted.history_][:2] == [0, 1]
    assert all(log.valid_recall is not None for log in fitted.history_)


def test_deterministic_for_a_seed(split, fast):
    a = TwinTowerHasher(16, seed=3, init="random", **fast).fit(split.train)
    b = TwinTowerHasher(16, seed=3, init="random", **fast).fit(split.train)
    c = TwinTowerHasher(16, seed=4, init="random", **fast).fit(split.train)
    assert np.array_equal(a.encode_users(), b.encode_users())
    assert np.array_equal(a.encode_items(), b.encode_items())
    assert not np.array_equal(a.encode_items(), c.encode_items())


def test_save_load_identical(fitted, split, tmp_path):
    fitted.save(tmp_path / "m")
    m = TwinTowerHasher.load(tmp_path / "m")
    assert np.array_equal(m.encode_users(), fitted.encode_users())
    assert np.array_equal(m.encode_items(), fitted.encode_items())
    assert np.array_equal(m.user_floats(), fitted.user_floats())
    assert m.user_ids == fitted.user_ids and m.item_ids == fitted.item_ids and m.bits == 16
    rows = split.train.matrix[:20]
    assert np.array_equal(m.encode_history(rows)[0], fitted.encode_history(rows)[0])
    assert m.config == fitted.config and len(m.history_) == len(fitted.history_)


def test_new_user_codes_come_from_history(split, fast):
    train = split.train
    n_new = 60
    keep = np.repeat(np.arange(train.n_users), np.diff(train.matrix.indptr)) >= n_new
    m = TwinTowerHasher(16, seed=0, init="random", id_dropout=0.5, **{**fast, "epochs": 4}).fit(train.subset(keep))
    codes, floats = m.encode_history(train.matrix[:n_new])
    assert codes.shape == (n_new, 2) and floats.shape == (n_new, 16)
    # a forward pass of the history encoder: the held-out users' test items rank far above chance
    items = m.encode_items()
    users = np.arange(n_new)
    ids, _ = full_ranking(lambda b: -hamming_distances(codes[b], items), users, 20, exclude=train.matrix[:n_new])
    recall = per_user_metrics(ids, users, split.test.matrix[:n_new])["recall@20"].mean()
    assert recall > 2 * 20 / train.n_items
    # an empty history is a valid (uninformative) input, not an error
    assert m.encode_history(sp.csr_matrix((1, train.n_items)))[0].shape == (1, 2)
    with pytest.raises(DataError):
        m.encode_history(sp.csr_matrix((1, train.n_items + 1)))


def test_history_only_model_is_consistent(split, fast):
    m = TwinTowerHasher(16, seed=0, init="random", user_id=False, **fast).fit(split.train)
    codes, floats = m.encode_history(split.train.matrix)
    np.testing.assert_allclose(floats, m.user_floats(), rtol=1e-5, atol=1e-5)


def test_id_only_model_has_no_history_encoder(split, fast):
    m = TwinTowerHasher(16, seed=0, init="random", user_history=False, **{**fast, "epochs": 1}).fit(split.train)
    with pytest.raises(ModelError):
        m.encode_history(split.train.matrix[:2])


def test_teacher_distillation_and_init(split, fast):
    als = fit_als(split.train, factors=16, regularization=0.05, alpha=10.0, iterations=5, num_threads=1)
    m = TwinTowerHasher(16, seed=0, w_distill=1.0, **fast).fit(split.train, split.valid, teacher=als)
    assert "distill" in m.history_[-1].parts
    r = hamming_recall(m.encode_users(), m.encode_items(), split.test.matrix, split.train.matrix)
    assert r > 0.2
    with pytest.raises(DataError):
        bad = type(als)(als.user_factors[:-1], als.item_factors)
        TwinTowerHasher(16, **fast).fit(split.train, teacher=bad)


def test_bpr_ste_and_regularisers_run(split, fast):
    m = TwinTowerHasher(
        16, seed=0, init="random", w_softmax=0.0, w_bpr=1.0, relaxation="ste", w_quant=0.1, w_balance=0.1,
        w_decor=0.1, in_batch=True, negative_sampling="popularity", **{**fast, "epochs": 1},
    ).fit(split.train)
    assert set(m.history_[-1].parts) == {"bpr", "quant", "balance", "decor"}
    assert np.isfinite(m.user_floats()).all()


def test_item_features_give_cold_items_codes(split, fast):
    train = split.train
    n_items = train.n_items
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n_items, 4)).astype(np.float32)
    cold = [n_items - 2, n_items - 1]
    feats[cold[1]] = feats[cold[0]]
    warm = ~np.isin(train.matrix.indices, cold)
    users, items, w = train.coo()
    sub = type(train).from_arrays(users[warm], items[warm], train.user_ids, train.item_ids, w[warm])
    m = TwinTowerHasher(16, seed=0, init="random", **fast).fit(sub, item_features=feats)
    z = m.item_floats(cold)
    np.testing.assert_array_equal(z[0], z[1])  # no interactions: codes come from features alone
    assert np.abs(z).sum() > 0
    with pytest.raises(DataError):
        TwinTowerHasher(16, **fast).fit(sub, item_features=feats[:-1])


def test_item_side_features_structure(split, fast):
    from rechash.data import SideFeatures
    from rechash.data.features import Feature

    n = split.train.n_items
    genre = Feature("genre", "categorical", (np.arange(n) % 3 + 1).astype(np.int32), vocab=np.array([None, "a", "b", "c"], dtype=object))
    year = Feature("year", "numeric", np.linspace(1990, 2000, n).astype(np.float32))
    side = SideFeatures(split.train.item_ids, (genre, year))
    m = TwinTowerHasher(16, seed=0, init="random", **{**fast, "epochs": 1}).fit(split.train, item_features=side)
    assert m.towers.item.features.shape == (n, 1 + genre.cardinality)  # z-scored year + one-hot genre


def test_diagnostics(fitted):
    d = code_diagnostics(fitted.encode_users(), fitted.encode_items())
    assert d["bits"] == 16 and len(d["item_bit_mean"]) == 16
    assert 1 <= d["item_distinct_codes"] <= len(fitted.item_ids)
    assert d["item_largest_bucket"] >= 1
    q = d["user_item_hamming_quantiles"]
    assert 0 <= q["0.0"] <= q["0.5"] <= q["1.0"] <= 16
    assert 0 <= d["item_bit_corr_mean_abs"] <= d["item_bit_corr_max_abs"] <= 1


def test_bad_options():
    with pytest.raises(DataError):
        TwinTowerHasher(12)
    with pytest.raises(TypeError):
        TwinTowerHasher(16, no_such_option=1)
    with pytest.raises(ModelError):
        TwinTowerHasher(16).encode_users()


def test_floats_are_the_relaxed_codes(fitted, split):
    from rechash.codes import binarize

    uf, itf = fitted.user_floats(), fitted.item_floats()
    assert np.abs(uf).max() < 1.0 and np.abs(itf).max() < 1.0  # h = tanh(beta z)
    assert np.array_equal(binarize(uf), fitted.encode_users()) and np.array_equal(binarize(itf), fitted.encode_items())
    codes, floats = fitted.encode_history(split.train.matrix[:10])
    assert np.abs(floats).max() < 1.0 and np.array_equal(binarize(floats), codes)


def test_default_budget_and_schedule(split, fast):
    from rechash.model import TrainConfig

    c = TrainConfig()
    assert c.epochs is None and c.n_epochs(300) == 3 and c.n_epochs(32) == 28 and TrainConfig(epochs=5).n_epochs(1) == 5
    opts = {k: v for k, v in fast.items() if k != "epochs"}
    m = TwinTowerHasher(16, seed=0, init="random", auto_steps=2 * len(split.train.matrix.indices) // 128, **opts)
    m.fit(split.train, split.valid)
    assert [log.epoch for log in m.history_] == [0, 1, 2]
