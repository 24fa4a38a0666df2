"""New users' codes without a float top-K over the catalog (issue 21): the refinement of a new
user's code toward the folded-in ALS teacher's top-K over the whole catalog (before) against its
top-K within the user's Hamming pool (one round, or two with the pool redrawn around the refined
code: now), no refinement, and exact ALS, on ml-1m (or ``--dataset NAME``).

    python experiments/new_users.py                    # writes experiments/results/new_users.md
    python experiments/new_users.py --model DIR        # fits once and saves to DIR, later runs load it
    python experiments/new_users.py --dataset amazon-beauty   # writes new_users_amazon-beauty.md

Protocol: a random 10% of the dataset's users (seed 0) are held out of training entirely (their
train and valid rows removed); ``TwinTowerHasher(bits=64).fit(train_sub, valid_sub)`` with the
defaults. Each held-out user's train rows are their
history (filtered from the lists); Recall@20 on their test items, mean over those with a test item.
Hamming-only lists: ``CodeRecommender.from_model(model, reranker=None)`` with
``recalculate_user=True``, the history encoder swapped per variant; "+ dot": the ALS fold-in
re-ranking the Hamming pool, drawn with the unrefined codes or the refined ones (``refined=True``,
what ``CodeRecommender.from_model`` gives new users). Latency: each encoder on one user at a time, in turn (median over
``--latency-users``, after 10 warm-up users), single-threaded; "exact ALS" is the fold-in plus the
dense top-20 over the catalog.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from provenance import commit_line

from rechash.data import load_many
from rechash.evaluation import per_user_metrics
from rechash.hasher.refine import pool_refined_codes, refined_user_codes
from rechash.hasher.trainer import hamming_topk, teacher_top_items
from rechash.hasher.twin_tower import TwinTowerHasher
from rechash.models.code import CodeRecommender
from rechash.threads import thread_limit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "experiments" / "results"
K = 20


def split_users(name: str, share: float = 0.1, seed: int = 0):
    """``(train_sub, valid_sub, held, histories, truth)``: the held-out users' train rows and test rows."""
    train, valid, test = load_many([DATA / name / f for f in ("train.txt", "valid.txt", "test.txt")])
    active = np.flatnonzero(np.diff(train.matrix.indptr) > 0)
    held = np.sort(np.random.default_rng(seed).choice(active, size=int(share * len(active)), replace=False))
    out = [d.subset(~np.isin(d.rows(), held)) for d in (train, valid)]
    histories = sp.csr_matrix(train.matrix[held], dtype=np.float32)
    return out[0], out[1], held, histories, test.matrix.tocsr()[held]


def fit_or_load(path: Path | None, train_sub, valid_sub) -> TwinTowerHasher:
    if path is not None and (path / "config.json").is_file():
        return TwinTowerHasher.load(path)
    model = TwinTowerHasher(bits=64).fit(train_sub, valid_sub)
    if path is not None:
        model.save(path)
    return model


