"""Codes that hold up on any catalog: defaults, ablation, validation curves (64 bits).

Regenerates experiments/results/codes.md (+ codes_parts/*.json, codes_curves.png):

    python experiments/codes.py --datasets ml-1m lastfm amazon-beauty            # every row, then the table
    python experiments/codes.py --datasets amazon-beauty --rows default no_rank  # some rows
    python experiments/codes.py --table                                          # table from the parts only

Every row trains ``TwinTowerHasher(bits=64, **overrides)`` on TRAIN with early stopping on
VALID and evaluates on TEST (DESIGN.md protocol: full ranking, training items excluded,
Recall@20 / NDCG@20 over users with a test item) through ``CodeRecommender.from_model`` --
the object ``rechash candidates`` runs: Hamming only (``reranker=None``), the default
towers'-floats re-ranker over the ``max(2K, 200)`` Hamming pool, and the codes-only
re-ranker. The default row uses the default teacher (ALS tuned on VALID by
``rechash.als.teacher.default_teacher``), cached per dataset in experiments/cache/
and reused by the other rows, so each row differs from the default in one thing only.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from provenance import commit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "experiments" / "results"
PARTS = RESULTS / "codes_parts"
CACHE = ROOT / "experiments" / "cache"
BITS = 64

#: the previous defaults, the base of every ablation row below it (they predate the user-code refinement)
RECIPE_512 = {"negatives": 512, "batch_size": 2048, "epoch_updates": 1000, "refine": False}

#: one change each from RECIPE_512: name -> (overrides, what the row changes)
_ABLATION: dict[str, tuple[dict, str]] = {
    "no_rank": ({"w_rank": 0.0}, "no ranking distillation"),
    "no_distill": ({"w_distill": 0.0}, "no softmax distillation"),
    "no_teacher_loss": ({"w_rank": 0.0, "w_distill": 0.0}, "teacher as initialisation only"),
    "quant": ({"w_quant": 0.1}, "+ quantization loss 0.1"),
    "bpr": ({"w_softmax": 0.0, "w_bpr": 1.0}, "BPR instead of sampled softmax"),
    "balance": ({"w_balance": 0.1}, "+ bit balance 0.1"),
    "decor": ({"w_decor": 0.1}, "+ decorrelation 0.1"),
    "ste": ({"relaxation": "ste"}, "straight-through sign instead of tanh"),
    "continuation": ({"beta_growth": 1.5, "beta_max": 10.0}, "tanh continuation (beta x1.5 per epoch, to 10)"),
    "graph": ({"graph_layers": 2}, "graph-aware towers: 2 LightGCN layers before the sign"),
    "negatives_4096": (
        {"negatives": 4096, "batch_size": 1024},
        "4096 sampled negatives, batches of 1024 (what the default's budget rule picks on lastfm)",
    ),
    "teacher_untuned": ({"teacher": "untuned"}, "teacher: ALS at the old fixed values (reg 0.05, alpha 10)"),
    "teacher_none": ({"teacher": None, "init": "random"}, "no teacher"),
}

#: table rows: name -> (TwinTowerHasher overrides, what the row changes)
ROWS: dict[str, tuple[dict, str]] = {
    "default": ({}, "the defaults (`rechash fit` with no flags)"),
    "no_refine": ({"refine": False}, "no user-code refinement (the towers' signs as user codes)"),
    "recipe_512": (
        RECIPE_512,
        "the previous defaults: 512 negatives, batches of 2048, epoch cap from 1000 updates, no refinement "
        "(the rows below change one thing from it)",
    ),
    **{name: ({**RECIPE_512, **overrides}, what) for name, (overrides, what) in _ABLATION.items()},
}


def load(name: str):
    from rechash.data import load_many

    d = DATA / name
    return load_many([d / "train.txt", d / "valid.txt", d / "test.txt"])


def teacher_for(name: str, train, valid, which: str = "auto"):
    """The default teacher (cached: tuning is the slow part and identical for every row)."""
    from rechash.als.fit import fit_als
    from rechash.als.teacher import default_teacher
    from rechash.data.embeddings import FloatEmbeddings

    if which == "untuned":
        return fit_als(train, 64, 0.05, 10.0, 15, seed=0), {
            "kind": "als",
            "params": {"regularization": 0.05, "alpha": 10.0},
        }
    path = CACHE / f"{name}-teacher-{BITS}.npz"
    if path.exists():
        z = np.load(path)
        info = json.loads(str(z["info"]))
        fold_in = {k: info["params"][k] for k in ("regularization", "alpha")}
        return FloatEmbeddings(
            z["user"], z["item"], fold_in=fold_in, user_ids=train.user_ids, item_ids=train.item_ids
        ), info
    emb, info = default_teacher(train, valid, BITS)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, user=emb.user_factors, item=emb.item_factors, info=json.dumps(info))
    return emb, info


def evaluate(rec, users, truth, seen, k: int = 20) -> dict:
    """Recall / NDCG@k of ``rec`` on ``users``, the training items ``seen`` excluded, through
    the recommender contract exactly as ``rechash compare`` evaluates an arm."""
    from rechash.evaluation import per_user_metrics
    from rechash.evaluation.compare import top_lists

    m = per_user_metrics(top_lists(rec, users, k, seen), users, truth, ks=(k,))
    return {"recall": float(m[f"recall@{k}"].mean()), "ndcg": float(m[f"ndcg@{k}"].mean())}


def run_row(name: str, row: str, threads: int | None) -> dict:
    from rechash import CodeRecommender
    from rechash.hasher.twin_tower import TwinTowerHasher
    from rechash.rerank import CodesOnlyReranker, DotReranker

    train, valid, test = load(name)
    overrides = dict(ROWS[row][0])
    which = overrides.pop("teacher", "auto")
    t0 = time.perf_counter()
    teacher, info = (None, None) if which is None else teacher_for(name, train, valid, which)
    teacher_s = info.get("seconds", time.perf_counter() - t0) if info else 0.0
    model = TwinTowerHasher(BITS, seed=0, progress=False, threads=threads, **overrides)
    model.fit(train, valid, teacher=teacher)
    users = np.flatnonzero(np.diff(test.matrix.indptr))
    seen = train.matrix
    out = {
        "dataset": name,
        "row": row,
        "overrides": ROWS[row][0] if which in ("auto", None) else {"teacher": which},
        "teacher": {k: v for k, v in (info or {}).items() if k != "grid"},
        "teacher_seconds": teacher_s,
        "fit_seconds": model.fit_seconds_,
        "stop_reason": model.stop_reason_,
        "negatives": model.negatives_,
        "refine": model.refine_,
        "epochs": [
            {
                "epoch": h.epoch,
                "valid_recall": h.valid_recall,
                "seconds": h.seconds,
                "interactions_per_s": h.interactions_per_s,
            }
            for h in model.history_
        ],
        "best_epoch": max((h.epoch for h in model.history_ if h.best), default=0),
        "hamming": evaluate(CodeRecommender.from_model(model, seen=seen, reranker=None), users, test.matrix, seen),
        "default": evaluate(CodeRecommender.from_model(model, seen=seen, reranker="dot"), users, test.matrix, seen),
        "towers": evaluate(
            CodeRecommender.from_model(
                model, seen=seen, reranker=DotReranker(model.user_floats(), model.item_floats())
            ),
            users,
            test.matrix,
            seen,
        ),
        "codes_only": evaluate(
            CodeRecommender.from_model(
                model, seen=seen, reranker=CodesOnlyReranker(model.user_floats(), model.encode_items())
            ),
            users,
            test.matrix,
            seen,
        ),
    }
    if row == "default":  # the peer: the same tuned ALS, exact float search, in the same run
        from rechash.evaluation import full_ranking, per_user_metrics
        from rechash.evaluation.compare import top_lists

        ids, _ = full_ranking(teacher.scores, users, 20, seen)
        m = per_user_metrics(ids, users, test.matrix, ks=(20,))
        out["als_exact"] = {"recall": float(m["recall@20"].mean()), "ndcg": float(m["ndcg@20"].mean())}
        out["hamming_id_ties"] = evaluate(
            CodeRecommender.from_model(model, seen=seen, reranker=None, tie_rule="id"), users, test.matrix, seen
        )
        # Recall@K of the Hamming top-K for K up to the re-ranker's pool: refined codes vs the towers' codes
        for which, refined in (("refined", True), ("towers", False)):
            rec = CodeRecommender.from_model(model, seen=seen, reranker=None, refined=refined)
            m = per_user_metrics(top_lists(rec, users, 200, seen), users, test.matrix, ks=(20, 50, 100, 200))
            out.setdefault("pool_recall", {})[which] = {k: float(m[f"recall@{k}"].mean()) for k in (20, 50, 100, 200)}
    return out


PUBLISHED = {"ml-1m": {"BPR-MF": 0.2098, "LightGCN": 0.2392}, "lastfm": {"BPR-MF": 0.2014, "LightGCN": 0.2523}}


ORDER = ["ml-1m", "lastfm", "amazon-beauty"]

#: what the ablation shows (written from the committed parts; update it when they change)
FINDINGS = """\
**What it shows.** The teacher carries the codes. Without one, Hamming-only Recall@20 falls
to 0.163 (ml-1m), 0.076 (lastfm) and 0.038 (amazon-beauty); as initialisation only (no
distillation) to 0.196 / 0.160 / 0.048. The old untuned ALS teacher (reg 0.05, alpha 10)
costs 0.005 / 0.001 / 0.023 Hamming-only and 0.015 / 0.012 / 0.008 re-ranked: on the sparse
catalog the tuned teacher is worth a third of the Hamming-only recall. EASE, the closed-form
candidate, is weaker than the tuned ALS on ml-1m and lastfm at its best validation lambda
([ease_teacher.md](ease_teacher.md)), so ALS stays the teacher. Ranking distillation of the
teacher's top-50 unseen items is the largest single loss term (ml-1m +0.009, lastfm +0.027,
amazon-beauty +0.016); softmax distillation adds +0.005 / +0.014 on ml-1m / lastfm and
-0.0006 on amazon-beauty; the sampled softmax beats BPR on all three (+0.001 / +0.002 /
+0.002). The quantization loss, bit balance and decorrelation each cost 0.000-0.004
Hamming-only on ml-1m and lastfm and gain 0.0005-0.0007 on amazon-beauty (within the
run-to-run spread there), so they stay off: the quantization loss, the design's second term,
is measured and not the default. The straight-through sign gains on lastfm (+0.006) and
amazon-beauty (+0.0002) but loses 0.016 on ml-1m, and tanh continuation collapses lastfm
(0.174) while moving ml-1m and amazon-beauty by +0.0002 / +0.0005: tanh at beta 1 stays.
Two LightGCN layers before the sign cost 0.003 (ml-1m), 0.016 (lastfm) and 0.001 (amazon-beauty)
Hamming-only at 1.6-6x the fit time, so graph propagation stays an option. More candidate
columns per training interaction are the one change that lifts Hamming-only on every dataset,
and they made the current default: 4096 negatives in batches of 1024 lift recipe_512 by
+0.005 on ml-1m (0.2323, stopped by the old epoch cap) and +0.010 on lastfm (0.2364); the
default's budget of 2^30 logits per epoch gives 1536 / 4096 / 3584 negatives and Hamming-only
without the refinement (the no_refine row) 0.2310 / 0.2368 / 0.0773 (89% / 91% / 97% of the
tuned ALS, against 87% / 87% / 91% for recipe_512). A step's cost is linear in the columns;
the fused loss (one exponential of the
student's logits for all three losses, the gradient written in place, kept buffers) cut the
losses' share 2-3x (183 -> 63 ms for 1024 rows x 4096 candidates on one core,
[bench_losses.md](bench_losses.md)), and the budget keeps the
~800k-interaction fit within 10 minutes ([bench_fit.md](bench_fit.md)). Every item once
(an exact softmax over ml-1m's 3,628 items: `--negatives 4096`, epoch cap from 2000 updates)
gave no more than 4096 samples did: 0.2309, at 1,592 s on one thread. The default re-ranker (the teacher's
floats over the Hamming pool) barely moves with any of it (0.2590-0.2602 on ml-1m and lastfm,
0.0794-0.0810 on amazon-beauty). Popularity ties add 0.0004-0.0013 over id ties at no float
cost (one byte per item). The user-code refinement (bit flips of each user's code toward the
teacher's top-20 against the fixed item codes, `rechash.hasher.refine`) is the step that lifts
ml-1m past 90%: validation picked T = 4 there (Hamming-only 0.2310 -> 0.2388, 89% -> 92% of
the tuned ALS) and T = 4 on lastfm, where it gained on validation (+0.0062) and lost on test
(0.2368 -> 0.2359); on amazon-beauty every temperature lost on validation (-0.0022) and the
towers' codes were kept (0.0773). The refined codes trade depth for the top 20 (ml-1m
Hamming-only Recall@200 0.6246 against 0.6476 for the towers' codes), so the re-ranked default
keeps drawing its pool with the towers' codes and does not move. \
Rows marked "epoch cap" in their part stopped at the density
rule's cap, not by patience (on ml-1m: teacher_untuned, teacher_none, graph,
negatives_4096). The amazon-beauty rows other than recipe_512, no_rank, quant and ste ran on
one thread beside other jobs, so their fit seconds are inflated 2-4x."""


def read_parts() -> dict[str, dict[str, dict]]:
    parts: dict[str, dict[str, dict]] = {}
    for f in sorted(PARTS.glob("*/*.json")):
        d = json.loads(f.read_text())
        parts.setdefault(d["dataset"], {})[d["row"]] = d
    return {n: parts[n] for n in sorted(parts, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))}


def curves_png(parts: dict, path: Path) -> None:
    """Validation Recall@20 (Hamming) per epoch of the default fit, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in parts if "default" in parts[n]]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        d = parts[name]["default"]
        epochs = [e["epoch"] for e in d["epochs"]]
        values = [e["valid_recall"] for e in d["epochs"]]
        ax.plot(epochs, values, marker="o", markersize=3, color="tab:blue")
        best = d["best_epoch"]
        ax.axvline(best, color="tab:green", linestyle="--", linewidth=1)
        ax.annotate(
            f"kept: epoch {best}",
            (best, values[epochs.index(best)]),
            textcoords="offset points",
            xytext=(-8, -24),
            ha="right",
            fontsize=8,
            color="tab:green",
        )
        ax.set_title(f"{name}: stopped by {d['stop_reason']}", fontsize=10)
        ax.set_xlabel("epoch (0 = initialisation from the teacher)")
        ax.set_ylabel("valid Recall@20, Hamming only")
        ax.grid(alpha=0.3)
    fig.suptitle("rechash fit defaults, 64 bits: validation curve and the kept epoch", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(m: dict | None) -> str:
    return "" if not m else f"{m['recall']:.4f} / {m['ndcg']:.4f}"


def refine_cell(r: dict | None) -> str:
    """The user-code refinement a fit kept: its temperature and validation gain, or why none."""
    if not r:
        return "towers' signs (no refinement tried)"
    scores = r["valid_recall"]
    if r["temperature"] is None:
        return (
            "towers' signs (no T beat them on valid: "
            f"{max(v for k, v in scores.items() if k != 'none') - scores['none']:+.4f})"
        )
    return (
        f"refined, T {r['temperature']:g} (valid {scores[str(r['temperature'])] - scores['none']:+.4f}, "
        f"{r['flips_per_user']:.1f} flips/user)"
    )


def commit_note(parts: dict) -> str:
    """Which commit wrote which rows (parts record it since the layout move; older ones do not)."""
    rows: dict[str, set[str]] = {}
    for by_row in parts.values():
        for row, part in by_row.items():
            rows.setdefault(part.get("commit", ""), set()).add(row)
    known = [f"{c} for {', '.join(f'`{r}`' for r in sorted(rs))}" for c, rs in sorted(rows.items()) if c]
    older = (
        ""
        if "" not in rows
        else ("; the other rows' parts were written at earlier commits (`git log -- experiments/results/codes_parts/`)")
    )
    return f"Commit: {'; '.join(known) or 'not recorded'} (library at that commit){older}."


def write_table(parts: dict, path: Path) -> None:
    lines = [
        "# Codes on any catalog: defaults, ablation, validation curves (64 bits)",
        "",
        "Command: `python experiments/codes.py --datasets ml-1m lastfm amazon-beauty` (parts in",
        "`experiments/results/codes_parts/`, one JSON per dataset and row; `--table` rebuilds this file).",
        "",
        commit_note(parts),
        "",
        f"Machine: {platform.machine()}, 2 cores shared with other jobs; "
        "`fit s` is training only (the teacher is tuned",
        "once per dataset and shared by every row; its time is in the defaults table).",
        "Protocol of DESIGN.md on TEST: full ranking, training items excluded, Recall@20 / NDCG@20 over users with a",
        "test item, through `CodeRecommender.from_model` (the object `rechash candidates` runs).",
        "",
        "## Defaults against implicit ALS tuned on VALID (same run, same teacher)",
        "",
        "| dataset | ALS exact (tuned) | Hamming only | % of ALS | re-ranked (dot: teacher's floats) | "
        "+ towers' floats | + codes-only | teacher | teacher s | negatives | user codes | fit s | best epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in parts.items():
        d = rows.get("default")
        if not d:
            continue
        als = d["als_exact"]["recall"]
        t = d["teacher"]["params"]
        lines.append(
            f"| {name} | {fmt(d['als_exact'])} | {fmt(d['hamming'])} | {100 * d['hamming']['recall'] / als:.0f}% "
            f"| {fmt(d['default'])} ({100 * d['default']['recall'] / als:.0f}%) | {fmt(d['towers'])} "
            f"| {fmt(d['codes_only'])} "
            f"| ALS reg {t['regularization']:g}, alpha {t['alpha']:g} | {d['teacher_seconds']:.0f} "
            f"| {d.get('negatives')} "
            f"| {refine_cell(d.get('refine'))} | {d['fit_seconds']:.0f} "
            f"| {d['best_epoch']} of {len(d['epochs']) - 1} ({d['stop_reason']}) |"
        )
    for name, pub in PUBLISHED.items():
        lines.append(
            f"\nPublished float baselines on {name} (Recall@20): " + ", ".join(f"{k} {v}" for k, v in pub.items()) + "."
        )
    lines += [
        "",
        "## Ablation: one change per row (Recall@20 / NDCG@20)",
        "",
        "`default` is the current recipe; `no_refine` is it without the user-code refinement (the default before it;",
        "its ml-1m and amazon-beauty parts are that default's run at commit 9919f01, the same arithmetic: re-run",
        "on lastfm, it reproduced every number to the last digit). "
        "The rows from `no_rank` down were run against the previous defaults,",
        "`recipe_512` (512 negatives, batches of 2048, epoch cap from 1000 updates, no refinement), "
        "and change one thing from it;",
        "they have not been re-run on the current recipe. Blank cells were not run (an amazon-beauty fit takes",
        "5-15 minutes on the shared 2 cores).",
        "",
    ]
    header = "| row | what changes |" + "".join(f" {n}: Hamming | {n}: re-ranked | {n}: fit s |" for n in parts)
    lines += [header, "|---|---|" + "---|---|---|" * len(parts)]
    for row, (_, what) in ROWS.items():
        cells = []
        for name in parts:
            d = parts[name].get(row)
            cells += [fmt(d and d["hamming"]), fmt(d and d["default"]), f"{d['fit_seconds']:.0f}" if d else ""]
        label = f"**{row}**" if row == "default" else row
        lines.append(f"| {label} | {what} | " + " | ".join(cells) + " |")
    lines += ["", FINDINGS]
    lines += [
        "",
        "## Hamming top-K recall of the refined and the towers' user codes (the default model of each dataset)",
        "",
        "Hamming only (popularity ties), Recall@K on TEST. The refined codes serve Hamming-only lists; a re-ranker's",
        "pool (200 by default) is drawn with the towers' codes (`CodeRecommender.from_model`).",
        "",
        "| dataset | user codes | @20 | @50 | @100 | @200 |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in parts.items():
        for which, r in ((rows.get("default") or {}).get("pool_recall") or {}).items():
            lines.append(
                f"| {name} | {which} | " + " | ".join(f"{r[k]:.4f}" for k in ("20", "50", "100", "200")) + " |"
            )
    lines += [
        "",
        "## Tie rule at Hamming only (the default model of each dataset)",
        "",
        "| dataset | ties by item id | ties by quantized popularity (default) |",
        "|---|---|---|",
    ]
    for name, rows in parts.items():
        d = rows.get("default")
        if d and "hamming_id_ties" in d:
            lines.append(f"| {name} | {fmt(d['hamming_id_ties'])} | {fmt(d['hamming'])} |")
    lines += ["", "![validation curves](codes_curves.png)", ""]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["ml-1m", "lastfm", "amazon-beauty"])
    ap.add_argument("--rows", nargs="+", default=list(ROWS))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--force", action="store_true", help="re-run rows whose part exists")
    ap.add_argument("--table", action="store_true", help="only rebuild the table from the parts")
    args = ap.parse_args()
    if not args.table:
        for name in args.datasets:
            for row in args.rows:
                part = PARTS / name / f"{row}.json"
                if part.exists() and not args.force:
                    continue
                print(f"{name} / {row} ...", flush=True)
                result = {**run_row(name, row, args.threads), "commit": commit()}
                part.parent.mkdir(parents=True, exist_ok=True)
                part.write_text(json.dumps(result, indent=1))
                print(
                    f"  hamming {result['hamming']['recall']:.4f} default {result['default']['recall']:.4f} "
                    f"towers {result['towers']['recall']:.4f} "
                    f"codes-only {result['codes_only']['recall']:.4f} fit {result['fit_seconds']:.0f}s "
                    f"best epoch {result['best_epoch']} ({result['stop_reason']})",
                    flush=True,
                )
    parts = read_parts()
    write_table(parts, RESULTS / "codes.md")
    curves_png(parts, RESULTS / "codes_curves.png")


if __name__ == "__main__":
    main()
