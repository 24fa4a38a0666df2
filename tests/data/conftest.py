"""Fixtures of the data-layer tests: a small interaction frame and a file writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def frame() -> pd.DataFrame:
    """40 interactions of 8 users on 12 items with ratings and timestamps, no duplicates."""
    rng = np.random.default_rng(7)
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(1, 9, 80), rng.integers(1, 13, 80))})[:40]
    users, items = map(np.array, zip(*pairs))
    return pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "rating": rng.integers(1, 6, len(users)).astype(float),
            "timestamp": 880_000_000 + rng.permutation(len(users)) * 1000,
        }
    )


@pytest.fixture
def write(tmp_path: Path):
    """``write(name, text)`` -> path of a new file under tmp_path."""

    def _write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        return path

    return _write


@pytest.fixture
def triples():
    """``triples(inter, with_ts=False)`` -> set of (user, item, weight[, timestamp]) in external ids."""

    def _triples(inter, with_ts: bool = False) -> set:
        f = inter.to_frame()
        cols = ["user_id", "item_id", "weight"] + (["timestamp"] if with_ts else [])
        return set(map(tuple, f[cols].itertuples(index=False)))

    return _triples
