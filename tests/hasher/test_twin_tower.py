from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rechash.als.fit import fit_als
from rechash.codes.bits import hamming_distances
from rechash.codes.diagnostics import code_diagnostics
from rechash.errors import DataError, ModelError
from rechash.evaluation import full_ranking, per_user_metrics
from rechash.hasher.trainer import hamming_recall
from rechash.hasher.twin_tower import TwinTowerHasher


def test_loss_decreases(split, fast):
    m = TwinTowerHasher(16, seed=1, init="random", **{**fast, "epochs": 4}).fit(split.train, teacher=None)
    losses = [log.loss for log in m.history_ if log.epoch > 0]
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
    a = TwinTowerHasher(16, seed=3, init="random", **fast).fit(split.train, teacher=None)
    b = TwinTowerHasher(16, seed=3, init="random", **fast).fit(split.train, teacher=None)
    c = TwinTowerHasher(16, seed=4, init="random", **fast).fit(split.train, teacher=None)
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
    m = TwinTowerHasher(16, seed=0, init="random", id_dropout=0.5, **{**fast, "epochs": 4}).fit(
        train.subset(keep), teacher=None
    )
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
    m = TwinTowerHasher(16, seed=0, init="random", user_id=False, **fast).fit(split.train, teacher=None)
    codes, floats = m.encode_history(split.train.matrix)
    np.testing.assert_allclose(floats, m.user_floats(), rtol=1e-5, atol=1e-5)


def test_id_only_model_has_no_history_encoder(split, fast):
    m = TwinTowerHasher(16, seed=0, init="random", user_history=False, **{**fast, "epochs": 1}).fit(
        split.train, teacher=None
    )
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
        16,
        seed=0,
        init="random",
        w_softmax=0.0,
        w_bpr=1.0,
        relaxation="ste",
        w_quant=0.1,
        w_balance=0.1,
        w_decor=0.1,
        in_batch=True,
        negative_sampling="popularity",
        **{**fast, "epochs": 1},
    ).fit(split.train, teacher=None)
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
    m = TwinTowerHasher(16, seed=0, init="random", **fast).fit(sub, teacher=None, item_features=feats)
    z = m.item_floats(cold)
    np.testing.assert_array_equal(z[0], z[1])  # no interactions: codes come from features alone
    assert np.abs(z).sum() > 0
    with pytest.raises(DataError):
        TwinTowerHasher(16, **fast).fit(sub, teacher=None, item_features=feats[:-1])


def test_item_side_features_structure(split, fast):
    from rechash.data import SideFeatures
    from rechash.data.features import Feature

    n = split.train.n_items
    genre = Feature(
        "genre",
        "categorical",
        (np.arange(n) % 3 + 1).astype(np.int32),
        vocab=np.array([None, "a", "b", "c"], dtype=object),
    )
    year = Feature("year", "numeric", np.linspace(1990, 2000, n).astype(np.float32))
    side = SideFeatures(split.train.item_ids, (genre, year))
    m = TwinTowerHasher(16, seed=0, init="random", **{**fast, "epochs": 1}).fit(
        split.train, teacher=None, item_features=side
    )
    assert m.towers.item.features.shape == (n, 1 + genre.cardinality)  # z-scored year + one-hot genre


def test_diagnostics(fitted):
    d = code_diagnostics(fitted.encode_users(), fitted.encode_items())
    assert d["bits"] == 16 and len(d["item_bit_mean"]) == 16
    assert 1 <= d["item_distinct_codes"] <= len(fitted.item_ids)
    assert d["item_largest_bucket"] >= 1
    q = d["user_item_hamming_quantiles"]
    assert 0 <= q["0.0"] <= q["0.5"] <= q["1.0"] <= 16
    assert 0 <= d["item_bit_corr_mean_abs"] <= d["item_bit_corr_max_abs"] <= 1


