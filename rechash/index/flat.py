"""``kind="exact"``: the fast exact flat scan (numba, blocked popcount + counting selection).

The engine behind the all-users candidate batch. Codes are held word-major ``(W, N)``
uint64 (``codes.to_word_major``); ``save`` writes that array as it is, so ``load`` maps it
from disk without a copy. Top-k runs in one pass with in-scan exclusion (seen items never
use up a slot). Radius search runs in one pass for small (online) batches and in two for
large ones (count, then fill at exact offsets, so memory is the output alone). Work runs
on a thread pool of ``n_threads`` (the kernels release the GIL).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rechash.codes.bits import as_words, from_words, popcount, to_word_major
from rechash.errors import ModelError
from rechash.index import kernels as K
from rechash.index.base import (
    BaseIndex,
    Capabilities,
    check_exclude,
    check_k,
    check_radius,
    csr_from_padded,
    empty_range,
    empty_search,
)
from rechash.threads import current_threads

_NO_EX = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
#: scratch memory (bytes) one kernel call may use for its per-query outputs
_SCRATCH = 1 << 27
#: radius queries of small batches are answered in one pass holding this many results
_ONLINE_SLOTS = 4096


def default_threads() -> int:
    """Threads of the scan when an index sets none: the :mod:`rechash.threads` setting."""
    return current_threads()


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def run_tasks(fn, tasks: list[tuple], n_threads: int) -> None:
    """Run ``fn(*args)`` for every task on ``n_threads`` threads (kernels release the GIL)."""
    if n_threads <= 1 or len(tasks) <= 1:
        for args in tasks:
            fn(*args)
        return
    key = (os.getpid(), n_threads)  # a forked worker must not reuse its parent's dead threads
    with _POOL_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ThreadPoolExecutor(n_threads, thread_name_prefix="rechash-scan")
    for future in [pool.submit(fn, *args) for args in tasks]:
        future.result()


class ExactIndex(BaseIndex):
    """Exact flat Hamming index on a numba kernel (``rechash.index.build(codes, "exact")``).

    ``n_threads``: threads of the scan (None: every core this process may use). ``qblock`` /
    ``iblock``: queries and items per cache block (tuned on AMD EPYC / AVX2; see
    experiments/results/retrieval.md). ``min_split``: fewest items per task when a small
    query batch is spread over threads by splitting the items. ``online_queries``: radius
    batches up to this size run in one pass (up to 4,096 results a query, else two).
    """

    kind = "exact"
    capabilities = Capabilities(exclude=True, mmap=True, parallel=True)

    def __init__(
        self,
        n_bits: int,
        *,
        n_threads: int | None = None,
        qblock: int = 32,
        iblock: int = 256,
        min_split: int = 65536,
        online_queries: int = 16,
    ) -> None:
        super().__init__(n_bits)
        self.n_threads = n_threads
        self.qblock = int(qblock)
        self.iblock = int(iblock)
        self.min_split = int(min_split)
        self.online_queries = int(online_queries)
        self._words = np.zeros((-(-n_bits // 64), 0), dtype=np.uint64)
        self._local = threading.local()  # per-thread scratch of the online path

    def __getstate__(self) -> dict:  # the per-thread scratch does not travel (Spark broadcasts)
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # ---- data -----------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self._words.shape[1])

    @property
    def words(self) -> np.ndarray:
        """The word-major ``(W, N)`` uint64 codes the kernels scan."""
        return self._words

    @property
    def codes(self) -> np.ndarray:
        return from_words(self._words.T, self.n_bits)

    def add(self, codes: np.ndarray) -> None:
        new = to_word_major(self._new_codes(codes))
        self._words = np.ascontiguousarray(np.concatenate([self._words, new], axis=1)) if self.ntotal else new

    def _params(self) -> dict:
        return {
            "qblock": self.qblock,
            "iblock": self.iblock,
            "min_split": self.min_split,
            "online_queries": self.online_queries,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"words": self._words}

    @classmethod
    def _from_arrays(cls, header: dict, arrays: dict[str, np.ndarray]) -> ExactIndex:
        index = cls(header["n_bits"], **header.get("params", {}))
        words = arrays["words"]
        if words.dtype != np.uint64 or words.ndim != 2 or words.shape != (index._words.shape[0], header["ntotal"]):
            raise ModelError(f"exact index: words array has shape {words.shape} {words.dtype}, header disagrees")
        index._words = np.asarray(words)  # a plain ndarray view of the memory map
        return index

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True, **opts) -> ExactIndex:
        index = super().load(path, mmap=mmap)
        for key, value in opts.items():
            setattr(index, key, value)
        return index

    # ---- plans -----------------------------------------------------------------------
    def _threads(self) -> int:
        return max(1, int(self.n_threads or default_threads()))

    def _plan(
        self, nq: int, allow_splits: bool = True
    ) -> tuple[int, int, list[tuple[int, int]], list[tuple[int, int]]]:
        """Cut ``nq`` queries x all items into tasks: (query block, item splits, query
        ranges, item ranges). Items are split only when there are too few query blocks
        to keep every thread busy (online queries)."""
        threads = self._threads()
        n = self.ntotal
        qblock = max(1, min(self.qblock, -(-nq // threads)))
        nqb = -(-nq // qblock)
        splits = 1
        if nqb < 2 * threads and allow_splits:
            splits = max(1, min(-(-2 * threads // nqb), n // self.min_split))
        n_ranges = min(nqb, 4 * threads)
        edges = (np.linspace(0, nqb, n_ranges + 1).astype(np.int64) * qblock).clip(max=nq)
        q_ranges = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
        per = -(-n // splits)
        i_ranges = [(min(n, s * per), min(n, (s + 1) * per)) for s in range(splits)]
        return qblock, splits, q_ranges, i_ranges

    # ---- queries ---------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k``: ``(distances int32, ids int64)`` ``(q, k)``, by (distance, id), -1 padded."""
        queries = self._queries(queries)
        k = check_k(k)
        d, i, _ = self.select(queries, k, exclude=exclude)
        return d, i

    def select(
        self,
        queries: np.ndarray,
        k: int,
        *,
        radius: int | np.ndarray | None = None,
        exclude: sp.csr_matrix | None = None,
        ties: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top ``k`` per query within an optional ``radius`` and without ``exclude``d items.

        Returns ``(distances, ids, counts)`` of shape ``(q, width)``, ``(q, width)``, ``(q,)``,
        rows sorted by (distance, id) and -1 padded. ``ties=False``: ``width == k``.
        ``ties=True``: each row also keeps every item tied with its k-th distance, so
        ``counts`` may exceed ``k`` (``width`` is the largest count); the caller breaks the
        ties (for example by a re-ranker's score).
        """
        queries = self._queries(queries)
        k = check_k(k)
        nq = len(queries)
        lim = check_radius(self.n_bits if radius is None else radius, nq, self.n_bits) + 1
        ex = check_exclude(exclude, nq) or _NO_EX
        if nq == 0 or self.ntotal == 0:
            d, i = empty_search(nq, k)
            return d, i, np.zeros(nq, dtype=np.int64)
        qw = words_of(queries)
        cap = k if not ties else 2 * k
        splits = self._plan(nq)[1]
        chunk = max(1, _SCRATCH // (splits * cap * 12))
        parts = []
        for start in range(0, nq, chunk):
            stop = min(nq, start + chunk)
            sub_ex = sub_csr(ex, start, stop)
            plan = self._plan(stop - start)
            parts.append(self._select_chunk(qw[start:stop], k, lim[start:stop], sub_ex, ties, plan))
        width = max(p[0].shape[1] for p in parts)
        if len(parts) == 1:
            return parts[0]
        out_d = np.full((nq, width), -1, dtype=np.int32)
        out_i = np.full((nq, width), -1, dtype=np.int64)
        counts = np.empty(nq, dtype=np.int64)
        row = 0
        for d, i, c in parts:
            out_d[row : row + len(d), : d.shape[1]] = d
            out_i[row : row + len(d), : d.shape[1]] = i
            counts[row : row + len(d)] = c
            row += len(d)
        return out_d, out_i, counts

    def _select_chunk(self, qw, k, lim, ex, ties, plan):
        buf, cap_out = max(2 * k, 256), (k if not ties else 2 * k)
        sd, si, sn = self._select_run(qw, k, lim, ex, ties, plan, buf, cap_out)
        bad = np.nonzero((sn < 0).any(axis=1) | (sn > cap_out).any(axis=1))[0] if ties else []
        while len(bad):  # huge tie groups: size them exactly, then redo those queries alone
            sub_ex = take_rows(ex, bad)
            hist = self._histogram(qw[bad], sub_ex)
            hist[np.arange(self.n_bits + 1)[None, :] >= lim[bad, None]] = 0
            cum = np.cumsum(hist, axis=1)
            kth = np.minimum((cum < k).sum(axis=1), self.n_bits)
            cap_out = int(cum[np.arange(len(bad)), kth].max())
            buf = max(2 * buf, 2 * cap_out)
            bd, bi, bn = self._select_run(qw[bad], k, lim[bad], sub_ex, ties, self._plan(len(bad), False), buf, cap_out)
            sd, si = _widen(sd, cap_out, -1), _widen(si, cap_out, -1)
            sd[bad], si[bad], sn[bad] = -1, -1, 0
            sd[bad, 0, :cap_out], si[bad, 0, :cap_out], sn[bad, 0] = bd[:, 0], bi[:, 0], bn[:, 0]
            bad = bad[bn[:, 0] < 0]  # the scan buffer overflowed during warm-up: larger buffer
        nq, splits = sn.shape
        if splits == 1 and not ties:
            return sd[:, 0, :k], si[:, 0, :k], sn[:, 0]
        width = k if not ties else sd.shape[2] * splits
        out_d = np.full((nq, width), -1, dtype=np.int32)
        out_i = np.full((nq, width), -1, dtype=np.int64)
        out_n = np.zeros(nq, dtype=np.int64)
        K.merge_splits(k, ties, sd, si, sn, out_d, out_i, out_n)
        if ties:
            width = max(int(out_n.max(initial=0)), k)
            out_d, out_i = out_d[:, :width], out_i[:, :width]
        return out_d, out_i, out_n

    def _select_run(self, qw, k, lim, ex, ties, plan, buf, cap_out):
        qblock, splits, q_ranges, i_ranges = plan
        nq = len(qw)
        sd = np.full((nq, splits, cap_out), -1, dtype=np.int32)
        si = np.full((nq, splits, cap_out), -1, dtype=np.int64)
        sn = np.zeros((nq, splits), dtype=np.int64)
        tasks = [
            (qw, self._words, a, b, qblock, lo, hi, s, k, lim, ex[0], ex[1], ties, self.iblock, buf, sd, si, sn)
            for a, b in q_ranges
            for s, (lo, hi) in enumerate(i_ranges)
        ]
        run_tasks(K.select_topk, tasks, self._threads())
        return sd, si, sn

    def pool_one(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One query's ``k`` nearest items plus every item tied with the k-th distance, in id
        order: ``(ids int64, distances int32)``; ``exclude`` item ids never returned. One
        thread, no query blocking: the online path (a single user answered at once)."""
        return K.pool_one(self._words, *self.one_query(query, exclude), check_k(k), self.n_bits, self.scratch())

    def one_query(self, query: np.ndarray, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(query words, excluded ids)`` as the single-query kernels take them, over
        :attr:`words` with :meth:`scratch` as their distance buffer."""
        query = np.asarray(query)
        if query.dtype != np.uint8 or query.shape != (self.n_bits // 8,):
            query = self._queries(query.reshape(1, -1))[0]
        q = query.view(np.uint64) if self.n_bits % 64 == 0 and query.flags.c_contiguous else words_of(query[None, :])[0]
        return q, _NO_IDS if exclude is None else np.asarray(exclude, dtype=np.int64)

    def scratch(self) -> np.ndarray:
        """This thread's distance buffer: one byte per item up to 254 bits."""
        scratch = getattr(self._local, "dist", None)
        if scratch is None or len(scratch) != self.ntotal:
            scratch = self._local.dist = np.empty(self.ntotal, dtype=np.uint8 if self.n_bits <= 254 else np.int32)
        return scratch

    def range_search(
        self, queries: np.ndarray, radius: int | np.ndarray, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every item within ``radius`` (inclusive), CSR ``(lims, distances, ids)`` by (distance, id)."""
        queries = self._queries(queries)
        nq = len(queries)
        r = check_radius(radius, nq, self.n_bits)
        if nq == 0 or self.ntotal == 0:
            return empty_range(nq)
        if nq <= self.online_queries:  # one pass into fixed slots; crowded queries use two
            d, i, n = self.select(queries, _ONLINE_SLOTS, radius=r, exclude=exclude)
            crowded = np.nonzero(n >= _ONLINE_SLOTS)[0]
            lims, dist, ids = csr_from_padded(d, i)
            if len(crowded) == 0:
                return lims, dist, ids
            ex = check_exclude(exclude, nq) or _NO_EX
            more = self._range_all(queries[crowded], r[crowded], take_rows(ex, crowded))
            keep = np.ones(nq, dtype=bool)
            keep[crowded] = False
            return _merge_rows(nq, [(np.nonzero(keep)[0], lims, dist, ids, keep), (crowded, *more, None)])
        return self._range_all(queries, r, check_exclude(exclude, nq) or _NO_EX)

    def _range_all(self, queries, r, ex):
        """Two-pass radius scan (count, then fill at exact offsets): memory is the output only."""
        nq = len(queries)
        qw = words_of(queries)
        B1 = self.n_bits + 1
        chunk = max(1, _SCRATCH // (self._plan(nq)[1] * B1 * 16))
        lims_parts, d_parts, i_parts = [], [], []
        for start in range(0, nq, chunk):
            stop = min(nq, start + chunk)
            sub_ex = sub_csr(ex, start, stop)
            lims_chunk, d, i = self._range_chunk(qw[start:stop], r[start:stop], sub_ex, self._plan(stop - start), B1)
            lims_parts.append(lims_chunk[1:] + (lims_parts[-1][-1] if lims_parts else 0))
            d_parts.append(d)
            i_parts.append(i)
        lims = np.concatenate([[0]] + lims_parts).astype(np.int64)
        return lims, np.concatenate(d_parts), np.concatenate(i_parts)

    def _range_chunk(self, qw, r, ex, plan, B1):
        qblock, splits, q_ranges, i_ranges = plan
        nq = len(qw)
        hist = np.zeros((nq, splits, B1), dtype=np.int64)
        no_c = np.zeros((0, 0, 0), dtype=np.int64)
        no_d, no_i = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)

        def tasks(cursor, out_d, out_i, fill):
            return [
                (
                    qw,
                    self._words,
                    a,
                    b,
                    qblock,
                    lo,
                    hi,
                    s,
                    r,
                    ex[0],
                    ex[1],
                    self.iblock,
                    hist,
                    cursor,
                    out_d,
                    out_i,
                    fill,
                )
                for a, b in q_ranges
                for s, (lo, hi) in enumerate(i_ranges)
            ]

        run_tasks(K.range_scan, tasks(no_c, no_d, no_i, False), self._threads())
        lims = np.zeros(nq + 1, dtype=np.int64)
        np.cumsum(hist.sum(axis=(1, 2)), out=lims[1:])
        # offsets in (distance, split) order within each query; ids rise within a cell
        by_d = hist.transpose(0, 2, 1).reshape(nq, -1)
        offs = np.cumsum(by_d, axis=1) - by_d + lims[:-1, None]
        cursor = np.ascontiguousarray(offs.reshape(nq, B1, splits).transpose(0, 2, 1))
        out_d = np.empty(int(lims[-1]), dtype=np.int32)
        out_i = np.empty(int(lims[-1]), dtype=np.int64)
        run_tasks(K.range_scan, tasks(cursor, out_d, out_i, True), self._threads())
        return lims, out_d, out_i

    def distance_histogram(self, queries: np.ndarray, *, exclude: sp.csr_matrix | None = None) -> np.ndarray:
        """``(q, B+1)`` counts of (non-excluded) items at each distance from each query."""
        queries = self._queries(queries)
        nq = len(queries)
        out = np.zeros((nq, self.n_bits + 1), dtype=np.int64)
        if nq == 0 or self.ntotal == 0:
            return out
        return self._histogram(words_of(queries), check_exclude(exclude, nq) or _NO_EX)

    def _histogram(self, qw: np.ndarray, ex: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        nq = len(qw)
        out = np.zeros((nq, self.n_bits + 1), dtype=np.int64)
        threads = self._threads()
        edges = np.linspace(0, nq, min(nq, 4 * threads) + 1).astype(np.int64)
        tasks = [(qw, self._words, int(a), int(b), 0, self.ntotal, out) for a, b in zip(edges[:-1], edges[1:]) if b > a]
        run_tasks(K.histogram_scan, tasks, threads)
        indptr, indices = ex
        if len(indptr):  # subtract the excluded items (each once)
            rows = np.repeat(np.arange(nq), np.diff(indptr))
            first = np.ones(len(indices), dtype=bool)
            first[1:] = (indices[1:] != indices[:-1]) | (rows[1:] != rows[:-1])
            ok = first & (indices < self.ntotal)
            d = popcount(qw[rows[ok]] ^ self._words[:, indices[ok]].T).sum(axis=1)
            np.subtract.at(out, (rows[ok], d), 1)
        return out

    def codes_of(self, ids: np.ndarray) -> np.ndarray:
        """Packed codes of the items ``ids``."""
        return from_words(np.ascontiguousarray(self._words[:, np.asarray(ids, dtype=np.int64)].T), self.n_bits)


_NO_IDS = np.zeros(0, dtype=np.int64)


def words_of(queries: np.ndarray) -> np.ndarray:
    """Query words for the kernels (C-contiguous and writable: one numba signature)."""
    qw = as_words(queries)
    return qw if qw.flags.writeable else qw.copy()


def _merge_rows(nq: int, parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR over ``nq`` rows from parts ``(rows, lims, dist, ids, mask)``: part ``p`` holds
    rows ``rows`` (``mask``, when given, selects them from the part's own rows)."""
    counts = np.zeros(nq, dtype=np.int64)
    for rows, lims, _, _, mask in parts:
        c = np.diff(lims)
        counts[rows] = c[mask] if mask is not None else c
    out_lims = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(counts, out=out_lims[1:])
    out_d = np.empty(int(out_lims[-1]), dtype=np.int32)
    out_i = np.empty(int(out_lims[-1]), dtype=np.int64)
    for rows, lims, dist, ids, mask in parts:
        c = np.diff(lims)
        src_rows = np.nonzero(mask)[0] if mask is not None else np.arange(len(c))
        take = (
            np.concatenate([np.arange(lims[a], lims[a + 1]) for a in src_rows])
            if len(src_rows)
            else np.zeros(0, np.int64)
        )
        dst = (
            np.concatenate([np.arange(out_lims[b], out_lims[b + 1]) for b in rows])
            if len(rows)
            else np.zeros(0, np.int64)
        )
        out_d[dst] = dist[take]
        out_i[dst] = ids[take]
    return out_lims, out_d, out_i


def _widen(a: np.ndarray, width: int, fill) -> np.ndarray:
    if a.shape[-1] >= width:
        return a
    out = np.full(a.shape[:-1] + (width,), fill, dtype=a.dtype)
    out[..., : a.shape[-1]] = a
    return out


def take_rows(ex: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of an (indptr, indices) exclusion pair, as a new pair."""
    indptr, indices = ex
    if len(indptr) == 0:
        return ex
    counts = indptr[rows + 1] - indptr[rows]
    new_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_ptr[1:])
    src = np.repeat(indptr[rows], counts) + np.arange(int(new_ptr[-1])) - np.repeat(new_ptr[:-1], counts)
    return new_ptr, indices[src]


def sub_csr(ex: tuple[np.ndarray, np.ndarray], start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``start..stop`` of an (indptr, indices) pair, rebased."""
    indptr, indices = ex
    if len(indptr) == 0:
        return ex
    a, b = indptr[start], indptr[stop]
    return indptr[start : stop + 1] - a, indices[a:b]
