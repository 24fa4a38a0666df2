"""User-code refinement: the greedy flips against a brute-force objective, the validation rule,
and the fitted model's codes (saved, loaded, new users)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rechash.codes.bits import binarize, to_signs
from rechash.hasher.refine import choose_refinement, dcg_weights, refine_user_codes


def _refine(users: np.ndarray, items: np.ndarray, *args, **options) -> tuple[np.ndarray, int]:
    """:func:`refine_user_codes` on +-1 arrays, its refined codes back as +-1."""
    codes, flips = refine_user_codes(binarize(users), binarize(items), *args, **options)
    return to_signs(codes), flips


def _problem(seed: int = 0, n: int = 40, m: int = 60, bits: int = 8, k: int = 5):
    rng = np.random.default_rng(seed)
    users = rng.choice([-1.0, 1.0], size=(n, bits)).astype(np.float32)
    items = rng.choice([-1.0, 1.0], size=(m, bits)).astype(np.float32)
    seen = sp.csr_matrix((rng.random((n, m)) < 0.2).astype(np.float32))
    targets = np.stack([rng.choice(np.flatnonzero(seen[u].toarray()[0] == 0), size=k, replace=False) for u in range(n)])
    targets[0, 3:] = -1  # padded lists count their real entries only
    targets[1] = -1  # no target: the code stays
    return users, items, seen, targets


def _objective(b: np.ndarray, items: np.ndarray, seen_row: np.ndarray, target: np.ndarray, t: float) -> float:
    """sum_r w_r log softmax(<b, b_i> / T) over the unseen items, computed directly."""
    logits = items @ b / t
    unseen = seen_row == 0
    log_z = np.log(np.exp(logits[unseen] - logits[unseen].max()).sum()) + logits[unseen].max()
    keep = target >= 0
    w = dcg_weights(len(target))[keep]
    return float((w / w.sum() * (logits[target[keep]] - log_z)).sum())


@pytest.mark.parametrize("t", [1.0, 3.0])
def test_flips_end_at_a_local_optimum_above_the_start(t):
    users, items, seen, targets = _problem()
    refined, flips = _refine(users, items, targets, seen, t, pool=len(items))  # pool = every item: exact
    dense = seen.toarray()
    assert flips > 0
    np.testing.assert_array_equal(refined[1], users[1])
    for u in range(len(users)):
        if (targets[u] < 0).all():
            continue
        f = _objective(refined[u], items, dense[u], targets[u], t)
        assert f >= _objective(users[u], items, dense[u], targets[u], t) - 1e-9
        for j in range(users.shape[1]):  # no single flip raises it further
            b = refined[u].copy()
            b[j] = -b[j]
            assert _objective(b, items, dense[u], targets[u], t) <= f + 1e-5


@pytest.mark.parametrize("compact_at", [0.0, 1.0])
def test_stopped_rows_kept_in_the_working_set_do_not_change_the_codes(compact_at, monkeypatch):
    """Users stop flipping at different steps; dropping them from the working set at once
    (0.0) or only when every row has stopped (1.0) gives the default's codes and flip count."""
    import rechash.hasher.refine as refine

    users, items, seen, targets = _problem(seed=2, n=64, bits=16)
    expected = _refine(users, items, targets, seen, 2.0, pool=len(items))
    monkeypatch.setattr(refine, "COMPACT_AT", compact_at)
    got = _refine(users, items, targets, seen, 2.0, pool=len(items))
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1] > 0


def test_one_step_flips_the_best_bit():
    users, items, seen, targets = _problem(seed=1)
    refined, _ = _refine(users, items, targets, seen, 2.0, pool=len(items), max_flips=1)
    dense = seen.toarray()
    for u in range(2, len(users)):
        gains = []
        for j in range(users.shape[1]):
            b = users[u].copy()
            b[j] = -b[j]
            gains.append(
                _objective(b, items, dense[u], targets[u], 2.0) - _objective(users[u], items, dense[u], targets[u], 2.0)
            )
        changed = np.flatnonzero(refined[u] != users[u])
        if max(gains) > 1e-5:
            assert list(changed) == [int(np.argmax(gains))]
        else:
            assert len(changed) == 0


