"""``kind="faiss"``: faiss ``IndexBinaryFlat`` wrapped to honour the exact contract.

faiss is an optional extra (``pip install 'rechash[faiss]'``), imported on first use.
What the wrapper adds:

- the (distance, id) order, re-sorted here rather than trusted;
- exact ties at the k-th distance: faiss may cut a group of equal distances at any id,
  so the wrapper fetches more neighbours until the last one fetched is strictly farther
  than the k-th (then every item tied with the k-th is in hand) and keeps the smallest ids;
- an inclusive radius (faiss returns distances strictly below its radius, so it is asked
  for ``r + 1``), per-query radii, ``-1`` padding, and exclusion by over-fetching.
"""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp

from rechash.errors import require
from rechash.index.base import (
    BaseIndex,
    Capabilities,
    check_k,
    check_radius,
    empty_range,
    empty_search,
    filter_range,
    search_excluding,
    sort_range_rows,
)


def _faiss():
    return require("faiss", "faiss", "the faiss index backend")


class FaissIndex(BaseIndex):
    """Exact Hamming index on faiss ``IndexBinaryFlat`` (``rechash.index.build(codes, "faiss")``)."""

    kind = "faiss"
    capabilities = Capabilities(parallel=True)

    def __init__(self, n_bits: int, *, n_threads: int | None = None) -> None:
        super().__init__(n_bits)
        self.n_threads = n_threads
        self._index = _faiss().IndexBinaryFlat(n_bits)
        self._codes = np.zeros((0, n_bits // 8), dtype=np.uint8)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def faiss_index(self):
        """The wrapped ``faiss.IndexBinaryFlat``."""
        return self._index

    @property
    def codes(self) -> np.ndarray:
        return self._codes

    def add(self, codes: np.ndarray) -> None:
        codes = self._new_codes(codes)
        self._index.add(codes)
        self._codes = np.concatenate([self._codes, codes]) if len(self._codes) else codes.copy()

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"codes": self._codes}

    @classmethod
    def _from_arrays(cls, header: dict, arrays: dict[str, np.ndarray]) -> FaissIndex:
        index = cls(header["n_bits"])
        index.add(np.ascontiguousarray(arrays["codes"]))
        return index

    @contextlib.contextmanager
    def _threads(self):
        if self.n_threads is None:
            yield
            return
        faiss = _faiss()
        old = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(int(self.n_threads))
        try:
            yield
        finally:
            faiss.omp_set_num_threads(old)

    def search(
        self, queries: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = self._queries(queries)
        k = check_k(k)
        if exclude is not None:
            return search_excluding(self, queries, k, exclude)
        out_d, out_i = empty_search(len(queries), k)
        n = self.ntotal
        if n == 0 or len(queries) == 0:
            return out_d, out_i
        kk = min(k, n)
        todo = np.arange(len(queries))
        fetch = min(n, 2 * kk)
        while len(todo):
            with self._threads():
                d, i = self._index.search(queries[todo], fetch)
            d = d.astype(np.int32)
            i = i.astype(np.int64)
            # every item tied with the k-th is in hand once the last fetched is farther
            done = np.ones(len(todo), dtype=bool) if fetch == n else d[:, fetch - 1] > d[:, kk - 1]
            rows = todo[done]
            order = np.lexsort((i[done], d[done]), axis=1)[:, :kk]
            out_d[rows, :kk] = np.take_along_axis(d[done], order, axis=1)
            out_i[rows, :kk] = np.take_along_axis(i[done], order, axis=1)
            todo = todo[~done]
            fetch = min(n, 2 * fetch)
        return out_d, out_i

    def range_search(
        self, queries: np.ndarray, radius: int | np.ndarray, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        queries = self._queries(queries)
        nq = len(queries)
        r = check_radius(radius, nq, self.n_bits)
        if self.ntotal == 0 or nq == 0:
            return empty_range(nq)
        counts = np.zeros(nq, dtype=np.int64)
        per_query: list = [None] * nq
        for value in np.unique(r):
            rows = np.nonzero(r == value)[0]
            with self._threads():  # faiss keeps distances strictly below its radius
                lims, d, i = self._index.range_search(queries[rows], int(value) + 1)
            for j, q in enumerate(rows):
                per_query[q] = (d[lims[j] : lims[j + 1]], i[lims[j] : lims[j + 1]])
                counts[q] = lims[j + 1] - lims[j]
        lims = np.zeros(nq + 1, dtype=np.int64)
        np.cumsum(counts, out=lims[1:])
        dist = np.concatenate([p[0] for p in per_query]).astype(np.int32)
        ids = np.concatenate([p[1] for p in per_query]).astype(np.int64)
        dist, ids = sort_range_rows(lims, dist, ids)
        if exclude is not None:
            return filter_range(lims, dist, ids, exclude)
        return lims, dist, ids
