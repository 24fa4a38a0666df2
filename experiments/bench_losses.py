"""Loss benchmark: the fused candidate losses against the same losses by pieces, same run.

Regenerates experiments/results/bench_losses.md:

    python experiments/bench_losses.py

One training step's three candidate losses (sampled-softmax CE, teacher KL, ranking CE) with
their backward pass, on lastfm-shaped inputs: the default teacher's factors (tuned ALS,
cached as in codes.py), relaxed codes of 64 bits, shared negatives, the accidental hits of a
real batch. "by pieces" is `losses.losses_by_pieces`, the trainer's path for BPR and logQ
(`candidate_logits`, `mask_hits_`, `teacher_distribution`, `softmax_distill` twice); "fused" is
`losses.candidate_losses` with a
kept `Workspace`, what a default step runs. One torch thread; median of 20 repetitions after 3
warm-up calls, the two arms taking turns.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
OUT = ROOT / "experiments" / "results" / "bench_losses.md"
SHAPES = [(2048, 512), (1024, 1536), (1024, 4096)]  # (batch, negatives): the old default, ml-1m's, lastfm's


def inputs(train, teacher, batch: int, negatives: int, rng: np.random.Generator):
    from rechash.hasher.sampling import accidental_hits

    m = train.matrix.tocsr()
    rows = rng.choice(m.nnz, size=batch, replace=False)
    users = np.searchsorted(m.indptr, rows, side="right") - 1
    items, neg = m.indices[rows].astype(np.int64), rng.integers(0, m.shape[1], size=negatives)
    t_items = rng.integers(0, m.shape[1], size=batch)
    g = torch.Generator().manual_seed(0)
    hu, hpos, ht = (torch.tanh(torch.randn(batch, 64, generator=g)) for _ in range(3))
    hcand = torch.tanh(torch.randn(negatives, 64, generator=g))
    tu, ti = (
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        for x in (teacher.user_factors, teacher.item_factors)
    )
    hits = tuple(torch.from_numpy(x) for x in accidental_hits(items, neg))
    rank_hits = tuple(torch.from_numpy(x) for x in accidental_hits(t_items, neg))
    teacher_rows = (tu[users] / 0.1, ti[items], ti[neg])
    return (hu / 6.4, hpos, hcand, ht), hits, teacher_rows, rank_hits


def main() -> None:
    from codes import load, teacher_for

    from rechash.hasher import losses as L

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    train, valid, _ = load("lastfm")
    teacher, _ = teacher_for("lastfm", train, valid)
    rng = np.random.default_rng(0)
    workspace = L.Workspace()
    lines = [
        "# Candidate losses: fused against by pieces (forward + backward, one thread)",
        "",
        f"Command: `python experiments/bench_losses.py`. Machine: {platform.machine()}, "
        "2 cores shared with other jobs.",
        "lastfm, the default (tuned ALS) teacher, 64-bit relaxed codes; median ms of "
        f"{args.reps} repetitions, the arms taking turns.",
        "",
        "| batch x negatives | by pieces ms | fused ms | speed-up |",
        "|---|---|---|---|",
    ]
    for batch, negatives in SHAPES:
        leaves, hits, teacher_rows, rank_hits = inputs(train, teacher, batch, negatives, rng)
        keep = torch.ones(batch, dtype=torch.bool)

        def run(fused: bool) -> float:
            q, hpos, hcand, ht = (x.clone().requires_grad_() for x in leaves)
            start = time.perf_counter()
            if fused:
                out = L.candidate_losses(
                    q, hpos, hcand, hits, teacher=teacher_rows, ranked=(ht, keep, rank_hits), workspace=workspace
                )
            else:
                out = L.losses_by_pieces(q, hpos, hcand, hits, teacher=teacher_rows, ranked=(ht, keep, rank_hits))[:3]
            sum(out).backward()
            return (time.perf_counter() - start) * 1000

        for _ in range(3):
            run(False), run(True)
        times = {False: [], True: []}
        for _ in range(args.reps):
            for fused in (False, True):
                times[fused].append(run(fused))
        slow, fast = statistics.median(times[False]), statistics.median(times[True])
        lines.append(f"| {batch} x {negatives} | {slow:.1f} | {fast:.1f} | {slow / fast:.2f}x |")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
