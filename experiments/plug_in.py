"""Plugging rechash into an existing stack: an engineer's path end to end, with STRING ids.

A notebook in plain Python (one ``# %%`` cell per step). The team already has a pandas
interaction log keyed by strings ("u17", "m203") and its own implicit ALS; rechash takes
both as they are:

1. the log (synthetic, or ml-100k with ``--data``), ``Interactions.from_frame``, a split;
2. the team's ALS, fitted with ``implicit.als.AlternatingLeastSquares`` on the team's own
   row order (``pd.factorize`` of the log, not rechash's id order), wrapped as
   ``FloatEmbeddings(U, V, user_ids=..., item_ids=..., fold_in=...)``;
3. that model binarized (``CodeRecommender.from_floats``), candidates to Parquet through
   ``CandidateJob``, read back with pandas;
4. the ALS as teacher of ``TwinTowerHasher`` (``from_model``);
5. a new user from a history (``recommend_frame``) and implicit's ``recalculate_user``;
6. Recall@20 on the test part against the team's ALS + Annoy and exact ALS, and bytes per item;
7. id maps that do not match are refused, shuffled but complete ones are realigned.

    python experiments/plug_in.py                                    # synthetic, string ids
    python experiments/plug_in.py --data ../shared/data/ml-100k/ml-100k.inter
    python experiments/plug_in.py --n-users 300 --n-items 150 --epochs 1   # the size tests/models/test_plug_in.py runs

``main()`` returns the numbers it prints (a dict); ``tests/models/test_plug_in.py`` runs it on
tiny data.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash.data import Interactions, split_random, synthetic
from rechash.data.embeddings import FloatEmbeddings
from rechash.errors import DataError
from rechash.evaluation import per_user_metrics
from rechash.evaluation.compare import top_lists
from rechash.hasher.twin_tower import TwinTowerHasher
from rechash.jobs.candidates import CandidateJob
from rechash.models.annoy import AnnoyRecommender
from rechash.models.code import CodeRecommender
from rechash.models.exact import ExactRecommender

K = 20
#: the team's production ALS settings (64 factors: one per bit of the 64-bit codes)
TEAM_ALS = {"factors": 64, "regularization": 10.0, "alpha": 10.0, "iterations": 15}


# %% 1. the team's log: string ids, timestamps, rows in no particular order ------------------
def synthetic_log(n_users: int, n_items: int, seed: int = 0) -> pd.DataFrame:
    """A log as a team keeps it: ``visitor, movie, ts`` with string ids, shuffled rows."""
    frame = synthetic(n_users=n_users, n_items=n_items, n_clusters=min(20, n_items // 10), seed=seed).to_frame()
    log = pd.DataFrame(
        {
            "visitor": "u" + frame["user_id"].astype(str),
            "movie": "m" + frame["item_id"].astype(str),
            "ts": pd.to_datetime(frame["timestamp"], unit="s"),
        }
    )
    return log.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def ml100k_log(path: str | Path) -> pd.DataFrame:
    """ml-100k's RecBole ``.inter`` as the same log (ratings >= 4 as positives)."""
    raw = pd.read_csv(path, sep="\t")
    raw.columns = [c.split(":")[0] for c in raw.columns]
    raw = raw[raw["rating"] >= 4]
    return pd.DataFrame(
        {
            "visitor": "u" + raw["user_id"].astype(str),
            "movie": "m" + raw["item_id"].astype(str),
            "ts": pd.to_datetime(raw["timestamp"], unit="s"),
        }
    ).reset_index(drop=True)


