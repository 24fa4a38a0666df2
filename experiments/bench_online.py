"""Online single-user latency of ``recommend`` (issue 12), every arm in the same run, one thread.

    python experiments/bench_online.py                 # writes experiments/results/online.md
    python experiments/bench_online.py --quick         # 100k items, fewer queries (smoke run)

Each arm answers the same users one call at a time through its public ``recommend`` (the
implicit convention: ``recommend(userid, user_items[userid], N=20)``), every kernel bounded
to one thread (:func:`rechash.threads.thread_limit`); p50 / p99 over the sampled users,
after a warm-up. Arms:

- rechash Hamming only, rechash + dot (the default: a 200-item Hamming pool re-ranked by
  the float vectors), rechash + codes-only (user floats against item bits): one
  ``CodeRecommender`` (what ``rechash candidates`` runs) over ITQ codes of the ALS factors
  (latency does not depend on how the codes were learned);
- implicit's ALS ``recommend`` on the same factors (implicit's exact scan);
- ALS + Annoy (MIPS transform, 10 trees, ``search_k`` 2000), rechash's Annoy baseline.

Catalogs: ml-1m (6,040 users x 3,706 items, ALS fitted on train.txt, 64 factors) and a
synthetic catalog of 1,000,000 items (clustered 64-d float vectors, 64-bit ITQ codes,
users with 20 seen items each). Batch throughput (all users) is measured by
``experiments/bench_job.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from provenance import commit_line

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "online.md"
ML1M = ROOT.parent / "shared" / "data" / "ml-1m"
K = 20


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def implicit_als(emb):
    """implicit's own ALS object serving the given factors (its ``recommend`` is the peer)."""
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=emb.dim, random_state=0)
    model.user_factors = np.ascontiguousarray(emb.user_factors)
    model.item_factors = np.ascontiguousarray(emb.item_factors)
    return model


def arms(emb, seen, annoy: bool) -> dict:
    from rechash import CodeRecommender
    from rechash.codes.binarizers import ITQ
    from rechash.models.annoy import AnnoyRecommender
    from rechash.rerank import CodesOnlyReranker

    start = time.perf_counter()
    itq = ITQ(64, center=False).fit(np.vstack([emb.user_factors[:50_000], emb.item_factors[:200_000]]))
    log(f"ITQ fitted in {time.perf_counter() - start:.1f} s")
    dot = CodeRecommender.from_floats(emb, binarizer=itq, seen=seen)
    out = {
        "rechash Hamming only": CodeRecommender.from_floats(emb, binarizer=itq, seen=seen, reranker=None),
        "rechash + dot (default)": dot,
        "rechash + codes-only": CodeRecommender.from_floats(
            emb, binarizer=itq, seen=seen, reranker=CodesOnlyReranker(itq.transform(emb.user_factors), dot.item_codes)
        ),
        "implicit ALS recommend (exact)": implicit_als(emb),
    }
    if annoy:
        start = time.perf_counter()
        out["ALS + Annoy (10 trees, search_k 2000)"] = AnnoyRecommender.build(emb, "mips", 10, 2000, 0, seen=seen)
        log(f"Annoy built in {time.perf_counter() - start:.1f} s")
    return out


def time_arms(recs: dict, seen: sp.csr_matrix, users: np.ndarray, warmup: int = 20, block: int = 50) -> dict:
    """p50 / p99 ms of one-user calls. The arms take turns by blocks of ``block`` users, so
    drift hits all alike while each arm serves consecutive calls as a serving process does
    (its tables stay in cache between calls; the 1M-item float scan of exact ALS would
    otherwise evict the 8 MB of codes from the 32 MB L3 before every rechash call)."""
    from rechash.threads import thread_limit

    times = {name: [] for name in recs}
    with thread_limit(1):
        for u in users[:warmup]:
            for rec in recs.values():
                rec.recommend(int(u), seen[int(u)], N=K)
        for start in range(0, len(users), block):
            rows = [(int(u), seen[int(u)]) for u in users[start : start + block]]
            for name, rec in recs.items():
                for u, row in rows:
                    t = time.perf_counter()
                    rec.recommend(u, row, N=K)
                    times[name].append(time.perf_counter() - t)
    return {
        name: {
            "p50_ms": 1e3 * float(np.percentile(t, 50)),
            "p99_ms": 1e3 * float(np.percentile(t, 99)),
            "calls": len(t),
        }
        for name, t in times.items()
    }