def _hamming_top(user_signs, item_signs, seen, k):
    from rechash.hasher.trainer import hamming_topk

    return hamming_topk(binarize(user_signs), binarize(item_signs), np.arange(len(user_signs)), k, seen)[0]


def test_refinement_raises_agreement_with_the_targets():
    """Targets that some code ranks first (a hidden code's Hamming top 10) are mostly recovered."""
    users, items, seen, _ = _problem(seed=2, n=200, m=300, bits=16, k=10)
    hidden = np.random.default_rng(5).choice([-1.0, 1.0], size=users.shape).astype(np.float32)
    targets = _hamming_top(hidden, items, seen, 10)

    def agreement(signs):
        top = _hamming_top(signs, items, seen, 10)
        return np.mean([len(set(top[u]) & set(targets[u])) for u in range(len(top))])

    refined, _ = _refine(users, items, targets, seen, 3.0, pool=64)
    assert agreement(users) < 1.0 and agreement(refined) > 6.0


def _pointing_at(cols: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """A teacher whose top list of user u is ``cols[u]`` in order (user rows are the scores, items the identity)."""
    scores = np.zeros((len(cols), m), np.float32)
    scores[np.arange(len(cols))[:, None], cols] = 10.0 - np.arange(cols.shape[1])
    return scores, np.eye(m, dtype=np.float32)


def test_validation_decides_whether_refinement_is_kept():
    """Kept when the teacher points at the validation items; refused when the towers' codes
    already rank the validation items first and the teacher points elsewhere."""
    rng = np.random.default_rng(3)
    n, m, bits, k = 150, 200, 16, 5
    user_z = rng.normal(size=(n, bits)).astype(np.float32)
    item_z = rng.normal(size=(m, bits)).astype(np.float32)
    train = sp.csr_matrix((n, m), dtype=np.float32)
    near = _hamming_top(np.sign(user_z), np.sign(item_z), train, m)

    def valid_of(cols):
        return sp.csr_matrix((np.ones(cols.size, np.float32), (np.repeat(np.arange(n), k), cols.ravel())), shape=(n, m))

    hidden = near[:, 40 : 40 + k]  # validation items at Hamming ranks 40..44
    t, record = choose_refinement(user_z, item_z, _pointing_at(hidden, m), train, valid_of(hidden), k)
    assert t is not None and record["temperature"] == t
    assert record["valid_recall"][str(t)] > record["valid_recall"]["none"] + 0.2

    t, record = choose_refinement(user_z, item_z, _pointing_at(near[:, -k:], m), train, valid_of(near[:, :k]), k)
    assert t is None and record["temperature"] is None and record["valid_recall"]["none"] == 1.0


def test_fitted_model_keeps_saves_and_loads_refined_codes(split, fast, tmp_path):
    """A teacher that knows the validation items makes validation keep the refinement; the
    refined codes are what encode_users returns, survive save/load, and refine=False turns it off."""
    from rechash.data.embeddings import FloatEmbeddings
    from rechash.hasher.twin_tower import TwinTowerHasher

    oracle = FloatEmbeddings(
        split.valid.matrix.toarray().astype(np.float32),
        np.eye(split.train.n_items, dtype=np.float32),
        user_ids=split.train.user_ids,
        item_ids=split.train.item_ids,
    )
    opts = dict(seed=0, init="random", w_distill=0.0, w_rank=0.0, **fast)
    m = TwinTowerHasher(16, **opts).fit(split.train, split.valid, teacher=oracle)
    run = m.training_run()["refine"]
    assert run["temperature"] is not None and set(run["valid_recall"]) == {"none", "3.0", "4.0", "6.0"}
    assert run["flips_per_user"] > 0
    assert (m.encode_users() != binarize(m.user_floats())).any()
    back = TwinTowerHasher.load(m.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.encode_users(), m.encode_users())
    np.testing.assert_array_equal(back.encode_users([3, 1]), m.encode_users()[[3, 1]])
    assert back.training_run()["refine"] == run

    off = TwinTowerHasher(16, refine=False, **opts).fit(split.train, split.valid, teacher=oracle)
    assert off.training_run()["refine"] is None
    np.testing.assert_array_equal(off.encode_users(), binarize(off.user_floats()))
    np.testing.assert_array_equal(off.encode_items(), m.encode_items())  # items are never refined


def test_bad_refined_codes_are_refused(split, fast, tmp_path):
    import hashlib
    import json

    from rechash.errors import ModelError
    from rechash.hasher.twin_tower import TwinTowerHasher

    m = TwinTowerHasher(16, seed=0, init="random", **fast).fit(split.train, teacher=None)
    path = m.save(tmp_path / "m")
    f = path / "floats.npz"
    np.savez(f, user_z=m.user_floats(), item_z=m.item_floats(), user_codes=np.zeros((3, 2), np.uint8))
    cfg = json.loads((path / "config.json").read_text())
    cfg["files"]["floats.npz"] = {"bytes": f.stat().st_size, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="user_codes must be uint8"):
        TwinTowerHasher.load(path)


def test_new_users_are_refined_toward_the_folded_in_teacher(split, fast, monkeypatch):
    """A model that kept a refinement refines the codes of users it folds in at the kept
    temperature, toward the folded-in ALS teacher's top-K within their Hamming pool; the teacher
    never scores the whole catalog."""
    import rechash.hasher.refine as refine
    from rechash.als.fit import fit_als
    from rechash.hasher.twin_tower import TwinTowerHasher

    als = fit_als(split.train, factors=16, regularization=0.05, alpha=10.0, iterations=5, num_threads=1)
    m = TwinTowerHasher(16, seed=0, **fast).fit(split.train, split.valid, teacher=als)
    history = split.train.matrix[:60]
    m.refine_ = None
    plain, _ = m.encode_new_users(history)
    m.refine_ = {"temperature": 3.0}  # as a fit that kept T = 3 records it
    np.testing.assert_array_equal(m.encode_new_users(history, refined=False)[0], plain)

    def catalog_scan(*args, **kwargs):
        raise AssertionError("a new user's refinement scored the whole catalog")

    monkeypatch.setattr(refine, "teacher_top_items", catalog_scan)
    refined, floats = m.encode_new_users(history)
    np.testing.assert_array_equal(floats, als.fold_in_users(history))
    _, encoder_floats = m.encode_history(history)
    pair = (floats, als.item_factors)
    expected, flips = refine.pool_refined_codes(encoder_floats, m.encode_items(), pair, history, 20, 3.0)
    assert flips > 0 and (refined != plain).any()
    np.testing.assert_array_equal(refined, expected)


def _pool_problem(seed: int = 4, n: int = 50, m: int = 120, bits: int = 16, d: int = 8):
    rng = np.random.default_rng(seed)
    user_z, item_z = rng.normal(size=(n, bits)).astype(np.float32), rng.normal(size=(m, bits)).astype(np.float32)
    teacher = rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(m, d)).astype(np.float32)
    seen = sp.csr_matrix((rng.random((n, m)) < 0.1).astype(np.float32))
    return user_z, item_z, teacher, seen


