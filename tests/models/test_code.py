"""CodeRecommender specifics: the Hamming pool and its re-ranking against brute force,
distances carried to the output, the history encoder, popularity fallback, tie rules.
Behaviour every recommender shares is in tests/models/test_conformance.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from rechash import columns as C
from rechash.codes.bits import hamming_distances
from rechash.errors import DataError
from rechash.models.code import CodeRecommender


@pytest.fixture(scope="module")
def rec(small_model):
    model, data = small_model
    return CodeRecommender.from_model(model, seen=data.matrix), model, data


def test_recommend_matches_brute_force_pool_and_rerank(rec) -> None:
    r, model, data = rec
    users = np.arange(20)
    ids, scores = r.recommend(users, N=10)
    frame = r.recommend_frame(data.user_ids.to_external(users), 10)  # carries the Hamming distances
    dist = hamming_distances(model.encode_users(users), model.encode_items())
    for row, u in enumerate(users):
        seen = set(data.matrix[u].indices)
        # the pool: the 200 nearest unseen items (ties at the cut by the dot score, then id)
        unseen = np.array([i for i in range(data.n_items) if i not in seen])
        cut = np.sort(dist[row, unseen])[min(199, len(unseen) - 1)]
        items = ids[row]
        assert not seen & set(items.tolist())
        assert (dist[row, items] <= cut).all()
        rows = frame[frame[C.USER_ID] == data.user_ids.to_external(np.array([u]))[0]]
        np.testing.assert_array_equal(rows[C.ITEM_ID].to_numpy(), data.item_ids.to_external(items))
        np.testing.assert_array_equal(rows[C.HAMMING].to_numpy(dtype=np.int64), dist[row, items])
        np.testing.assert_allclose(rows[C.SCORE].to_numpy(), scores[row], rtol=1e-6)
        floats = model.user_floats([u]) @ model.item_floats(items).T
        assert np.allclose(scores[row], floats.ravel(), rtol=1e-5, atol=1e-6)
        assert (np.diff(scores[row]) <= 1e-9).all()


def test_unfiltered_is_the_ranking_without_training_items(rec) -> None:
    r, model, data = rec
    kept, _ = r.recommend(3, data.matrix[3], N=5, filter_already_liked_items=False)
    nothing_seen = CodeRecommender.from_model(model, seen=sp.csr_matrix(data.matrix.shape, dtype=np.float32))
    np.testing.assert_array_equal(kept, nothing_seen.recommend(3, N=5)[0])


def test_recalculate_user_uses_the_history_encoder(rec) -> None:
    r, model, data = rec
    hist = data.matrix[[7]]
    ids, scores = r.recommend(7, hist, N=5, recalculate_user=True)
    codes, floats = model.encode_new_users(hist)
    # the same ranking for a "known" user whose code and floats are the encoder's output
    one = CodeRecommender(
        model.encode_items(),
        user_codes=codes,
        item_floats=r.item_floats,
        user_floats=floats,
        item_ids=data.item_ids,
        seen=hist,
    )
    want_ids, want_scores = one.recommend(0, N=5)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)


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
    popular = np.lexsort((np.arange(data.n_items), -np.bincount(data.matrix.indices, minlength=data.n_items)))[:4]
    assert fallback[C.ITEM_ID].tolist() == data.item_ids.to_external(popular).tolist()
    np.testing.assert_array_equal(r.popular(4, None)[0][0], popular)
    shares = np.bincount(data.matrix.indices, minlength=data.n_items)[popular] / data.matrix.nnz
    np.testing.assert_allclose(fallback[C.SCORE].to_numpy(), shares)  # the item's share of training interactions
    popular = r.recommend_frame(np.array([-5]), 4, history=history, unknown="popular")
    assert popular[C.HAMMING].isna().all()
    with pytest.raises(DataError, match="unknown to the model"):
        r.recommend_frame(np.array([-6]), 4, unknown="error")


def test_from_floats_binarizes_a_teams_embeddings() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.standard_normal((50, 16)), rng.standard_normal((300, 16))
    r = CodeRecommender.from_floats(users, items, bits=32)
    ids, _ = r.recommend(np.arange(50), N=10)
    exact = np.argsort(-(users @ items.T), axis=1, kind="stable")[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
    assert overlap > 0.5  # the pool (200 of 300 by Hamming) holds most of the float top 10


def test_every_public_name_resolves() -> None:
    import rechash

    for name in rechash.__all__:
        assert getattr(rechash, name) is not None, name


def test_hamming_only_ties_go_by_quantized_popularity_then_id(small_model) -> None:
    from rechash.models.code import quantized_log_popularity

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
    assert (
        prior.dtype == np.uint8
        and prior.max() == 255
        and (prior[np.bincount(seen.indices, minlength=n_items) == 0] == 0).all()
    )
    top, scores = pop.recommend(0, N=20)  # user 0 has seen nothing
    want = np.lexsort((np.arange(n_items), -prior.astype(int)))[:20]
    np.testing.assert_array_equal(top, want)
    np.testing.assert_array_equal(scores, np.ones(20))  # code similarity 1 - 2 * hamming / B
    np.testing.assert_array_equal(by_id.recommend(0, N=20)[0], np.arange(20))
    # the Hamming pool (candidates) follows the same tie rule
    np.testing.assert_array_equal(pop.candidates(np.array([0]), 20).items[0], want)
    np.testing.assert_array_equal(by_id.candidates(np.array([0]), 20).items[0], np.arange(20))
    with pytest.raises(DataError, match="tie_rule"):
        CodeRecommender(item_codes, reranker=None, tie_rule="random")


def test_codes_only_reranker_scores_user_floats_against_item_bits(small_model) -> None:
    from rechash.codes.bits import to_signs
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
    ids, scores = CodeRecommender.from_model(model, seen=data.matrix, reranker=scorer).recommend(users, N=10)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    np.testing.assert_allclose(
        scores, np.take_along_axis(model.user_floats(users) @ to_signs(model.encode_items()).T, ids, 1), rtol=1e-5
    )
    with pytest.raises(DataError):
        CodesOnlyReranker(model.user_floats()[:, :8], model.encode_items())


@pytest.mark.parametrize("reranker", ["dot", None])
def test_collapsed_codes_rank_in_blocks_with_the_same_lists(monkeypatch, reranker) -> None:
    """Every item tied (one code for the whole catalog): the pool of each user is the whole
    catalog, so the batch path works in blocks sized by the widest pool; the lists do not
    depend on the block size."""
    import rechash.models.code as R

    rng = np.random.default_rng(0)
    n_users, n_items = 300, 500
    codes = np.zeros((n_items, 8), dtype=np.uint8)
    user_codes = rng.integers(0, 256, (n_users, 8), dtype=np.uint8)
    seen = sp.random(n_users, n_items, density=0.02, format="csr", random_state=1)
    rec = CodeRecommender(
        codes,
        user_codes=user_codes,
        item_floats=rng.standard_normal((n_items, 4)),
        user_floats=rng.standard_normal((n_users, 4)),
        reranker=reranker,
        seen=seen,
    )
    users = np.arange(n_users)
    whole = rec.recommend(users, seen, N=10)
    blocks = []
    real = R.CodeRecommender._rank_batch
    monkeypatch.setattr(R, "POOL_ENTRIES", 2000)
    monkeypatch.setattr(R.CodeRecommender, "_rank_batch", lambda self, *a: blocks.append(len(a[1])) or real(self, *a))
    small = rec.recommend(users, seen, N=10)
    assert max(blocks) <= 4 and sum(blocks) == n_users  # 2000 // 500 items tied per user
    np.testing.assert_array_equal(small[0], whole[0])
    np.testing.assert_array_equal(small[1], whole[1])


def test_codes_only_scores_do_not_depend_on_the_unpacking_block(monkeypatch) -> None:
    import rechash.rerank.dot as RR
    from rechash.rerank import CodesOnlyReranker

    rng = np.random.default_rng(1)
    rer = CodesOnlyReranker(rng.standard_normal((20, 16)), rng.integers(0, 256, (50, 2), dtype=np.uint8))
    users, cands = np.arange(20), rng.integers(-1, 50, (20, 30))
    whole = rer.score(users, cands)
    monkeypatch.setattr(RR, "SIGN_BLOCK", 16 * 30 * 3)  # three rows at a time
    np.testing.assert_array_equal(rer.score(users, cands), whole)
    assert whole.shape == (20, 30)
