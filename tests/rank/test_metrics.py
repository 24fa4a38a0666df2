"""Metrics: a hand-computed case, implicit's ranking_metrics_at_k on identical lists, extras."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from rechash.evaluation import candidate_recall, implicit_precision, item_coverage, overlap, per_user_metrics


def _csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c), dtype=np.float32), (r, c)), shape=(len(rows), n_items))


def test_hand_computed_case():
    # user 0: test {0, 2}, list [0, 1, 2]  -> hits at ranks 1 and 3
    # user 1: no test item                 -> left out
    # user 2: test {3, 4, 5, 6}, list [1, 2, 3] -> one hit at rank 3
    # user 3: test {7}, list [-1, 7, -1] (padding) -> hit at rank 2
    truth = _csr([[0, 2], [], [3, 4, 5, 6], [7]], 8)
    lists = np.array([[0, 1, 2], [3, 4, 5], [1, 2, 3], [-1, 7, -1]])
    m = per_user_metrics(lists, np.arange(4), truth, ks=(3, 1))
    assert list(m.index) == [0, 2, 3]
    d = 1 / np.log2([2, 3, 4])
    expect = {
        "recall@3": [2 / 2, 1 / 4, 1 / 1],
        "ndcg@3": [(d[0] + d[2]) / (d[0] + d[1]), d[2] / d.sum(), d[1] / d[0]],
        "hr@3": [1, 1, 1],
        "precision@3": [2 / 3, 1 / 3, 1 / 3],
        "mrr@3": [1, 1 / 3, 1 / 2],
        "map@3": [(1 + 2 / 3) / 2, (1 / 3) / 3, (1 / 2) / 1],
        "recall@1": [1 / 2, 0, 0],
        "ndcg@1": [1, 0, 0],
        "mrr@1": [1, 0, 0],
    }
    for col, values in expect.items():
        np.testing.assert_allclose(m[col].to_numpy(), values, err_msg=col)


class _FixedLists:
    """A stand-in for an implicit model whose recommend returns known lists."""

    def __init__(self, lists: np.ndarray) -> None:
        self.lists = lists

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True, **kwargs):
        ids = self.lists[np.asarray(userid)][:, :N].astype(np.int32)
        return ids, np.zeros(ids.shape, dtype=np.float32)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_matches_implicit_ranking_metrics_at_k(k):
    implicit_eval = pytest.importorskip("implicit.evaluation")
    rng = np.random.default_rng(k)
    n_users, n_items = 60, 40
    lists = np.stack([rng.permutation(n_items)[:20] for _ in range(n_users)])
    truth_rows = [list(rng.choice(n_items, size=rng.integers(0, 12), replace=False)) for _ in range(n_users)]
    truth = _csr(truth_rows, n_items)
    got = implicit_eval.ranking_metrics_at_k(
        _FixedLists(lists), sp.csr_matrix((n_users, n_items), dtype=np.float32), truth, K=k, show_progress=False
    )
    ours = per_user_metrics(lists, np.arange(n_users), truth, ks=(k,))
    assert len(ours) == sum(1 for r in truth_rows if r)
    assert ours[f"ndcg@{k}"].mean() == pytest.approx(got["ndcg"], rel=1e-9)
    assert ours[f"map@{k}"].mean() == pytest.approx(got["map"], rel=1e-9)
    # implicit's precision is micro-averaged hits / min(|test|, K): documented difference
    assert implicit_precision(ours, truth, k) == pytest.approx(got["precision"], rel=1e-9)
    if k > 1:
        assert ours[f"precision@{k}"].mean() != pytest.approx(got["precision"], rel=1e-3)


def test_candidate_recall_is_recall_of_the_prefix():
    rng = np.random.default_rng(0)
    truth = _csr([list(rng.choice(50, size=5, replace=False)) for _ in range(30)] + [[]], 50)
    cands = np.stack([rng.permutation(50)[:40] for _ in range(31)])
    cands[3, 25:] = -1  # a short candidate list
    users = np.arange(31)
    cr = candidate_recall(cands, users, truth, [40, 10, 25])
    assert list(cr.columns) == ["candidate_recall@10", "candidate_recall@25", "candidate_recall@40"]
    for c in (10, 25, 40):
        np.testing.assert_allclose(
            cr[f"candidate_recall@{c}"], per_user_metrics(cands, users, truth, ks=(c,))[f"recall@{c}"]
        )
    # sizes beyond the list length saturate
    big = candidate_recall(cands, users, truth, [100])
    np.testing.assert_allclose(big["candidate_recall@100"], cr["candidate_recall@40"])
    assert (np.diff(cr.to_numpy(), axis=1) >= 0).all()
    with pytest.raises(ValueError):
        candidate_recall(cands, users, truth, [0])


def test_item_coverage_and_overlap():
    lists = np.array([[0, 1, -1], [1, 2, 3]])
    assert item_coverage(lists, 10) == pytest.approx(0.4)
    ref = np.array([[1, 0, 5], [-1, -1, -1]])
    out = overlap(np.array([[0, 1, 2], [1, 2, 3]]), ref)
    assert out[0] == pytest.approx(2 / 3)
    assert math.isnan(out[1])
    np.testing.assert_allclose(overlap(lists[:1], lists[:1]), [1.0])
    with pytest.raises(ValueError):
        overlap(lists, ref[:1])