@pytest.mark.parametrize(
    "options, option",
    [
        ({"bits": 12}, "--bits"),
        ({"bits": 8}, "--bits"),
        ({"bits": 264}, "--bits"),
        ({"bits": "64"}, "--bits"),
        ({"epochs": 0}, "--epochs"),
        ({"epochs": -1}, "--epochs"),
        ({"epochs": 1.5}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"lr": float("nan")}, "--lr"),
        ({"lr": 0.0}, "--lr"),
        ({"lr": float("inf")}, "--lr"),
        ({"tau": 0.0}, "--tau"),
        ({"tau": -1.0}, "--tau"),
        ({"patience": 0}, "--patience"),
        ({"max_seconds": -5.0}, "--max-seconds"),
        ({"w_quant": -1.0}, "--w-quant"),
        ({"relaxation": "sigmoid"}, "--relaxation"),
        ({"lr_schedule": "step"}, "--lr-schedule"),
        ({"id_dropout": 1.0}, "--id-dropout"),
        ({"negatives": -1}, "--negatives"),
        ({"rank_r": 0}, "--rank-r"),
    ],
)
def test_option_ranges_are_checked_before_any_data(options, option):
    from rechash.errors import ConfigError

    options = {"bits": 16, **options}
    with pytest.raises(ConfigError, match=f"^{option}: expected"):
        TwinTowerHasher(**options)


def test_non_finite_loss_names_the_options(split, fast):
    from rechash.errors import TrainingError

    with pytest.raises(TrainingError, match="epoch 1, step 1: .*--lr.*--tau"):
        TwinTowerHasher(16, seed=0, init="random", **{**fast, "tau": 1e-45}).fit(split.train, split.valid, teacher=None)


def test_bad_options():
    with pytest.raises(TypeError):
        TwinTowerHasher(16, no_such_option=1)
    with pytest.raises(ModelError):
        TwinTowerHasher(16).encode_users()


def test_floats_are_the_relaxed_codes(fitted, split):
    from rechash.codes.bits import binarize

    uf, itf = fitted.user_floats(), fitted.item_floats()
    assert np.abs(uf).max() < 1.0 and np.abs(itf).max() < 1.0  # h = tanh(beta z)
    assert np.array_equal(binarize(uf), fitted.encode_users()) and np.array_equal(binarize(itf), fitted.encode_items())
    codes, floats = fitted.encode_history(split.train.matrix[:10])
    assert np.abs(floats).max() < 1.0 and np.array_equal(binarize(floats), codes)


def test_epoch_cap_follows_density():
    from rechash.hasher.config import TrainConfig

    c = TrainConfig()
    assert c.epochs is None
    assert c.n_epochs(6_000, 600_000) == 20  # dense (100 per user): ceil(2000 / 100)
    assert c.n_epochs(10_000, 4_000_000) == 10  # denser still: the lower clamp
    assert c.n_epochs(50_000, 550_000) == 182  # ceil(2000 / 11)
    assert c.n_epochs(1_000, 1_000) == 200  # one interaction per user: the upper clamp
    assert TrainConfig(epochs=5).n_epochs(1, 1) == 5


def test_default_negatives_follow_the_logit_budget():
    from rechash.hasher.config import TrainConfig

    c = TrainConfig()
    assert c.negatives is None
    assert c.n_negatives(64_315) == 4096  # small data: the upper clamp
    assert c.n_negatives(284_530) == 3584  # 2^30 / 284,530 = 3,773 -> the multiple of 512 below
    assert c.n_negatives(590_733) == 1536  # 1,817
    assert c.n_negatives(800_000) == 1024  # 1,342
    assert c.n_negatives(10**8) == 512  # huge data: the lower clamp
    assert TrainConfig(epoch_logits=2**20).n_negatives(1_000) == 1024
    assert TrainConfig(negatives=7).n_negatives(10**8) == 7


