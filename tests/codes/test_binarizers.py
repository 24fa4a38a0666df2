from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from rechash.codes.binarizers import ITQ, RandomRotationLSH
from rechash.codes.bits import binarize, hamming_distances
from rechash.errors import ConfigError, DataError, ModelError


@pytest.fixture(scope="module")
def x():
    rng = np.random.default_rng(0)
    return rng.normal(size=(500, 32)) * np.linspace(3, 0.2, 32)  # anisotropic


def _quant_error(t, x):
    v = t.transform(x)
    return float(np.square(np.sign(v) - v / np.abs(v).mean()).mean())


def test_itq_shapes_and_monotone_loss(x):
    itq = ITQ(16, n_iter=30).fit(x)
    assert itq.transform(x).shape == (500, 16) and itq.encode(x).shape == (500, 2)
    assert itq.transform(x).dtype == np.float32 and itq.encode(x).dtype == np.uint8
    loss = np.array(itq.quantization_loss_)
    assert len(loss) == 30 and (np.diff(loss) <= 1e-9).all() and loss[-1] < loss[0]
    np.testing.assert_allclose(itq.rotation_ @ itq.rotation_.T, np.eye(16), atol=1e-8)


def test_itq_beats_random_rotation(x):
    itq = ITQ(16, center=True).fit(x)
    lsh = RandomRotationLSH(16, center=True).fit(x)
    assert _quant_error(itq, x) < _quant_error(lsh, x)
    # neighbours in float space stay closer in Hamming space with ITQ than with LSH
    q = x[:50]
    true_nn = np.argsort(-(q @ x.T), axis=1)[:, 1:11]

    def overlap(t):
        d = hamming_distances(t.encode(q), t.encode(x)).astype(float)
        d[np.arange(50), np.arange(50)] = 1e9
        got = np.argsort(d, axis=1, kind="stable")[:, :10]
        return np.mean([len(set(a) & set(b)) for a, b in zip(got, true_nn)])

    assert overlap(itq) >= overlap(lsh)


def test_lsh_deterministic_and_lifted(x):
    a, b = RandomRotationLSH(64, seed=1).fit(x), RandomRotationLSH(64, seed=1).fit(x)
    assert np.array_equal(a.encode(x), b.encode(x)) and a.encode(x).shape == (500, 8)
    assert not np.array_equal(a.encode(x), RandomRotationLSH(64, seed=2).fit(x).encode(x))
    lifted = ITQ(64, n_iter=5).fit(x)  # more bits than dimensions
    assert lifted.encode(x).shape == (500, 8)


@pytest.mark.parametrize("cls", [ITQ, RandomRotationLSH])
def test_deterministic_by_seed(cls, x):
    kw = {"n_iter": 10} if cls is ITQ else {}
    a = cls(16, seed=3, **kw).fit(x)
    b = cls(16, seed=3, **kw).fit(x)
    c = cls(16, seed=4, **kw).fit(x)
    np.testing.assert_array_equal(a.projection_, b.projection_)
    np.testing.assert_array_equal(a.encode(x), b.encode(x))
    assert not np.array_equal(a.encode(x), c.encode(x))
    # refitting the same instance is idempotent
    np.testing.assert_array_equal(a.fit(x).encode(x), b.encode(x))


def test_itq_errors(x):
    with pytest.raises(DataError):
        ITQ(16).fit(x).transform(x[:, :5])
    with pytest.raises(DataError, match="NaN"):
        ITQ(16).fit(np.full((4, 3), np.nan))
    with pytest.raises(DataError):
        ITQ(16).fit(np.zeros((0, 3)))
    with pytest.raises(DataError):
        ITQ(16).fit(np.zeros(5))


@pytest.mark.parametrize("cls", [ITQ, RandomRotationLSH])
@pytest.mark.parametrize("bad", [12, 0, -8, 8.0, "64", True, 8192])
def test_bits_validated_in_fit_and_named(cls, bad, x):
    est = cls(bad)  # __init__ only stores: no error yet
    assert est.bits == bad
    with pytest.raises(ConfigError, match=r"\bbits\b"):
        est.fit(x)  # ConfigError is a ValueError, as scikit-learn expects


