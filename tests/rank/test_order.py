"""The one ordering rule: keys ascending, then item id ascending, padding last."""

from __future__ import annotations

import numpy as np
import pytest

from rechash.errors import DataError
from rechash.rank.order import order_pool, order_rows, pad_lists, top_by_score


def _rows(seed: int = 0, n: int = 40, width: int = 12):
    rng = np.random.default_rng(seed)
    ids = np.array([rng.permutation(30)[:width] for _ in range(n)])
    ids[rng.random(ids.shape) < 0.2] = -1  # padding anywhere in a row
    dist = rng.integers(0, 4, ids.shape)  # many ties
    scores = rng.integers(0, 3, ids.shape).astype(np.float64)  # ties too
    return ids, dist, scores


def test_order_rows_matches_a_python_sort_of_each_row():
    ids, dist, scores = _rows()
    order = order_rows(ids, [dist, -scores])
    for r in range(len(ids)):
        entries = [(dist[r, c], -scores[r, c], ids[r, c], c) for c in range(ids.shape[1]) if ids[r, c] >= 0]
        expected = [c for *_, c in sorted(entries)]
        assert list(order[r, : len(expected)]) == expected
        assert (ids[r, order[r, len(expected) :]] == -1).all()  # padding last, whatever its keys


def test_order_pool_and_top_by_score_follow_the_rule():
    ids, dist, scores = _rows(1)
    d, i, s = order_pool(dist, ids, scores, 5)
    for r in range(len(ids)):
        keep = ids[r] >= 0
        ranked = sorted(zip(dist[r][keep], -scores[r][keep], ids[r][keep]))[:5]
        assert list(i[r][i[r] >= 0]) == [x for *_, x in ranked]
        assert np.isneginf(s[r][i[r] < 0]).all()
    top, vals, ham = top_by_score(ids, scores, 20, dist)
    assert top.shape == (len(ids), 20) and ham.shape == top.shape  # padded beyond the row width
    for r in range(len(ids)):
        keep = ids[r] >= 0
        expected = [x for _, x in sorted(zip(-scores[r][keep], ids[r][keep]))]
        assert list(top[r][: len(expected)]) == expected and (top[r][len(expected) :] == -1).all()


def test_nan_scores_are_refused_and_lists_are_padded():
    ids, dist, scores = _rows(2)
    scores[ids >= 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        top_by_score(ids, scores, 3)
    with pytest.raises(DataError, match="tie_break returned shape"):
        order_pool(dist, ids, scores[:, :2], 3)
    out, vals = pad_lists(np.zeros((2, 1), np.int64), np.zeros((2, 1)), 3)
    assert (out[:, 1:] == -1).all() and np.isneginf(vals[:, 1:]).all()
