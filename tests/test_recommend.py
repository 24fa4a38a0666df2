"""CodeRecommender: the three calling conventions agree, never return seen items, and
handle users the model does not know."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from rechash import columns as C
from rechash.codes import hamming_distances
from rechash.errors import DataError
from rechash.recommend import CodeRecommender


@pytest.fixture(scope="module")
def rec(small_model):
    model, data = small_model
    return CodeRecommender.from_model(model, seen=data.matrix), model, data


def test_recommend_matches_brute_force_pool_and_rerank(rec) -> None:
    r, model, data = rec
    users = np.arange(20)
    out = r.recommend(users, 10)
    dist = hamming_distances(model.encode_users(users), model.encode_items())
    for row, u in enumerate(users):
        seen = set(data.matrix[u].indices)
        # the pool: the 200 nearest unseen items (ties at the cut by the dot score, then id)
        unseen = np.array([i for i in range(data.n_items) if i not in seen])
        cut = np.sort(dist[row, unseen])[min(199, len(unseen) - 1)]
        items = out.items[row]
        assert not seen & set(items.tolist())
        assert (dist[row, items] <= cut).all()
        assert np.array_equal(out.hamming[row], dist[row, items])
        floats = model.user_floats([u]) @ model.item_floats(items).T
        assert np.allclose(out.scores[row], floats.ravel(), rtol=1e-5, atol=1e-6)
        assert (np.diff(out.scores[row]) <= 1e-9).all()


def test_implicit_convention_shapes_and_filters(rec) -> None:
    r, model, data = rec
    ids, scores = r.recommend_implicit(3, data.matrix[3], N=5)
    assert ids.shape == (5,) and scores.dtype == np.float32
    assert not set(ids) & set(data.matrix[3].indices)
    many, _ = r.recommend_implicit(np.array([3, 4]), data.matrix[[3, 4]], N=5)
    assert many.shape == (2, 5) and np.array_equal(many[0], ids)
    kept, _ = r.recommend_implicit(3, data.matrix[3], N=5, filter_already_liked_items=False)
    unfiltered = r.rank_rows(model.encode_users([3]), 5, None, np.array([3]))
    assert np.array_equal(kept, unfiltered.items[0])
    banned, _ = r.recommend_implicit(3, data.matrix[3], N=5, filter_items=ids[:2])
    assert not set(banned) & set(ids[:2])
    with pytest.raises(DataError, match="one row per user"):
        r.recommend_implicit([1, 2], data.matrix[[1]], N=5)


def test_recalculate_user_uses_the_history_encoder(rec) -> None:
    r, model, data = rec
    hist = data.matrix[[7]]
    ids, _ = r.recommend_implicit(7, hist, N=5, recalculate_user=True)
    codes, floats = model.encode_history(hist)
    expected = r.rank_rows(codes, 5, sp.csr_matrix(hist), None, floats)
    assert np.array_equal(ids, expected.items[0])


def test_frame_in_external_ids_with_unknown_users(rec) -> None:
    r, model, data = rec
    known = data.user_ids.external_ids[:2]
    items = data.item_ids.external_ids
    history = pd.DataFrame({C.USER_ID: [-5, -5], C.ITEM_ID: items[[1, 2]]})
    frame = r.recommend_frame(np.array([known[0], -5, -6, known[1]]), 4, history=history)
    assert list(frame.columns) == list(C.CANDIDATE_COLUMNS)
    assert frame[C.USER_ID].tolist() == [known[0]] * 4 + [-5] * 4 + [-6] * 4 + [known[1]] * 4
    assert frame[C.RANK].tolist() == [1, 2, 3, 4] * 4
    new = frame[frame[C.USER_ID] == -5]
    assert not set(new[C.ITEM_ID]) & set(items[[1, 2]]) and new[C.HAMMING].notna().all()
    fallback = frame[frame[C.USER_ID] == -6]
    assert fallback[C.HAMMING].isna().all()
    assert fallback[C.ITEM_ID].tolist() == data.item_ids.to_external(r.popular_items[:4]).tolist()
    popular = r.recommend_frame(np.array([-5]), 4, history=history, unknown="popular")
    assert popular[C.HAMMING].isna().all()
    with pytest.raises(DataError, match="unknown to the model"):
        r.recommend_frame(np.array([-6]), 4, unknown="error")


def test_from_floats_binarizes_a_teams_embeddings() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.standard_normal((50, 16)), rng.standard_normal((300, 16))
    r = CodeRecommender.from_floats(users, items, bits=32)
    out = r.recommend(np.arange(50), 10)
    exact = np.argsort(-(users @ items.T), axis=1, kind="stable")[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(out.items, exact)])
    assert overlap > 0.5  # the pool (200 of 300 by Hamming) holds most of the float top 10


def test_every_public_name_resolves() -> None:
    import rechash

    for name in rechash.__all__:
        assert getattr(rechash, name) is not None, name
