"""Float dot-product re-rankers over a candidate pool: the model's floats, or the user's floats
against the items' +-1 bits, on compiled kernels whose summation order is the same for every
batch size."""

from __future__ import annotations

import numba
import numpy as np

from rechash.codes.bits import to_signs, validate_packed
from rechash.errors import DataError

#: below this many (user, candidate) pairs the serial kernel beats starting the parallel one
SERIAL_PAIRS = 1 << 14


def dot_rows(vectors: np.ndarray, item_vectors: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``out[r, c] = <vectors[r], item_vectors[candidates[r, c]]>`` (0 at -1 padding): a serial
    kernel for small blocks (one user online), the parallel one for large blocks; both
    accumulate in the same order, so a user's scores do not depend on the batch."""
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    kernel = _dot_rows_serial if candidates.size <= SERIAL_PAIRS else _dot_rows
    return kernel(vectors, item_vectors, candidates)


class DotReranker:
    """Float dot product ``<u, i>`` over the candidates (towers' floats or any external model)."""

    def __init__(self, user_vectors: np.ndarray, item_vectors: np.ndarray) -> None:
        if user_vectors.ndim != 2 or item_vectors.ndim != 2 or user_vectors.shape[1] != item_vectors.shape[1]:
            raise DataError(
                f"DotReranker: expected (users, d) and (items, d), got {user_vectors.shape} and {item_vectors.shape}"
            )
        self.user_vectors = np.ascontiguousarray(user_vectors, dtype=np.float32)
        self.item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return dot_rows(self.user_vectors[np.asarray(users, dtype=np.int64)], self.item_vectors, candidates)

    @property
    def index_bytes(self) -> int:
        """Bytes of the item vectors the re-ranker keeps in memory."""
        return int(self.item_vectors.nbytes)


#: the most +-1 values :meth:`CodesOnlyReranker.score` unpacks at once
SIGN_BLOCK = 1 << 22


class CodesOnlyReranker:
    """Asymmetric scoring: the user's float vector against the candidate items' +-1 bits.

    ``score(u, i) = <f_u, s_i>`` with ``s_i`` the item's packed code read as -1/+1, so the
    item side keeps only its B/8-byte code (no float item table) while the user side keeps
    its B floats: finer than the Hamming distance (which is ``<sign(f_u), s_i>`` up to an
    affine map) at no extra item memory. ``user_vectors``: e.g. the towers' relaxed codes
    (:meth:`~rechash.hasher.twin_tower.TwinTowerHasher.user_floats`)."""

    def __init__(self, user_vectors: np.ndarray, item_codes: np.ndarray) -> None:
        bits = validate_packed(item_codes, "item codes")
        if user_vectors.ndim != 2 or user_vectors.shape[1] != bits:
            raise DataError(f"CodesOnlyReranker: user vectors must be (users, {bits}), got {user_vectors.shape}")
        self.user_vectors = np.ascontiguousarray(user_vectors, dtype=np.float32)
        self.item_codes = np.ascontiguousarray(item_codes)

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Scores of ``(users, C)`` candidates, unpacking the +-1 bits of a block of rows at
        a time (at most :data:`SIGN_BLOCK` values: the bits of a wide pool would otherwise
        take rows x C x B floats)."""
        candidates = np.asarray(candidates, dtype=np.int64)
        vectors = self.user_vectors[np.asarray(users, dtype=np.int64)]
        step = max(1, SIGN_BLOCK // max(1, candidates.shape[1] * vectors.shape[1]))
        parts = []
        for a in range(0, max(len(candidates), 1), step):
            block = candidates[a : a + step]
            signs = to_signs(self.item_codes[np.maximum(block, 0).ravel()]).reshape(*block.shape, vectors.shape[1])
            parts.append(np.einsum("ucb,ub->uc", signs, vectors[a : a + step]))
        return np.concatenate(parts)

    @property
    def index_bytes(self) -> int:
        """Bytes the re-ranker keeps per catalog: the packed item codes only."""
        return int(self.item_codes.nbytes)


@numba.njit(cache=True, nogil=True, inline="always")
def dot_row(u, item_vectors, row, out):  # pragma: no cover - compiled
    """``out[c] = <u, item_vectors[row[c]]>`` for ``row[c] >= 0``, summed in eight fixed
    lanes (``j % 8``) then pairwise: the lanes are independent chains LLVM packs into one
    vector, the order is the same for every caller (batch, online, one thread or many)."""
    d = u.shape[0]
    d8 = d - d % 8
    for c in range(row.shape[0]):
        item = row[c]
        if item >= 0:
            v = item_vectors[item]
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
            for j in range(0, d8, 8):
                a0 += u[j] * v[j]
                a1 += u[j + 1] * v[j + 1]
                a2 += u[j + 2] * v[j + 2]
                a3 += u[j + 3] * v[j + 3]
                a4 += u[j + 4] * v[j + 4]
                a5 += u[j + 5] * v[j + 5]
                a6 += u[j + 6] * v[j + 6]
                a7 += u[j + 7] * v[j + 7]
            for j in range(d8, d):
                a0 += u[j] * v[j]
            out[c] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


@numba.njit(parallel=True, cache=True, nogil=True)
def _dot_rows(vectors, item_vectors, candidates):  # pragma: no cover - compiled
    """``out[r, c] = <vectors[r], item_vectors[candidates[r, c]]>`` (0 at padding), without
    materialising the gathered ``(n, C, d)`` item block; rows in parallel."""
    out = np.zeros(candidates.shape, dtype=np.float32)
    for r in numba.prange(candidates.shape[0]):
        dot_row(vectors[r], item_vectors, candidates[r], out[r])
    return out


@numba.njit(cache=True, nogil=True)
def _dot_rows_serial(vectors, item_vectors, candidates):  # pragma: no cover - compiled
    """:func:`_dot_rows` on the calling thread (no pool to wake for one user)."""
    out = np.zeros(candidates.shape, dtype=np.float32)
    for r in range(candidates.shape[0]):
        dot_row(vectors[r], item_vectors, candidates[r], out[r])
    return out
