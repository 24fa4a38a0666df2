"""Fixtures of the robustness tests: a tiny model and private copies of its directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny():
    """A 16-bit model over 300 users x 200 items (one epoch, no teacher) and its data."""
    from rechash.data import synthetic
    from rechash.hasher.twin_tower import TwinTowerHasher

    data = synthetic(n_users=300, n_items=200, seed=1)
    model = TwinTowerHasher(16, epochs=1, seed=0, progress=False, threads=1).fit(data, teacher=None)
    return model, data


@pytest.fixture(scope="session")
def tiny_dir(tiny, tmp_path_factory) -> Path:
    """``tiny`` saved as a model directory (do not modify: copy it first)."""
    return tiny[0].save(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def model_copy(tiny_dir, tmp_path) -> Path:
    """A private copy of ``tiny_dir`` to tamper with."""
    return Path(shutil.copytree(tiny_dir, tmp_path / "model"))
