"""experiments/plug_in.py (string ids, the team's own implicit ALS, end to end) runs on tiny data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "plug_in.py"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("annoy")
    spec = importlib.util.spec_from_file_location("plug_in", SCRIPT)
    plug_in = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plug_in)
    out = tmp_path_factory.mktemp("plug_in")
    return plug_in.main(n_users=300, n_items=150, out_dir=out, epochs=1, max_seconds=20, verbose=True), out


def test_candidates_written_in_string_ids(results):
    res, out = results
    assert (out / "candidates").is_dir()
    assert res["candidate_users"] == res["n_users"]
    assert res["candidate_rows"] == res["n_users"] * 20  # every user gets k=20 unseen items
    assert res["candidate_dtypes"]["rank"] == "int32" and res["candidate_dtypes"]["hamming"] == "Int32"
    assert res["candidate_dtypes"]["user_id"] in ("object", "str", "string")


def test_new_users_and_recalculate_user(results):
    res, _ = results
    assert res["new_user_report"] == {
        "users": 2,
        "known": 0,
        "from_history": 1,
        "popular_fallback": 1,
        "history_rows_unknown_item": 1,
        "history_rows_other_user": 0,
    }
    assert res["recalculate_user_matches_frame"]
    assert res["fold_in_rel_diff"] < 1e-3  # rechash's fold-in is implicit's recalculate_user


def test_comparison_table(results):
    res, _ = results
    recall, size = res["recall"], res["bytes_per_item"]
    assert set(recall) == set(size) and len(recall) == 6
    assert all(0.0 <= v <= 1.0 for v in recall.values())
    exact = recall["ALS exact (team)"]
    assert exact > 0.2
    # the team's floats re-ranking 64-bit Hamming candidates keep (nearly) all of exact ALS
    assert recall["from_floats, ALS re-rank"] >= 0.9 * exact
    assert size["from_floats, Hamming only"] == size["twin towers, Hamming only"] == 8.0
    assert size["ALS exact (team)"] == 64 * 4
    assert size["ALS + Annoy (team)"] > size["ALS exact (team)"]


def test_id_maps_refused_or_realigned(results):
    res, _ = results
    assert "not among the user_ids of the embeddings (1 missing)" in res["refused_replaced"]
    assert "integers, the data's strings" in res["refused_kind"]
    assert res["realigned"] is True
