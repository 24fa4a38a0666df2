"""The standard comparison (run_compare) and the `rechash compare` command on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rechash.codes.bits import binarize, hamming_distances
from rechash.data import IdMap, Interactions
from rechash.evaluation.compare import top_lists
from rechash.evaluation.pipeline import CompareConfig, run_compare
from rechash.index.candidates import CandidatePolicy
from rechash.models.code import CodeRecommender


def _splits(seed=0, n_users=120, n_items=90):
    rng = np.random.default_rng(seed)
    taste = rng.integers(0, 4, n_users)
    rows, cols = [], []
    for u in range(n_users):
        pool = (np.arange(30) + taste[u] * 20) % n_items
        items = rng.choice(pool, 15, replace=False)
        rows += [u] * 15
        cols += list(items)
    full = Interactions.from_arrays(np.array(rows), np.array(cols), IdMap(range(n_users)), IdMap(range(n_items)))
    part = np.random.default_rng(seed + 1).random(full.nnz)
    return full.subset(part < 0.6), full.subset((part >= 0.6) & (part < 0.8)), full.subset(part >= 0.8)


def test_hamming_only_code_recommender_is_exact_and_filters_seen_items():
    """The comparison's Hamming-only ranking: CodeRecommender(reranker=None, tie_rule="id")."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    uc, ic = binarize(rng.normal(size=(30, 16))), binarize(rng.normal(size=(70, 16)))
    train, _, _ = _splits(n_users=30, n_items=70)
    rec = CodeRecommender(ic, user_codes=uc, reranker=None, tie_rule="id", seen=train.matrix)
    users = np.arange(30)
    ids, scores = rec.recommend(users, N=10)
    np.testing.assert_array_equal(top_lists(rec, users, 10, train.matrix), ids)  # the comparison's path
    pool = rec.candidates(users, 10, train.matrix)  # the Hamming pool, with its distances
    dist = hamming_distances(uc, ic)
    for u in range(30):
        d = dist[u].astype(float)
        d[train.matrix[u].indices] = np.inf
        want = np.lexsort((np.arange(70), d))[:10]
        np.testing.assert_array_equal(ids[u], want)
        np.testing.assert_array_equal(pool.items[u], want)
        np.testing.assert_array_equal(pool.hamming[u], dist[u, want])
    np.testing.assert_allclose(scores, 1 - 2 * pool.hamming / 16)
    np.testing.assert_allclose(pool.scores, 1 - 2 * pool.hamming / 16)
    radius = CodeRecommender(
        ic, user_codes=uc, reranker=None, tie_rule="id", seen=train.matrix, pool=CandidatePolicy.fixed_radius(5)
    )
    within, within_scores = radius.recommend(users, N=10)
    within_hamming = np.where(within >= 0, dist[users[:, None], np.maximum(within, 0)], -1)
    assert ((within_hamming <= 5) | (within < 0)).all()
    np.testing.assert_allclose(within_scores[within >= 0], 1 - 2 * within_hamming[within >= 0] / 16)
    assert np.isneginf(within_scores[within < 0]).all()
    assert (within >= 0).sum() < (ids >= 0).sum()
    for u in range(30):  # a radius pool is the exact top-10 cut at the radius
        kept = within[u][within[u] >= 0]
        np.testing.assert_array_equal(kept, ids[u][: len(kept)])


def test_run_compare_float_arms(tmp_path):
    pytest.importorskip("implicit")
    pytest.importorskip("annoy")
    train, valid, test = _splits()
    cfg = CompareConfig(
        rechash=False,
        bpr=False,
        als_grid={"regularization": [0.1, 10.0]},
        als_factors=8,
        annoy_trees=4,
        annoy_search_k=50,
        annoy_sweep=(20, 50, 400),
        n_candidates=30,
        latency_sample=10,
        n_boot=100,
        threads=1,
        learned_model="logistic",  # the HGB scorer is covered in tests/rerank/test_rerank.py
    )
    res = run_compare(train, valid, test, cfg, dataset="tiny")
    names = [a.name for a in res.arms]
    assert names[:2] == ["ALS exact", "ALS + Annoy"] and "ALS top-30 + learned" in names
    tuning = res.meta["als_tuning"]  # the 2-point grid widens while its best point is on an edge
    assert len(tuning) >= 3 and tuning[0]["regularization"] == res.meta["als_params"]["regularization"]
    assert not tuning[0]["edge"] or tuning[0]["regularization"] in (0.01, 10_000.0)
    assert res.baseline == res.reference == "ALS exact"
    assert ("ALS top-30 + learned", "ALS exact") in set(zip(res.paired.arm, res.paired.baseline))
    sweep = res.sweeps()
    assert sweep["setting"].tolist() == ["search_k=20", "search_k=50", "search_k=400"]
    assert res.arm("ALS + Annoy search_k=400").overlap == 1.0


