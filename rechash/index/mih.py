"""``kind="mih"``: multi-index hashing (Norouzi, Punjani & Fleet), exact and inclusive.

The ``B`` bits are cut into ``m`` contiguous substrings (``codes.field_bounds``); table
``t`` sorts item ids by their substring key (CSR buckets: sorted unique keys, bucket
starts, and a small directory on the keys' top bits). If ``hamming(q, x) <= r`` then, by
pigeonhole, ``x`` agrees with ``q`` within ``floor(r/m)`` bits on at least one substring;
more precisely with ``r = m*r' + a``, within ``r'`` on one of the first ``a+1`` substrings
or within ``r'-1`` on another. The kernel probes every substring code in those balls
(level ``l`` = table ``l % m`` at exactly ``l // m`` flipped bits), verifies candidates by
their full distance and keeps distance ``<= r``. k-NN search raises ``r`` one level at a
time until ``k`` verified items lie within it.

Queries whose ball would need more than ``max_delta`` flipped substring bits, or whose
probes reach more than ``budget`` candidates (clustered codes fill a few buckets), are
answered by the exact flat scan instead, so a query never costs much more than a scan.
"""

from __future__ import annotations

import math
import queue
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations

import numpy as np
import scipy.sparse as sp

from rechash.codes.bits import bit_fields, field_bounds
from rechash.errors import DataError, ModelError
from rechash.index import kernels as K
from rechash.index.base import (
    BaseIndex,
    Capabilities,
    check_exclude,
    check_k,
    check_radius,
    empty_range,
    padded_from_csr,
)
from rechash.index.flat import ExactIndex, default_threads, sub_csr, take_rows, words_of

_NO_EX = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
_MASKS: dict[tuple[int, int], np.ndarray] = {}