def ml1m(n_users: int) -> dict:
    from rechash.als.fit import fit_als
    from rechash.data import load

    train = load(ML1M / "train.txt")
    emb = fit_als(train, 64, 3.0, 40.0, 15, seed=0)
    users = np.random.default_rng(0).choice(train.n_users, size=min(n_users, train.n_users), replace=False)
    return {
        "catalog": f"ml-1m ({train.n_users:,} users x {train.n_items:,} items)",
        "arms": time_arms(arms(emb, train.matrix, annoy=True), train.matrix, users),
    }


def synthetic(n_items: int, n_users: int, annoy: bool) -> dict:
    from rechash.data.embeddings import FloatEmbeddings

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((1000, 64)).astype(np.float32)
    items = centers[rng.integers(0, 1000, n_items)] + 0.5 * rng.standard_normal((n_items, 64)).astype(np.float32)
    users = centers[rng.integers(0, 1000, n_users)] + 0.5 * rng.standard_normal((n_users, 64)).astype(np.float32)
    seen = sp.csr_matrix(
        (
            np.ones(20 * n_users, np.float32),
            (np.repeat(np.arange(n_users), 20), rng.integers(0, n_items, 20 * n_users)),
        ),
        shape=(n_users, n_items),
    )
    seen.sum_duplicates()
    seen.data[:] = 1.0
    emb = FloatEmbeddings(users / 8, items / 8)
    return {
        "catalog": f"synthetic ({n_users:,} users x {n_items:,} items, 64-d, 64 bits)",
        "arms": time_arms(arms(emb, seen, annoy), seen, np.arange(n_users)),
    }


def write(results: list[dict], args) -> None:
    lines = [
        "# Online latency: one `recommend` call per user, one thread",
        "",
        f"Command: `python experiments/bench_online.py{' --quick' if args.quick else ''}` "
        f"({platform.machine()}, {os.cpu_count()} cores shared with other jobs; every kernel bounded to one thread).",
        "",
        commit_line(),
        "",
        "Every arm answers the same users through its public `recommend(userid, user_items[userid], N=20)`; "
        "the arms take turns by blocks of 50 users (each arm serves consecutive calls, as a serving process does). "
        "rechash arms are one `CodeRecommender` (what `rechash candidates` runs) "
        "over 64-bit ITQ codes of the same ALS factors; `+ dot` re-ranks a 200-item Hamming pool with the "
        "float factors, `codes-only` scores the pool with the user's floats against the items' bits.",
        "",
    ]
    for r in results:
        lines += [f"## {r['catalog']}", "", "| arm | p50 ms | p99 ms | calls |", "|---|---|---|---|"]
        for name, m in r["arms"].items():
            lines.append(f"| {name} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {m['calls']} |")
        lines.append("")
    OUT.write_text("\n".join(lines))
    (OUT.with_suffix(".json")).write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--no-annoy-large", action="store_true", help="skip building Annoy over the large catalog")
    args = ap.parse_args()
    items = 100_000 if args.quick else args.items
    users = 100 if args.quick else args.users
    results = []
    if ML1M.exists():
        log("ml-1m")
        results.append(ml1m(users))
    log(f"synthetic {items:,} items")
    results.append(synthetic(items, users, annoy=not args.no_annoy_large))
    write(results, args)


if __name__ == "__main__":
    main()
