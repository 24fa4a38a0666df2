"""Regenerate the committed comparison reports under experiments/reports/<dataset>/.

    python experiments/reports/make_reports.py --data ../shared/data --datasets ml-1m lastfm [--no-rechash] [--bpr]

Each report is what `rechash compare` writes (report.md, report.json, three PNG plots),
run through the same library function (rechash.evaluation.pipeline.run_compare) with the
options below; the exact command sits at the top of every report.md.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from rechash.data import load_many
from rechash.evaluation.pipeline import CompareConfig, run_compare
from rechash.evaluation.report import write_report


#: BPR parameters chosen on valid per dataset (experiments/baselines/tune.md); tuning BPR
#: inside the comparison would cost minutes on one thread.
BPR_TUNED = {
    "ml-1m": {"factors": 64, "learning_rate": 0.0025, "regularization": 0.01, "iterations": 100},
    "lastfm": {"factors": 64, "learning_rate": 0.005, "regularization": 0.01, "iterations": 200},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--datasets", nargs="+", default=["ml-1m", "lastfm"])
    ap.add_argument("--out", default="experiments/reports")
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rechash", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--bpr", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--radius", default="auto", help="radius sweep of the re-ranked rechash arm, e.g. 12,16,20, or auto")
    ap.add_argument("--bits-sweep", default="", help="extra code lengths for the bits curve, e.g. 16,32,128")
    ap.add_argument("--learned-model", default="logistic", choices=["logistic", "hgb"])
    ap.add_argument("--suffix", default="", help="appended to the report folder name")
    args = ap.parse_args()
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    for name in args.datasets:
        train, valid, test = load_many([Path(args.data) / name / f"{s}.txt" for s in ("train", "valid", "test")])
        cfg = CompareConfig(
            bits=args.bits,
            threads=args.threads,
            rechash=args.rechash,
            bpr=args.bpr,
            bpr_params=BPR_TUNED.get(name, CompareConfig().bpr_params),
            radius_sweep=None if args.radius == "auto" else tuple(int(r) for r in args.radius.split(",") if r),
            bits_sweep=tuple(int(b) for b in args.bits_sweep.split(",") if b),
            learned_model=args.learned_model,
        )
        start = time.perf_counter()
        say = lambda msg: print(f"[{name} {time.perf_counter() - start:6.1f}s] {msg}", flush=True)  # noqa: E731
        result = run_compare(train, valid, test, cfg, dataset=name, progress=say)
        result.meta["wall_seconds"] = time.perf_counter() - start
        result.meta["machine"] += "; 2-core machine shared with other jobs while measuring (latency and throughput are noisy)"
        arms = "rechash vs float baselines" if args.rechash else "float baselines"
        out = Path(args.out) / f"{name}{args.suffix}"
        write_report(result, out, title=f"{arms} on {name} ({args.bits} bits)" if args.rechash else f"{arms} on {name}", command=command)
        print(result.summary().to_string(), flush=True)


if __name__ == "__main__":
    main()