def test_compare_command_writes_the_report(tmp_path):
    pytest.importorskip("implicit")
    pytest.importorskip("annoy")
    from rechash.cli import main

    train, valid, test = _splits()
    paths = []
    for name, part in (("train", train), ("valid", valid), ("test", test)):
        p = tmp_path / f"{name}.txt"
        m = part.matrix
        lines = [
            " ".join(map(str, [u, *m.indices[m.indptr[u] : m.indptr[u + 1]]]))
            for u in range(m.shape[0])
            if m.indptr[u + 1] > m.indptr[u]
        ]
        p.write_text("\n".join(lines) + "\n")
        paths.append(p)
    out = tmp_path / "report"
    code = main(
        [
            "compare",
            str(paths[0]),
            "--valid",
            str(paths[1]),
            "--test",
            str(paths[2]),
            "--report",
            str(out),
            "--no-rechash",
            "--no-tune-als",
            "--annoy-trees",
            "3",
            "--annoy-sweep",
            "50,400",
            "--candidates",
            "30",
            "--latency-sample",
            "5",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["arms"][0]["name"] == "ALS exact" and doc["meta"]["n_users"] > 0
    assert (out / "recall_vs_latency.png").exists()
    assert (
        main(
            [
                "compare",
                str(paths[0]),
                "--valid",
                str(paths[1]),
                "--test",
                str(tmp_path / "nope.txt"),
                "--report",
                str(out),
            ]
        )
        == 2
    )


def test_run_compare_wires_the_rechash_arms():
    pytest.importorskip("torch")
    pytest.importorskip("implicit")
    pytest.importorskip("annoy")
    train, valid, test = _splits()
    cfg = CompareConfig(
        bits=16,
        bpr=False,
        popularity=False,
        als_learned=False,
        tune_als=False,
        als_factors=16,
        annoy_trees=3,
        annoy_search_k=50,
        annoy_sweep=(),
        n_candidates=30,
        candidates_sweep=(10,),
        radius_sweep=(4,),
        bits_sweep=(24,),
        latency_sample=5,
        n_boot=50,
        threads=1,
        learned_model="logistic",
        hasher_options={"epochs": 1, "negatives": 16, "batch_size": 256},
    )
    res = run_compare(train, valid, test, cfg, dataset="tiny")
    names = [a.name for a in res.arms]
    for name in ("rechash Hamming", "rechash + dot", "rechash + ALS dot", "tower floats + Annoy"):
        assert name in names
    kept = res.meta["rechash_training_run"]["ranker"]["kept"]
    assert (
        "rechash + learned" in names
    ) == kept  # the fit's learned re-ranker is an arm exactly when validation kept it
    ham = res.arm("rechash Hamming")
    assert ham.cost.bytes_per_item == 2.0  # 16 bits
    dot = res.arm("rechash + dot")
    teacher = res.meta["rechash_training_run"][
        "teacher"
    ]  # the default teacher of `rechash fit`: ALS, max(64, bits) factors
    assert teacher["kind"] == "als" and teacher["params"]["factors"] == 64
    assert dot.cost.bytes_per_item == 2.0 + 64 * 4  # codes + the re-ranking floats (the teacher's item factors)
    refine = res.meta["rechash_training_run"]["refine"]  # the default fit tries the user-code refinement
    assert set(refine["valid_recall"]) == {"none", "3.0", "4.0", "6.0"}
    assert dot.candidate_recall == res.arm("rechash + codes-only").candidate_recall  # re-rankers share one pool
    if refine["temperature"] is None:  # no refinement kept: the Hamming arm's list is that pool too
        assert dot.candidate_recall == ham.candidate_recall
    assert (("rechash + learned", "rechash + dot") in set(zip(res.paired.arm, res.paired.baseline))) == kept
    sweeps = res.sweeps()
    assert set(sweeps["group"]) >= {"rechash + dot (candidates)", "rechash + dot (radius)", "rechash + dot (bits)"}
    bits = sweeps[sweeps.group == "rechash Hamming (bits)"]
    assert bits["setting"].tolist() == ["bits=16", "bits=24"] and bits["bytes/item"].tolist() == [2.0, 3.0]


def test_auto_radii_track_candidate_counts():
    from rechash.evaluation.pipeline import auto_radii

    rng = np.random.default_rng(3)
    uc, ic = binarize(rng.normal(size=(50, 32))), binarize(rng.normal(size=(2000, 32)))
    radii = auto_radii(uc, ic, targets=(10, 100, 1000))
    assert radii == sorted(set(radii)) and len(radii) >= 2
    within = (hamming_distances(uc, ic) <= radii[-1]).sum(axis=1)
    assert np.median(within) >= 1000
