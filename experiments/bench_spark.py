"""Spark path (local[2]) against the local job on the same input (issue 7).

    python experiments/bench_spark.py            # writes experiments/results/spark_bench.md
    python experiments/bench_spark.py --quick

Both runs call the same pure function (CandidateJob.run_chunk) on the same synthetic
catalog: clustered 64-bit codes, 64-d float re-ranker, 20 seen items per user, k=200
from a pool of 400. The local job writes resumable shards on 2 search threads; Spark
runs local[2] with one search thread per task (two tasks in parallel) and writes a
Parquet dataset. Spark's time includes broadcasting the job and starting Python workers,
not starting the JVM session (reported separately). Both outputs are checked equal.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash import columns as C
from rechash.codes.bits import cluster_centers, clustered_codes
from rechash.index.candidates import CandidatePolicy
from rechash.jobs.candidates import CandidateJob
from rechash.models.code import CodeRecommender

OUT = Path(__file__).resolve().parent / "results" / "spark_bench.md"


def make_job(n_items: int, n_users: int, threads: int) -> CandidateJob:
    centers = cluster_centers(1000, 64, seed=0)
    rng = np.random.default_rng(3)
    seen = sp.csr_matrix(
        (
            np.ones(20 * n_users, np.float32),
            (np.repeat(np.arange(n_users), 20), rng.integers(0, n_items, 20 * n_users)),
        ),
        shape=(n_users, n_items),
    )
    rec = CodeRecommender(
        clustered_codes(n_items, 64, centers=centers, seed=1),
        user_codes=clustered_codes(n_users, 64, centers=centers, seed=2),
        item_floats=rng.standard_normal((n_items, 64), dtype=np.float32),
        user_floats=rng.standard_normal((n_users, 64), dtype=np.float32),
        seen=seen,
        pool=CandidatePolicy.top_k(400),
        n_threads=threads,
    )
    return CandidateJob(rec, k=200, params={"bench": "spark"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_items, n_users = (50_000, 4_000) if args.quick else (200_000, 20_000)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from rechash.jobs.spark import spark_candidates

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        local_job = make_job(n_items, n_users, threads=2)
        local_job.run_chunk(np.arange(64))  # JIT warm-up
        t = time.perf_counter()
        local_job.run(tmp / "local", shard_size=2000, progress=False)
        local_s = time.perf_counter() - t

        t = time.perf_counter()
        spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.pyspark.python", sys.executable)
            .getOrCreate()
        )
        session_s = time.perf_counter() - t
        spark_job = make_job(n_items, n_users, threads=1)
        t = time.perf_counter()
        spark_candidates(spark, spark_job, str(tmp / "spark"), partitions=10)
        spark_s = time.perf_counter() - t
        spark.stop()
        key = [C.USER_ID, C.RANK]
        a = pd.read_parquet(tmp / "local").sort_values(key).reset_index(drop=True)
        b = pd.read_parquet(tmp / "spark")[a.columns].sort_values(key).reset_index(drop=True)
        equal = a.astype({C.HAMMING: "int32"}).equals(b.astype({C.RANK: "int32", C.HAMMING: "int32"}))
    text = f"""`python experiments/bench_spark.py{" --quick" if args.quick else ""}`

# Spark (local[2]) vs the local job, same input

{n_users:,} users x {n_items:,} items, 64-bit clustered codes, k=200 from a pool of 400, 20 seen items per
user; 10 Spark partitions. Load average {os.getloadavg()[0]:.1f} at the end (other jobs may have shared the
2 cores). Outputs identical row for row: **{"yes" if equal else "NO"}**.

| path | wall s | users/s | relative |
|---|---|---|---|
| local job (2 search threads, shards) | {local_s:.1f} | {n_users / local_s:,.0f} | 1.00x |
| Spark local[2] (1 thread per task) | {spark_s:.1f} | {n_users / spark_s:,.0f} | {local_s / spark_s:.2f}x |
| Spark session start (JVM), once | {session_s:.1f} | | |

Spark's overhead on one machine: Python worker start-up and the broadcast of the job
(codes, floats and the seen matrix pickled once per executor), Arrow conversion of every
batch, and its own Parquet writer. It pays off only when more machines than one join.
"""
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
