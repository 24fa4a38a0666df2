"""One conformance suite that every HammingIndex backend passes against brute force.

The oracle is ``rechash.codes.bits.hamming_distances`` ranked by the evaluation protocol's
``topk_rows`` (score = -distance, ties by item id), so "exact" means: same ids, same
order, same -1 padding, for top-k and for the inclusive radius search.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rechash import index as I
from rechash.codes.bits import hamming_distances, pack_bits
from rechash.errors import DataError
from rechash.rank.topk import topk_rows

BACKENDS = {
    "numpy": ("numpy", {}),
    "exact": ("exact", {}),
    "exact-split": ("exact", {"n_threads": 2, "qblock": 3, "iblock": 64, "min_split": 16}),
    "exact-2pass": ("exact", {"online_queries": 0, "min_split": 32}),
    "faiss": ("faiss", {}),
    "mih": ("mih", {}),
    "mih-fallback": ("mih", {"budget": 3, "max_delta": 1}),
    "mih-m1": ("mih", {"n_substrings": "min"}),
}


def make(name: str, codes: np.ndarray):
    kind, opts = BACKENDS[name]
    if kind == "faiss":
        pytest.importorskip("faiss")
    opts = dict(opts)
    if opts.get("n_substrings") == "min":
        opts["n_substrings"] = -(-codes.shape[1] * 8 // 32)
    return I.build(codes, kind, **opts)


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    return request.param


# ---- brute force ---------------------------------------------------------------------
def brute_search(queries, codes, k, exclude=None):
    if len(codes) == 0:
        return np.full((len(queries), k), -1, np.int32), np.full((len(queries), k), -1, np.int64)
    d = hamming_distances(queries, codes)
    ids, scores = topk_rows(-d.astype(np.float64), k, exclude)
    dist = np.where(ids >= 0, -scores, -1).astype(np.int32)
    return dist, ids


def brute_range(queries, codes, radius, exclude=None):
    radius = np.broadcast_to(np.asarray(radius), (len(queries),))
    lims, dists, ids = [0], [], []
    d = hamming_distances(queries, codes) if len(codes) else np.zeros((len(queries), 0), np.int32)
    ex = None if exclude is None else sp.csr_matrix(exclude).toarray().astype(bool)
    for q in range(len(queries)):
        ok = d[q] <= radius[q]
        if ex is not None:
            ok &= ~ex[q, : len(codes)]
        sel = np.nonzero(ok)[0]
        sel = sel[np.lexsort((sel, d[q, sel]))]
        dists.append(d[q, sel])
        ids.append(sel)
        lims.append(lims[-1] + len(sel))
    return np.array(lims), np.concatenate(dists).astype(np.int32), np.concatenate(ids).astype(np.int64)


def assert_search(index, queries, codes, k, exclude=None):
    d, i = index.search(queries, k, exclude=exclude) if exclude is not None else index.search(queries, k)
    bd, bi = brute_search(queries, codes, k, exclude)
    assert d.dtype == np.int32 and i.dtype == np.int64 and d.shape == i.shape == (len(queries), k)
    np.testing.assert_array_equal(i, bi)
    np.testing.assert_array_equal(d, bd)


def assert_range(index, queries, codes, radius, exclude=None):
    got = (
        index.range_search(queries, radius, exclude=exclude)
        if exclude is not None
        else index.range_search(queries, radius)
    )
    want = brute_range(queries, codes, radius, exclude)
    assert got[0].dtype == np.int64 and got[1].dtype == np.int32 and got[2].dtype == np.int64
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# ---- data ------------------------------------------------------------------------------
def random_codes(seed: int, n: int, n_bits: int, pool: int, flip: float) -> np.ndarray:
    """Codes drawn from a small pool of rows with a few flipped bits: duplicates and ties."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2, (max(pool, 1), n_bits), dtype=np.uint8)
    bits = base[rng.integers(0, len(base), n)] ^ (rng.random((n, n_bits)) < flip)
    return pack_bits(bits.reshape(n, n_bits))


case = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n": st.integers(0, 160),
        "n_bits": st.sampled_from([8, 16, 24, 64, 72, 128]),
        "pool": st.integers(1, 12),
        "flip": st.sampled_from([0.0, 0.03, 0.1, 0.5]),
        "nq": st.integers(1, 9),
        "k": st.integers(1, 200),
        "radius": st.integers(0, 40),
    }
)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(case)
def test_matches_brute_force(backend, c):
    codes = random_codes(c["seed"], c["n"], c["n_bits"], c["pool"], c["flip"])
    queries = random_codes(c["seed"] + 1, c["nq"], c["n_bits"], c["pool"], c["flip"])
    if c["n"]:
        queries[0] = codes[0]  # an exact duplicate: distance 0
    index = make(backend, codes)
    assert index.ntotal == c["n"]
    assert_search(index, queries, codes, c["k"])
    assert_range(index, queries, codes, min(c["radius"], c["n_bits"]))


@SETTINGS
@given(case, st.floats(0.0, 1.0))
def test_exclusion_matches_brute_force(backend, c, density):
    codes = random_codes(c["seed"], max(c["n"], 1), c["n_bits"], c["pool"], c["flip"])
    queries = random_codes(c["seed"] + 1, c["nq"], c["n_bits"], c["pool"], c["flip"])
    rng = np.random.default_rng(c["seed"])
    exclude = sp.csr_matrix(rng.random((c["nq"], len(codes))) < density)
    index = make(backend, codes)
    assert_search(index, queries, codes, c["k"], exclude)
    assert_range(index, queries, codes, min(c["radius"], c["n_bits"]), exclude)


