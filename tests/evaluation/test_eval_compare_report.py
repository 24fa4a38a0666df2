"""compare() over generic arms and the Markdown / JSON / PNG report."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from rechash.baselines import AnnoyRecommender, ExactRecommender, FloatEmbeddings, PopularityRecommender
from rechash.data import IdMap, Interactions
from rechash.errors import DataError
from rechash.evaluation import Arm, compare, write_report
from rechash.evaluation.report import rerender
from rechash.rerank import DotReranker, RerankedRecommender


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    n_users, n_items, d = 150, 200, 6
    u, v = rng.normal(size=(n_users, d)), rng.normal(size=(n_items, d))
    logits = u @ v.T
    rows, cols = [], []
    for r in range(n_users):
        p = np.exp(logits[r] - logits[r].max())
        items = rng.choice(n_items, 20, replace=False, p=p / p.sum())
        rows += [r] * 20
        cols += list(items)
    full = Interactions.from_arrays(np.array(rows), np.array(cols), IdMap(range(n_users)), IdMap(range(n_items)))
    mask = rng.random(full.nnz) < 0.7
    owner = full.coo()[0]
    train, test = full.subset(mask), full.subset(~mask & (owner != 0))  # user 0 has no test item
    return train, test, FloatEmbeddings(u, v)


def _arms(train, emb):
    exact = ExactRecommender(emb)
    ann = AnnoyRecommender.build(emb, n_trees=4, seed=1)
    sweep = [
        Arm(f"Annoy sk={sk}", ann.with_search_k(sk), group="Annoy", sweep={"search_k": sk}, in_summary=sk == 200)
        for sk in (30, 200, 5000)
    ]
    dot = DotReranker(emb.user_factors, emb.item_factors)
    reranked = [
        Arm(f"pop {c} + dot", RerankedRecommender(PopularityRecommender(train), dot, c), group="pop + dot", sweep={"candidates": c}, in_summary=c == 100)
        for c in (20, 100)
    ]
    return [Arm("exact", exact, train_seconds=1.5, params={"d": 6}), Arm("popularity", PopularityRecommender(train)), *sweep, *reranked]


def test_compare_evaluates_every_arm_on_the_same_users(world, tmp_path):
    pytest.importorskip("annoy")
    train, test, emb = world
    arms = _arms(train, emb)
    res = compare(
        arms, test, train.matrix, reference="exact", pairs=[("pop 100 + dot", "popularity")],
        candidate_sizes=(10, 50, 200), latency_sample=20, n_boot=200, meta={"dataset": "synthetic"},
    )
    users = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    assert 0 not in users
    for a in res.arms:
        assert a.per_user.index.equals(res.arms[0].per_user.index)
        np.testing.assert_array_equal(a.per_user.index, users)
        rows = np.nonzero(a.items >= 0)
        assert not train.matrix[users[rows[0]], a.items[rows]].any()  # training items never recommended
        curve = [a.candidate_recall[c] for c in (10, 50, 200)]
        assert curve == sorted(curve)
    exact = res.arm("exact")
    assert exact.overlap == 1.0 and res.arm("Annoy sk=5000").overlap == 1.0
    assert res.arm("Annoy sk=30").overlap < 1.0
    assert exact.cost.bytes_per_item == 6 * 4 and exact.cost.train_seconds == 1.5
    assert res.arm("pop 100 + dot").candidate_recall == res.arm("popularity").candidate_recall
    summary = res.summary()
    assert summary["arm"].tolist() == ["exact", "popularity", "Annoy sk=200", "pop 100 + dot"]
    paired = res.paired
    assert set(paired["baseline"]) == {"exact", "popularity"}
    assert len(paired[paired.baseline == "exact"]) == 3 * 5  # three arms x (4 metrics + candidate recall@200)
    row = paired[(paired.arm == "popularity") & (paired.metric == "recall@20")].iloc[0]
    assert row["diff"] < 0 and row.ci_high < 0 and row.wilcoxon_p < 0.01
    assert row.mean_baseline == pytest.approx(exact.per_user["recall@20"].mean())

    paths = write_report(res, tmp_path / "rep", title="Synthetic check", command="rechash compare ...")
    md = paths["markdown"].read_text()
    for needle in ["# Synthetic check", "## Summary", "Paired differences (baseline: exact)", "Annoy sk=200", "## Sweeps", "recall_vs_latency.png", "Wilcoxon"]:
        assert needle in md
    doc = json.loads(paths["json"].read_text())
    assert [a["name"] for a in doc["arms"]] == [a.name for a in arms]
    assert doc["arms"][0]["metrics"]["recall@20"] == pytest.approx(exact.per_user["recall@20"].mean())
    for key in ("recall_vs_candidates", "recall_vs_latency", "bytes_per_item"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a report re-renders from its JSON alone, to the same Markdown
    again = rerender(paths["json"], tmp_path / "again")
    assert again["markdown"].read_text() == md
    assert json.loads(again["json"].read_text())["arms"] == doc["arms"]


def test_compare_rejects_bad_arms(world):
    train, test, emb = world
    exact = ExactRecommender(emb)
    with pytest.raises(DataError, match="unique"):
        compare([Arm("a", exact), Arm("a", exact)], test, train.matrix)
    with pytest.raises(DataError, match="unknown arm"):
        compare([Arm("a", exact)], test, train.matrix, baseline="b")
    with pytest.raises(DataError, match="no arms"):
        compare([], test, train.matrix)
    with pytest.raises(DataError, match="no user"):
        compare([Arm("a", exact)], sp.csr_matrix(test.matrix.shape), train.matrix)
