"""compare() over generic arms and the Markdown / JSON / PNG report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from rechash.data import IdMap, Interactions
from rechash.data.embeddings import FloatEmbeddings
from rechash.errors import DataError
from rechash.evaluation import Arm, compare, write_report
from rechash.evaluation.report import rerender
from rechash.models.annoy import AnnoyRecommender
from rechash.models.exact import ExactRecommender, PopularityRecommender
from rechash.models.reranked import RerankedRecommender
from rechash.rerank import DotReranker


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
        Arm(
            f"pop {c} + dot",
            RerankedRecommender(PopularityRecommender(train), dot, c),
            group="pop + dot",
            sweep={"candidates": c},
            in_summary=c == 100,
        )
        for c in (20, 100)
    ]
    return [
        Arm("exact", exact, train_seconds=1.5, params={"d": 6}),
        Arm("popularity", PopularityRecommender(train)),
        *sweep,
        *reranked,
    ]


def test_compare_evaluates_every_arm_on_the_same_users(world, tmp_path):
    pytest.importorskip("annoy")
    train, test, emb = world
    arms = _arms(train, emb)
    res = compare(
        arms,
        test,
        train.matrix,
        reference="exact",
        pairs=[("pop 100 + dot", "popularity")],
        candidate_sizes=(10, 50, 200),
        latency_sample=20,
        n_boot=200,
        meta={"dataset": "synthetic"},
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
    for needle in [
        "# Synthetic check",
        "## Summary",
        "Paired differences (baseline: exact)",
        "Annoy sk=200",
        "## Sweeps",
        "recall_vs_latency.png",
        "Wilcoxon",
    ]:
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


def _result_doc(candidates_sweep=True):
    """A small hand-made report.json: an exact baseline, an Annoy search_k sweep, an 8-byte
    Hamming arm (a 32x memory ratio) re-ranked over a candidates sweep, popularity."""

    def arm(name, recall, p50, nbytes, group=None, sweep=None, in_summary=True, cand=None):
        return {
            "name": name,
            "group": group,
            "sweep": sweep or {},
            "params": {},
            "in_summary": in_summary,
            "n_users": 100,
            "metrics": {
                "recall@20": recall,
                "ndcg@20": recall / 2,
                "hr@20": min(1.0, 2 * recall),
                "mrr@20": recall / 3,
            },
            "coverage": 0.5,
            "overlap": None,
            "candidate_recall": cand or {},
            "cost": {
                "train_seconds": 1.0,
                "build_seconds": 0.1,
                "bytes_per_item": nbytes,
                "latency_ms_p50": p50,
                "latency_ms_p95": p50 * 1.3,
                "latency_ms_p99": p50 * 1.6,
                "users_per_second": 1000.0 / p50,
            },
        }

    curve = lambda top: {str(c): top * (1 - 0.8 ** (c / 10)) for c in (10, 20, 50, 100, 200, 500)}  # noqa: E731
    arms = [
        arm("exact", 0.26, 0.30, 256.0, cand=curve(0.9)),
        *[
            arm(
                f"Annoy sk={sk}",
                0.26 * (1 - 30 / (sk + 100)),
                0.15 + sk / 16000,
                396.7,
                "Annoy",
                {"search_k": sk},
                sk == 2000,
                curve(0.8) if sk == 2000 else None,
            )
            for sk in (250, 500, 1000, 2000, 5000, 10000, 20000)
        ],
        arm("popularity", 0.12, 0.26, 8.0, cand=curve(0.6)),
        arm("Hamming", 0.21, 0.27, 8.0, cand=curve(0.85)),
    ]
    if candidates_sweep:
        arms += [
            arm(
                f"Hamming + dot C={c}",
                0.238 + c / 1e5,
                0.35 + c / 1500,
                264.0,
                "Hamming + dot",
                {"candidates": c},
                c == 200,
                curve(0.85) if c == 200 else None,
            )
            for c in (50, 100, 200, 500)
        ]
    return {
        "meta": {"dataset": "toy", "n_users": 100},
        "k": 20,
        "n_items": 500,
        "baseline": "exact",
        "reference": "exact",
        "candidate_sizes": [10, 20, 50, 100, 200, 500],
        "arms": arms,
        "paired": [],
        "title": "toy",
    }


def _texts(fig):
    """(text, window box) of every piece of text the figure draws (tick labels only where
    their tick lies inside the axis' view, as matplotlib draws them)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    ticks, drawn = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = (hi - lo) * 1e-9
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks.update((id(tick.label1), id(tick.label2)))
                if lo - span <= tick.get_loc() <= hi + span:
                    drawn += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    drawn += [t for t in fig.findobj(Text) if id(t) not in ticks and t.get_visible()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in drawn if t.get_text().strip()]


def _overlap(a, b) -> float:
    """Area (square pixels) shared by two boxes."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0) * max(h, 0)


@pytest.mark.parametrize("candidates_sweep", [True, False])
def test_report_figures_read_at_a_glance(candidates_sweep):
    pytest.importorskip("matplotlib")
    from rechash.evaluation.compare import ComparisonResult
    from rechash.evaluation.plots import FIGURES

    result = ComparisonResult.from_dict(_result_doc(candidates_sweep))
    figs = {name: build(result) for name, build in FIGURES.items()}
    for name, fig in figs.items():
        fig.canvas.draw()
        assert fig.axes, name
        for ax in fig.axes:  # every panel: a title and both axes labelled
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), name
            for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
                if scale == "log":  # a log axis labels at least two ticks inside its view
                    lo, hi = sorted(axis.get_view_interval())
                    shown = [
                        t
                        for t in axis.get_major_ticks()
                        if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi
                    ]
                    assert len(shown) >= 2, (name, [t.label1.get_text() for t in shown])
        texts = _texts(fig)  # no two pieces of text overlap anywhere in the figure
        for i, (a, box_a) in enumerate(texts):
            for b, box_b in texts[i + 1 :]:
                assert _overlap(box_a, box_b) < 1.0, (name, a, b)
        fig_box = fig.bbox
        for text, box in texts:  # nothing cut off at the figure's edge
            assert (
                box.x0 >= fig_box.x0 - 1
                and box.x1 <= fig_box.x1 + 1
                and box.y0 >= fig_box.y0 - 1
                and box.y1 <= fig_box.y1 + 1
            ), (name, text)

    # one quantity per axis: candidate recall and Recall@K in separate panels
    cand = figs["recall_vs_candidates"]
    assert len(cand.axes) == (2 if candidates_sweep else 1)
    assert "candidate recall" in cand.axes[0].get_ylabel() and "Recall@20" not in cand.axes[0].get_ylabel()
    if candidates_sweep:
        assert "Recall@20" in cand.axes[1].get_ylabel() and "candidate" not in cand.axes[1].get_ylabel()
    assert cand.axes[0].get_xscale() == "log"
    assert [t.get_text() for t in cand.axes[0].get_xticklabels()] == ["10", "20", "50", "100", "200", "500"]

    # latency: arms told apart by a legend, no text next to the points; ms ticks in plain numbers
    lat = figs["recall_vs_latency"].axes[0]
    assert not lat.texts
    entries = [t.get_text() for t in lat.get_legend().get_texts()]
    assert entries == [
        "Annoy: search_k 250 → 20,000",
        *(["Hamming + dot: candidates 50 → 500"] if candidates_sweep else []),
        "exact",
        "popularity",
        "Hamming",
    ]
    assert "ms" in lat.get_xlabel() and lat.get_xscale() == "log"
    assert {"0.2", "0.5", "1"} <= {t.get_text() for t in lat.get_xticklabels()}

    # bytes per item: horizontal bars on a linear axis, the value printed at each bar, inside the axes
    by = figs["bytes_per_item"].axes[0]
    assert by.get_xscale() == "linear" and "bytes" in by.get_xlabel() and by.get_title()
    bars = [p for p in by.patches]
    assert len(bars) == len(by.texts) == len(result.summary())
    assert [t.get_text() for t in by.texts][:3] == ["256 B", "397 B", "8 B"]
    renderer = figs["bytes_per_item"].canvas.get_renderer()
    for t in by.texts:
        assert t.get_window_extent(renderer).x1 <= by.get_window_extent(renderer).x1


def test_report_without_matplotlib_still_writes_the_markdown(tmp_path, monkeypatch, caplog):
    import logging
    import sys

    from rechash.evaluation.compare import ComparisonResult

    result = ComparisonResult.from_dict(_result_doc())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    with caplog.at_level(logging.WARNING, logger="rechash.evaluation.report"):
        paths = write_report(result, tmp_path / "rep", title="No plots")
    lines = [r.getMessage() for r in caplog.records if r.name == "rechash.evaluation.report"]
    assert len(lines) == 1 and "pip install 'rechash[report]'" in lines[0] and "\n" not in lines[0]
    assert set(paths) == {"markdown", "json"}
    md = paths["markdown"].read_text()
    assert "# No plots" in md and "## Summary" in md
    assert "Plots not drawn: matplotlib is not installed (pip install 'rechash[report]')" in md and ".png" not in md
    assert json.loads(paths["json"].read_text())["title"] == "No plots"
    assert not list((tmp_path / "rep").glob("*.png"))

    said = []
    write_report(result, tmp_path / "rep2", progress=said.append)
    assert len(said) == 1 and "rechash[report]" in said[0]
