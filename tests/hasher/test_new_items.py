"""Items unseen at training: codes from side features (encode_new_items), appended to a model
directory (add_items, rechash add-items), served by CodeRecommender / rechash candidates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rechash.codes.bits import binarize
from rechash.data import IdMap, SideFeatures, synthetic
from rechash.errors import DataError, ModelError
from rechash.hasher.twin_tower import TwinTowerHasher
from rechash.models.code import CodeRecommender

FAST = dict(epochs=2, batch_size=256, negatives=64, progress=False, threads=1)
DROP = dict(FAST, item_id_dropout=0.5)  # a feature path trained to stand alone (no warning)
KINDS = {"tags": "multi"}


def feature_frame(ids, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    return pd.DataFrame(
        {
            "item_id": ids,
            "genre": rng.choice(list("abcd"), n),
            "tags": [" ".join(rng.choice(list("wxyz"), 2)) for _ in range(n)],
            "price": rng.normal(size=n).round(3),
        }
    )


@pytest.fixture(scope="module")
def data():
    return synthetic(n_users=200, n_items=120, seed=3)


@pytest.fixture(scope="module")
def frame(data):
    return feature_frame(data.item_ids.external_ids)


@pytest.fixture(scope="module")
def model(data, frame):
    side = SideFeatures.from_frame(frame, data.item_ids, "item_id", kinds=KINDS)
    return TwinTowerHasher(32, seed=0, **DROP).fit(data, item_features=side)  # with the ALS teacher


@pytest.fixture(scope="module")
def model_no_teacher(data, frame):
    side = SideFeatures.from_frame(frame, data.item_ids, "item_id", kinds=KINDS)
    return TwinTowerHasher(32, seed=0, **DROP).fit(data, teacher=None, item_features=side)


def new_side(frame: pd.DataFrame, rows, new_ids) -> SideFeatures:
    f = frame.iloc[list(rows)].copy()
    f["item_id"] = new_ids
    return SideFeatures.from_frame(f, IdMap(new_ids), "item_id", kinds=KINDS)


def copy_model(model, tmp_path):
    model.save(tmp_path / "orig")
    return TwinTowerHasher.load(tmp_path / "orig")


# ---- encode_new_items ------------------------------------------------------------------------
def test_schema_reproduces_the_training_matrix(model, data, frame):
    side = SideFeatures.from_frame(frame, data.item_ids, "item_id", kinds=KINDS)
    x, unknown = model.item_schema_.encode(side)
    np.testing.assert_array_equal(x, model.towers.item.features.numpy())
    assert unknown == {"genre": 0, "tags": 0} and model.item_schema_.width == x.shape[1]


def test_encode_new_items_shapes_and_determinism(model, frame):
    side = new_side(frame, range(7), np.arange(1000, 1007))
    codes, floats = model.encode_new_items(side)
    assert codes.shape == (7, 4) and codes.dtype == np.uint8
    assert floats.shape == (7, model.teacher_.dim) and floats.dtype == np.float32 and np.isfinite(floats).all()
    again = model.encode_new_items(side)
    np.testing.assert_array_equal(codes, again[0])
    np.testing.assert_array_equal(floats, again[1])
    x, _ = model.item_schema_.encode(side)  # an array in the training layout is the same input
    np.testing.assert_array_equal(model.encode_new_items(x)[0], codes)
    empty = model.encode_new_items(np.zeros((0, x.shape[1]), np.float32))
    assert empty[0].shape == (0, 4)


def test_same_features_as_a_training_item_give_its_feature_only_code(model, model_no_teacher, frame):
    rows = [3, 17, 40]
    side = new_side(frame, rows, np.arange(2000, 2003))
    for m in (model, model_no_teacher):
        codes, floats = m.encode_new_items(side)
        ref = m.item_feature_floats(rows)  # the training items through the tower with their ID part 0
        np.testing.assert_array_equal(codes, binarize(ref))
    np.testing.assert_allclose(
        model_no_teacher.encode_new_items(side)[1], model_no_teacher.item_feature_floats(rows), atol=1e-6
    )
    w, b = model.teacher_map()  # with a teacher: the ridge map of those floats into the teacher's space
    np.testing.assert_allclose(
        model.encode_new_items(side)[1], model.item_feature_floats(rows) @ w + b, rtol=1e-5, atol=1e-5
    )


def test_teacher_map_scales(model):
    n = model.n_trained_items
    h = model.item_feature_floats(np.arange(n))
    v = model.teacher_.item_factors[:n]
    known = model.towers.item.known.numpy()[:n] > 0
    norms = {}
    for scale in ("mean", "exposure", "variance"):
        w, b = model.teacher_map(scale)
        assert w.shape == (model.bits, model.teacher_.dim) and b.shape == (model.teacher_.dim,)
        mapped = h[known] @ w + b
        np.testing.assert_allclose(mapped.mean(axis=0), v[known].mean(axis=0), atol=1e-4)  # scaled about the mean item
        norms[scale] = np.linalg.norm(w)
    assert norms["mean"] < norms["variance"] and norms["mean"] <= norms["exposure"]
    np.testing.assert_array_equal(model.teacher_map()[0], model.teacher_map("exposure")[0])
    with pytest.raises(DataError, match="scale must be one of"):
        model.teacher_map("bogus")


def test_a_feature_path_trained_without_item_id_dropout_warns(data, frame):
    side = SideFeatures.from_frame(frame, data.item_ids, "item_id", kinds=KINDS)
    m = TwinTowerHasher(16, seed=0, **{**FAST, "epochs": 1}).fit(data, teacher=None, item_features=side)
    assert m.config.item_id_dropout == 0 and "item_id_dropout" in m.feature_path_warning()
    with pytest.warns(UserWarning, match="item_id_dropout=0.5"):
        m.encode_new_items(new_side(frame, [0], [7000]))


def test_unknown_tokens_are_ignored_and_counted(model, frame):
    f = frame.iloc[:2].copy()
    f["item_id"] = [5000, 5001]
    f["genre"] = ["never-seen", "a"]
    side = SideFeatures.from_frame(f, IdMap([5000, 5001]), "item_id", kinds=KINDS)
    x, unknown = model.item_schema_.encode(side)
    assert unknown["genre"] == 1 and x.shape == (2, model.item_schema_.width)
    assert model.add_items.__doc__  # (the report of add_items carries the same counts, tested below)


def test_errors(model, data, frame):
    plain = TwinTowerHasher(16, seed=0, **FAST).fit(data, teacher=None)
    with pytest.raises(DataError, match="fitted without item features"):
        plain.encode_new_items(np.zeros((1, 3), np.float32))
    with pytest.raises(DataError, match=r"expected an \(n, \d+\) table"):
        model.encode_new_items(np.zeros((2, 3), np.float32))
    side = new_side(frame, [0], [9000])
    no_genre = SideFeatures(side.ids, tuple(f for f in side.features if f.name != "genre"))
    with pytest.raises(DataError, match="no column 'genre'"):
        model.encode_new_items(no_genre)
    arr = TwinTowerHasher(16, seed=0, **DROP).fit(
        data, teacher=None, item_features=np.ones((data.n_items, 3), np.float32)
    )
    assert arr.item_schema_ is None and arr.encode_new_items(np.ones((2, 3)))[0].shape == (2, 2)
    with pytest.raises(DataError, match="unnamed feature array"):
        arr.encode_new_items(side)
    with pytest.raises(DataError, match="already in the model"):
        model.add_items([data.item_ids.external_ids[0]], new_side(frame, [0], [data.item_ids.external_ids[0]]))


# ---- add_items, model directories -------------------------------------------------------------
def test_add_items_round_trip_through_a_model_directory(model, data, frame, tmp_path):
    from rechash.hasher import persistence as A

    m = copy_model(model, tmp_path)
    n_old = len(m.item_ids)
    new_ids = np.arange(10_000, 10_010)
    report = m.add_items(new_ids, new_side(frame, range(10), new_ids))
    assert report["added"] == 10 and report["n_items"] == n_old + 10 and m.n_trained_items == n_old
    m.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / A.CONFIG).read_text())
    assert A.ITEM_FEATURES in config["files"] and config["training_run"]["added_items"] == 10

    loaded = TwinTowerHasher.load(tmp_path / "m")
    assert loaded.added_items_ == 10 and loaded.item_ids == m.item_ids
    np.testing.assert_array_equal(loaded.encode_items(), m.encode_items())
    np.testing.assert_array_equal(loaded.encode_items(np.arange(n_old)), model.encode_items())  # old items untouched
    assert loaded.seen_.shape == (data.n_users, n_old + 10) and loaded.seen_[:, n_old:].nnz == 0
    assert loaded.teacher_.item_factors.shape[0] == n_old + 10

    rec = CodeRecommender.load(tmp_path / "m")
    assert rec.n_items == n_old + 10 and rec.item_popularity[n_old:].sum() == 0
    ids, scores = rec.recommend(np.arange(data.n_users), N=30)
    assert np.isin(ids, np.arange(n_old, n_old + 10)).any() and np.isfinite(scores).all()
    frame_out = rec.recommend_frame(k=30)
    assert frame_out["item_id"].isin(new_ids).any()
    ids, _ = rec.recommend(0, N=5, items=np.arange(n_old, n_old + 10))  # a new item can be ranked alone
    assert set(ids) <= set(range(n_old, n_old + 10))

    # histories leave the added items out: a history of new items only is an empty history
    hist = np.zeros((1, n_old + 10), np.float32)
    hist[0, n_old:] = 1
    empty = np.zeros_like(hist)
    np.testing.assert_array_equal(loaded.encode_history(hist)[0], loaded.encode_history(empty)[0])

    # checksums hold: a changed schema file is refused
    path = tmp_path / "m" / A.ITEM_FEATURES
    path.write_text(path.read_text().replace('"a"', '"A"'))
    with pytest.raises(ModelError, match="item_features.json"):
        TwinTowerHasher.load(tmp_path / "m")


def test_add_items_scale_sets_the_new_items_teacher_floats(model, frame, tmp_path):
    m = copy_model(model, tmp_path)
    n_old = m.n_trained_items
    side = new_side(frame, [4, 5], [30_000, 30_001])
    with pytest.raises(DataError, match="scale must be one of"):
        m.add_items([30_000, 30_001], side, scale="bogus")
    assert len(m.item_ids) == n_old  # nothing changed
    m.add_items([30_000, 30_001], side, scale="mean")
    w, b = m.teacher_map("mean")
    np.testing.assert_allclose(
        m.teacher_.item_factors[n_old:], m.item_feature_floats([4, 5]) @ w + b, rtol=1e-5, atol=1e-5
    )


def test_code_recommender_add_items_saves_them(model, data, frame, tmp_path):
    rec = CodeRecommender.from_model(copy_model(model, tmp_path), tie_rule="id")
    new_ids = np.arange(20_000, 20_003)
    out = rec.add_items(new_ids, new_side(frame, [1, 2, 3], new_ids))
    assert out.n_items == rec.n_items + 3 and out.seen.shape == (data.n_users, rec.n_items + 3) and out.tie_rule == "id"
    out.save(tmp_path / "r")
    back = CodeRecommender.load(tmp_path / "r")
    np.testing.assert_array_equal(back.item_codes, out.item_codes)
    np.testing.assert_array_equal(back.item_floats, out.item_floats)
    with pytest.raises(ModelError, match="from a TwinTowerHasher"):
        CodeRecommender(out.item_codes, user_codes=out.user_codes, reranker=None).add_items([1], None)


# ---- the command line ---------------------------------------------------------------------------
def run(argv, capsys):
    from rechash.cli import main

    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("cli")
    frame = data.to_frame()
    items = data.item_ids.external_ids
    trained = items[:100]
    frame[frame["item_id"].isin(trained)][["user_id", "item_id"]].to_csv(d / "train.csv", index=False)
    feats = feature_frame(items, seed=1)
    feats.to_csv(d / "items.csv", index=False)
    recbole = d / "items.item"  # the same table as a RecBole .item file
    with open(recbole, "w") as fh:
        fh.write("item_id:token\tgenre:token\ttags:token_seq\tprice:float\n")
        for row in feats.itertuples(index=False):
            fh.write(f"{row.item_id}\t{row.genre}\t{row.tags}\t{row.price}\n")
    return d, items


def fit_cli(d, features, capsys, out="m", extra=()):
    status, _, err = run(
        [
            "fit",
            d / "train.csv",
            "--out",
            d / out,
            "--item-features",
            features,
            "--bits",
            "16",
            "--epochs",
            "1",
            "--teacher",
            "none",
            "--negatives",
            "16",
            "--batch-size",
            "256",
            "--no-progress",
            "--threads",
            "1",
            *extra,
        ],
        capsys,
    )
    assert status == 0, err
    return d / out, err


def test_cli_fit_and_add_items(cli_files, capsys):
    d, items = cli_files
    model_dir, err = fit_cli(d, d / "items.item", capsys, extra=["--item-id-dropout", "0.5"])
    assert "item features: 3 columns" in err and "20 rows of items not in TRAIN ignored" in err
    m = TwinTowerHasher.load(model_dir)
    assert len(m.item_ids) == 100 and m.item_schema_.names == ["genre", "tags", "price"]

    status, out, err = run(["add-items", model_dir, "--item-features", d / "items.csv"], capsys)
    assert status == 0, err
    assert "added 20 items" in out and "120 items now" in out and "skipped 100 rows" in out and "warning" not in err
    m2 = TwinTowerHasher.load(model_dir)
    assert m2.added_items_ == 20 and set(m2.item_ids.external_ids[100:]) == set(items[100:])
    ref = m.encode_new_items(
        SideFeatures.from_frame(feature_frame(items, seed=1).iloc[100:], IdMap(items[100:]), "item_id", kinds=KINDS)
    )[0]
    order = m2.item_ids.to_internal(items[100:])
    np.testing.assert_array_equal(m2.encode_items(order), ref)

    status, out, err = run(["candidates", model_dir, "--out", d / "c.parquet", "--k", "40", "--no-progress"], capsys)
    assert status == 0, err
    cands = pd.read_parquet(d / "c.parquet")
    assert cands["item_id"].isin(items[100:]).any()


def test_cli_add_items_errors(cli_files, capsys, tmp_path):
    d, items = cli_files
    model_dir, _ = fit_cli(d, d / "items.csv", capsys, out="m_err")

    status, _, err = run(["add-items", model_dir, "--item-features", d / "items.csv", "--rerank-scale", "max"], capsys)
    assert status == 2 and err.count("\n") == 1 and "--rerank-scale" in err

    status, _, err = run(["add-items", tmp_path / "nope", "--item-features", d / "items.csv"], capsys)
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1 and "not a model directory" in err

    pd.read_csv(d / "items.csv").drop(columns="item_id").to_csv(tmp_path / "noid.csv", index=False)
    status, _, err = run(["add-items", model_dir, "--item-features", tmp_path / "noid.csv"], capsys)
    assert status == 2 and err.count("\n") == 1 and "missing id column 'item_id'" in err

    pd.read_csv(d / "items.csv").iloc[:50].to_csv(tmp_path / "known.csv", index=False)
    status, _, err = run(["add-items", model_dir, "--item-features", tmp_path / "known.csv"], capsys)
    assert status == 2 and err.count("\n") == 1 and "all 50 item ids are already in the model" in err

    pd.read_csv(d / "items.csv").drop(columns="genre").to_csv(tmp_path / "nogenre.csv", index=False)
    status, _, err = run(["add-items", model_dir, "--item-features", tmp_path / "nogenre.csv"], capsys)
    assert status == 2 and "no column 'genre'" in err
    assert TwinTowerHasher.load(model_dir).added_items_ == 0  # nothing was written by the failures

    status, out, err = run(
        ["add-items", model_dir, "--item-features", d / "items.csv", "--out", tmp_path / "m2"], capsys
    )
    assert status == 0 and "warning: this model was trained with item_id_dropout 0" in err and "added 20 items" in out
    assert (
        TwinTowerHasher.load(tmp_path / "m2").added_items_ == 20 and TwinTowerHasher.load(model_dir).added_items_ == 0
    )

    plain = tmp_path / "plain"
    assert (
        run(
            [
                "fit",
                d / "train.csv",
                "--out",
                plain,
                "--bits",
                "16",
                "--epochs",
                "1",
                "--teacher",
                "none",
                "--negatives",
                "16",
                "--no-progress",
                "--threads",
                "1",
            ],
            capsys,
        )[0]
        == 0
    )
    status, _, err = run(["add-items", plain, "--item-features", d / "items.csv"], capsys)
    assert status == 2 and "fitted without item features" in err

    status, _, err = run(
        [
            "fit",
            d / "train.csv",
            "--out",
            tmp_path / "x",
            "--item-features",
            tmp_path / "noid.csv",
            "--bits",
            "16",
            "--epochs",
            "1",
            "--teacher",
            "none",
            "--no-progress",
        ],
        capsys,
    )
    assert (
        status == 2 and err.count("\n") == 1 and "--item-features" in err and "noid.csv" in err
    )  # ids read from 'genre'
    pd.read_csv(d / "items.csv").assign(item_id=lambda f: f["item_id"] + 10**6).to_csv(
        tmp_path / "other.csv", index=False
    )
    status, _, err = run(
        [
            "fit",
            d / "train.csv",
            "--out",
            tmp_path / "x",
            "--item-features",
            tmp_path / "other.csv",
            "--bits",
            "16",
            "--epochs",
            "1",
            "--teacher",
            "none",
            "--no-progress",
        ],
        capsys,
    )
    assert status == 2 and "no row names a training item" in err
