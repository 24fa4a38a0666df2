"""Offline candidate job throughput (issue 6): ml-1m all users and a synthetic 1M-item catalog.

    python experiments/bench_job.py            # writes experiments/results/job.md
    python experiments/bench_job.py --quick    # smaller sizes, for a smoke run

Each configuration runs in a fresh subprocess so that its peak memory (max RSS) is its
own. ml-1m: a model trained for 2 epochs with every other default (throughput does not depend on
quality; the fit's held-out validation decides the re-ranker, as it does for users) and, with
``--ml1m-model DIR``, the model of a full `rechash fit` (the learned re-ranker when it kept one), then
``rechash candidates MODEL --out DIR --k 200`` over all 6,039 users. Synthetic: 64-bit
clustered codes for 1,000,000 items and a sample of users (20 seen items each, 64-d float
re-ranker), k=200 from a pool of 400, on 1 and 2 threads; the time inside the pure
function (search + re-rank) is separated from Parquet writing, and the all-users time for
1,000,000 users is projected from the measured users/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from provenance import commit_line

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "job.md"
ML1M = ROOT.parent / "shared" / "data" / "ml-1m"


def run_ml1m(tmp: Path, model: str | None = None) -> dict:
    """All ml-1m users from ``model`` (a `rechash fit` directory), or from a 2-epoch fit."""
    from rechash.data import load
    from rechash.hasher.twin_tower import TwinTowerHasher
    from rechash.jobs.candidates import CandidateJob

    if model is None:
        TwinTowerHasher(64, epochs=2, seed=0, progress=False).fit(load(ML1M / "train.txt")).save(tmp / "model")
    job = CandidateJob.from_model_dir(model or tmp / "model", k=200)
    start = time.perf_counter()
    job.run(tmp / "out", shard_size=2000, progress=False)
    seconds = time.perf_counter() - start
    return {"users": len(job.user_ids), "seconds": seconds, "reranker": str(job.key_params()["reranker"]).split()[0]}


def run_synthetic(tmp: Path, n_items: int, n_users: int, threads: int) -> dict:
    import scipy.sparse as sp

    from rechash.codes.bits import cluster_centers, clustered_codes
    from rechash.index.candidates import CandidatePolicy
    from rechash.jobs.candidates import CandidateJob
    from rechash.models.code import CodeRecommender

    centers = cluster_centers(1000, 64, seed=0)
    items = clustered_codes(n_items, 64, centers=centers, seed=1)
    users = clustered_codes(n_users, 64, centers=centers, seed=2)
    rng = np.random.default_rng(3)
    seen = sp.csr_matrix(
        (
            np.ones(20 * n_users, np.float32),
            (np.repeat(np.arange(n_users), 20), rng.integers(0, n_items, 20 * n_users)),
        ),
        shape=(n_users, n_items),
    )
    rec = CodeRecommender(
        items,
        user_codes=users,
        item_floats=rng.standard_normal((n_items, 64), dtype=np.float32),
        user_floats=rng.standard_normal((n_users, 64), dtype=np.float32),
        seen=seen,
        pool=CandidatePolicy.top_k(400),
        n_threads=threads,
    )
    job = CandidateJob(rec, k=200, params={"bench": True})
    inside = 0.0
    run_chunk = job.run_chunk

    def timed(chunk, history=None):
        nonlocal inside
        t = time.perf_counter()
        frame = run_chunk(chunk, history)
        inside += time.perf_counter() - t
        return frame

    job.run_chunk = timed
    run_chunk(np.arange(min(64, n_users)))  # JIT warm-up outside the timing
    start = time.perf_counter()
    job.run(tmp / "out", shard_size=2000, progress=False)
    seconds = time.perf_counter() - start
    return {"users": n_users, "items": n_items, "threads": threads, "seconds": seconds, "search_seconds": inside}


def child(spec: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = (
            run_ml1m(Path(tmp), spec.get("model"))
            if spec["case"] == "ml-1m"
            else run_synthetic(Path(tmp), spec["items"], spec["users"], spec["threads"])
        )
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def launch(spec: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec.get("threads", 2)), NUMBA_NUM_THREADS="2")
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, env=env
    )
    if proc.returncode:
        raise SystemExit(proc.stderr)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--ml1m-model", help="also time all ml-1m users from this `rechash fit` model directory")
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))
    n_items, n_users = (100_000, 2_000) if args.quick else (1_000_000, 20_000)
    rows = []
    if ML1M.exists():
        for model in (None, args.ml1m_model) if args.ml1m_model else (None,):
            r = launch({"case": "ml-1m", "model": model})
            rows.append(
                f"| ml-1m, all users ({r['reranker']} re-ranker{', full fit' if model else ''}) | 3,628 "
                f"| {r['users']:,} | 2 | {r['seconds']:.1f} | {r['users'] / r['seconds']:,.0f} "
                f"| - | {r['peak_rss_mib']:,.0f} | - |"
            )
    for threads in (1, 2):
        r = launch({"case": "synthetic", "items": n_items, "users": n_users, "threads": threads})
        ups = r["users"] / r["seconds"]
        share = r["search_seconds"] / r["seconds"]
        rows.append(
            f"| synthetic 64-bit | {n_items:,} | {n_users:,} | {threads} | {r['seconds']:.1f} | {ups:,.0f} "
            f"| {share:.0%} search / {1 - share:.0%} writing | {r['peak_rss_mib']:,.0f} "
            f"| {1_000_000 / ups / 3600:.2f} h |"
        )
    load = os.getloadavg()[0]
    models = f" --ml1m-model {args.ml1m_model}" if args.ml1m_model else ""
    text = (
        f"""`python experiments/bench_job.py{" --quick" if args.quick else ""}{models}`

{commit_line()}

# Offline candidate job (k=200)

Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} when it finished (other jobs may
have shared the machine). Synthetic: clustered 64-bit codes, 20 seen items per user, pool of the 400
nearest unseen items re-ranked by a 64-d dot product, shards of 2,000 users. "1M users" projects the
measured users/s to 1,000,000 users. Peak memory is the subprocess's max RSS (model, codes, floats,
seen matrix and one shard in flight).

| case | items | users run | threads | wall s | users/s | time split | peak RSS MiB | 1M users |
|---|---|---|---|---|---|---|---|---|
"""
        + "\n".join(rows)
        + "\n"
    )
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
