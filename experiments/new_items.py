"""New items without retraining, on ml-100k: added by their side features vs. retraining.

Regenerates experiments/results/new_items.md:

    python experiments/new_items.py --seeds 0 1

(about 25 minutes on 2 shared cores: per seed, one (a) fit per ``--item-id-dropout`` value,
default 0 0.25 0.5, and one (b) fit; each seed's results are kept in
``experiments/results/new_items_parts/`` and a finished seed is not refit without ``--rerun``.)

Protocol (one split per seed):

- hold out a random 10% of the items (``held-out items``);
- split every user's interactions at random, 80% train / 20% test (all items);
- (a) fit on the train part WITHOUT the held-out items (they are not in the model's item
  id map: unseen at training), with the item features ``class`` (genres, multi-token)
  and ``release_year`` (categorical) of ``ml-100k.item``; then add the held-out items by
  their features through the ``rechash add-items`` path (``read_new_items`` +
  ``TwinTowerHasher.add_items``: the item tower's feature path, ID part 0); one fit per
  ``item_id_dropout`` value (rows trained through the feature path alone);
- (b) retrain on the whole train part (held-out items' train interactions included), same
  features and options;
- both serve through ``CodeRecommender.from_model`` (what ``rechash candidates`` loads) with
  each user's whole train part filtered (in (a) that includes the held-out items' train
  interactions the model never saw, as a deployed system knows what a user consumed);
- Recall@20 (hits / test items, mean over users) on the test interactions of held-out
  items (users with at least one) and on all test interactions.

Variants of (a) isolate the candidate stage (codes) and the re-ranking floats of new items.
``movie_title`` words are left out of the features (2,653 multi-hot columns made one fit
take ~9 minutes on this 2-core machine; genres + year are 94 columns).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rechash.codes.bits import binarize
from rechash.data import IdMap, Interactions, load, load_side_features
from rechash.data.features import SideFeatures
from rechash.evaluation import per_user_metrics
from rechash.hasher.new_items import read_new_items
from rechash.hasher.twin_tower import TwinTowerHasher
from rechash.models.code import CodeRecommender

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ml-100k"
RESULTS = ROOT / "experiments" / "results"
FEATURES = ("class", "release_year")
K = 20
TOWERS = "towers' floats re-rank"


def select(side: SideFeatures, names=FEATURES) -> SideFeatures:
    return SideFeatures(
        side.ids, tuple(f for f in side.features if f.name in names), side.missing, side.unmatched, side.source
    )


def split(full: Interactions, seed: int, share_items: float, share_test: float):
    """(held-out item internal ids, train mask, test mask) over ``full``'s COO entries."""
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(full.n_items, size=int(round(share_items * full.n_items)), replace=False))
    users, items, _ = full.coo()
    test = np.zeros(len(users), dtype=bool)
    order = np.argsort(users, kind="stable")
    bounds = np.searchsorted(users[order], np.arange(full.n_users + 1))
    for u in range(full.n_users):
        rows = order[bounds[u] : bounds[u + 1]]
        n_test = int(round(share_test * len(rows)))
        test[rng.choice(rows, size=n_test, replace=False)] = True
    return held, ~test, test


def subset(full: Interactions, mask: np.ndarray, item_ids: IdMap) -> Interactions:
    users, items, w = full.coo()
    ext = full.item_ids.to_external(items[mask])
    return Interactions.from_arrays(
        users[mask], item_ids.to_internal(ext), full.user_ids, item_ids, w[mask], source=full.source
    )


