"""The comparison measures the deployed path: `compare --save-model m` then `candidates m`
gives the default arm's lists ("rechash + learned" when the fit kept it, else "rechash + dot") row for row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rechash import columns as C
from rechash.data.synthetic import synthetic_split


@pytest.fixture(scope="module")
def split():
    return synthetic_split(seed=2, n_users=150, n_items=80, mean_activity=15)


def test_saved_model_reproduces_the_compare_arm(split, tmp_path) -> None:
    from rechash.cli import main
    from rechash.evaluation import per_user_metrics
    from rechash.evaluation.pipeline import CompareConfig, run_compare

    cfg = CompareConfig(
        bits=16,
        tune_als=False,
        annoy_sweep=(),
        tower_annoy=False,
        candidates_sweep=(),
        radius_sweep=(),
        hasher_options={"epochs": 2},
        latency_sample=10,
        n_boot=50,
        save_model=str(tmp_path / "m"),
    )
    result = run_compare(split.train, split.valid, split.test, cfg)
    kept = result.meta["rechash_training_run"]["ranker"]["kept"]
    arm = result.arm("rechash + learned" if kept else "rechash + dot")
    out = tmp_path / "c.parquet"
    assert main(["candidates", str(tmp_path / "m"), "--k", "20", "--out", str(out)]) == 0
    cands = pd.read_parquet(out)
    train = split.train
    users = np.flatnonzero(np.diff(split.test.matrix.indptr) > 0)
    lists = {u: g.sort_values(C.RANK)[C.ITEM_ID].to_numpy() for u, g in cands.groupby(C.USER_ID)}
    items = np.full((len(users), 20), -1)
    for row, u in enumerate(users):
        got = train.item_ids.to_internal(lists[train.user_ids.external_ids[u]])
        items[row, : len(got)] = got
    np.testing.assert_array_equal(items, arm.items)  # row for row
    recall = per_user_metrics(items, users, split.test.matrix, ks=(20,))["recall@20"].mean()
    assert recall == pytest.approx(arm.means()["recall@20"])


def test_compare_command_has_save_model(capsys) -> None:
    from rechash.cli import main

    assert main(["compare", "--help"]) == 0
    assert "--save-model" in capsys.readouterr().out