def default_substrings(n_bits: int, n_items: int) -> int:
    """Norouzi et al.'s choice ``m ~ B / log2(N)``, with substrings of at most 32 bits."""
    m = round(n_bits / max(math.log2(max(n_items, 2)), 1.0))
    return int(min(n_bits, max(m, -(-n_bits // 32), 1)))


#: Cost model of the MIH-or-scan rule, in nanoseconds single-threaded: one table probe, one
#: verified candidate, the flat scan per item for a lone query and per 64-bit word per
#: (query, item) pair in a blocked batch. Calibrated with experiments/bench_retrieval.py
#: (section "online", clustered codes); recalibrate on other hardware.
PROBE_NS, VERIFY_NS = 270.0, 190.0
SCAN_NS_ONLINE, SCAN_NS_BATCH_PER_WORD = 0.9, 0.35
#: a batch at least this large runs the blocked scan at its batch speed
BATCH_QUERIES = 64


def prefer_mih(n_bits: int, radius: int, n_items: int, n_queries: int = 1, n_substrings: int | None = None) -> bool:
    """The rule the candidate generator uses to pick MIH over the flat scan for a radius query.

    MIH wins when its probes, with the same again allowed for verifying candidates, cost
    less than scanning every item: ``2 * PROBE_NS * probes < scan_ns * N``, with the scan's
    per-item cost of a lone query or of a blocked batch. On clustered 64-bit codes at
    N = 1M this picks MIH up to r = 8 (718 probes) and the scan from r = 10; at 128 bits up
    to r = 16. Queries whose buckets turn out crowded still fall back to the scan (budget).
    """
    m = n_substrings or default_substrings(n_bits, n_items)
    if radius // m > 4:
        return False
    scan_ns = SCAN_NS_ONLINE if n_queries < BATCH_QUERIES else SCAN_NS_BATCH_PER_WORD * -(-n_bits // 64)
    return 2 * PROBE_NS * probe_count(n_bits, m, radius) < scan_ns * n_items


def flip_masks(n_bits: int, delta: int) -> np.ndarray:
    """All ``n_bits``-bit integers with exactly ``delta`` bits set (uint64, cached)."""
    key = (n_bits, delta)
    if key not in _MASKS:
        if delta > n_bits:
            _MASKS[key] = np.zeros(0, dtype=np.uint64)
        elif delta == 0:
            _MASKS[key] = np.zeros(1, dtype=np.uint64)
        else:
            combos = np.array(list(combinations(range(n_bits), delta)), dtype=np.uint64)
            _MASKS[key] = np.bitwise_or.reduce(np.uint64(1) << combos, axis=1)
    return _MASKS[key]


def probe_count(n_bits: int, m: int, radius: int) -> int:
    """Number of substring codes a radius query probes (table lookups)."""
    fb = np.diff(field_bounds(n_bits, m))
    return int(sum(math.comb(int(fb[lvl % m]), lvl // m) for lvl in range(radius + 1) if lvl // m <= fb[lvl % m]))


class MultiIndexHashing(BaseIndex):
    """Exact sub-linear radius / k-NN search (``rechash.index.build(codes, "mih")``).

    ``n_substrings``: tables ``m`` (default ``B / log2(N)`` at the first add).
    ``max_delta``: largest substring radius probed before falling back to a scan.
    ``budget``: candidates verified per query before falling back to the scan (default
    ``N * SCAN_NS_ONLINE / VERIFY_NS``: a crowded query costs at most about two scans).
    """

    kind = "mih"
    capabilities = Capabilities(exclude=True, mmap=True, sublinear=True, parallel=True)

    def __init__(
        self,
        n_bits: int,
        *,
        n_substrings: int | None = None,
        max_delta: int = 4,
        budget: int | None = None,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(n_bits)
        if n_substrings is not None and not -(-n_bits // 32) <= n_substrings <= n_bits:
            raise DataError(
                f"mih: n_substrings must lie in {-(-n_bits // 32)}..{n_bits} for {n_bits} bits, got {n_substrings}"
            )
        self.n_substrings = n_substrings
        self.max_delta = int(max_delta)
        self.budget = budget
        self.flat = ExactIndex(n_bits, n_threads=n_threads)
        self._tables: dict[str, np.ndarray] | None = None
        self._stamps: queue.SimpleQueue = queue.SimpleQueue()
        self._mask_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        #: counters of the last MIH call: queries, candidates verified, flat fallbacks
        self.last_stats: dict[str, int] = {}

    @classmethod
    def from_flat(cls, flat: ExactIndex, **opts) -> MultiIndexHashing:
        """Tables over an existing :class:`ExactIndex`, sharing its codes (no copy)."""
        index = cls(flat.n_bits, n_threads=flat.n_threads, **opts)
        index.flat = flat
        if index.n_substrings is None:
            index.n_substrings = default_substrings(flat.n_bits, flat.ntotal)
        index._build_tables()
        return index

    # ---- data -----------------------------------------------------------------------
    @property
    def n_threads(self) -> int | None:
        return self.flat.n_threads

    @n_threads.setter
    def n_threads(self, value: int | None) -> None:
        self.flat.n_threads = value

    @property
    def ntotal(self) -> int:
        return self.flat.ntotal

    @property
    def codes(self) -> np.ndarray:
        return self.flat.codes

    @property
    def m(self) -> int:
        return int(self.n_substrings or default_substrings(self.n_bits, self.ntotal))

    def add(self, codes: np.ndarray) -> None:
        """Append codes and rebuild the substring tables (one sort per table)."""
        self.flat.add(codes)
        if self.n_substrings is None:
            self.n_substrings = default_substrings(self.n_bits, self.ntotal)
        self._build_tables()

    def _build_tables(self) -> None:
        n, m = self.ntotal, self.m
        if n >= 2**31:
            raise DataError(f"mih: at most 2**31 - 1 items, got {n}")
        bounds = self._bounds = field_bounds(self.n_bits, m)
        fbits = np.diff(bounds).astype(np.int64)
        keys_all = bit_fields(self.codes, bounds)
        keys, starts, ids, dirs, dbits = [], [], [], [], []
        for t in range(m):
            kt = keys_all[:, t]
            order = np.argsort(kt, kind="stable")  # ids ascending inside a bucket
            sk = kt[order]
            uniq, first = np.unique(sk, return_index=True)
            p = int(min(fbits[t], max(1, math.floor(math.log2(max(len(uniq), 2))))))
            edges = np.arange(2**p + 1, dtype=np.uint64) << np.uint64(fbits[t] - p)
            keys.append(uniq.astype(np.uint64))
            starts.append(np.append(first, n).astype(np.int64))
            ids.append(order.astype(np.int32))
            dirs.append(np.searchsorted(uniq, edges).astype(np.int64))
            dbits.append(p)
        self._mask_cache = {}
        self._stamps = queue.SimpleQueue()
        self._tables = {
            "fbits": fbits,
            "dbits": np.array(dbits, dtype=np.int64),
            "keys": np.concatenate(keys),
            "key_off": np.concatenate([[0], np.cumsum([len(x) for x in keys])]).astype(np.int64),
            "starts": np.concatenate(starts),
            "ids": np.concatenate(ids),
            "dirs": np.concatenate(dirs),
            "dir_off": np.concatenate([[0], np.cumsum([len(x) for x in dirs])]).astype(np.int64),
        }
        self._masks_for(min(self.max_delta, 2))

    def _masks_for(self, max_delta: int) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated flip masks of every table for substring radii ``0..max_delta``."""
        if max_delta in self._mask_cache:
            return self._mask_cache[max_delta]
        fbits = self._tables["fbits"]
        parts, off = [], np.zeros((len(fbits), max_delta + 2), dtype=np.int64)
        pos = 0
        for t, s in enumerate(fbits):
            for delta in range(max_delta + 1):
                off[t, delta] = pos
                mk = flip_masks(int(s), delta)
                parts.append(mk)
                pos += len(mk)
            off[t, max_delta + 1] = pos
        self._mask_cache[max_delta] = (np.concatenate(parts), off)
        return self._mask_cache[max_delta]

    def memory_bytes(self) -> int:
        """Bytes held: codes plus substring tables."""
        return int(self.flat.words.nbytes + sum(a.nbytes for a in (self._tables or {}).values()))

    def _params(self) -> dict:
        return {"n_substrings": self.m, "max_delta": self.max_delta, "budget": self.budget}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"words": self.flat.words, **(self._tables or {})}

    @classmethod
    def _from_arrays(cls, header: dict, arrays: dict[str, np.ndarray]) -> MultiIndexHashing:
        index = cls(header["n_bits"], **header.get("params", {}))
        index.flat = ExactIndex._from_arrays({**header, "params": {}}, {"words": arrays["words"]})
        names = ("fbits", "dbits", "keys", "key_off", "starts", "ids", "dirs", "dir_off")
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ModelError(f"mih index: missing arrays {missing}")
        index._tables = {n: np.asarray(arrays[n]) for n in names}
        index._bounds = field_bounds(index.n_bits, index.m)
        if len(index._tables["fbits"]) != index.m or int(index._tables["fbits"].sum()) != index.n_bits:
            raise ModelError("mih index: substring table header disagrees with the arrays")
        return index

    # ---- kernels ---------------------------------------------------------------------
    def _run(self, queries, radius, k, ex, ties=False):
        """MIH over all ``queries`` (threads over chunks); returns (counts, d, i, failed)."""
        nq = len(queries)
        max_delta = self.max_delta
        if k == 0:
            max_delta = min(max_delta, int(radius.max(initial=0)) // self.m)
        masks, mask_off = self._masks_for(max_delta)
        max_level = self.m * (max_delta + 1) - 1
        budget = int(self.budget if self.budget is not None else max(256, self.ntotal * SCAN_NS_ONLINE / VERIFY_NS))
        qw = words_of(queries)
        qkeys = bit_fields(queries, self._bounds)
        T = self._tables
        threads = max(1, int(self.n_threads or default_threads()))
        n_chunks = max(1, min(threads, nq // 8))
        bounds = np.linspace(0, nq, n_chunks + 1).astype(np.int64)

        def chunk(c):
            a, b = bounds[c], bounds[c + 1]
            sub = sub_csr(ex, a, b)
            stamp, gen = self._acquire_stamp(b - a)
            try:
                out = K.mih_query(
                    qw[a:b],
                    qkeys[a:b],
                    self.flat.words,
                    T["fbits"],
                    T["dbits"],
                    T["dirs"],
                    T["dir_off"],
                    T["keys"],
                    T["key_off"],
                    T["starts"],
                    T["ids"],
                    masks,
                    mask_off,
                    radius[a:b],
                    k,
                    max_level,
                    budget,
                    sub[0],
                    sub[1],
                    stamp,
                    gen,
                    ties,
                )
            finally:
                self._stamps.put((stamp, gen + (b - a)))
            return out

        if n_chunks == 1:
            parts = [chunk(0)]
        else:
            with ThreadPoolExecutor(n_chunks) as pool:
                parts = list(pool.map(chunk, range(n_chunks)))
        counts, dist, ids, status, work = (np.concatenate([p[j] for p in parts]) for j in range(5))
        self.last_stats = {"queries": nq, "verified": int(work.sum()), "fallbacks": int((status > 0).sum())}
        return counts, dist, ids, status > 0

    def _acquire_stamp(self, n: int) -> tuple[np.ndarray, int]:
        try:
            stamp, gen = self._stamps.get_nowait()
        except queue.Empty:
            stamp, gen = np.zeros(self.ntotal, dtype=np.int32), 0
        if len(stamp) != self.ntotal or gen + n >= 2**31 - 2:
            stamp, gen = np.zeros(self.ntotal, dtype=np.int32), 0
        return stamp, gen

    # ---- queries ---------------------------------------------------------------------
    def range_search(
        self, queries: np.ndarray, radius: int | np.ndarray, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every item within ``radius`` (inclusive), CSR ``(lims, distances, ids)`` by (distance, id)."""
        queries = self._queries(queries)
        nq = len(queries)
        r = check_radius(radius, nq, self.n_bits)
        ex = check_exclude(exclude, nq) or _NO_EX
        if nq == 0 or self.ntotal == 0:
            return empty_range(nq)
        use = r // self.m <= self.max_delta
        pieces = []
        rows = np.nonzero(use)[0]
        failed = ~use
        stats = {"queries": nq, "verified": 0, "fallbacks": int(failed.sum())}
        if len(rows):
            c, d, i, bad = self._run(queries[rows], r[rows], 0, take_rows(ex, rows))
            pieces.append((rows, c, d, i, bad))
            failed[rows[bad]] = True
            stats["verified"] = self.last_stats["verified"]
            stats["fallbacks"] += self.last_stats["fallbacks"]
        self.last_stats = stats
        rows = np.nonzero(failed)[0]
        if len(rows):
            lims, d, i = self.flat.range_search(queries[rows], r[rows], exclude=_rows_csr(ex, rows, self.ntotal))
            pieces.append((rows, np.diff(lims), d, i, np.zeros(len(rows), dtype=bool)))
        return _assemble(nq, pieces)

    def select(
        self,
        queries: np.ndarray,
        k: int,
        *,
        radius: int | np.ndarray | None = None,
        exclude: sp.csr_matrix | None = None,
        ties: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Same contract as :meth:`ExactIndex.select` (k nearest, optional radius cap,
        exclusion, ties kept at the k-th distance), answered by incremental MIH."""
        queries = self._queries(queries)
        k = check_k(k)
        nq = len(queries)
        r = check_radius(self.n_bits if radius is None else radius, nq, self.n_bits)
        ex = check_exclude(exclude, nq) or _NO_EX
        if nq == 0 or self.ntotal == 0:
            return self.flat.select(queries, k, radius=r, exclude=exclude, ties=ties)
        c, d, i, bad = self._run(queries, r, k, ex, ties)
        pieces = [(np.arange(nq), c, d, i, bad)]
        rows = np.nonzero(bad)[0]
        if len(rows):
            fd, fi, fc = self.flat.select(
                queries[rows], k, radius=r[rows], exclude=_rows_csr(ex, rows, self.ntotal), ties=ties
            )
            valid = fi >= 0
            pieces.append((rows, valid.sum(axis=1), fd[valid], fi[valid], np.zeros(len(rows), dtype=bool)))
        lims, dist, ids = _assemble(nq, pieces)
        counts = np.diff(lims)
        width = k if not ties else max(k, int(counts.max(initial=0)))
        out_d, out_i = padded_from_csr(lims, dist, ids, width)
        return out_d, out_i, counts

    def search(
        self, queries: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` by incremental MIH: ``(distances int32, ids int64)`` ``(q, k)``."""
        d, i, _ = self.select(queries, k, exclude=exclude)
        return d, i


def _rows_csr(ex: tuple[np.ndarray, np.ndarray], rows: np.ndarray, n_items: int) -> sp.csr_matrix | None:
    if len(ex[0]) == 0:
        return None
    ptr, idx = take_rows(ex, rows)
    width = max(n_items, int(idx.max(initial=-1)) + 1)
    return sp.csr_matrix((np.ones(len(idx), dtype=bool), idx, ptr), shape=(len(rows), width))


def _assemble(nq: int, pieces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR over ``nq`` queries from pieces ``(rows, counts, dist, ids, failed)``; failed rows
    (answered by a later piece) contribute nothing."""
    if len(pieces) == 1 and not pieces[0][4].any() and len(pieces[0][0]) == nq:
        rows, c, d, i, _ = pieces[0]  # one piece covering every query in order
        lims = np.zeros(nq + 1, dtype=np.int64)
        np.cumsum(c, out=lims[1:])
        return lims, d, i
    counts = np.zeros(nq, dtype=np.int64)
    for rows, c, _, _, bad in pieces:
        counts[rows[~bad]] = c[~bad]
    lims = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(counts, out=lims[1:])
    out_d = np.empty(int(lims[-1]), dtype=np.int32)
    out_i = np.empty(int(lims[-1]), dtype=np.int64)
    for rows, c, d, i, bad in pieces:
        c = np.where(bad, 0, c)  # failed rows returned no entries
        start = np.repeat(lims[rows], c)
        local = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
        out_d[start + local] = d
        out_i[start + local] = i
    return lims, out_d, out_i