def rows_in(full: Interactions, mask: np.ndarray, item_ids: IdMap) -> sp.csr_matrix:
    """Users x items (in ``item_ids``' space) of ``full``'s entries under ``mask``."""
    users, items, _ = full.coo()
    cols = item_ids.to_internal(full.item_ids.to_external(items[mask]))
    m = sp.csr_matrix((np.ones(int(mask.sum()), np.float32), (users[mask], cols)), shape=(full.n_users, len(item_ids)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def evaluate(rec: CodeRecommender, full, train_mask, test_mask, held_ext, pool: int = 200) -> dict:
    """Recall@20 on held-out items' test interactions and on all; candidate-pool recall of
    held-out items' test interactions; share of top-20 slots given to held-out items."""
    item_ids = rec.item_ids
    exclude = rows_in(full, train_mask, item_ids)
    truth = rows_in(full, test_mask, item_ids)
    is_held = np.isin(item_ids.external_ids, held_ext)
    truth_held = sp.csr_matrix(truth @ sp.diags(is_held.astype(np.float32)))
    truth_held.eliminate_zeros()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    ids, _ = rec.recommend(users, user_items=exclude[users], N=K)
    out = {
        "recall_all": float(per_user_metrics(ids, users, truth, (K,))[f"recall@{K}"].mean()),
        "users_all": int(len(users)),
    }
    hu = np.flatnonzero(np.diff(truth_held.indptr) > 0)
    pos = np.searchsorted(users, hu)
    out["recall_held"] = float(per_user_metrics(ids[pos], hu, truth_held, (K,))[f"recall@{K}"].mean())
    out["users_held"] = int(len(hu))
    out["held_share_of_slots"] = float(np.isin(ids[ids >= 0], np.flatnonzero(is_held)).mean())
    cands = rec.candidates(hu, pool, exclude).items
    hits = np.array(
        [
            np.isin(truth_held.indices[truth_held.indptr[u] : truth_held.indptr[u + 1]], c).mean()
            for u, c in zip(hu, cands)
        ]
    )
    out[f"held_in_pool{pool}"] = float(hits.mean())
    return out


def variants(model: TwinTowerHasher, base: CodeRecommender) -> dict[str, CodeRecommender]:
    """(a)'s serving variants over one model with added items (the last ``added_items_`` rows)."""
    n_old = model.n_trained_items
    new = np.arange(n_old, len(model.item_ids))
    uc, ic = base.user_codes, base.item_codes
    common = dict(user_ids=model.user_ids, item_ids=model.item_ids, seen=model.seen_)
    out = {"default": base}
    out["hamming only"] = CodeRecommender(ic, user_codes=uc, reranker=None, **common)
    out["towers' floats re-rank"] = CodeRecommender(
        ic, user_codes=uc, item_floats=model.item_floats(), user_floats=model.user_floats(), **common
    )
    if model.teacher_ is not None:
        teacher = model.teacher_
        v_old = teacher.item_factors[:n_old]
        known = model.towers.item.known.numpy()[:n_old] > 0
        mean_item = np.broadcast_to(v_old[known].mean(axis=0), (len(new), v_old.shape[1]))
        h_feat = model.item_feature_floats(new)
        for scale in ("mean", "variance"):
            w, b = model.teacher_map(scale)
            out[f"teacher map scaled by '{scale}' (not 'exposure')"] = CodeRecommender(
                ic,
                user_codes=uc,
                item_floats=np.vstack([v_old, h_feat @ w + b]),
                user_floats=teacher.user_factors,
                **common,
            )
        out["new items' teacher floats = mean item"] = CodeRecommender(
            ic, user_codes=uc, item_floats=np.vstack([v_old, mean_item]), user_floats=teacher.user_factors, **common
        )
        # the map fitted from the full tower floats (ID part included) instead of feature-only ones
        h_full = model.item_floats(np.flatnonzero(known)).astype(np.float64)
        x = np.hstack([h_full, np.ones((len(h_full), 1))])
        reg = np.eye(x.shape[1])
        reg[-1, -1] = 0
        w = np.linalg.solve(x.T @ x + reg, x.T @ v_old[known].astype(np.float64))
        h_new = model.item_floats(new).astype(np.float64)
        mapped = (np.hstack([h_new, np.ones((len(new), 1))]) @ w).astype(np.float32)
        out["teacher map fitted on full tower floats (ID part included), scale 'mean'"] = CodeRecommender(
            ic, user_codes=uc, item_floats=np.vstack([v_old, mapped]), user_floats=teacher.user_factors, **common
        )
        # codes from a mean ID row + feature path (instead of ID part 0)
        emb = model.towers.item.id_emb.weight.detach().numpy()[:n_old][known]
        feats = model.towers.item.features.numpy()[n_old:]
        import torch

        with torch.no_grad():
            z = model.towers.item.feat_mlp(torch.from_numpy(feats)).numpy() + emb.mean(axis=0)
        ic_mean = ic.copy()
        ic_mean[n_old:] = binarize(model._relaxed(z))
        out["codes: mean ID row + features"] = CodeRecommender(
            ic_mean, user_codes=uc, item_floats=base.item_floats, user_floats=base.user_floats, **common
        )
    return out


def run(seed: int, overrides: dict, dropouts, log) -> dict:
    inter = DATA / "ml-100k.inter"
    item_file = DATA / "ml-100k.item"
    full = load(inter, side=False)
    held, train_mask, test_mask = split(full, seed, 0.10, 0.20)
    held_ext = full.item_ids.external_ids[held]
    _, items, _ = full.coo()
    keep_ids = IdMap(np.delete(full.item_ids.external_ids, held))
    train_a = subset(full, train_mask & ~np.isin(items, held), keep_ids)
    train_b = subset(full, train_mask, full.item_ids)
    res = {
        "seed": seed,
        "overrides": overrides,
        "n_items": full.n_items,
        "held_items": int(len(held)),
        "train_a": int(train_a.nnz),
        "train_b": int(train_b.nnz),
        "test": int(test_mask.sum()),
        "test_held": int((test_mask & np.isin(items, held)).sum()),
        "a": {},
        "fit_s": {},
        "epochs": {},
        "teacher": {},
    }

    def fitted(name, train, ids, **extra):
        t = time.perf_counter()
        m = TwinTowerHasher(64, seed=seed, progress=False, **overrides, **extra)
        m.fit(
            train,
            item_features=select(load_side_features(item_file, ids)),
            callbacks=[lambda e: log(f"[{name}] epoch {e.epoch} valid {e.valid_recall:.4f}")],
        )
        res["fit_s"][name] = time.perf_counter() - t
        res["epochs"][name] = len(m.history_) - 1
        res["teacher"][name] = (m.teacher_info_ or {}).get("params")
        return m

    for p in dropouts:
        name = f"item_id_dropout={p:g}"
        model_a = fitted(name, train_a, keep_ids, item_id_dropout=p)
        found = read_new_items(item_file, model_a.item_ids, model_a.item_schema_)  # the rechash add-items path
        assert set(found.ids) == set(held_ext) and found.known == len(keep_ids)
        t = time.perf_counter()
        rep = model_a.add_items(found.ids, found.features)
        res["add_s"] = time.perf_counter() - t
        res["unknown_tokens"] = rep["unknown_tokens"]
        arms = variants(model_a, CodeRecommender.from_model(model_a))
        res["a"][name] = {v: evaluate(rec, full, train_mask, test_mask, held_ext) for v, rec in arms.items()}
        log(json.dumps(res["a"][name]))

    model_b = fitted("b", train_b, full.item_ids)
    res["b"] = {
        "default": evaluate(CodeRecommender.from_model(model_b), full, train_mask, test_mask, held_ext),
        "hamming only": evaluate(
            CodeRecommender.from_model(model_b, reranker=None), full, train_mask, test_mask, held_ext
        ),
    }
    res["loadavg"] = os.getloadavg()
    log(json.dumps({k: v for k, v in res.items() if k != "a"}))
    return res


def write(results: list[dict], cmd: str, note: str = "") -> None:
    def mean(section, key):
        return float(np.mean([section(r)[key] for r in results]))

    r0 = results[0]
    lines = [
        "# New items without retraining: added by side features vs. retraining (ml-100k)",
        "",
        f"Command: `{cmd}`{note}",
        "",
        f"Machine: 2 CPU cores shared with other jobs. Seeds: {[r['seed'] for r in results]} "
        "(numbers are means over them).",
        "Training options: library defaults (64 bits, ALS teacher tuned on a sample held out of train, early stopping)"
        + (f", overrides {r0['overrides']}" if r0["overrides"] else ", no overrides")
        + "; the (a) fits differ only by `item_id_dropout` (`--item-id-dropout`).",
        "",
        f"Data (counts of seed {r0['seed']}): `ml-100k.inter` ({r0['n_items']:,} items), "
        "features `class` (genres, multi-token) and `release_year` "
        "(categorical) of `ml-100k.item` (movie titles left out: their 2,653 word columns made one fit take ~9 minutes "
        f"on this machine). {r0['held_items']} items (10%, random) held out of training; every user's interactions "
        f"split 80/20 at random; train (a) {r0['train_a']:,} interactions (held-out items removed), train (b) "
        f"{r0['train_b']:,}; test {r0['test']:,} interactions, {r0['test_held']:,} of them on held-out items.",
        "",
        "(a) fit without the held-out items (not in the model's id map), then add them by their features through "
        "the `rechash add-items` path (`read_new_items` + `TwinTowerHasher.add_items`): codes from the item tower's "
        "feature path with the ID part 0; default re-ranking floats of new items = `teacher_map()`: a ridge map of "
        "their feature-only tower floats into the ALS teacher's item space, scaled about the mean item so that a "
        "mapped item enters a user's top 20 as often as an average trained item ('exposure'). (b) retrain with "
        "every item (held-out items' "
        "train interactions included). Both served by `CodeRecommender.from_model` (what `rechash candidates` "
        "loads), each user's train items filtered (in (a) including those on held-out items, which the model never "
        "saw). Recall@20 = hits / test items, mean over users with such test items.",
        "",
        "| arm | Recall@20, held-out items | Recall@20, all test | held-out test items in the 200-item Hamming pool "
        "| top-20 slots given to held-out items |",
        "|---|---|---|---|---|",
    ]
    rows = [(lambda r, v=v: r["b"][v], f"(b) retrained with every item: {v}") for v in ("default", "hamming only")]
    for fit in r0["a"]:
        rows += [(lambda r, f=fit, v=v: r["a"][f][v], f"(a) {fit}, added by features: {v}") for v in r0["a"][fit]]
    for section, label in rows:
        lines.append(
            f"| {label} | {mean(section, 'recall_held'):.4f} | {mean(section, 'recall_all'):.4f} | "
            f"{mean(section, 'held_in_pool200'):.4f} | {mean(section, 'held_share_of_slots'):.4f} |"
        )
    any_a = next(iter(r0["a"].values()))["default"]
    fits = list(r0["a"])
    best = fits[-1]

    def m(arm, variant, key, fit=best):
        return mean((lambda r: r["b"][variant]) if arm == "b" else (lambda r: r["a"][fit][variant]), key)

    mean_v, var_v = "teacher map scaled by 'mean' (not 'exposure')", "teacher map scaled by 'variance' (not 'exposure')"
    lines += [
        "",
        "Reading:",
        "",
        f"- Without `item_id_dropout` ({fits[0]}) the feature path is only a residual next to the ID embeddings: added "
        f"items' codes land away from their users ({m('a', 'default', 'held_in_pool200', fits[0]):.1%} of their test "
        f"interactions in the 200-item pool, against {m('b', 'default', 'held_in_pool200'):.1%} after retraining), and "
        "no re-ranker can recover them. Training rows through the feature path alone fixes the codes "
        f"({best}: {m('a', 'default', 'held_in_pool200'):.1%} in the pool) at little cost to the trained items "
        f"(all-test Recall@20 with new items scored 'mean' {m('a', mean_v, 'recall_all'):.4f} vs "
        f"{m('a', mean_v, 'recall_all', fits[0]):.4f} without dropout).",
        f"- With {best}, added by features vs. retraining, Recall@20 on the held-out items: "
        f"{m('a', 'default', 'recall_held'):.4f} vs {m('b', 'default', 'recall_held'):.4f} "
        f"({m('a', 'default', 'recall_held') / m('b', 'default', 'recall_held'):.0%}); on all test interactions "
        f"{m('a', 'default', 'recall_all'):.4f} vs {m('b', 'default', 'recall_all'):.4f}.",
        "- The re-ranking floats of new items set a trade-off, not a free gain: the least-squares map ('mean', the "
        f"conditional mean) shrinks new items toward the mean item, so they rarely reach a top 20 "
        f"({m('a', mean_v, 'held_share_of_slots'):.1%} of slots, "
        f"held-out Recall@20 {m('a', mean_v, 'recall_held'):.4f}, "
        f"all {m('a', mean_v, 'recall_all'):.4f}); matching the factors' variance over-exposes them "
        f"({m('a', var_v, 'held_share_of_slots'):.1%} of slots, {m('a', var_v, 'recall_held'):.4f} / "
        f"{m('a', var_v, 'recall_all'):.4f}); the default 'exposure' scale, set on the trained items so that a mapped "
        "item enters a top 20 as often as an average trained item, gives "
        f"{m('a', 'default', 'held_share_of_slots'):.1%} of slots (the held-out items are 10% of the catalog; "
        f"retraining gives them {m('b', 'default', 'held_share_of_slots'):.1%}), "
        f"{m('a', 'default', 'recall_held'):.4f} / {m('a', 'default', 'recall_all'):.4f}. Mapping the full tower "
        "floats (ID part included) or giving new items the mean item vector (almost) never shows them: "
        "the feature-only "
        "input is the one new items have. Hamming order alone (no re-ranker) gives held-out items "
        f"{m('a', 'hamming only', 'recall_held'):.4f} but all test {m('a', 'hamming only', 'recall_all'):.4f}; the "
        f"towers' floats as re-ranker for every item {m('a', TOWERS, 'recall_held'):.4f} / "
        f"{m('a', TOWERS, 'recall_all'):.4f}.",
        "- A mean ID row added to the feature path (instead of 0) moves the codes away from the users "
        f"({m('a', 'codes: mean ID row + features', 'held_in_pool200'):.1%} in the pool vs "
        f"{m('a', 'default', 'held_in_pool200'):.1%}): the ID part stays 0.",
    ]
    lines += [
        "",
        f"Users with a held-out-item test interaction: {any_a['users_held']} (of {any_a['users_all']} with any). "
        f"Held-out items are 10% of the catalog and {r0['test_held'] / r0['test']:.1%} of the test interactions.",
        "",
        "Per seed:",
        "",
    ]
    for r in results:
        fits = ", ".join(f"{k} {v:.0f} s / {r['epochs'][k]} epochs" for k, v in r["fit_s"].items())
        lines.append(
            f"- seed {r['seed']}: fits {fits}; add-items {r['add_s'] * 1000:.0f} ms; teachers {r['teacher']}; "
            f"tokens unseen at training ignored {r['unknown_tokens']}; load avg {[round(x, 1) for x in r['loadavg']]}"
        )
    (RESULTS / "new_items.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=None, help="epoch cap override (default: the library's rule)")
    ap.add_argument("--item-id-dropout", type=float, nargs="+", default=[0.0, 0.25, 0.5], help="one (a) fit per value")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--parts", type=Path, default=RESULTS / "new_items_parts")
    ap.add_argument("--write-only", action="store_true")
    ap.add_argument("--rerun", action="store_true", help="refit seeds whose part file exists")
    args = ap.parse_args()
    overrides = {k: v for k, v in {"epochs": args.epochs, "threads": args.threads}.items() if v is not None}
    args.parts.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if not args.write_only:
        for seed in args.seeds:
            if (args.parts / f"seed{seed}.json").exists() and not args.rerun:
                continue  # parts are per seed: an interrupted or extended run keeps the finished ones
            res = run(seed, overrides, args.item_id_dropout, log)
            (args.parts / f"seed{seed}.json").write_text(json.dumps(res, indent=1, default=float))
    results = [json.loads((args.parts / f"seed{s}.json").read_text()) for s in args.seeds]
    cmd = "python " + " ".join(["experiments/new_items.py", *(a for a in sys.argv[1:] if a != "--write-only")])
    write(results, cmd, " (tables re-rendered from its saved parts with `--write-only`)" if args.write_only else "")


if __name__ == "__main__":
    main()
