"""CandidateGenerator against a brute-force oracle, for every policy and engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from rechash import columns as C
from rechash.codes.bits import clustered_codes, hamming_distances
from rechash.errors import DataError
from rechash.index import build
from rechash.index.candidates import CandidateGenerator, CandidatePolicy, Candidates
from rechash.index.mih import prefer_mih


def coarse_scores(users, candidates):
    """A re-ranker stand-in with many equal scores (so ids still break some ties)."""
    return ((users[:, None] * 31 + candidates * 17) % 5).astype(np.float64)


def oracle(item_codes, user_codes, users, seen, policy, tie_break):
    """Per user: list of (item, distance) in rank order, and the filtered count."""
    d = hamming_distances(user_codes[users], item_codes)
    n_bits = item_codes.shape[1] * 8
    out, filtered = [], []
    for row, u in enumerate(users):
        seen_u = set(seen[u].indices.tolist()) if seen is not None else set()
        items = np.array([j for j in range(len(item_codes)) if j not in seen_u], dtype=np.int64)
        dist = d[row, items]
        score = tie_break(np.array([u]), items[None, :])[0] if tie_break else np.zeros(len(items))
        order = np.lexsort((items, -score, dist))
        items, dist = items[order], dist[order]
        if policy.mode == "top_k":
            keep = slice(0, policy.k)
            radius = dist[policy.k - 1] if len(items) >= policy.k else n_bits
        elif policy.mode == "radius":
            n_in = int((dist <= policy.radius).sum())
            keep = slice(0, n_in if policy.max_candidates is None else min(n_in, policy.max_candidates))
            radius = policy.radius
        else:
            m = policy.min_candidates
            r = dist[m - 1] if len(dist) >= m else n_bits
            n_in = int((dist <= r).sum())
            keep = slice(0, min(n_in, policy.max_candidates))
            radius = r
        out.append((items[keep], dist[keep]))
        seen_d = d[row, sorted(seen_u)] if seen_u else np.zeros(0)
        filtered.append(int((seen_d <= radius).sum()))
    return out, filtered


def check(cands: Candidates, expected, filtered, users):
    assert cands.users.tolist() == list(users)
    for row, (items, dist) in enumerate(expected):
        a, b = cands.lims[row], cands.lims[row + 1]
        np.testing.assert_array_equal(cands.items[a:b], items)
        np.testing.assert_array_equal(cands.hamming[a:b], dist)
    assert cands.filtered.tolist() == filtered


policies = st.one_of(
    st.builds(CandidatePolicy.top_k, st.integers(1, 60)),
    st.builds(CandidatePolicy.fixed_radius, st.integers(0, 20), st.one_of(st.none(), st.integers(1, 40))),
    st.integers(1, 30).flatmap(lambda a: st.builds(CandidatePolicy.adaptive, st.just(a), st.integers(a, 80))),
)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_bits=st.sampled_from([16, 64, 128]),
    policy=policies,
    method=st.sampled_from(["flat", "mih", "auto"]),
    with_ties=st.booleans(),
    density=st.sampled_from([0.0, 0.1, 0.9]),
)
def test_generator_matches_oracle(seed, n_bits, policy, method, with_ties, density):
    rng = np.random.default_rng(seed)
    items = clustered_codes(150, n_bits, n_clusters=4, flip=0.08, seed=seed)
    user_codes = clustered_codes(12, n_bits, n_clusters=4, flip=0.08, seed=seed)
    seen = sp.csr_matrix(rng.random((12, 150)) < density)
    users = rng.permutation(12)[:7]
    tie_break = coarse_scores if with_ties else None
    gen = CandidateGenerator(items, seen=seen, tie_break=tie_break, method=method, batch_size=3)
    cands = gen.generate(user_codes, users, policy)
    expected, filtered = oracle(items, user_codes, users, seen, policy, tie_break)
    check(cands, expected, filtered, users)


def test_heavy_user_still_gets_k():
    items = clustered_codes(400, 64, n_clusters=3, seed=1)
    users = clustered_codes(2, 64, n_clusters=3, seed=1)
    seen = sp.lil_matrix((2, 400), dtype=bool)
    seen[0, :390] = True  # user 0 has seen all but 10 items
    gen = CandidateGenerator(items, seen=seen.tocsr())
    cands = gen.generate(users, k=25)
    assert cands.counts.tolist() == [10, 25]
    assert set(cands.items[:10].tolist()) == set(range(390, 400))
    assert cands.filtered[0] == 390 and cands.radius[0] == 64  # the catalog ran out
    assert cands.radius[1] == cands.hamming[-1] and cands.filtered[1] == 0


def test_frame_padded_and_batch_independence():
    items = clustered_codes(300, 64, n_clusters=5, seed=2)
    users = clustered_codes(9, 64, n_clusters=5, seed=3)
    seen = sp.random(9, 300, density=0.2, random_state=4, format="csr")
    one = CandidateGenerator(items, seen=seen, batch_size=1).generate(users, policy=CandidatePolicy.adaptive(5, 30))
    big = CandidateGenerator(items, seen=seen, batch_size=100).generate(users, policy=CandidatePolicy.adaptive(5, 30))
    np.testing.assert_array_equal(one.items, big.items)
    np.testing.assert_array_equal(one.lims, big.lims)
    frame = big.to_frame()
    assert list(frame.columns) == [C.USER_ID, C.ITEM_ID, C.HAMMING, C.RANK]
    assert len(frame) == len(big) and (frame.groupby(C.USER_ID)[C.RANK].min() == 1).all()
    assert frame.groupby(C.USER_ID)[C.HAMMING].apply(lambda s: s.is_monotonic_increasing).all()
    ids, dist = big.padded()
    assert ids.shape == (9, big.counts.max()) and ((ids == -1) == (dist == -1)).all()
    assert (ids >= 0).sum(axis=1).tolist() == big.counts.tolist()
    assert (big.counts >= 5).all() and (big.counts <= 30).all()


def test_accepts_indexes_and_reranker_objects():
    items = clustered_codes(200, 128, n_clusters=4, seed=5)
    users = clustered_codes(4, 128, n_clusters=4, seed=6)

    class Scorer:
        def score(self, u, c):
            return coarse_scores(u, c)

    want = CandidateGenerator(items, tie_break=Scorer()).generate(users, k=20)
    for index in (build(items, "exact"), build(items, "mih"), build(items, "numpy")):
        got = CandidateGenerator(index, tie_break=coarse_scores).generate(users, k=20)
        np.testing.assert_array_equal(got.items, want.items)


def test_policy_options_and_errors():
    assert CandidatePolicy.from_options(k=10) == CandidatePolicy.top_k(10)
    assert CandidatePolicy.from_options(k=10, radius=4) == CandidatePolicy.fixed_radius(4)
    assert CandidatePolicy.from_options(k=10, radius=4, max_candidates=9).limit == 9
    assert CandidatePolicy.from_options(k=10, min_candidates=5, max_candidates=50).mode == "adaptive"
    for bad in (
        dict(k=None),
        dict(min_candidates=5),
        dict(radius=3, min_candidates=2, max_candidates=4),
        dict(min_candidates=9, max_candidates=4),
        dict(k=0),
        dict(radius=-1),
    ):
        with pytest.raises(DataError):
            CandidatePolicy.from_options(**bad)
    items = clustered_codes(50, 64, seed=1)
    gen = CandidateGenerator(items)
    with pytest.raises(DataError, match="bits"):
        gen.generate(np.zeros((2, 16), np.uint8), k=3)
    with pytest.raises(DataError, match="internal ids"):
        gen.generate(items[:3], users=[5], k=3)
    with pytest.raises(DataError, match="seen"):
        CandidateGenerator(items, seen=sp.csr_matrix((2, 60)))
    with pytest.raises(DataError, match="NaN"):
        CandidateGenerator(items, tie_break=lambda u, c: np.full(c.shape, np.nan)).generate(items[:2], k=3)
    empty = gen.generate(items[:3], users=np.zeros(0, np.int64), k=3)
    assert len(empty) == 0 and isinstance(empty.to_frame(), pd.DataFrame)


def test_auto_rule_prefers_mih_only_for_small_radii_on_large_catalogs():
    assert prefer_mih(64, 4, 1_000_000, 1)
    assert prefer_mih(64, 8, 1_000_000, 1)
    assert not prefer_mih(64, 12, 1_000_000, 1)
    assert not prefer_mih(64, 4, 1_000, 1)  # a thousand items: scanning is cheaper
    assert prefer_mih(128, 16, 1_000_000, 1) and not prefer_mih(128, 24, 1_000_000, 1)
    gen = CandidateGenerator(clustered_codes(100, 64, seed=1))
    assert gen.choose_method(CandidatePolicy.top_k(5), 1) == "flat"
    assert gen.choose_method(CandidatePolicy.fixed_radius(2), 1) == "flat"  # tiny catalog
