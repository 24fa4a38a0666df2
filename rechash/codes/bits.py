"""Binary codes: the only module that knows bit order.

Bit order (documented contract): a code of ``B`` bits is stored as ``B // 8`` bytes
(``uint8``), bit ``j`` living in byte ``j // 8`` at mask ``0x80 >> (j % 8)``; this is
``numpy.packbits``' big-endian order. Bit ``j`` is 1 when the real value ``z_j > 0`` and 0
when ``z_j <= 0`` (so an exact zero maps to 0, the same as ``sign(z) = -1``).
Hamming distance does not depend on the bit order, so faiss binary indexes and any
popcount kernel read these rows as they are.

Kernel layouts (derived here, so no other module needs the bit order):
``as_words`` views rows as ``ceil(B/64)`` uint64 words (zero padded; padding never changes
a distance), ``to_word_major`` stores them word-major ``(W, n)`` for vectorised scans, and
``bit_fields`` cuts rows into contiguous substrings (bits ``[a, b)``, read most
significant bit first) for multi-index hashing.
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


def check_same_bits(queries: np.ndarray, codes_bits: int, what: str = "queries") -> np.ndarray:
    """Validate ``queries`` as packed codes of ``codes_bits`` bits and return them C-contiguous."""
    if isinstance(queries, np.ndarray) and queries.ndim == 1 and queries.dtype == np.uint8:
        queries = queries[None, :]
    bits = validate_packed(queries, what)
    if bits != codes_bits:
        raise DataError(f"{what} have {bits} bits but the index holds {codes_bits}-bit codes")
    return np.ascontiguousarray(queries)


def as_words(codes: np.ndarray) -> np.ndarray:
    """Packed rows as ``(n, ceil(B/64))`` uint64 words: a view when ``B % 64 == 0``, else a
    zero-padded copy (equal padding on both sides leaves every distance unchanged)."""
    validate_packed(codes)
    n, nbytes = codes.shape
    if nbytes % 8 == 0:
        return np.ascontiguousarray(codes).view(np.uint64)
    padded = np.zeros((n, -(-nbytes // 8) * 8), dtype=np.uint8)
    padded[:, :nbytes] = codes
    return padded.view(np.uint64)


def to_word_major(codes: np.ndarray) -> np.ndarray:
    """Word-major copy ``(W, n)`` uint64 of packed rows (what vectorised scans read)."""
    return np.ascontiguousarray(as_words(codes).T)


def from_words(words: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`as_words` (accepts the row-major ``(n, W)`` words): packed ``(n, B/8)``."""
    words = np.ascontiguousarray(words, dtype=np.uint64)
    return np.ascontiguousarray(words.view(np.uint8)[:, : n_bits // 8])


def field_bounds(n_bits: int, n_fields: int) -> np.ndarray:
    """Split ``n_bits`` into ``n_fields`` contiguous substrings of near-equal length
    (longer ones first); returns the ``n_fields + 1`` bit boundaries."""
    if not 1 <= n_fields <= n_bits:
        raise DataError(f"cannot split {n_bits} bits into {n_fields} substrings")
    base, extra = divmod(n_bits, n_fields)
    lengths = np.full(n_fields, base, dtype=np.int64)
    lengths[:extra] += 1
    return np.concatenate([[0], np.cumsum(lengths)])


def bit_fields(codes: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Substring keys ``(n, len(bounds) - 1)`` uint64: field ``i`` is the integer whose binary
    digits, most significant first, are bits ``bounds[i] .. bounds[i+1]-1`` of the row.
    ``popcount(key_i(x) ^ key_i(y))`` is the Hamming distance of ``x`` and ``y`` on field ``i``;
    fields may be at most 57 bits long."""
    n_bits = validate_packed(codes)
    bounds = np.asarray(bounds, dtype=np.int64)
    if bounds[0] != 0 or bounds[-1] != n_bits or np.any(np.diff(bounds) <= 0) or np.diff(bounds).max() > 57:
        raise DataError(f"bit_fields: bounds must rise from 0 to {n_bits} in steps of 1..57 bits")
    out = np.empty((len(codes), len(bounds) - 1), dtype=np.uint64)
    if len(codes) <= 8:  # online queries: Python integers beat a dozen numpy calls
        cuts = [(n_bits - int(b), (1 << int(b - a)) - 1) for a, b in zip(bounds[:-1], bounds[1:])]
        for row, code in enumerate(codes):
            v = int.from_bytes(code.tobytes(), "big")
            out[row] = [(v >> shift) & mask for shift, mask in cuts]
        return out
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        first, end = a // 8, -(-b // 8)
        v = np.zeros(len(codes), dtype=np.uint64)
        for byte in range(first, end):
            v = (v << np.uint64(8)) | codes[:, byte].astype(np.uint64)
        v >>= np.uint64(8 * end - b)
        out[:, i] = v & np.uint64((1 << int(b - a)) - 1)
    return out


def clustered_codes(
    n: int, n_bits: int, n_clusters: int = 1000, flip: float = 0.15, seed: int = 0, centers: np.ndarray | None = None
) -> np.ndarray:
    """Synthetic packed codes with realistic clustering: random cluster centres (Zipf-sized
    clusters) with each bit flipped independently with probability ``flip``.

    Pass the ``centers`` (``(c, B)`` 0/1) of one call to another to draw queries from the
    same clusters. Meant for tests and benchmarks.
    """
    rng = np.random.default_rng(seed)
    if centers is None:
        centers = rng.integers(0, 2, (n_clusters, n_bits), dtype=np.uint8)
    weights = 1.0 / np.arange(1, len(centers) + 1) ** 0.8
    labels = rng.choice(len(centers), size=n, p=weights / weights.sum())
    out = np.empty((n, n_bits // 8), dtype=np.uint8)
    for start in range(0, n, 1 << 16):  # bounded memory for large n
        stop = min(n, start + (1 << 16))
        noise = rng.random((stop - start, n_bits)) < flip
        out[start:stop] = np.packbits(centers[labels[start:stop]] ^ noise, axis=1)
    return out


def cluster_centers(n_clusters: int, n_bits: int, seed: int = 0) -> np.ndarray:
    """The ``centers`` :func:`clustered_codes` draws for the same ``seed`` (to share clusters)."""
    return np.random.default_rng(seed).integers(0, 2, (n_clusters, n_bits), dtype=np.uint8)


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