def encoder(model: TwinTowerHasher, rounds: int | None):
    """``encode_new_users`` with the targets over the catalog (``rounds`` None: before issue 21)
    or within the Hamming pool for ``rounds`` rounds (2: the library's path)."""
    t = model.refine_["temperature"]

    def encode(histories: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        codes, floats = model.encode_history(histories)
        folded = model.teacher_.fold_in_users(histories)
        pair = (folded, model.teacher_.item_factors)
        if rounds is None:
            codes, _ = refined_user_codes(floats, model.item_floats(), pair, histories, K, t)
        else:
            codes, _ = pool_refined_codes(floats, model.encode_items(), pair, histories, K, t, rounds=rounds)
        return codes, folded

    return encode


def exact_als(model: TwinTowerHasher):
    def encode(histories: sp.csr_matrix) -> np.ndarray:
        return teacher_top_items(model.teacher_.fold_in_users(histories), model.teacher_.item_factors, histories, K)

    return encode


def median_ms(fns: dict, histories: sp.csr_matrix, n: int, warm: int = 10) -> dict[str, float]:
    """Median ms of each ``fn(one history row)`` over the first ``n`` rows, the functions taken in
    turn for every row (a shared machine's load falls on all of them alike)."""
    times: dict[str, list] = {name: [] for name in fns}
    order = list(range(min(warm, histories.shape[0]))) + list(range(min(n, histories.shape[0])))
    for i, u in enumerate(order):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(histories[u : u + 1])
            if i >= warm:
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model directory: loaded when present, else fit and saved")
    ap.add_argument("--latency-users", type=int, default=300)
    ap.add_argument("--dataset", default="ml-1m", help="a dataset of ../shared/data")
    args = ap.parse_args()
    train_sub, valid_sub, held, histories, truth = split_users(args.dataset)
    model = fit_or_load(args.model, train_sub, valid_sub)
    print("refine:", model.refine_, flush=True)
    if model.refine_ is None or model.refine_.get("temperature") is None:
        sys.exit("the fit kept no refinement: nothing to compare")
    variants = {
        "full-catalog targets (before)": encoder(model, None),
        "pool targets, 1 round": encoder(model, 1),
        "pool targets, 2 rounds (now: `encode_new_users`)": lambda h: model.encode_new_users(h),
        "unrefined (`refined=False`)": lambda h: model.encode_new_users(h, refined=False),
    }
    users = np.arange(len(held))
    rows = []

    def recall_of(ids: np.ndarray) -> float:
        return float(per_user_metrics(ids, users, truth, ks=(K,))[f"recall@{K}"].mean())

    seen = sp.csr_matrix(train_sub.matrix)
    item_codes, v = model.encode_items(), model.teacher_.item_factors
    first = model.teacher_.fold_in_users(histories[:1])
    exact = exact_als(model)

    def scan(h: sp.csr_matrix):
        return hamming_topk(model.encode_history(h)[0], item_codes, [0], 1024, h)

    timed = {
        **variants,
        "exact": exact,
        "history encoder pass": model.encode_history,
        "ALS fold-in": model.teacher_.fold_in_users,
        "teacher's float top-20 over the catalog (before only)": lambda h: teacher_top_items(first, v, h, K),
        "one Hamming pool scan (1024)": scan,
    }
    with thread_limit(1):
        ms = median_ms(timed, histories, args.latency_users)
        for name, encode in variants.items():
            rec = CodeRecommender.from_model(model, seen=seen, reranker=None)
            rec.history_encoder = encode
            ids, _ = rec.recommend(users, histories, N=K, recalculate_user=True)
            rows.append((f"Hamming only, {name}", recall_of(ids), ms[name]))
            print(rows[-1], flush=True)
        for refined in (False, True):
            dot = CodeRecommender.from_model(model, seen=seen, reranker="dot")
            dot.history_encoder = functools.partial(model.encode_new_users, refined=refined)
            ids, _ = dot.recommend(users, histories, N=K, recalculate_user=True)
            pool = "the refined codes (`refined=True`, the default recommender)" if refined else "the unrefined codes"
            rows.append((f"+ dot over the pool of {pool}", recall_of(ids), ms[list(variants)[3 - refined]]))
        rows.append(("exact ALS: fold-in + float top-20 over the catalog", recall_of(exact(histories)), ms["exact"]))
    parts = {name: ms[name] for name in list(timed)[len(variants) + 1 :]}
    n_truth = int((np.diff(truth.indptr) > 0).sum())
    command = "python experiments/new_users.py" + (f" --model {args.model}" if args.model else "")
    if args.latency_users != 300:
        command += f" --latency-users {args.latency_users}"
    if args.dataset != "ml-1m":
        command += f" --dataset {args.dataset}"
    lines = [
        f"Command: `{command}`",
        "",
        commit_line(),
        "",
        f"# New users' codes on {args.dataset} (64 bits, users unseen at training)",
        "",
        f"{len(held)} held-out users ({n_truth} with a test item), fit kept T = {model.refine_['temperature']:g}; "
        f"ms: one user at a time, median over {min(args.latency_users, len(held))} users, 1 thread "
        "(`encode_new_users`'s codes and floats; exact ALS: its list).",
        "",
        "| lists (new-user code) | Recall@20 | ms / user |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {recall:.4f} | {t:.2f} |" for name, recall, t in rows]
    lines += [
        "",
        "Parts of one user's call (ms): "
        + "; ".join(f"{k} {v:.2f}" for k, v in parts.items())
        + " (the scan's time includes an encoder pass). The rest of a refined call is the bit flips.",
    ]
    (_, before, t_before), (_, one, t_one), (_, two, t_two) = rows[:3]
    d_one, d_two = (round(r - before, 4) + 0.0 for r in (one, two))  # no "-0.0000"
    lines += [
        "",
        f"Pool targets against the full-catalog targets: 1 round {d_one:+.4f} Recall@20 at "
        f"{t_one / t_before:.2f}x the time, 2 rounds {d_two:+.4f} at {t_two / t_before:.2f}x.",
    ]
    out = RESULTS / ("new_users.md" if args.dataset == "ml-1m" else f"new_users_{args.dataset}.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