def test_early_stopping_stops_and_restores_the_best_epoch(split, fast):
    opts = {**fast, "epochs": 40, "lr": 0.2, "patience": 2}  # a high lr overshoots soon
    m = TwinTowerHasher(16, seed=0, init="random", **opts).fit(split.train, split.valid, teacher=None)
    scores = [log.valid_recall for log in m.history_]
    best = max(range(len(scores)), key=lambda e: (scores[e], -e))
    assert m.stop_reason_ == "patience" and len(scores) - 1 < 40
    assert len(scores) - 1 == best + 2 and [log.best for log in m.history_].count(True) >= 1
    # the kept codes are those of the best epoch
    r = hamming_recall(m.encode_users(), m.encode_items(), split.valid.matrix, split.train.matrix)
    assert r == pytest.approx(scores[best])
    # the plateau schedule halved the lr after each epoch without improvement
    lrs = [log.extra["lr"] for log in m.history_[1:]]
    assert lrs[-1] == pytest.approx(lrs[best] / 2 ** (len(lrs) - best - 1), rel=1e-6) if best else True


def test_wall_clock_cap(split, fast):
    m = TwinTowerHasher(16, seed=0, init="random", **{**fast, "epochs": 50, "max_seconds": 1e-9})
    m.fit(split.train, split.valid, teacher=None)
    assert m.stop_reason_ == "time cap" and [log.epoch for log in m.history_] == [0, 1]


def test_without_valid_a_sample_is_held_out(split, fast):
    from rechash.hasher.sampling import holdout_mask

    mask = holdout_mask(split.train.matrix, np.random.default_rng(0), low=50)
    rows = split.train.rows()[mask]
    assert len(rows) == len(np.unique(rows)) == 50  # one interaction each of 50 users
    assert (np.diff(split.train.matrix.indptr)[rows] >= 3).all()
    m = TwinTowerHasher(16, seed=0, init="random", **{**fast, "epochs": 30}).fit(split.train, teacher=None)
    assert m.holdout_ == (np.diff(split.train.matrix.indptr) >= 3).sum() and m.stop_reason_ == "patience"
    assert all(log.valid_recall is not None for log in m.history_)
    assert m.seen_.nnz == split.train.nnz  # the model still filters every training item


def test_quantization_loss_pulls_codes_to_the_corners(split, fast):
    def gap(w):
        opts = {**fast, "epochs": 6, "patience": 6}
        m = TwinTowerHasher(16, seed=0, init="random", w_quant=w, **opts).fit(split.train, split.valid, teacher=None)
        return float(np.mean(1.0 - np.abs(np.vstack([m.user_floats(), m.item_floats()]))))

    assert gap(1.0) < gap(0.0) - 0.05


def test_ranking_distillation_raises_agreement_with_the_teacher(split, fast):
    from rechash.hasher.trainer import teacher_top_items

    als = fit_als(split.train, factors=16, regularization=1.0, alpha=10.0, iterations=5, num_threads=1)
    top = teacher_top_items(als.user_factors, als.item_factors, split.train.matrix, 10)
    assert not split.train.matrix[np.repeat(np.arange(len(top)), 10), top.ravel()].any()  # seen items excluded

    def agreement(**opts):
        # the towers' own codes, no refinement or re-ranker: the refinement pulls both toward the teacher's top-K
        m = TwinTowerHasher(
            16,
            seed=0,
            init="random",
            refine=False,
            learned_rerank=False,
            **{**fast, "epochs": 6, "patience": 6, **opts},
        )
        m.fit(split.train, split.valid, teacher=als)
        users = np.arange(split.train.n_users)
        ids, _ = full_ranking(
            lambda b: -hamming_distances(m.encode_users(b), m.encode_items()), users, 10, split.train.matrix
        )
        return np.mean([len(np.intersect1d(a, b)) for a, b in zip(ids, top)]) / 10

    assert agreement(w_rank=2.0, w_distill=0.0) > agreement(w_rank=0.0, w_distill=0.0) + 0.02