def test_other_params_validated(x):
    with pytest.raises(ConfigError, match="n_iter"):
        ITQ(16, n_iter=-1).fit(x)
    with pytest.raises(ConfigError, match="center"):
        ITQ(16, center="yes").fit(x)
    with pytest.raises(ConfigError, match="seed"):
        RandomRotationLSH(16, seed=-1).fit(x)
    RandomRotationLSH(16, seed=None).fit(x)  # fresh entropy is allowed


# ---- scikit-learn conventions -----------------------------------------------------------
@pytest.mark.parametrize("cls", [ITQ, RandomRotationLSH])
def test_bits_is_first_positional_and_only_name(cls):
    params = list(inspect.signature(cls).parameters.values())
    assert params[0].name == "bits" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    assert "n_bits" not in cls().get_params()
    assert cls(32).bits == 32 and cls(bits=32).get_params()["bits"] == 32


@pytest.mark.parametrize("cls", [ITQ, RandomRotationLSH])
def test_get_set_params_and_clone(cls, x):
    est = cls(16, center=True, seed=7)
    params = est.get_params()
    assert params["bits"] == 16 and params["center"] is True and params["seed"] == 7
    assert est.set_params(bits=24, seed=8) is est and est.bits == 24 and est.seed == 8
    assert cls(**est.get_params()).get_params() == est.get_params()

    fitted = cls(16, seed=5).fit(x)
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params()
    assert not hasattr(twin, "projection_")  # clone drops fitted state
    np.testing.assert_array_equal(twin.fit(x).encode(x), fitted.encode(x))


@pytest.mark.parametrize("cls", [ITQ, RandomRotationLSH])
def test_not_fitted_error(cls, x):
    est = cls(16)
    for call in (lambda: est.transform(x), lambda: est.encode(x), est.get_feature_names_out):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    with pytest.raises(DataError, match=f"{cls.__name__}.*fit"):  # also a rechash error with a clear message
        est.transform(x)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    check_is_fitted(est.fit(x))
    assert list(est.get_feature_names_out()[:2]) == [f"{cls.__name__.lower()}0", f"{cls.__name__.lower()}1"]


def test_pipeline(x):
    pipe = make_pipeline(StandardScaler(), ITQ(bits=64))
    z = pipe.fit_transform(x)
    assert z.shape == (500, 64) and z.dtype == np.float32
    np.testing.assert_allclose(pipe.fit(x).transform(x), z, rtol=1e-6)
    itq = pipe[-1]
    np.testing.assert_array_equal(itq.encode(pipe[0].transform(x)), binarize(pipe.transform(x)))
    assert pipe.set_params(itq__bits=32).fit_transform(x).shape == (500, 32)
    # set_output: real codes come back as a DataFrame with stable column names
    df = make_pipeline(StandardScaler(), RandomRotationLSH(16)).set_output(transform="pandas").fit_transform(x)
    assert list(df.columns[:2]) == ["randomrotationlsh0", "randomrotationlsh1"]


@parametrize_with_checks([ITQ(8, n_iter=10), ITQ(16, n_iter=5, center=True), RandomRotationLSH(8)])
def test_sklearn_estimator_checks(estimator, check):
    # check_array_api_input skips itself (numpy-only implementation); everything else passes.
    check(estimator)


# ---- centring ---------------------------------------------------------------------------
def _users_items(seed: int = 0, d: int = 16):
    """Items with a popularity component along one axis, users that like popular items:
    the inner product u . v rewards popularity, which a joint mean subtraction removes."""
    rng = np.random.default_rng(seed)
    pop = rng.uniform(0, 6, 400)
    items = rng.normal(size=(400, d))
    items[:, 0] += pop
    users = rng.normal(size=(100, d))
    users[:, 0] += 3.0
    return users, items


def _hamming_recall(t, users, items, k: int = 20) -> float:
    truth = np.argsort(-(users @ items.T), axis=1)[:, :k]
    got = np.argsort(hamming_distances(t.encode(users), t.encode(items)), axis=1, kind="stable")[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth)]))


