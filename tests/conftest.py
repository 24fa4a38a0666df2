"""Shared fixtures: small synthetic data, paths to the real datasets when present."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_model():
    """A tiny TwinTowerHasher trained on synthetic data, with its training interactions; without
    the learned re-ranker, so its default is the dot re-ranker these tests check against brute
    force (the learned one has tests/rerank/test_pool.py)."""
    from rechash.data import synthetic
    from rechash.hasher.twin_tower import TwinTowerHasher

    data = synthetic(n_users=300, n_items=200, seed=1)
    return TwinTowerHasher(32, epochs=2, seed=0, progress=False, learned_rerank=False).fit(data, teacher=None), data


@pytest.fixture(scope="session")
def small_job(small_model):
    """A CandidateJob over ``small_model`` (k=10) and a history table for two new users
    and one known user (external ids)."""
    import pandas as pd

    from rechash import columns as C
    from rechash.jobs.candidates import CandidateJob
    from rechash.models.code import CodeRecommender

    model, data = small_model
    job = CandidateJob(CodeRecommender.from_model(model, seen=data.matrix), k=10)
    items = data.item_ids.external_ids
    history = pd.DataFrame(
        {
            C.USER_ID: [10_001, 10_001, 10_002, int(data.user_ids.external_ids[0])],
            C.ITEM_ID: [items[1], items[2], items[3], items[4]],
        }
    )
    return job, history
