"""Small clustered synthetic data for the model tests (fast: a few hundred users and items)."""

from __future__ import annotations

import pytest

from rechash.data.synthetic import synthetic_split

FAST = dict(epochs=3, batch_size=128, negatives=64, lr=0.02, progress=False, threads=1)


@pytest.fixture(scope="session")
def fast() -> dict:
    """Training options that keep a fit under a second or two."""
    return dict(FAST)


@pytest.fixture(scope="session")
def split():
    return synthetic_split(
        seed=0, n_users=300, n_items=150, n_clusters=5, mean_activity=40.0, min_activity=8, focus=(0.8, 0.1)
    )


@pytest.fixture(scope="session")
def fitted(split):
    from rechash.hasher.twin_tower import TwinTowerHasher

    return TwinTowerHasher(16, seed=0, init="random", **FAST).fit(split.train, split.valid, teacher=None)