def test_pool_targets_are_the_teachers_top_within_the_hamming_pool(monkeypatch):
    """Each round's targets are the teacher's top-K among the pool (the Hamming-nearest unseen
    items to the current code), which is also the softmax pool; the second round starts from the
    first round's codes; with one round over a pool of the whole catalog the codes are the
    full-catalog refinement's; batching changes nothing."""
    import rechash.hasher.refine as refine
    from rechash.hasher.refine import pool_refined_codes, refined_user_codes
    from rechash.hasher.trainer import hamming_topk

    user_z, item_z, teacher, seen = _pool_problem()
    n, m, k, item_codes = len(user_z), len(item_z), 5, binarize(item_z)
    calls = []
    real = refine.refine_user_codes

    def spy(codes, items, targets, rows, t, **options):
        out = real(codes, items, targets, rows, t, **options)
        calls.append((codes, targets, options["candidates"], out[0]))
        return out

    monkeypatch.setattr(refine, "refine_user_codes", spy)
    codes, flips = pool_refined_codes(user_z, item_codes, teacher, seen, k, 3.0, pool=30)
    assert len(calls) == 2 and flips > 0
    np.testing.assert_array_equal(calls[0][0], binarize(user_z))
    np.testing.assert_array_equal(calls[1][0], calls[0][3])  # round 2 starts where round 1 ended
    np.testing.assert_array_equal(codes, calls[1][3])
    for start, targets, cand, _ in calls:
        np.testing.assert_array_equal(cand, hamming_topk(start, binarize(item_z), np.arange(n), 30, seen)[0])
        for u in range(n):
            scores = teacher[1][cand[u]] @ teacher[0][u]
            np.testing.assert_array_equal(targets[u], cand[u][np.argsort(-scores, kind="stable")[:k]])
    monkeypatch.setattr(refine, "refine_user_codes", real)
    batched, _ = pool_refined_codes(user_z, item_codes, teacher, seen, k, 3.0, pool=30, batch=7)
    np.testing.assert_array_equal(batched, codes)
    one_round, _ = pool_refined_codes(user_z, item_codes, teacher, seen, k, 3.0, pool=30, rounds=1)
    np.testing.assert_array_equal(one_round, calls[0][3])
    full, full_flips = pool_refined_codes(user_z, item_codes, teacher, seen, k, 3.0, pool=m, rounds=1)
    old, old_flips = refined_user_codes(user_z, item_z, teacher, seen, k, 3.0)
    np.testing.assert_array_equal(full, old)
    assert full_flips == old_flips
    with pytest.raises(ValueError, match="rounds"):
        pool_refined_codes(user_z, item_codes, teacher, seen, k, 3.0, rounds=0)


