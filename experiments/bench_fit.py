"""Fit benchmark: `rechash fit` with no flags, wall time and training interactions/s.

Regenerates experiments/results/bench_fit.md:

    python experiments/bench_fit.py

Datasets: amazon-beauty (../shared/data, train + valid) and the synthetic generator scaled to
~800k training interactions (40,000 users x 30,000 items, split 80/10/10 with
``save_split``). Each is fitted by the command users run, `rechash fit TRAIN --valid VALID
--out DIR` (64 bits, every default: the teacher tuned on VALID, early stopping), timed end to
end; the per-epoch interactions/s and the stop reason come from the model directory's
config.json. Then `rechash candidates DIR --out c.parquet --k 20` and Recall@20 of that Parquet on
TEST. Target (issue 11): each fit converges in at most 10 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import commit_line

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "experiments" / "results" / "bench_fit.md"
SYNTHETIC = {"n_users": 40_000, "n_items": 30_000, "n_clusters": 50, "mean_activity": 33.0, "min_activity": 5}


def synthetic_files(tmp: Path) -> tuple[Path, Path]:
    from rechash.data import save_split, synthetic_split

    paths = save_split(synthetic_split(seed=0, **SYNTHETIC), tmp / "synthetic")
    names = {p.stem: p for p in paths}
    return names["train"], names["valid"]


def candidates_recall(model: Path, test: Path, tmp: Path, k: int = 20) -> float:
    """`rechash candidates MODEL --k K` (the deployed path), then Recall@K of its Parquet on TEST
    (external ids; users without a test item are not counted, missing users score 0)."""
    import pandas as pd

    from rechash.data import load

    out = tmp / f"{model.name}-candidates.parquet"
    subprocess.run(
        [sys.executable, "-m", "rechash", "candidates", str(model), "--out", str(out), "--k", str(k), "--no-progress"],
        check=True,
    )
    truth = load(test).to_frame()[["user_id", "item_id"]]
    cands = pd.read_parquet(out, columns=["user_id", "item_id"])
    hits = truth.merge(cands, on=["user_id", "item_id"]).groupby("user_id").size()
    per_user = hits.reindex(truth["user_id"].unique(), fill_value=0) / truth.groupby("user_id").size()
    return float(per_user.mean())


def bench(name: str, train: Path, valid: Path, tmp: Path) -> dict:
    out = tmp / f"model-{name}"
    cmd = [
        sys.executable,
        "-m",
        "rechash",
        "fit",
        str(train),
        "--valid",
        str(valid),
        "--out",
        str(out),
        "--no-progress",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start
    config = json.loads((out / "config.json").read_text())
    history = [h for h in config["history"] if h["epoch"] > 0]
    best = max((h for h in config["history"] if h["best"]), key=lambda h: h["epoch"])
    return {
        "dataset": name,
        "seconds": seconds,
        "teacher_seconds": (config["training_run"]["teacher"] or {}).get("seconds"),
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "best_valid_recall": best["valid_recall"],
        "stop_reason": config["training_run"]["stop_reason"],
        "negatives": config["training_run"].get("negatives"),
        "interactions_per_s": sorted(h["interactions_per_s"] for h in history)[len(history) // 2],
        "epoch_seconds": sorted(h["seconds"] for h in history)[len(history) // 2],
        "test_recall": candidates_recall(out, train.with_name(train.name.replace("train", "test")), tmp),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ab = DATA / "amazon-beauty"
        rows.append(bench("amazon-beauty", ab / "train.txt", ab / "valid.txt", tmp))
        rows.append(bench("synthetic ~800k", *synthetic_files(tmp), tmp))
    lines = [
        "# Fit benchmark: `rechash fit` with no flags (64 bits)",
        "",
        f"Command: `python experiments/bench_fit.py`. Machine: {platform.machine()}, 2 cores shared with other jobs.",
        "",
        commit_line(),
        "",
        "Wall time is the whole command (load, teacher tuning on VALID, training with early stopping, save);",
        "interactions/s and seconds per epoch are medians over the trained epochs "
        "(validation included in the seconds).",
        "",
        "| dataset | wall s | teacher s | negatives | epochs (best) | stop | valid R@20 (Hamming) "
        "| interactions/s | s/epoch "
        "| test R@20 of `rechash candidates m --k 20` |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['seconds']:.0f} | {r['teacher_seconds'] or 0:.0f} | {r['negatives']} "
            f"| {r['epochs']} ({r['best_epoch']}) "
            f"| {r['stop_reason']} | {r['best_valid_recall']:.4f} | {r['interactions_per_s']:,.0f} "
            f"| {r['epoch_seconds']:.1f} "
            f"| {r['test_recall']:.4f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