# %% 2. the team's own implicit ALS, in the team's own row order ----------------------------
def team_als(log: pd.DataFrame, train_rows: pd.DataFrame, seed: int = 0):
    """Fit implicit ALS the way the team does: rows and columns in ``pd.factorize`` order of
    the full log, trained on ``train_rows``. Returns ``(U, V, user order, item order)``."""
    import implicit.als
    import threadpoolctl

    _, users = pd.factorize(log["visitor"])  # first appearance in the (shuffled) log
    _, items = pd.factorize(log["movie"])
    rows = users.get_indexer(train_rows["visitor"])
    cols = items.get_indexer(train_rows["movie"])
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(items)))
    with threadpoolctl.threadpool_limits(1, "blas"):  # implicit's advice: one BLAS thread
        model = implicit.als.AlternatingLeastSquares(
            factors=TEAM_ALS["factors"],
            regularization=TEAM_ALS["regularization"],
            alpha=TEAM_ALS["alpha"],
            iterations=TEAM_ALS["iterations"],
            random_state=seed,
            use_gpu=False,
            calculate_training_loss=False,
        )
        model.fit(matrix, show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors), users, items, model


def recall(rec, users: np.ndarray, train: Interactions, test: Interactions, k: int = K) -> float:
    """Test Recall@k of ``rec`` over ``users`` (internal ids), training items excluded."""
    ids = top_lists(rec, users, k, train.matrix)
    return float(per_user_metrics(ids, users, test.matrix, ks=(k,))[f"recall@{k}"].mean())


