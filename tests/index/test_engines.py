"""Engine-specific paths the small conformance cases do not reach: the exact kernel's
buffer compaction and tie overflow, item splits, MIH's pigeonhole worst case, candidate
pools larger than a bucket, the scan fallback and the mmap layout."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rechash import index as I
from rechash.codes.bits import clustered_codes, hamming_distances, pack_bits, unpack_bits
from rechash.index.mih import default_substrings, flip_masks, probe_count


def ordered(d_row: np.ndarray) -> np.ndarray:
    return np.lexsort((np.arange(len(d_row)), d_row))


@pytest.fixture(scope="module")
def catalog():
    items = clustered_codes(6000, 16, n_clusters=8, flip=0.2, seed=3)  # 17 distances: big ties
    return items, clustered_codes(12, 16, n_clusters=8, flip=0.2, seed=4)


@pytest.mark.parametrize("k", [1, 7, 130, 300])
def test_exact_compaction_and_ties(catalog, k):
    items, queries = catalog
    index = I.build(items, "exact", qblock=5, iblock=64)
    D = hamming_distances(queries, items)
    d, i = index.search(queries, k)
    td, ti, tn = index.select(queries, k, ties=True)  # every tie at the k-th distance
    for q in range(len(queries)):
        want = ordered(D[q])
        np.testing.assert_array_equal(i[q], want[:k])
        kth = D[q, want[k - 1]]
        n_tied = int((D[q] <= kth).sum())  # hundreds: overflows the 2k scan buffer
        assert tn[q] == n_tied
        np.testing.assert_array_equal(ti[q, :n_tied], want[:n_tied])
        assert (ti[q, n_tied:] == -1).all()


def test_exact_radius_cap_exclusion_and_splits(catalog):
    items, queries = catalog
    seen = sp.random(len(queries), len(items), density=0.5, random_state=0, format="csr")
    D = hamming_distances(queries, items).astype(float)
    D[seen.toarray() > 0] = np.inf
    radius = np.arange(len(queries)) % 5
    split = I.build(items, "exact", n_threads=2, min_split=500)
    plain = I.build(items, "exact", n_threads=1)
    for index in (split, plain):
        d, i, n = index.select(queries, 40, radius=radius, exclude=seen)
        for q in range(len(queries)):
            want = ordered(D[q])
            want = want[D[q, want] <= radius[q]][:40]
            np.testing.assert_array_equal(i[q, : len(want)], want)
            assert n[q] == len(want) and (i[q, len(want) :] == -1).all()
    ref = I.build(items, "numpy")
    for index in (split, plain):  # > 4,096 results: the one-pass online path hands over
        for a, b in zip(index.range_search(queries[:3], [16, 9, 3]), ref.range_search(queries[:3], [16, 9, 3])):
            np.testing.assert_array_equal(a, b)
    hist = plain.distance_histogram(queries, exclude=seen)
    for q in range(len(queries)):
        finite = D[q][np.isfinite(D[q])].astype(int)
        np.testing.assert_array_equal(hist[q], np.bincount(finite, minlength=17))


def test_threads_do_not_change_results():
    items = clustered_codes(70000, 64, n_clusters=50, seed=1)
    queries = clustered_codes(3, 64, n_clusters=50, seed=2)
    one = I.build(items, "exact", n_threads=1)
    two = I.build(items, "exact", n_threads=2, min_split=4096)
    for a, b in zip(one.search(queries, 50), two.search(queries, 50)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(one.range_search(queries, 12), two.range_search(queries, 12)):
        np.testing.assert_array_equal(a, b)


def test_mih_pigeonhole_worst_case():
    """Items at distance exactly r with their flips spread evenly over the substrings: each
    substring differs by about r/m bits, the case the probing radius must still catch."""
    n_bits, m = 64, 4
    rng = np.random.default_rng(0)
    q = rng.integers(0, 2, (1, n_bits), dtype=np.uint8)
    rows = []
    for r in range(0, 17):
        for shift in range(m):
            bits = q[0].copy()
            per = [r // m + (1 if (t + shift) % m < r % m else 0) for t in range(m)]
            for t, count in enumerate(per):
                pos = rng.choice(16, size=count, replace=False) + 16 * t
                bits[pos] ^= 1
            rows.append(bits)
    items = pack_bits(np.array(rows))
    noise = pack_bits(rng.integers(0, 2, (500, n_bits), dtype=np.uint8))
    items = np.vstack([items, noise])
    index = I.build(items, "mih", n_substrings=m)
    ref = I.build(items, "numpy")
    query = pack_bits(q)
    for r in range(0, 17):
        for a, b in zip(index.range_search(query, r), ref.range_search(query, r)):
            np.testing.assert_array_equal(a, b)
    for k in (1, 10, 68, 600):
        for a, b in zip(index.search(query, k), ref.search(query, k)):
            np.testing.assert_array_equal(a, b)


def test_mih_large_pools_and_fallback():
    items = clustered_codes(5000, 64, n_clusters=3, flip=0.1, seed=9)  # crowded buckets
    queries = items[:4]
    ref = I.build(items, "numpy")
    roomy = I.build(items, "mih", n_substrings=4, budget=10**9)
    tight = I.build(items, "mih", n_substrings=4, budget=50)
    for index in (roomy, tight):
        for a, b in zip(index.range_search(queries, 12), ref.range_search(queries, 12)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(index.search(queries, 1500)[1], ref.search(queries, 1500)[1])
    roomy.range_search(queries, 12)
    assert roomy.last_stats["fallbacks"] == 0 and roomy.last_stats["verified"] > 4 * 1024
    tight.range_search(queries, 12)
    assert tight.last_stats["fallbacks"] == 4


def test_mih_helpers():
    assert flip_masks(5, 0).tolist() == [0]
    masks = flip_masks(6, 2)
    assert len(masks) == 15 and all(bin(int(x)).count("1") == 2 for x in masks) and len(set(masks.tolist())) == 15
    # levels 0..3: the four tables at 0 flips; level 4: table 0 at 1 flip (16 codes)
    assert probe_count(64, 4, 0) == 1 and probe_count(64, 4, 3) == 4 and probe_count(64, 4, 4) == 4 + 16
    assert default_substrings(64, 2**20) == 3 and default_substrings(128, 2**20) == 6
    assert default_substrings(256, 10) >= 8  # substrings never exceed 32 bits


def test_exact_save_is_memory_mapped(tmp_path):
    items = clustered_codes(1000, 128, seed=2)
    index = I.build(items, "exact")
    index.save(tmp_path / "x")
    words = np.load(tmp_path / "x" / "words.npy")
    assert words.shape == (2, 1000) and words.dtype == np.uint64
    loaded = I.load(tmp_path / "x")
    assert isinstance(loaded.words.base, np.memmap) or isinstance(loaded.words, np.memmap)
    np.testing.assert_array_equal(unpack_bits(loaded.codes), unpack_bits(items))
    np.testing.assert_array_equal(loaded.search(items[:5], 9)[1], index.search(items[:5], 9)[1])


def _child_search(index, queries, out):
    out.put(index.search(queries, 5)[1].tolist())


def test_forked_worker_gets_its_own_threads():
    import multiprocessing as mp

    items = clustered_codes(3000, 64, seed=6)
    index = I.build(items, "exact", n_threads=2, min_split=100)
    want = index.search(items[:2], 5)[1].tolist()  # the parent's pool now exists
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_search, args=(index, items[:2], out))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0 and out.get(timeout=5) == want


@pytest.mark.parametrize("n", [3000, 70_001])
def test_pool_one_is_the_exact_top_k_with_every_tie(n) -> None:
    """The online path: the k nearest unexcluded items plus all ties at the k-th distance, in
    id order; 70,001 items take the sampled cut-off (SWAR counts up to 126 bits, plain above)."""
    from rechash.codes.bits import hamming_distances
    from rechash.index.flat import ExactIndex
    from rechash.index.kernels import SAMPLED_CUTOFF_ITEMS

    assert (n >= SAMPLED_CUTOFF_ITEMS) == (n > 3000)
    rng = np.random.default_rng(5)
    for bits in (16, 64, 128):
        centres = rng.integers(0, 256, (8, bits // 8), dtype=np.uint8)  # clustered: many ties
        flips = rng.integers(0, 256, (n, bits // 8), dtype=np.uint8) & (rng.random((n, bits // 8)) < 0.1)
        codes = centres[rng.integers(0, 8, n)] ^ flips
        index = ExactIndex.from_codes(codes)
        for q in range(3):
            banned = np.concatenate([rng.choice(n, 40, replace=False), [q, 7, 7]])  # unsorted, repeated
            for k in (1, 50, n - 10):
                ids, dist = index.pool_one(codes[q], k, banned)
                d = hamming_distances(codes[q : q + 1], codes)[0].astype(float)
                d[banned] = np.inf
                kth = np.sort(d)[min(k, n - len(np.unique(banned))) - 1]
                want = np.flatnonzero(d <= kth)
                np.testing.assert_array_equal(ids, want)
                np.testing.assert_array_equal(dist, d[want])
