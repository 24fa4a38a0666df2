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


def test_hamming_only_ties_go_by_quantized_popularity_then_id(small_model) -> None:
    from rechash.recommend import quantized_log_popularity

    model, data = small_model
    rng = np.random.default_rng(0)
    n_items = data.n_items
    # every item has the same code: the whole list is one tie group
    item_codes = np.zeros((n_items, 4), dtype=np.uint8)
    seen = sp.csr_matrix((np.ones(300), (rng.integers(1, 50, 300), rng.integers(0, n_items, 300))), shape=(50, n_items))
    user_codes = np.zeros((50, 4), dtype=np.uint8)
    pop = CodeRecommender(item_codes, user_codes=user_codes, seen=seen, reranker=None)
    by_id = CodeRecommender(item_codes, user_codes=user_codes, seen=seen, reranker=None, tie_rule="id")
    prior = quantized_log_popularity(np.bincount(seen.indices, minlength=n_items))
    assert prior.dtype == np.uint8 and prior.max() == 255 and (prior[np.bincount(seen.indices, minlength=n_items) == 0] == 0).all()
    top = pop.recommend([0], 20).items[0]  # user 0 has seen nothing
    want = np.lexsort((np.arange(n_items), -prior.astype(int)))[:20]
    np.testing.assert_array_equal(top, want)
    np.testing.assert_array_equal(by_id.recommend([0], 20).items[0], np.arange(20))
    with pytest.raises(DataError, match="tie_rule"):
        CodeRecommender(item_codes, reranker=None, tie_rule="random")


def test_codes_only_reranker_scores_user_floats_against_item_bits(small_model) -> None:
    from rechash.codes import to_signs
    from rechash.rerank import CodesOnlyReranker

    model, data = small_model
    scorer = CodesOnlyReranker(model.user_floats(), model.encode_items())
    users = np.arange(5)
    cands = np.tile(np.arange(12), (5, 1))
    cands[0, -1] = -1  # padding is scored but never returned by rerank
    want = model.user_floats(users) @ to_signs(model.encode_items()).T
    got = scorer.score(users, cands)
    np.testing.assert_allclose(got[:, :-1], want[:, :11], rtol=1e-5)
    assert scorer.index_bytes == model.encode_items().nbytes  # 1 bit per item and dimension, no float table
    out = CodeRecommender.from_model(model, seen=data.matrix, reranker=scorer).recommend(users, 10)
    assert (np.diff(out.scores, axis=1) <= 1e-9).all()
    with pytest.raises(DataError):
        CodesOnlyReranker(model.user_floats()[:, :8], model.encode_items())