def main(
    n_users: int = 3000,
    n_items: int = 1500,
    out_dir: str | Path = "plug-in-out",
    data: str | Path | None = None,
    epochs: int = 10,
    max_seconds: float | None = 120.0,
    seed: int = 0,
    verbose: bool = True,
) -> dict:
    say = print if verbose else (lambda *a, **k: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"seconds": {}}
    clock = [time.perf_counter()]

    def lap(step: int) -> None:  # wall seconds of each cell, in results["seconds"]
        now = time.perf_counter()
        results["seconds"][step] = round(now - clock[0], 2)
        clock[0] = now

    # %% 1. log -> Interactions -> split --------------------------------------------------
    log = ml100k_log(data) if data else synthetic_log(n_users, n_items, seed)
    # a few visitors arrive after training: their events are held out of the log entirely
    late = log["visitor"].drop_duplicates().iloc[:3].tolist()
    new_events = log[log["visitor"].isin(late)].copy()
    log = log[~log["visitor"].isin(late)].reset_index(drop=True)
    inter = Interactions.from_frame(log, user_col="visitor", item_col="movie", timestamp_col="ts", weight_col=False)
    train, valid, test = split_random(inter, (0.8, 0.1, 0.1), seed=seed)
    say(
        f"log: {len(log):,} rows, {inter.n_users:,} users x {inter.n_items:,} items (string ids, e.g. "
        f"{log['visitor'].iloc[0]!r}/{log['movie'].iloc[0]!r}); split {train.nnz:,} / {valid.nnz:,} / {test.nnz:,}"
    )
    results.update(n_users=inter.n_users, n_items=inter.n_items, nnz=inter.nnz)

    lap(1)
    # %% 2. the team's ALS, wrapped with its own id order -----------------------------------
    start = time.perf_counter()
    train_rows = train.to_frame().rename(columns={"user_id": "visitor", "item_id": "movie"})
    U, V, their_users, their_items, als = team_als(log, train_rows, seed)
    fold_in = {"regularization": TEAM_ALS["regularization"], "alpha": TEAM_ALS["alpha"]}
    emb = FloatEmbeddings(U, V, user_ids=their_users, item_ids=their_items, fold_in=fold_in)
    als_seconds = time.perf_counter() - start
    same_order = bool(np.array_equal(their_users.to_numpy(), train.user_ids.external_ids))
    say(
        f"team ALS: {U.shape[1]} factors in {als_seconds:.1f} s; team's user order == rechash's id order: {same_order} "
        f"(first rows {list(their_users[:3])} vs {list(train.user_ids.external_ids[:3])})"
    )
    aligned = emb.aligned_to(train.user_ids, train.item_ids)  # rows reordered by external id

    lap(2)
    # %% 3. the team's model binarized, candidates to Parquet -------------------------------
    rec = CodeRecommender.from_floats(aligned, bits=64, seen=train.matrix)
    cand_dir = out_dir / "candidates"
    summary = CandidateJob(rec, k=K).run(cand_dir, progress=False)
    cands = pd.read_parquet(cand_dir)
    say(summary.splitlines()[0].split(" to ")[0] + f" -> {cand_dir}")
    say(cands.head(3).to_string(index=False))
    results.update(
        candidate_rows=int(len(cands)),
        candidate_users=int(cands["user_id"].nunique()),
        candidate_dtypes={c: str(t) for c, t in cands.dtypes.items()},
    )

    lap(3)
    # %% 4. the team's ALS as teacher of the twin towers ------------------------------------
    model = TwinTowerHasher(64, epochs=epochs, max_seconds=max_seconds, progress=False, seed=seed)
    model.fit(train, valid, teacher=emb)  # any row order: fit aligns the teacher by id
    learned = CodeRecommender.from_model(model)
    trained = max(h.epoch for h in model.history_)
    say(
        f"TwinTowerHasher(64, epochs={epochs}): {trained} epoch(s) in {model.fit_seconds_:.1f} s, stopped by "
        f"{model.stop_reason_}; teacher {model.training_run()['teacher']}"
    )
    results.update(epochs_run=trained)

    lap(4)
    # %% 5. a new visitor: recommend_frame from a history, and implicit's recalculate_user ---
    new_id = late[0]
    history = new_events[new_events["visitor"] == new_id].rename(columns={"visitor": "user_id", "movie": "item_id"})
    history = pd.concat(
        [history, pd.DataFrame({"user_id": [new_id], "item_id": ["m_not_in_catalog"]})], ignore_index=True
    )
    frames = {}
    for name, r in (("from_floats", rec), ("from_model", learned)):
        frames[name] = r.recommend_frame([new_id, "u_never_seen"], K, history=history)
        say(f"{name}: new users -> {frames[name].attrs['report']}")
    results["new_user_report"] = frames["from_floats"].attrs["report"]
    # implicit's convention: one CSR row over internal item ids, recalculate_user=True
    known = train.item_ids.to_internal(history["item_id"].to_numpy(), strict=False)
    known = np.unique(known[known >= 0])
    row = sp.csr_matrix((np.ones(len(known), np.float32), known, [0, len(known)]), shape=(1, train.n_items))
    ids, scores = rec.recommend(0, row, N=K, recalculate_user=True)
    first = frames["from_floats"]
    same = bool(
        np.array_equal(train.item_ids.to_external(ids), first[first["user_id"] == new_id]["item_id"].to_numpy())
    )
    # the team's implicit model folds the same user in (its own item order) to the same vector
    theirs = als.recalculate_user(
        0,
        sp.csr_matrix(
            (
                np.ones(len(known), np.float32),
                their_items.get_indexer(train.item_ids.to_external(known)),
                [0, len(known)],
            ),
            shape=(1, len(their_items)),
        ),
    )
    ours = aligned.fold_in_users(row)[0]
    fold_err = float(np.abs(theirs - ours).max() / max(np.abs(theirs).max(), 1e-12))
    say(
        f"recommend(0, row, recalculate_user=True) == recommend_frame rows: {same}; "
        f"fold-in vs implicit's recalculate_user: max relative difference {fold_err:.1e}"
    )
    results.update(recalculate_user_matches_frame=same, fold_in_rel_diff=fold_err)

    lap(5)
    # %% 6. the comparison on the test part --------------------------------------------------
    users = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    arms = {
        "ALS exact (team)": ExactRecommender(aligned, seen=train.matrix),
        "ALS + Annoy (team)": AnnoyRecommender.build(aligned, seen=train.matrix),
        "from_floats, Hamming only": CodeRecommender.from_floats(aligned, bits=64, seen=train.matrix, reranker=None),
        "from_floats, ALS re-rank": rec,
        "twin towers (ALS teacher)": learned,
        "twin towers, Hamming only": CodeRecommender.from_model(model, reranker=None),
    }
    table = pd.DataFrame(
        [
            {"arm": name, f"recall@{K}": recall(r, users, train, test), "bytes/item": r.index_bytes / r.n_items}
            for name, r in arms.items()
        ]
    )
    say(f"\ntest Recall@{K} over {len(users):,} users (training items excluded):")
    say(table.to_string(index=False, float_format=lambda x: f"{x:.4f}" if x < 1 else f"{x:.0f}"))
    results["recall"] = dict(zip(table["arm"], table[f"recall@{K}"]))
    results["bytes_per_item"] = dict(zip(table["arm"], table["bytes/item"]))

    lap(6)
    # %% 7. id maps: wrong ones refused, shuffled complete ones realigned --------------------
    wrong = their_users.to_numpy().copy()
    wrong[5] = "u_not_in_log"  # one id replaced
    try:
        FloatEmbeddings(U, V, user_ids=wrong, item_ids=their_items).aligned_to(train.user_ids, train.item_ids)
        raise AssertionError("a replaced user id was accepted")
    except DataError as exc:
        assert repr(their_users[5]) in str(exc), exc
        say(f"refused (one id replaced): {exc}")
        results["refused_replaced"] = str(exc)
    try:  # row positions passed instead of the ids
        FloatEmbeddings(U, V, user_ids=their_users, item_ids=np.arange(len(V))).aligned_to(
            train.user_ids, train.item_ids
        )
        raise AssertionError("integer item ids were accepted for string data")
    except DataError as exc:
        assert repr(train.item_ids.external_ids[0]) in str(exc), exc
        say(f"refused (other id kind): {exc}")
        results["refused_kind"] = str(exc)
    with warnings.catch_warnings(record=True) as caught:  # no ids at all: accepted, with a warning
        warnings.simplefilter("always")
        FloatEmbeddings(U, V).aligned_to(train.user_ids, train.item_ids)
    assert any("assumed to follow" in str(w.message) for w in caught)
    perm_u = np.random.default_rng(seed).permutation(len(U))
    perm_i = np.random.default_rng(seed + 1).permutation(len(V))
    shuffled = FloatEmbeddings(
        U[perm_u], V[perm_i], user_ids=their_users[perm_u], item_ids=their_items[perm_i], fold_in=fold_in
    ).aligned_to(train.user_ids, train.item_ids)
    sample_u = train.user_ids.external_ids[:: max(1, inter.n_users // 50)]
    sample_i = train.item_ids.external_ids[:: max(1, inter.n_items // 50)]
    team_scores = U[their_users.get_indexer(sample_u)] @ V[their_items.get_indexer(sample_i)].T  # the team's own lookup
    got = (
        shuffled.user_factors[train.user_ids.to_internal(sample_u)]
        @ shuffled.item_factors[train.item_ids.to_internal(sample_i)].T
    )
    assert np.allclose(got, team_scores, rtol=1e-5, atol=1e-6)
    assert np.array_equal(shuffled.user_factors, aligned.user_factors) and np.array_equal(
        shuffled.item_factors, aligned.item_factors
    )
    say(
        "realigned: shuffled but complete id lists give the same score per external id "
        f"({team_scores.size} pairs checked)"
    )
    results["realigned"] = True
    lap(7)
    say(f"seconds per step: {results['seconds']}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="ml-100k .inter file (default: a synthetic log)")
    parser.add_argument("--n-users", type=int, default=3000)
    parser.add_argument("--n-items", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--out", default="plug-in-out")
    args = parser.parse_args()
    main(args.n_users, args.n_items, args.out, args.data, args.epochs, args.max_seconds)
