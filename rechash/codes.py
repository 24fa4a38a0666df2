"""Binary codes: the only module that knows bit order.

Bit order (documented contract): a code of ``B`` bits is stored as ``B // 8`` bytes
(``uint8``), bit ``j`` living in byte ``j // 8`` at mask ``0x80 >> (j % 8)``; this is
``numpy.packbits``' big-endian order. Bit ``j`` is 1 when the real value ``z_j > 0`` and 0
when ``z_j <= 0`` (so an exact zero maps to 0, the same as ``sign(z) = -1``).
Hamming distance does not depend on the bit order, so faiss binary indexes and any
popcount kernel read these rows as they are.
"""
from __future__ import annotations

import numpy as np

from rechash.errors import DataError

MIN_BITS, MAX_BITS = 8, 4096
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def validate_packed(codes: np.ndarray, what: str = "codes") -> int:
    """Check packed codes (uint8, 2-D, B/8 columns) and return the bit count B."""
    if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.ndim != 2:
        got = getattr(codes, "dtype", type(codes).__name__)
        shape = getattr(codes, "shape", "?")
        raise DataError(f"{what}: expected packed codes as a 2-D uint8 array (n, B/8), got {got} {shape}")
    n_bits = codes.shape[1] * 8
    if not MIN_BITS <= n_bits <= MAX_BITS:
        raise DataError(f"{what}: {n_bits} bits is outside {MIN_BITS}..{MAX_BITS}")
    return n_bits


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a ``(n, B)`` array of {0, 1}, bool or {-1, +1} values into ``(n, B/8)`` uint8."""
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise DataError(f"pack_bits: expected a 2-D array (n, B), got shape {bits.shape}")
    if bits.shape[1] % 8 or bits.shape[1] == 0:
        raise DataError(f"pack_bits: the bit count B must be a positive multiple of 8, got {bits.shape[1]}")
    if bits.dtype == bool:
        ones = bits
    else:
        values = np.unique(bits)
        if np.isin(values, (0, 1)).all():
            ones = bits == 1
        elif np.isin(values, (-1, 1)).all():
            ones = bits == 1
        else:
            raise DataError(f"pack_bits: values must be 0/1, bool or -1/+1, got {values[:5].tolist()}")
    return np.packbits(ones, axis=1)


def unpack_bits(codes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``(n, B)`` uint8 array of 0/1."""
    validate_packed(codes)
    return np.unpackbits(codes, axis=1)


def binarize(z: np.ndarray) -> np.ndarray:
    """Packed codes of real vectors: bit = 1 where ``z > 0`` (``sign`` with 0 -> -1)."""
    z = np.asarray(z)
    if z.ndim != 2:
        raise DataError(f"binarize: expected a 2-D array (n, B), got shape {z.shape}")
    if not np.isfinite(z).all():
        raise DataError("binarize: real codes contain NaN or infinity")
    return pack_bits(z > 0)


def to_signs(codes: np.ndarray, dtype=np.float32) -> np.ndarray:
    """``(n, B)`` array of -1/+1 for packed codes (bit 1 -> +1)."""
    return unpack_bits(codes).astype(dtype) * 2 - 1


def popcount(x: np.ndarray) -> np.ndarray:
    """Per-element popcount of an unsigned integer array."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _POPCOUNT8[x.view(np.uint8)].reshape(*x.shape, -1).sum(-1)  # pragma: no cover


def _words(codes: np.ndarray) -> np.ndarray:
    """View packed rows as uint64 words when the byte count allows, else as bytes."""
    codes = np.ascontiguousarray(codes)
    return codes.view(np.uint64) if codes.shape[1] % 8 == 0 else codes


def hamming_distances(queries: np.ndarray, codes: np.ndarray, block: int = 256) -> np.ndarray:
    """Exact Hamming distances ``(len(queries), len(codes))`` as int32 (numpy reference)."""
    bq = validate_packed(queries, "queries")
    bc = validate_packed(codes, "codes")
    if bq != bc:
        raise DataError(f"queries have {bq} bits but codes have {bc}")
    qw, cw = _words(queries), _words(codes)
    out = np.empty((len(queries), len(codes)), dtype=np.int32)
    for start in range(0, len(queries), block):
        x = np.bitwise_xor(qw[start : start + block, None, :], cw[None, :, :])
        out[start : start + block] = popcount(x).sum(axis=2, dtype=np.int32)
    return out


def hamming_rows(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Row-wise distances between ``queries[i]`` and ``codes[i]`` (same shape) as int32."""
    if queries.shape != codes.shape:
        raise DataError(f"hamming_rows: shapes differ, {queries.shape} vs {codes.shape}")
    validate_packed(queries)
    return popcount(np.bitwise_xor(_words(queries), _words(codes))).sum(axis=1, dtype=np.int32)
