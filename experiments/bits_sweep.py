"""Bits sweep on ml-1m: Hamming-only and re-ranked test Recall@20 for B in 16/32/64/128.

Regenerates experiments/results/bits_sweep.md (parts may run in parallel, then merge):

    python experiments/bits_sweep.py --bits 16 32 64 128

Every B uses the same recipe (the library defaults, same step budget). The ALS teacher is
tuned on valid by experiments/accuracy.py's grid with 64 factors; B > 64 refits it with B
factors (same regularization / alpha), because ITQ-initialising B bits from fewer factors
(an isometric lift, rank-deficient) collapsed in training. B < 64 projects the 64-factor
teacher by PCA. Re-ranking: 200 Hamming candidates -> towers' floats, and -> teacher floats.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy as A  # noqa: E402

from rechash.baselines import fit_als  # noqa: E402
from rechash.data import load_many  # noqa: E402
from rechash.model import TwinTowerHasher, hamming_topk  # noqa: E402
from rechash.rerank import DotReranker, rerank  # noqa: E402

PARTS = A.RESULTS / "bits_sweep_parts"


def run(bits_list, threads, overrides, log) -> None:
    train, valid, test = load_many([A.DATA / "ml-1m" / f"{s}.txt" for s in ("train", "valid", "test")])
    users = A.eval_users(test.matrix)
    als, params, _ = A.tune_als(train, valid, threads)
    als_exact = A.float_recall(als, users, train.matrix, test.matrix)
    PARTS.mkdir(parents=True, exist_ok=True)
    for bits in bits_list:
        factors = max(64, bits)  # a teacher with fewer factors than bits gives a rank-deficient init (collapses at 128)
        teacher = als if factors == 64 else fit_als(
            train, factors, params["regularization"], params["alpha"], params["iterations"], seed=0, num_threads=threads
        )
        m = TwinTowerHasher(bits, seed=0, progress=False, threads=threads, **overrides)
        m.fit(train, valid, teacher=teacher, callbacks=[lambda e: log(f"[{bits}] epoch {e.epoch} valid {e.valid_recall:.4f}")])
        uc, ic = m.encode_users(), m.encode_items()
        ham, _ = hamming_topk(uc, ic, users, 200, train.matrix)
        row = {"bits": bits, "teacher_factors": factors, "als_exact": als_exact, "als_params": params, "hamming_only": A.recall(ham[:, :20], users, test.matrix)}
        for label, (a, b) in {"rerank_towers": (m.user_floats(), m.item_floats()), "rerank_teacher": (teacher.user_factors, teacher.item_factors)}.items():
            ids, _ = rerank(DotReranker(a, b), users, ham, 20)
            row[label] = A.recall(ids, users, test.matrix)
        row.update(A.candidate_recall(ham, users, test.matrix))
        pu, pi = A.posthoc_codes(teacher, "itq", bits)
        row["itq_hamming_only"] = A.recall(hamming_topk(pu, pi, users, 20, train.matrix)[0], users, test.matrix)
        best = max(m.history_, key=lambda e: (e.valid_recall, -e.epoch))
        row.update(best_epoch=best.epoch, epochs_run=len(m.history_) - 1, overrides=overrides,
                   time_to_best_s=float(sum(e.seconds for e in m.history_ if e.epoch <= best.epoch)))
        row["loadavg"] = os.getloadavg()
        log(json.dumps(row))
        (PARTS / f"{bits}.json").write_text(json.dumps(row))


def write(cmd: str) -> None:
    rows = sorted((json.loads(f.read_text()) for f in PARTS.glob("*.json")), key=lambda r: r["bits"])
    lines = [
        "# Bits sweep on ml-1m (test Recall@20)\n",
        A.header(cmd).replace("{threads}", "1"),
        f"ALS exact float search (64 factors, tuned on valid {rows[0]['als_params']}): {rows[0]['als_exact']:.4f}. "
        "Re-ranked = 200 Hamming candidates (train excluded) re-scored by float dot products.\n",
        "| bits | bytes / item | Hamming only (learned) | ITQ(ALS) Hamming only | 200 cands -> towers' floats | "
        "200 cands -> teacher (ALS) floats | teacher factors | cand. recall@100 | cand. recall@200 | best epoch / run | "
        "time to best (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['bits']} | {r['bits'] // 8} | {r['hamming_only']:.4f} | {r['itq_hamming_only']:.4f} | {r['rerank_towers']:.4f} | "
            f"{r['rerank_teacher']:.4f} | {r.get('teacher_factors', 64)} | {r['cand_recall@100']:.4f} | {r['cand_recall@200']:.4f} | "
            f"{r['best_epoch']} / {r['epochs_run']} | {r.get('time_to_best_s', float('nan')):.1f} |"
        )
    lines += ["", "Time to best is wall-clock under the machine load listed (rows ran concurrently with "
              "other helpers' benchmarks), "
              "so compare accuracy across rows, not seconds."]
    lines += ["", "Load average (1/5/15 min) after each row: " + "; ".join(
        f"{r['bits']}: " + "/".join(f"{x:.1f}" for x in r.get("loadavg", [])) for r in rows)]
    lines += ["", "Overrides of the defaults per row: " + "; ".join(f"{r['bits']}: `{json.dumps(r['overrides'])}`" for r in rows)]
    (A.RESULTS / "bits_sweep.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bits", type=int, nargs="*", default=[16, 32, 64, 128])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[])
    p.add_argument("--from-accuracy", action="store_true", help="take the row of accuracy.py's ml-1m part")
    p.add_argument("--write-only", action="store_true", help="only merge the parts into the table")
    p.add_argument("--command", default=None, help="command line to record in the table")
    a = p.parse_args(argv)
    overrides = {kv.split("=", 1)[0]: json.loads(kv.split("=", 1)[1]) for kv in a.set}
    if a.from_accuracy:  # the 64-bit row of experiments/accuracy.py's ml-1m run (same recipe)
        r = json.loads((A.PARTS / "ml-1m.json").read_text())
        row = {"bits": r["bits"], "als_exact": r["als_exact"], "als_params": r["als_params"],
               "hamming_only": r["hamming_only"], "rerank_towers": r["rerank_towers"], "rerank_teacher": r["rerank_teacher"],
               "itq_hamming_only": r["hamming_only_itq"], "best_epoch": r["training"]["best_epoch"],
               "epochs_run": r["training"]["epochs_run"], "overrides": "from accuracy.py: " + r["command"], **r["cand_learned"],
               "teacher_factors": 64, "time_to_best_s": r["training"]["time_to_best_s"],
               "loadavg": r["training"].get("loadavg_after", [])}
        PARTS.mkdir(parents=True, exist_ok=True)
        (PARTS / f"{r['bits']}.json").write_text(json.dumps(row))
    elif not a.write_only:
        run(a.bits, a.threads, overrides, lambda s: print(s, file=sys.stderr, flush=True))
    write(a.command or ("python experiments/bits_sweep.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip())


if __name__ == "__main__":
    main()
