from __future__ import annotations

import numpy as np
import pytest

from rechash.codes import hamming_distances
from rechash.errors import DataError
from rechash.model import ITQ, RandomRotationLSH


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
    loss = np.array(itq.quantization_loss_)
    assert (np.diff(loss) <= 1e-9).all() and loss[-1] < loss[0]
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


def test_itq_errors(x):
    with pytest.raises(DataError):
        ITQ(12).fit(x)
    with pytest.raises(DataError):
        ITQ(16).transform(x)
    with pytest.raises(DataError):
        ITQ(16).fit(x).transform(x[:, :5])
    with pytest.raises(DataError):
        ITQ(16).fit(np.full((4, 3), np.nan))