@pytest.mark.parametrize("cls", [ITQ, RandomRotationLSH])
def test_default_is_no_centring_and_documented(cls):
    assert cls().center is False and inspect.signature(cls).parameters["center"].default is False
    doc = cls.__doc__
    assert "center : bool, default False" in doc and "dot products" in doc


@pytest.mark.parametrize("bits", [16, 32])  # B == d (rotation) and B > d (isometric lift)
def test_default_real_codes_preserve_dot_products(bits):
    users, items = _users_items()
    x = np.vstack([users, items])
    default = ITQ(bits, n_iter=10).fit(x)  # no `center`: the default must keep u . v
    got = default.transform(users).astype(np.float64) @ default.transform(items).T.astype(np.float64)
    np.testing.assert_allclose(got, users @ items.T, rtol=1e-4, atol=1e-3)
    centred = ITQ(bits, n_iter=10, center=True).fit(x)
    off = centred.transform(users).astype(np.float64) @ centred.transform(items).T.astype(np.float64)
    assert np.abs(off - users @ items.T).max() > 1.0  # centring changes the inner products


@pytest.mark.parametrize("cls", [ITQ, RandomRotationLSH])
def test_default_joint_codes_rank_items_by_dot_product_better(cls):
    users, items = _users_items()
    x = np.vstack([users, items])
    default = _hamming_recall(cls(32).fit(x), users, items)  # no `center`: relies on the default
    centred = _hamming_recall(cls(32, center=True).fit(x), users, items)
    assert default > centred + 0.04, (default, centred)


# ---- save / load ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make", [lambda: ITQ(16, n_iter=10, center=True, seed=3), lambda: RandomRotationLSH(64, seed=2)]
)
def test_save_load_round_trip(make, x, tmp_path):
    est = make().fit(x)
    path = est.save(tmp_path / "binarizer")
    assert path.name == "binarizer.npz" and path.exists()
    with np.load(path, allow_pickle=False) as f:  # readable without pickle
        assert "meta" in f.files and "projection_" in f.files
    loaded = type(est).load(path)
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.encode(x), est.encode(x))
    np.testing.assert_array_equal(loaded.transform(x), est.transform(x))
    assert loaded.n_features_in_ == est.n_features_in_
    if isinstance(est, ITQ):
        assert loaded.quantization_loss_ == est.quantization_loss_
        np.testing.assert_array_equal(loaded.rotation_, est.rotation_)
    assert type(est).load(tmp_path / "binarizer").bits == est.bits  # suffix optional on load too


def test_save_load_feature_names_and_errors(x, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    est = ITQ(16, n_iter=5).fit(df)
    loaded = ITQ.load(est.save(tmp_path / "named.npz"))
    assert list(loaded.feature_names_in_) == list(df.columns)
    np.testing.assert_array_equal(loaded.encode(df), est.encode(df))

    with pytest.raises(NotFittedError):
        ITQ(16).save(tmp_path / "unfitted.npz")
    with pytest.raises(ModelError, match="ITQ, not a RandomRotationLSH"):
        RandomRotationLSH.load(tmp_path / "named.npz")
    with pytest.raises(ModelError, match="does not exist"):
        ITQ.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(ModelError):
        ITQ.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ModelError):
        ITQ.load(tmp_path / "other.npz")


def test_recommend_contract(x):
    """rechash.models.code uses ``ITQ(bits, center=False)``, ``projection_`` as the fitted
    marker and ``encode``; keep those working."""
    itq = ITQ(16, center=False)
    assert not hasattr(itq, "projection_")
    itq.fit(x)
    assert itq.projection_.shape == (32, 16) and itq.encode(x).shape == (500, 2)


def test_fewer_samples_than_bits():
    x = np.random.default_rng(1).normal(size=(10, 32))
    itq = ITQ(24, n_iter=5).fit(x)  # B <= d but n < B: PCA padded to B orthonormal columns
    np.testing.assert_allclose(itq.projection_.T @ itq.projection_, np.eye(24), atol=1e-8)
    assert itq.encode(x).shape == (10, 3)
