"""The learned pool re-ranker against tuned ALS, on the deployed path (issue 21).

    python experiments/rerank.py                                   # ml-1m, lastfm, amazon-beauty
    python experiments/rerank.py --datasets lastfm --models DIR    # reuse DIR/lastfm if fitted

For each dataset: ``rechash fit TRAIN --valid VALID --out DIR/NAME`` with no other flag (the
command users run; its ranker decision is in ``config.json``), then ``rechash candidates
DIR/NAME --k 20`` with no flag, scored here from the Parquet file against TEST by an
independent scorer. The other rows are served from the same model directory in this process
by :class:`~rechash.models.code.CodeRecommender` (the object ``rechash candidates`` runs):
ALS exact (the fit's teacher, tuned on VALID, brute force), Hamming only, the dot
re-ranker, the learned re-ranker, the learned re-ranker refitted with LightGBM's
``lambdarank`` objective instead of the default ``binary`` one (same features, pools and
early stopping), and a blend ``z(ALS) + w z(item-item)`` (row-standardised pool scores of the
teacher and of EASE when the fit used it, else item-kNN; ``w`` picked on VALID pools). Paired
differences against ALS exact are per user, with a bootstrap 95% interval and a Wilcoxon p.
Writes experiments/results/rerank.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import commit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "experiments" / "results"
RECHASH = str(Path(sys.executable).with_name("rechash"))
K = 20
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def independent_recall(parquet: Path, test_txt: Path) -> tuple[float, float]:
    """Recall@K / NDCG@K of a candidates file against an adjacency test file, read as text."""
    truth = {}
    for line in test_txt.read_text().splitlines():
        parts = line.split()
        if len(parts) > 1:
            truth[parts[0]] = set(parts[1:])
    frame = pd.read_parquet(parquet)
    frame = frame[frame["rank"] <= K].sort_values(["user_id", "rank"])
    lists = {str(u): [str(i) for i in g["item_id"]] for u, g in frame.groupby("user_id")}
    idcg = np.cumsum(1.0 / np.log2(np.arange(2, K + 2)))
    rec, ndcg = [], []
    for u, t in truth.items():
        hits = [i in t for i in lists.get(u, [])[:K]]
        rec.append(sum(hits) / len(t))
        ndcg.append(sum(h / np.log2(r + 2) for r, h in enumerate(hits)) / idcg[min(len(t), K) - 1])
    return float(np.mean(rec)), float(np.mean(ndcg))


def blend_scores(ranker, side, cands, weight: float, item_item: str) -> np.ndarray:
    """``z(teacher) + weight * z(item_item)`` over each pool (row-standardised; -inf at padding)."""
    x = ranker.feature_matrix(side, cands)
    names = ranker.features
    valid = cands >= 0

    def z(col):
        v = np.where(valid, x[..., names.index(col)], np.nan)
        return (v - np.nanmean(v, axis=1, keepdims=True)) / (np.nanstd(v, axis=1, keepdims=True) + 1e-9)

    return np.where(valid, z("teacher") + weight * z(item_item), -np.inf)


def run(name: str, models: Path, bits: int | None = None) -> dict:
    from rechash import load_many
    from rechash.evaluation.abtest import paired_test
    from rechash.hasher.twin_tower import TwinTowerHasher
    from rechash.models.code import CodeRecommender
    from rechash.models.exact import ExactRecommender
    from rechash.rank.metrics import hit_matrix, item_coverage, per_user_metrics
    from rechash.rank.order import top_by_score
    from rechash.rerank import pool as P

    paths = [DATA / name / f for f in ("train.txt", "valid.txt", "test.txt")]
    model_dir = models / name
    fit_seconds = None
    if not (model_dir / "config.json").is_file():
        start = time.perf_counter()
        subprocess.run(
            [RECHASH, "fit", str(paths[0]), "--valid", str(paths[1]), "--out", str(model_dir), "--no-progress"]
            + ([] if bits is None else ["--bits", str(bits)]),
            check=True,
        )
        fit_seconds = time.perf_counter() - start
    parquet = models / f"{name}.candidates.parquet"
    subprocess.run(
        [RECHASH, "candidates", str(model_dir), "--out", str(parquet), "--k", str(K), "--no-progress"], check=True
    )
    deployed = independent_recall(parquet, paths[2])

    train, valid, test = load_many(paths)
    model = TwinTowerHasher.load(model_dir)
    run_info = json.loads((model_dir / "config.json").read_text())["training_run"]
    seen, truth = train.matrix.tocsr(), test.matrix.tocsr()
    users = np.flatnonzero(np.diff(truth.indptr))
    arms = {"ALS exact": ExactRecommender(model.teacher_, seen=seen)}
    arms["Hamming only"] = CodeRecommender.from_model(model, reranker=None)
    arms["dot re-ranker"] = CodeRecommender.from_model(model, reranker="dot")
    extra = {}
    if model.ranker_ is not None:
        arms["learned re-ranker (default)"] = CodeRecommender.from_model(model)
        # the same ranker refitted with the lambdarank objective, on the same validation pools
        saved = dict(P.LGB_PARAMS)
        P.LGB_PARAMS.update(objective="lambdarank", metric="ndcg", lambdarank_truncation_level=40)
        try:
            other, info = P.fit_on_validation(
                model.encode_items(),
                model.item_floats(),
                model.teacher_.item_factors,
                model.user_floats(),
                model.teacher_.user_factors,
                seen,
                valid.matrix.tocsr(),
                k=K,
                seed=model.seed,
            )
        finally:
            P.LGB_PARAMS.clear()
            P.LGB_PARAMS.update(saved)
        extra["lambdarank"] = info
        alt = CodeRecommender.from_model(model, reranker="learned")
        alt.ranker = other
        arms["learned, lambdarank objective"] = alt
    lists, per_user = {}, {}
    for arm, rec in arms.items():
        ids, _ = rec.recommend(users, seen[users], N=K)
        lists[arm] = ids
    if model.ranker_ is not None:  # the blend, its weight picked on VALID pools
        ranker = model.ranker_
        item_item = "ease" if "ease" in ranker.item_item else "knn"
        item_codes = model.encode_items()

        def pools(rows: np.ndarray) -> tuple[np.ndarray, P.PoolUsers]:
            """The serving pools of ``rows`` and the ranker's user side of them."""
            codes = model.encode_users(rows, refined=False)
            side = P.PoolUsers(codes, model.user_floats(rows), model.teacher_.user_factors[rows], seen[rows])
            return P.serving_pools(item_codes, codes, seen[rows]), side

        vtruth = valid.matrix.tocsr()
        vusers = np.flatnonzero(np.diff(vtruth.indptr))
        vcands, vside = pools(vusers)
        labels = hit_matrix(vcands, vusers, vtruth)
        npos = np.diff(vtruth.indptr)[vusers]
        picks = {
            w: P._recall(vcands, blend_scores(ranker, vside, vcands, w, item_item), labels, npos, K)
            for w in BLEND_WEIGHTS
        }
        w = max(BLEND_WEIGHTS, key=lambda v: picks[v])
        cands, side = pools(users)
        lists[f"blend ALS + {item_item} (w={w:g})"] = top_by_score(
            cands, blend_scores(ranker, side, cands, w, item_item), K
        )[0]
        extra["blend"] = {"item_item": item_item, "weight": w, "valid_recall": picks}
    for arm, ids in lists.items():
        per_user[arm] = per_user_metrics(ids, users, truth, ks=(K,))
    base = per_user["ALS exact"]
    rows = []
    for arm, frame in per_user.items():
        row = {
            "arm": arm,
            "recall": frame[f"recall@{K}"].mean(),
            "ndcg": frame[f"ndcg@{K}"].mean(),
            "coverage": item_coverage(lists[arm], train.n_items),
        }
        if arm != "ALS exact":
            for metric in ("recall", "ndcg"):
                t = paired_test(frame[f"{metric}@{K}"].to_numpy(), base[f"{metric}@{K}"].to_numpy())
                row[f"{metric}_diff"] = (t["diff"], t["ci_low"], t["ci_high"], t["wilcoxon_p"], t["rel_diff"])
        rows.append(row)
    return {
        "name": name,
        "rows": rows,
        "deployed": deployed,
        "ranker": run_info.get("ranker"),
        "extra": extra,
        "fit_seconds": fit_seconds,
        "model_fit_seconds": model.fit_seconds_,
        "bits": model.bits,
        "users": len(users),
    }