def test_given_candidates_replace_the_hamming_scan():
    from rechash.hasher.trainer import hamming_topk

    users, items, seen, targets = _problem(seed=6)
    cand = hamming_topk(binarize(users), binarize(items), np.arange(len(users)), 16, seen)[0]
    drawn, flips = _refine(users, items, targets, seen, 3.0, candidates=cand)
    np.testing.assert_array_equal(drawn, _refine(users, items, targets, seen, 3.0, pool=16)[0])
    assert flips > 0


def _spy_on_choose_refinement(monkeypatch) -> list:
    import rechash.hasher.twin_tower as hasher

    calls = []

    def spy(user_z, item_z, teacher, train, valid, k):
        calls.append((user_z.copy(), train, valid))
        return choose_refinement(user_z, item_z, teacher, train, valid, k)

    monkeypatch.setattr(hasher, "choose_refinement", spy)
    return calls


def test_refinement_decision_without_valid_never_sees_the_held_out_items(split, fast, monkeypatch):
    """Without ``valid``, the refinement is chosen on user floats computed from the train histories
    *without* the held-out interactions (the validation items are not in the towers' input); the
    deployed floats keep the full histories. :meth:`_validation_data` hands out the same view."""
    import torch

    from rechash.als.fit import fit_als
    from rechash.hasher.sampling import holdout_mask
    from rechash.hasher.trainer import all_floats
    from rechash.hasher.twin_tower import TwinTowerHasher

    calls = _spy_on_choose_refinement(monkeypatch)
    als = fit_als(split.train, factors=16, regularization=0.05, alpha=10.0, iterations=5, num_threads=1)
    m = TwinTowerHasher(16, seed=0, **fast).fit(split.train, teacher=als)
    ((user_z, train, valid),) = calls
    mask = holdout_mask(split.train.matrix, np.random.default_rng(0))
    reduced = split.train.subset(~mask).matrix.astype(np.float32)
    assert m.holdout_ == mask.sum() > 0 and train.nnz == split.train.nnz - m.holdout_
    assert (train != reduced).nnz == 0 and valid.multiply(train).nnz == 0 and valid.nnz > 0
    np.testing.assert_array_equal(user_z, m._relaxed(all_floats(m.towers, reduced, torch.device("cpu"))[0]))
    assert not np.array_equal(user_z, m.user_floats())  # the deployed floats read the full histories
    assert m.seen_.nnz == split.train.nnz
    view = m._validation_data()
    np.testing.assert_array_equal(view[0], user_z)
    assert view[1] is train and view[2] is valid