def test_default_teacher_is_tuned_on_valid_and_recorded(split, fast):
    m = TwinTowerHasher(16, seed=0, **{**fast, "epochs": 1}).fit(split.train, split.valid)
    info = m.teacher_info_
    assert info["kind"] == "als" and info["params"]["factors"] == 64
    grid = info["grid"]
    best = max(grid, key=lambda r: r["valid_recall@20"])
    assert info["valid_recall@20"] == best["valid_recall@20"] and not best["edge"]
    assert {"regularization", "alpha"} <= set(info["params"])


def test_adaptive_grid_widens_until_interior(split):
    from rechash.als.fit import grid_search
    from rechash.data.embeddings import FloatEmbeddings

    truth = split.valid.matrix.toarray()
    calls = []

    def fit(train, a, b):  # validation recall peaks at a = 8, b = 1
        calls.append((a, b))
        w = np.exp(-abs(np.log2(a / 8)) - abs(np.log2(b)))
        noise = np.random.default_rng(0).normal(size=truth.shape)
        return FloatEmbeddings(w * truth + (1 - w) * noise, np.eye(train.n_items))

    bounds = {"a": (0.5, 64.0), "b": (0.25, 16.0)}
    params, table = grid_search(
        fit, split.train, split.valid, {"a": (1.0, 2.0, 4.0), "b": (1.0, 2.0, 4.0)}, bounds=bounds
    )
    assert (params["a"], params["b"]) == (8.0, 1.0)
    assert {16.0} <= {a for a, _ in calls} and {0.5} <= {b for _, b in calls}  # widened past the optimum
    assert len(calls) == len(set(calls)) and not table["edge"].iloc[0]
    assert table.attrs["embeddings"] is not None
    # without bounds the grid stays as given and the best is on its edge
    params, table = grid_search(fit, split.train, split.valid, {"a": (1.0, 2.0), "b": (1.0, 2.0)})
    assert (params["a"], params["b"]) == (2.0, 1.0) and len(table) == 4


def test_graph_propagation_is_baked_into_the_saved_codes(split, fast, tmp_path):
    m = TwinTowerHasher(16, seed=0, init="random", graph_layers=2, **{**fast, "epochs": 4, "patience": 4})
    m.fit(split.train, split.valid, teacher=None)
    best = max(log.valid_recall for log in m.history_)
    # inference is a lookup of the propagated rows: the kept codes score the best validation epoch
    assert hamming_recall(m.encode_users(), m.encode_items(), split.valid.matrix, split.train.matrix) == pytest.approx(
        best
    )
    m.save(tmp_path / "g")
    assert np.array_equal(TwinTowerHasher.load(tmp_path / "g").encode_items(), m.encode_items())
    from rechash.errors import ConfigError

    with pytest.raises(ConfigError, match="--graph-layers"):
        TwinTowerHasher(16, user_id=False, graph_layers=1, **fast).fit(split.train, split.valid, teacher=None)


