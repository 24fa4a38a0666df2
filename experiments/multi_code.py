"""A second user code for Hamming-only lists: an exploration for issue 21, not a library path.

    python experiments/multi_code.py                     # ml-1m, lastfm: experiments/results/multi_code.md
    python experiments/multi_code.py --models DIR        # reuse DIR/NAME when fitted there

Each dataset's default 64-bit model (``TwinTowerHasher(bits=64).fit(train, valid)``, every
default: what ``rechash fit`` runs) serves Hamming-only lists from its user codes (the refined
ones when the fit kept a refinement). Here each user gets a second 64-bit code, the item codes
unchanged (8 bytes per item, 16 per user): the refinement of the towers' code ``sign(z_u)``
(:func:`rechash.hasher.refine.refine_user_codes`, the fit's temperature) toward the teacher's
top-20 unseen items that the first code's Hamming top-20 misses. The list merges both codes'
Hamming top-20 by distance, the second code's distances plus ``delta`` (ties: the first code,
then the item id), and keeps the first 20 distinct items; ``delta`` is picked on VALID (Recall@20
of the validation items, training items excluded), TEST is reported. Also: a third code toward
the misses of the two-code list. ALS exact is the fit's teacher (tuned on VALID), brute force.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from provenance import commit_line

from rechash.data import load_many
from rechash.evaluation import per_user_metrics
from rechash.hasher.refine import refine_user_codes
from rechash.hasher.trainer import hamming_topk, teacher_top_items
from rechash.hasher.twin_tower import TwinTowerHasher

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "experiments" / "results" / "multi_code.md"
K = 20
DELTAS = (0, 1, 2, 3, 4)


def merge(lists: list[tuple[np.ndarray, np.ndarray]], delta: int) -> np.ndarray:
    """``(n, K)`` ids: the lists' ``(ids, -distance)`` merged by distance, every list after the
    first ``delta`` farther, ties to the earlier list then the smaller id; duplicates dropped."""
    n = len(lists[0][0])
    ids = np.concatenate([i for i, _ in lists], 1)
    dist = np.concatenate([-s + (c > 0) * delta for c, (_, s) in enumerate(lists)], 1)
    code = np.concatenate([np.full(i.shape, c) for c, (i, _) in enumerate(lists)], 1)
    dist = np.where(ids >= 0, dist, np.inf)
    out = np.full((n, K), -1)
    for u in range(n):
        order = np.lexsort((ids[u], code[u], dist[u]))
        row = ids[u][order]
        _, first = np.unique(row, return_index=True)
        keep = np.sort(first)
        row = row[keep][row[keep] >= 0][:K]
        out[u, : len(row)] = row
    return out


def run(name: str, models: Path) -> dict:
    train, valid, test = load_many([DATA / name / f for f in ("train.txt", "valid.txt", "test.txt")])
    path = models / name
    if (path / "config.json").is_file():
        model = TwinTowerHasher.load(path)
    else:
        model = TwinTowerHasher(bits=64).fit(train, valid)
        model.save(path)
    t = (model.refine_ or {}).get("temperature")
    if t is None:
        return {"name": name, "skipped": "the fit kept no refinement"}
    seen, item_codes = sp.csr_matrix(train.matrix), model.encode_items()
    u_f, v_f = model.teacher_.user_factors, model.teacher_.item_factors
    out = {"name": name, "temperature": t}
    for split, truth_all in (("valid", valid.matrix.tocsr()), ("test", test.matrix.tocsr())):
        users = np.flatnonzero(np.diff(truth_all.indptr))
        rows, truth, ar = seen[users], truth_all[users], np.arange(len(users))

        def recall(ids: np.ndarray) -> float:
            return float(per_user_metrics(ids, ar, truth, ks=(K,))[f"recall@{K}"].mean())

        teacher = teacher_top_items(u_f[users], v_f, rows, K)

        def misses(ids: np.ndarray) -> np.ndarray:
            m = np.where((teacher[:, :, None] == ids[:, None, :]).any(2), -1, teacher)
            return np.take_along_axis(m, np.argsort(m < 0, axis=1, kind="stable"), 1)

        lists = [hamming_topk(model.encode_users()[users], item_codes, ar, K, rows)]
        start = model.encode_users(users, refined=False)
        for _ in range(2):
            merged = merge(lists, 0) if len(lists) > 1 else lists[0][0]
            code, _ = refine_user_codes(start, item_codes, misses(merged), rows, t)
            lists.append(hamming_topk(code, item_codes, ar, K, rows))
        out[split] = {
            "users": len(users),
            "als": recall(teacher),
            "one": recall(lists[0][0]),
            "two": {d: recall(merge(lists[:2], d)) for d in DELTAS},
            "second_alone": recall(lists[1][0]),
            "three": {d: recall(merge(lists, d)) for d in DELTAS},
        }
    out["delta"] = max(DELTAS, key=lambda d: out["valid"]["two"][d])
    out["delta3"] = max(DELTAS, key=lambda d: out["valid"]["three"][d])
    print(out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["ml-1m", "lastfm"])
    ap.add_argument("--models", type=Path, default=ROOT / "experiments" / "cache" / "multi_code")
    args = ap.parse_args()
    results = [run(name, args.models) for name in args.datasets]
    command = "python experiments/multi_code.py"
    if args.datasets != ["ml-1m", "lastfm"]:
        command += " --datasets " + " ".join(args.datasets)
    lines = [
        "# A second user code for Hamming-only lists (Recall@20, TEST; exploration, not a library path)",
        "",
        f"Command: `{command}`",
        "",
        commit_line(),
        "",
        "64 bits, every `rechash fit` default; item codes unchanged (8 bytes per item), 8 bytes per user per "
        "code. delta: the later codes' distance offset in the merge, picked on VALID (Recall@20 by delta in "
        "brackets).",
        "",
        "| dataset | ALS exact | 1 code (the library's Hamming only) | 2 codes | 3 codes | 2nd code alone | T |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['name']} | {r['skipped']} | | | | | |")
            continue
        te, als = r["test"], r["test"]["als"]
        two, three = te["two"][r["delta"]], te["three"][r["delta3"]]
        lines.append(
            f"| {r['name']} | {als:.4f} | {te['one']:.4f} ({te['one'] / als:.1%}) | {two:.4f} ({two / als:.1%}), "
            f"delta {r['delta']} | {three:.4f} ({three / als:.1%}), delta {r['delta3']} | {te['second_alone']:.4f} "
            f"| {r['temperature']:g} |"
        )
    lines.append("")
    for r in results:
        if "skipped" not in r:
            va = r["valid"]
            lines.append(
                f"{r['name']} VALID Recall@20 ({va['users']:,} users): ALS {va['als']:.4f}, 1 code {va['one']:.4f}; "
                "2 codes by delta "
                + ", ".join(f"{d}: {v:.4f}" for d, v in va["two"].items())
                + "; 3 codes by delta "
                + ", ".join(f"{d}: {v:.4f}" for d, v in va["three"].items())
                + "."
            )
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