def fmt_diff(d) -> str:
    if d is None:
        return ""
    diff, low, high, p, rel = d
    return f"{diff:+.4f} ({rel:+.1%}) [{low:+.4f}, {high:+.4f}] p={p:.2g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["ml-1m", "lastfm", "amazon-beauty"])
    ap.add_argument("--models", type=Path, default=ROOT / "experiments" / "cache" / "rerank")
    ap.add_argument("--bits", type=int, default=None, help="fit with --bits B (writes rerank_bitsB.md)")
    args = ap.parse_args()
    args.models.mkdir(parents=True, exist_ok=True)
    results = [run(name, args.models, args.bits) for name in args.datasets]
    command = "python experiments/rerank.py" + (
        "" if args.datasets == ["ml-1m", "lastfm", "amazon-beauty"] else " --datasets " + " ".join(args.datasets)
    )
    command += "" if args.bits is None else f" --bits {args.bits}"
    out = RESULTS / ("rerank.md" if args.bits is None else f"rerank_bits{args.bits}.md")
    flags = (
        "every `rechash fit` default" if args.bits is None else f"`rechash fit --bits {args.bits}`, every other default"
    )
    lines = [
        "# The learned pool re-ranker against tuned ALS (Recall@20 / NDCG@20, test)",
        "",
        f"Command: `{command}` (library at commit {commit()}); {results[0]['bits']} bits, {flags}.",
        "",
        "Rows: ALS exact is the fit's own teacher (implicit ALS tuned on VALID, brute force over the catalog). "
        "The other arms re-rank or order the same model's Hamming pool (the 200 nearest unseen items by the "
        "towers' codes, ties at the cut-off by the re-ranker's score), except Hamming only (the refined codes' "
        "own top 20). Δ: paired per-user difference against ALS exact, bootstrap 95% interval, Wilcoxon p.",
        "",
    ]
    fit_flags = " (no flags)" if args.bits is None else f" --bits {args.bits}"
    for r in results:
        info = r["ranker"] or {}
        lines += [
            f"## {r['name']}",
            "",
            f"`rechash fit`{fit_flags} then `rechash candidates --k 20` (no flags), scored from the Parquet file: "
            f"**Recall@20 {r['deployed'][0]:.4f}, NDCG@20 {r['deployed'][1]:.4f}** over {r['users']:,} test users. "
            f"Learned re-ranker kept: {info.get('kept')} (held-out VALID Recall@20 dot "
            f"{info.get('valid_recall', {}).get('dot', float('nan')):.4f} -> learned "
            f"{info.get('valid_recall', {}).get('learned', float('nan')):.4f}; {info.get('users')}, "
            f"{info.get('rounds')} rounds, {info.get('seconds', float('nan')):.1f} s to train"
            + (f"; EASE ridge {info['ease']['ridge']:.0f}" if "ease" in info else "")
            + ")."
            + ("" if r["fit_seconds"] is None else f" Whole fit: {r['fit_seconds']:.0f} s.")
            + (
                ""
                if r["model_fit_seconds"] is None
                else f" In `fit()` (config.json's fit_seconds): {r['model_fit_seconds']:.0f} s."
            ),
            "",
            "| arm | Recall@20 | NDCG@20 | coverage@20 | Δ Recall@20 vs ALS | Δ NDCG@20 vs ALS |",
            "|---|---|---|---|---|---|",
        ]
        for row in r["rows"]:
            lines.append(
                f"| {row['arm']} | {row['recall']:.4f} | {row['ndcg']:.4f} | {row['coverage']:.3f} | "
                f"{fmt_diff(row.get('recall_diff'))} | {fmt_diff(row.get('ndcg_diff'))} |"
            )
        if "lambdarank" in r["extra"]:
            lr = r["extra"]["lambdarank"]
            lines += [
                "",
                f"lambdarank refit: held-out VALID Recall@20 {lr['valid_recall']['learned']:.4f} "
                f"({lr['rounds']} rounds, {lr['seconds']:.1f} s).",
            ]
        if "blend" in r["extra"]:
            b = r["extra"]["blend"]
            picks = ", ".join(f"{w:g}: {v:.4f}" for w, v in b["valid_recall"].items())
            lines += [f"Blend weight picked on VALID pools (Recall@20 by w: {picks})."]
        lines.append("")
    out.write_text("\n".join(lines))
    print(out.read_text())


if __name__ == "__main__":
    main()