def test_ties_duplicates_and_padding(backend):
    # 6 identical rows, then 4 rows at distance 1: every distance level is a tie group
    codes = pack_bits(np.array([[0] * 16] * 6 + [[1] + [0] * 15] * 4, dtype=np.uint8))
    index = make(backend, codes)
    d, i = index.search(codes[:1], 8)
    assert i.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7]] and d.tolist() == [[0] * 6 + [1] * 2]
    d, i = index.search(codes[:1], 13)  # k larger than the catalog: -1 padding
    assert i[0, 10:].tolist() == [-1, -1, -1] and d[0, 10:].tolist() == [-1, -1, -1]
    assert_search(index, codes, codes, 4)


def test_radius_zero_and_full(backend):
    codes = random_codes(3, 120, 64, 5, 0.05)
    queries = np.vstack([codes[:3], random_codes(99, 3, 64, 1, 0.5)])
    index = make(backend, codes)
    assert_range(index, queries, codes, 0)
    assert_range(index, queries, codes, 64)  # radius B: everything, sorted
    lims, _, _ = index.range_search(queries, 64)
    assert np.diff(lims).tolist() == [120] * 6
    lims, d, _ = index.range_search(queries[3:], 0)  # empty results are empty rows
    assert lims.tolist() == [0, 0, 0, 0] and len(d) == 0 or lims[-1] == len(d)


def test_per_query_radius(backend):
    codes = random_codes(5, 150, 24, 4, 0.1)
    queries = codes[:5]
    index = make(backend, codes)
    assert_range(index, queries, codes, np.array([0, 3, 7, 24, 1]))


def test_empty_index_and_empty_queries(backend):
    codes = np.zeros((0, 8), np.uint8)
    if backend.startswith("mih") or backend == "faiss":
        index = I.index_class(BACKENDS[backend][0])(64)
    else:
        index = make(backend, codes)
    q = random_codes(1, 3, 64, 2, 0.1)
    d, i = index.search(q, 5)
    assert (i == -1).all() and (d == -1).all()
    lims, d, i = index.range_search(q, 64)
    assert lims.tolist() == [0, 0, 0, 0] and len(i) == 0
    full = make(backend, random_codes(1, 20, 64, 2, 0.1))
    d, i = full.search(q[:0], 5)
    assert d.shape == (0, 5)
    assert full.range_search(q[:0], 3)[0].tolist() == [0]


def test_add_in_parts_equals_build(backend):
    codes = random_codes(7, 90, 72, 6, 0.1)
    kind, opts = BACKENDS[backend]
    if kind == "faiss":
        pytest.importorskip("faiss")
    index = make(backend, codes[:40])
    index.add(codes[40:])
    assert index.ntotal == 90
    np.testing.assert_array_equal(index.codes, codes)
    assert_search(index, codes[::9], codes, 17)
    assert_range(index, codes[::9], codes, 10)


def test_save_load_round_trip(backend, tmp_path):
    codes = random_codes(11, 200, 128, 8, 0.05)
    index = make(backend, codes)
    path = index.save(tmp_path / "idx")
    assert (path / "index.json").is_file() and not list(path.glob("*.pkl"))
    loaded = I.load(path)
    assert type(loaded) is type(index) and loaded.n_bits == 128 and loaded.ntotal == 200
    if loaded.capabilities.mmap:
        assert any(
            isinstance(getattr(a, "base", None), np.memmap) or isinstance(a, np.memmap) for a in _arrays_of(loaded)
        )
    queries = codes[::17]
    np.testing.assert_array_equal(loaded.search(queries, 30)[1], index.search(queries, 30)[1])
    assert_range(loaded, queries, codes, 20)


def _arrays_of(index):
    for name in ("_codes", "_words"):
        if hasattr(index, name):
            yield getattr(index, name)
    if hasattr(index, "flat"):
        yield index.flat.words


def test_bad_arguments(backend):
    index = make(backend, random_codes(1, 30, 64, 3, 0.1))
    with pytest.raises(DataError, match="bits"):
        index.search(np.zeros((2, 2), np.uint8), 3)
    with pytest.raises(DataError, match="k must be"):
        index.search(index.codes[:2], 0)
    with pytest.raises(DataError, match="radius"):
        index.range_search(index.codes[:2], -1)
    with pytest.raises(DataError, match="radius"):
        index.range_search(index.codes[:2], np.array([1, 2, 3]))
    with pytest.raises(DataError, match="codes"):
        index.add(np.zeros((2, 8), np.float32))
    assert index.capabilities.exact and isinstance(index, I.HammingIndex)


def test_load_rejects_foreign_directories(tmp_path):
    from rechash.errors import ModelError

    with pytest.raises(ModelError, match="index.json"):
        I.load(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "something-else"}')
    with pytest.raises(ModelError, match="format"):
        I.load(tmp_path)
    with pytest.raises(DataError, match="unknown index kind"):
        I.build(np.zeros((1, 8), np.uint8), kind="annoy")