def test_als_teacher_reranks_and_folds_in_new_users(split, fast, tmp_path):
    import implicit

    from rechash import CodeRecommender

    als = fit_als(split.train, factors=16, regularization=1.0, alpha=10.0, iterations=5, num_threads=1)
    assert als.fold_in == {"regularization": 1.0, "alpha": 10.0}
    m = TwinTowerHasher(16, seed=0, **fast).fit(split.train, split.valid, teacher=als)
    np.testing.assert_array_equal(m.rerank_floats()[1], als.item_factors)  # the default re-ranker's floats
    m.save(tmp_path / "m")
    loaded = TwinTowerHasher.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.rerank_floats()[0], als.user_factors)
    assert loaded.teacher_.fold_in == als.fold_in
    # a new user's re-ranking vector is implicit's own recalculate_user
    ref = implicit.cpu.als.AlternatingLeastSquares(
        factors=16, regularization=1.0, alpha=10.0, iterations=2, random_state=0, num_threads=1
    )
    ref.item_factors = als.item_factors
    want = ref.recalculate_user(np.arange(4), split.train.matrix[:4].astype(np.float32))
    np.testing.assert_allclose(loaded.encode_new_users(split.train.matrix[:4])[1], want, rtol=1e-4, atol=1e-5)
    # the dot re-ranker scores the Hamming pool with the teacher's dot product
    rec = CodeRecommender.from_model(loaded, seen=split.train.matrix, reranker="dot")
    ids, scores = rec.recommend(np.arange(5), N=10)
    np.testing.assert_allclose(scores, np.einsum("ud,ukd->uk", als.user_factors[:5], als.item_factors[ids]), rtol=1e-5)
    # ... and the pool of a user folded in from a history with implicit's recalculate_user vector
    ids, scores = rec.recommend(np.arange(4), split.train.matrix[:4], N=10, recalculate_user=True)
    np.testing.assert_allclose(scores, np.einsum("ud,ukd->uk", want, als.item_factors[ids]), rtol=1e-4, atol=1e-5)
    # embeddings from elsewhere (no fold-in parameters) only distil: the towers' floats re-rank
    other = TwinTowerHasher(16, seed=0, **fast).fit(
        split.train, split.valid, teacher=type(als)(als.user_factors, als.item_factors)
    )
    assert other.teacher_ is None and np.array_equal(other.rerank_floats()[0], other.user_floats())
    # a tampered teacher file is refused
    (tmp_path / "m" / "teacher.npz").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="teacher.npz"):
        TwinTowerHasher.load(tmp_path / "m")


def test_teacher_rows_follow_its_id_maps(split, fast):
    from rechash.data.embeddings import FloatEmbeddings

    als = fit_als(split.train, factors=16, regularization=1.0, alpha=10.0, iterations=3, num_threads=1)
    assert als.user_ids == split.train.user_ids and als.item_ids == split.train.item_ids
    rng = np.random.default_rng(0)
    pu, pi = rng.permutation(split.train.n_users), rng.permutation(split.train.n_items)
    shuffled = FloatEmbeddings(
        als.user_factors[pu],
        als.item_factors[pi],
        fold_in=als.fold_in,
        user_ids=split.train.user_ids.external_ids[pu],
        item_ids=split.train.item_ids.external_ids[pi],
    )
    back = shuffled.aligned_to(split.train.user_ids, split.train.item_ids)
    np.testing.assert_array_equal(back.user_factors, als.user_factors)
    np.testing.assert_array_equal(back.item_factors, als.item_factors)
    a = TwinTowerHasher(16, seed=0, **fast).fit(split.train, split.valid, teacher=als)
    b = TwinTowerHasher(16, seed=0, **fast).fit(split.train, split.valid, teacher=shuffled)
    np.testing.assert_array_equal(a.encode_items(), b.encode_items())  # realigned: the same model
    # ids that do not match the data's are refused naming the first mismatch, never misaligned
    wrong = FloatEmbeddings(als.user_factors, als.item_factors, item_ids=[f"m{i}" for i in range(split.train.n_items)])
    with pytest.raises(DataError, match="item 0 of the data is not among the item_ids"):
        TwinTowerHasher(16, **fast).fit(split.train, split.valid, teacher=wrong)
    fewer = FloatEmbeddings(als.user_factors[1:], als.item_factors, user_ids=split.train.user_ids.external_ids[1:])
    with pytest.raises(DataError, match="user 0 of the data"):
        TwinTowerHasher(16, **fast).fit(split.train, split.valid, teacher=fewer)
    with pytest.warns(UserWarning, match="no user_ids given"):
        FloatEmbeddings(als.user_factors, als.item_factors).aligned_to(split.train.user_ids, split.train.item_ids)
