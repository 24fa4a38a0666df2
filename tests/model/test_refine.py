"""User-code refinement: the greedy flips against a brute-force objective, the validation rule,
and the fitted model's codes (saved, loaded, new users)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rechash.codes import binarize, to_signs
from rechash.model.refine import choose_refinement, dcg_weights, refine_user_codes


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


def test_one_step_flips_the_best_bit():
    users, items, seen, targets = _problem(seed=1)
    refined, _ = _refine(users, items, targets, seen, 2.0, pool=len(items), max_flips=1)
    dense = seen.toarray()
    for u in range(2, len(users)):
        gains = []
        for j in range(users.shape[1]):
            b = users[u].copy()
            b[j] = -b[j]
            gains.append(_objective(b, items, dense[u], targets[u], 2.0) - _objective(users[u], items, dense[u], targets[u], 2.0))
        changed = np.flatnonzero(refined[u] != users[u])
        if max(gains) > 1e-5:
            assert list(changed) == [int(np.argmax(gains))]
        else:
            assert len(changed) == 0


def _hamming_top(user_signs, item_signs, seen, k):
    from rechash.model.trainer import hamming_topk

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
    from rechash.baselines import FloatEmbeddings
    from rechash.model import TwinTowerHasher

    oracle = FloatEmbeddings(
        split.valid.matrix.toarray().astype(np.float32), np.eye(split.train.n_items, dtype=np.float32),
        user_ids=split.train.user_ids, item_ids=split.train.item_ids,
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
    from rechash.model import TwinTowerHasher

    m = TwinTowerHasher(16, seed=0, init="random", **fast).fit(split.train, teacher=None)
    path = m.save(tmp_path / "m")
    f = path / "floats.npz"
    np.savez(f, user_z=m.user_floats(), item_z=m.item_floats(), user_codes=np.zeros((3, 2), np.uint8))
    cfg = json.loads((path / "config.json").read_text())
    cfg["files"]["floats.npz"] = {"bytes": f.stat().st_size, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="user_codes must be uint8"):
        TwinTowerHasher.load(path)


def test_new_users_are_refined_toward_the_folded_in_teacher(split, fast):
    """A model that kept a refinement refines the codes of users it folds in as it refined the
    known users': toward the folded-in ALS teacher's top-K over the items outside their history."""
    from rechash.baselines import fit_als
    from rechash.model import TwinTowerHasher
    from rechash.model.refine import refined_user_codes

    als = fit_als(split.train, factors=16, regularization=0.05, alpha=10.0, iterations=5, num_threads=1)
    m = TwinTowerHasher(16, seed=0, **fast).fit(split.train, split.valid, teacher=als)
    history = split.train.matrix[:60]
    plain, _ = m.encode_new_users(history)
    m.refine_ = {"temperature": 3.0}  # as a fit that kept T = 3 records it
    refined, floats = m.encode_new_users(history)
    np.testing.assert_array_equal(floats, als.fold_in_users(history))
    _, encoder_floats = m.encode_history(history)
    expected, flips = refined_user_codes(encoder_floats, m.item_floats(), (floats, als.item_factors), history, 20, 3.0)
    assert flips > 0 and (refined != plain).any()
    np.testing.assert_array_equal(refined, expected)
