"""Re-rankers only reorder or trim candidate sets; the learned scorer learns from hard negatives."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from rechash import columns as C
from rechash.codes.bits import binarize, hamming_distances
from rechash.data import IdMap
from rechash.data.embeddings import FloatEmbeddings
from rechash.errors import DataError
from rechash.models.base import Recommendations, RecommenderBase
from rechash.models.exact import ExactRecommender
from rechash.models.reranked import RerankedRecommender
from rechash.rerank import DotReranker, LearnedReranker, Reranker, rerank


class _TableScorer:
    """Scores from a fixed (users x items) table; -inf entries mean 'drop this candidate'."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def score(self, users, candidates):
        return self.table[np.asarray(users)[:, None], np.maximum(candidates, 0)]


@st.composite
def _candidate_sets(draw):
    n_users = draw(st.integers(1, 5))
    n_items = draw(st.integers(1, 12))
    width = draw(st.integers(1, 10))
    rows = []
    for _ in range(n_users):
        n = draw(st.integers(0, min(width, n_items)))
        items = draw(st.permutations(range(n_items)))[:n]
        rows.append(list(items) + [-1] * (width - n))
    values = st.one_of(st.integers(-3, 3).map(float), st.just(-np.inf))  # ties and drops
    table = np.array([[draw(values) for _ in range(n_items)] for _ in range(n_users)])
    return np.array(rows, dtype=np.int64), table, draw(st.integers(1, 12))


@settings(max_examples=150, deadline=None)
@given(_candidate_sets())
def test_rerank_only_reorders_or_trims(case):
    cands, table, k = case
    users = np.arange(len(cands))
    ids, scores = rerank(_TableScorer(table), users, cands, k)
    assert ids.shape == scores.shape == (len(cands), k)
    for u in users:
        row = ids[u]
        kept = row[row >= 0]
        valid = cands[u][cands[u] >= 0]
        assert np.isin(kept, valid).all()  # never adds
        assert len(np.unique(kept)) == len(kept)
        assert (row[len(kept) :] == -1).all()  # padding at the end only
        finite = valid[np.isfinite(table[u, valid])]
        assert len(kept) == min(k, len(finite))  # trims only dropped (-inf) items and the tail
        want = sorted(finite, key=lambda i: (-table[u, i], i))[:k]
        assert kept.tolist() == want  # score desc, item id asc


def test_rerank_rejects_bad_shapes():
    with pytest.raises(DataError):
        rerank(_TableScorer(np.zeros((2, 3))), np.arange(2), np.zeros((3, 2), dtype=np.int64), 2)

    class Bad:
        def score(self, users, candidates):
            return np.zeros((1, 1))

    with pytest.raises(DataError, match="shape"):
        rerank(Bad(), np.arange(2), np.zeros((2, 3), dtype=np.int64), 2)