def test_refinement_decision_with_valid_uses_the_deployed_floats(split, fast, monkeypatch, tmp_path):
    """With ``valid`` nothing is held out: the decision reads the stored floats themselves (no
    recomputation) and the training matrix; a loaded model has no validation view."""
    from rechash.als.fit import fit_als
    from rechash.errors import ModelError
    from rechash.hasher.twin_tower import TwinTowerHasher

    calls = _spy_on_choose_refinement(monkeypatch)
    als = fit_als(split.train, factors=16, regularization=0.05, alpha=10.0, iterations=5, num_threads=1)
    m = TwinTowerHasher(16, seed=0, **fast).fit(split.train, split.valid, teacher=als)
    ((user_z, train, _),) = calls
    np.testing.assert_array_equal(user_z, m.user_floats())
    assert m._validation_data()[0] is m.user_floats() and (train != m.seen_).nnz == 0
    with pytest.raises(ModelError, match="no validation data"):
        TwinTowerHasher.load(m.save(tmp_path / "m"))._validation_data()


def test_hamming_topk_is_the_full_ranking_oracle_by_hamming():
    """The exact index's search equals ranking every item by -hamming (ties by id), with
    exclusions, a subset of users and k beyond the catalog."""
    import scipy.sparse as sp

    from rechash.codes.bits import hamming_distances
    from rechash.hasher.trainer import hamming_topk
    from rechash.rank.topk import topk_rows

    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 256, (40, 2), dtype=np.uint8), rng.integers(0, 256, (25, 2), dtype=np.uint8)
    exclude = sp.random(40, 25, density=0.2, format="csr", random_state=1)
    rows = np.array([3, 0, 17, 39])
    ids, scores = hamming_topk(users, items, rows, 30, exclude)
    expected = topk_rows(-hamming_distances(users[rows], items).astype(np.float64), 30, exclude[rows])
    np.testing.assert_array_equal(ids, expected[0])
    np.testing.assert_array_equal(scores, expected[1])


def test_given_pools_read_only_their_items_and_refine_as_the_drawn_ones(monkeypatch):
    """A call with its pools given unpacks only the codes of the pools' and targets' items; the
    codes and flips equal those of the same pools drawn by the call itself."""
    import rechash.hasher.refine as refine
    from rechash.hasher.refine import refine_user_codes
    from rechash.hasher.trainer import hamming_topk, teacher_top_items

    user_z, item_z, teacher, seen = _pool_problem()
    users = np.arange(3)  # 3 pools of 10 cover a fraction of the 120 items
    codes, item_codes, seen = binarize(user_z[users]), binarize(item_z), seen[users]
    targets = teacher_top_items(teacher[0][users], teacher[1], seen, 5)
    targets[:2, 2:] = -1  # padded target lists
    drawn = refine_user_codes(codes, item_codes, targets, seen, 3.0, pool=10)
    pools = hamming_topk(codes, item_codes, users, 10, seen)[0]
    unpacked = []
    monkeypatch.setattr(refine, "to_signs", lambda c: unpacked.append(len(c)) or to_signs(c))
    given = refine_user_codes(codes, item_codes, targets, seen, 3.0, candidates=pools)
    used = np.union1d(pools[pools >= 0], targets[targets >= 0])
    assert unpacked == [len(codes), len(np.union1d(used, [0]))] and unpacked[1] < len(item_codes)
    np.testing.assert_array_equal(given[0], drawn[0])
    assert given[1] == drawn[1] > 0
