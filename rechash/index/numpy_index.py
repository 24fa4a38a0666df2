"""``kind="numpy"``: the reference backend, plain numpy over ``codes.hamming_distances``.

Blocked over queries so that a block's distance matrix stays near 32 MB; obviously
correct rather than fast (the conformance suite's second opinion, and the fallback when
numba is unavailable).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rechash.codes.bits import hamming_distances
from rechash.index.base import (
    BaseIndex,
    Capabilities,
    check_exclude,
    check_k,
    check_radius,
    empty_range,
    empty_search,
)

_BLOCK_CELLS = 1 << 23


class NumpyIndex(BaseIndex):
    """Exact brute-force index in numpy (``rechash.index.build(codes, "numpy")``)."""

    kind = "numpy"
    capabilities = Capabilities(exclude=True, mmap=True)

    def __init__(self, n_bits: int) -> None:
        super().__init__(n_bits)
        self._codes = np.zeros((0, n_bits // 8), dtype=np.uint8)

    @property
    def ntotal(self) -> int:
        return len(self._codes)

    @property
    def codes(self) -> np.ndarray:
        return self._codes

    def add(self, codes: np.ndarray) -> None:
        codes = self._new_codes(codes)
        self._codes = np.concatenate([self._codes, codes]) if self.ntotal else codes.copy()

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"codes": self._codes}

    @classmethod
    def _from_arrays(cls, header: dict, arrays: dict[str, np.ndarray]) -> NumpyIndex:
        index = cls(header["n_bits"])
        index._codes = np.asarray(arrays["codes"])
        return index

    def _blocks(self, queries: np.ndarray, exclude: sp.csr_matrix | None):
        """Yield ``(start, distances)`` blocks, excluded items set to ``B + 1``."""
        ex = check_exclude(exclude, len(queries))
        step = max(1, _BLOCK_CELLS // max(1, self.ntotal))
        for start in range(0, len(queries), step):
            d = hamming_distances(queries[start : start + step], self._codes)
            if ex is not None:
                indptr, indices = ex
                sub = indptr[start : start + len(d) + 1]
                rows = np.repeat(np.arange(len(d)), np.diff(sub))
                cols = indices[sub[0] : sub[-1]]
                inside = cols < self.ntotal
                d[rows[inside], cols[inside]] = self.n_bits + 1
            yield start, d

    def search(
        self, queries: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = self._queries(queries)
        k = check_k(k)
        out_d, out_i = empty_search(len(queries), k)
        n = self.ntotal
        if n == 0:
            return out_d, out_i
        kk = min(k, n)
        for start, d in self._blocks(queries, exclude):
            key = d.astype(np.int64) * n + np.arange(n)  # unique: orders by (distance, id)
            part = np.argpartition(key, kk - 1, axis=1)[:, :kk] if kk < n else np.broadcast_to(np.arange(n), key.shape)
            part_key = np.take_along_axis(key, part, axis=1)
            order = np.argsort(part_key, axis=1)
            ids = np.take_along_axis(part, order, axis=1)
            dist = np.take_along_axis(d, ids, axis=1)
            ok = dist <= self.n_bits
            out_d[start : start + len(d), :kk] = np.where(ok, dist, -1)
            out_i[start : start + len(d), :kk] = np.where(ok, ids, -1)
        return out_d, out_i

    def range_search(
        self, queries: np.ndarray, radius: int | np.ndarray, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        queries = self._queries(queries)
        r = check_radius(radius, len(queries), self.n_bits)
        if self.ntotal == 0 or len(queries) == 0:
            return empty_range(len(queries))
        counts, dists, ids = [], [], []
        for start, d in self._blocks(queries, exclude):
            rows, cols = np.nonzero(d <= r[start : start + len(d), None])
            vals = d[rows, cols]
            order = np.lexsort((cols, vals, rows))
            counts.append(np.bincount(rows, minlength=len(d)))
            dists.append(vals[order].astype(np.int32))
            ids.append(cols[order].astype(np.int64))
        lims = np.zeros(len(queries) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(counts), out=lims[1:])
        return lims, np.concatenate(dists), np.concatenate(ids)