def _world(seed=0, n_users=120, n_items=150, d=8):
    """Users like items by a latent dot product plus item popularity; labels drawn from it."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(n_users, d)), rng.normal(size=(n_items, d))
    pop = rng.normal(size=n_items) * 1.5
    logits = u @ v.T + 2.0 * pop
    labels = np.zeros((n_users, n_items), dtype=bool)
    for row in range(n_users):
        p = np.exp(logits[row] - logits[row].max())
        labels[row, rng.choice(n_items, 10, replace=False, p=p / p.sum())] = True
    counts = np.exp(pop - pop.min()).round()  # popularity seen by the re-ranker
    return u, v, counts, sp.csr_matrix(labels.astype(np.float32))


def test_learned_reranker_features_fit_and_reorder_only():
    pytest.importorskip("sklearn")
    u, v, counts, labels = _world()
    users = np.arange(len(u))
    noisy = DotReranker(u + np.random.default_rng(5).normal(size=u.shape), v)  # a weak float model
    codes_u, codes_v = binarize(u), binarize(v)
    lr = LearnedReranker(
        counts, np.ones(len(u)), float_scorer=noisy, user_codes=codes_u, item_codes=codes_v, negatives_per_positive=4
    )
    cands = np.stack([np.random.default_rng(r).permutation(len(v))[:60] for r in users])
    cands[0, 50:] = -1
    feats = lr.features(users, cands)
    assert feats.shape == (len(u), 60, 6) and lr.feature_names[2] == "hamming"
    np.testing.assert_array_equal(feats[1, :, 2], hamming_distances(codes_u[1:2], codes_v[cands[1]])[0])
    assert (feats[0, 50:] == 0).all()
    assert (feats[:, :, 1] >= 0).all() and (feats[:, :, 3] >= 0).all()
    with pytest.raises(DataError, match="fit"):
        lr.score(users, cands)
    lr.fit(users[:80], cands[:80], labels)
    assert isinstance(lr, Reranker)
    ids, _ = rerank(lr, users, cands, 10)
    for row in range(len(u)):
        assert np.isin(ids[row][ids[row] >= 0], cands[row]).all()
    # popularity is informative here, so the learned scorer beats the noisy dot product on held-out users
    test = users[80:]
    hits = lambda scorer: labels[test[:, None], rerank(scorer, test, cands[test], 10)[0]].sum()  # noqa: E731
    assert hits(lr) > hits(noisy)
    again = LearnedReranker(
        counts, np.ones(len(u)), float_scorer=noisy, user_codes=codes_u, item_codes=codes_v, negatives_per_positive=4
    )
    np.testing.assert_array_equal(
        again.fit(users[:80], cands[:80], labels).score(test, cands[test]), lr.score(test, cands[test])
    )


def test_hard_negatives_come_from_the_candidates():
    _, _, counts, labels = _world(1)
    lr = LearnedReranker(counts, np.ones(120), negatives_per_positive=3, seed=2)
    users = np.arange(120)
    cands = np.stack([np.random.default_rng(r).permutation(150)[:30] for r in users])
    rows, cols, y = lr.training_pairs(users, cands, labels)
    positives = labels.toarray().astype(bool)[users[:, None], cands]
    assert y.sum() == positives.sum()  # every positive kept
    for r in users:
        n_pos = positives[r].sum()
        n_neg = ((rows == r) & ~y).sum()
        assert n_neg == min(3 * n_pos, 30 - n_pos)
    assert not positives[rows[~y], cols[~y]].any()
    with pytest.raises(DataError, match="no positive"):
        lr.fit(users, cands, sp.csr_matrix(labels.shape, dtype=np.float32))


@pytest.mark.parametrize("model", ["logistic", "hgb"])
def test_learned_models_and_validation(model):
    pytest.importorskip("sklearn")
    u, v, counts, labels = _world(2)
    users = np.arange(len(u))
    cands = np.stack([np.random.default_rng(r).permutation(len(v))[:40] for r in users])
    lr = LearnedReranker(counts, np.ones(len(u)), float_scorer=DotReranker(u, v), model=model).fit(users, cands, labels)
    scores = lr.score(users, cands)
    assert scores.shape == cands.shape
    x = lr.features(users, cands).reshape(-1, len(lr.feature_names))
    np.testing.assert_allclose(scores.ravel(), lr.model_.decision_function(x), rtol=1e-6, atol=1e-9)
    with pytest.raises(DataError, match="model"):
        LearnedReranker(counts, np.ones(3), model="svm")
    with pytest.raises(DataError, match="both"):
        LearnedReranker(counts, np.ones(3), user_codes=binarize(u))


def test_reranked_recommender_keeps_hamming_and_stays_inside_the_first_stage():
    rng = np.random.default_rng(3)
    emb = FloatEmbeddings(rng.normal(size=(20, 8)), rng.normal(size=(50, 8)))

    class HammingFirstStage(RecommenderBase):
        """Hamming order (distance, then item id) with its distances: a minimal first stage."""

        def __init__(self):
            self.cu, self.ci = binarize(emb.user_factors), binarize(emb.item_factors)
            self.user_ids, self.item_ids = IdMap(np.arange(20)), IdMap(np.arange(50))

        def _rank(self, users, queries, n, exclude, items):
            dist = hamming_distances(self.cu[users], self.ci).astype(np.int64)
            if exclude is not None:
                dist = np.where(exclude.toarray() > 0, 10**6, dist)
            order = np.lexsort((np.broadcast_to(np.arange(50), dist.shape), dist), axis=1)[:, :n]
            d = np.take_along_axis(dist, order, 1)
            return Recommendations(users, order, -d.astype(float), d)

    first = HammingFirstStage()
    rr = RerankedRecommender(first, DotReranker(emb.user_factors, emb.item_factors), n_candidates=15)
    users = np.arange(20)
    ids, scores = rr.recommend(users, N=5)
    cands = rr.candidates(users, 15)
    dist = hamming_distances(first.cu, first.ci)
    frame = rr.recommend_frame(users, 5)  # the table form carries the first stage's distances
    for r in users:
        assert np.isin(ids[r], cands.items[r]).all()
        np.testing.assert_allclose(scores[r], emb.scores(np.array([r]))[0, ids[r]], rtol=1e-5)
        rows = frame[frame[C.USER_ID] == r]
        np.testing.assert_array_equal(rows[C.ITEM_ID].to_numpy(), ids[r])
        np.testing.assert_array_equal(rows[C.HAMMING].to_numpy(dtype=np.int64), dist[r, ids[r]])
    assert rr.index_bytes == 50 * 8 * 4
    exact = RerankedRecommender(ExactRecommender(emb), DotReranker(emb.user_factors, emb.item_factors), 10)
    np.testing.assert_array_equal(exact.recommend(users, N=5)[0], ExactRecommender(emb).recommend(users, N=5)[0])
    assert exact.recommend_frame(users, 5)[C.HAMMING].isna().all()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_order_online_is_the_lexicographic_order(m, pool, n, seed):
    """One user's pool (id order) -> the ``pool`` best by (distance, score desc, id), then by
    (score desc, id) with a re-ranker, else in that Hamming order; ties everywhere."""
    from rechash.models.online import order_online

    rng = np.random.default_rng(seed)
    dist = np.sort(rng.integers(0, 4, m)).astype(np.int32)[rng.permutation(m)]
    dist[dist > np.sort(dist)[min(pool, m) - 1] if m else []] = -1  # a pool: everything at or below the cut
    keep = dist >= 0
    dist = dist[keep]
    scores = rng.integers(0, 3, len(dist)).astype(np.float64)
    ids = np.arange(len(dist))
    hamming = np.lexsort((ids, -scores, dist))[:pool]
    np.testing.assert_array_equal(order_online(dist, scores, pool, n, False), hamming[:n])
    by_score = hamming[np.lexsort((hamming, -scores[hamming]))][:n]
    np.testing.assert_array_equal(order_online(dist, scores, pool, n, True), by_score)
