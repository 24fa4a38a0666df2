"""Compiled inner loops of the data layer (numba, cached on disk after the first call).

Two kernels, both single pass and O(n) extra memory:

* :func:`parse_int_lines` tokenizes whitespace-separated non-negative integers
  (the adjacency text format) and reports the byte offset of the first bad character;
* :func:`coo_to_csr` turns (row, col, value[, timestamp]) triples into a canonical CSR
  (sorted column indices, duplicates merged: values summed, latest timestamp kept).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def parse_int_lines(buf):  # pragma: no cover - compiled
    """Tokens of ``buf`` (uint8) -> ``(values int64, line int64 (0-based), n, bad)``.

    Tokens are separated by ASCII whitespace. ``bad`` is the byte offset of the first
    character that is neither a digit nor whitespace (-1 when none); tokens with more
    than 18 digits are reported the same way (they would overflow).
    """
    n_bytes = buf.shape[0]
    cap = n_bytes // 2 + 1
    values = np.empty(cap, np.int64)
    lines = np.empty(cap, np.int64)
    n = 0
    line = 0
    in_tok = False
    digits = 0
    for p in range(n_bytes):
        c = buf[p]
        if c >= 48 and c <= 57:
            if in_tok:
                digits += 1
                if digits > 18:
                    return values[:n], lines[:n], n, p
                values[n - 1] = values[n - 1] * 10 + (c - 48)
            else:
                values[n] = c - 48
                lines[n] = line
                n += 1
                in_tok = True
                digits = 1
        elif c == 32 or c == 9 or c == 10 or c == 13 or c == 11 or c == 12:
            in_tok = False
            if c == 10:
                line += 1
        else:
            return values[:n], lines[:n], n, p
    return values[:n], lines[:n], n, -1


@numba.njit(cache=True, nogil=True)
def _heapsort(keys, n):  # pragma: no cover - compiled
    """Sort ``keys[:n]`` (int64) in place; hand-written because numba's argsort compiles slowly."""
    for start in range((n - 2) // 2, -1, -1):
        _sift(keys, start, n)
    for end in range(n - 1, 0, -1):
        keys[0], keys[end] = keys[end], keys[0]
        _sift(keys, 0, end)


@numba.njit(cache=True, nogil=True)
def _sift(keys, root, end):  # pragma: no cover - compiled
    while 2 * root + 1 < end:
        child = 2 * root + 1
        if child + 1 < end and keys[child] < keys[child + 1]:
            child += 1
        if keys[root] >= keys[child]:
            return
        keys[root], keys[child] = keys[child], keys[root]
        root = child


@numba.njit(cache=True, nogil=True)
def coo_to_csr(rows, cols, vals, ts, n_rows, has_vals, has_ts):  # pragma: no cover - compiled
    """Canonical CSR from COO triples (rows/cols int32, vals float32, ts float64).

    Returns ``(indptr int64, indices int32, data float32, timestamps float64, nnz)``;
    the arrays have length >= nnz (the caller trims). Counting sort by row (stable),
    rows that are not sorted are sorted by (column, position), then duplicates merge in
    place (values summed, the latest timestamp kept).
    """
    n = rows.shape[0]
    indptr = np.zeros(n_rows + 1, np.int64)
    for k in range(n):
        indptr[rows[k] + 1] += 1
    longest = 0
    for r in range(n_rows):
        longest = max(longest, indptr[r + 1])
        indptr[r + 1] += indptr[r]
    pos = indptr[:-1].copy()
    indices = np.empty(n, np.int32)
    data = np.empty(n, np.float32)
    tout = np.empty(n if has_ts else 0, np.float64)
    for k in range(n):  # the random-access pass: write only what the input carries
        r = rows[k]
        p = pos[r]
        pos[r] = p + 1
        indices[p] = cols[k]
        if has_vals:
            data[p] = vals[k]
        if has_ts:
            tout[p] = ts[k]
    if not has_vals:
        data[:] = 1.0
    keys = np.empty(longest, np.int64)
    tmp_data = np.empty(longest, np.float32)
    tmp_ts = np.empty(longest if has_ts else 0, np.float64)
    out = 0
    start = 0
    for r in range(n_rows):
        end = indptr[r + 1]
        m = end - start
        ordered = True
        for p in range(start + 1, end):
            if indices[p] < indices[p - 1]:
                ordered = False
                break
        if not ordered:
            for j in range(m):
                keys[j] = (np.int64(indices[start + j]) << 32) | j
                if has_vals:
                    tmp_data[j] = data[start + j]
                if has_ts:
                    tmp_ts[j] = tout[start + j]
            _heapsort(keys, m)
            for j in range(m):
                src = keys[j] & 0xFFFFFFFF
                indices[start + j] = keys[j] >> 32
                if has_vals:
                    data[start + j] = tmp_data[src]
                if has_ts:
                    tout[start + j] = tmp_ts[src]
        row_out = out
        for p in range(start, end):
            if out > row_out and indices[p] == indices[out - 1]:
                data[out - 1] += data[p]
                if has_ts and tout[p] > tout[out - 1]:
                    tout[out - 1] = tout[p]
            else:
                indices[out] = indices[p]
                data[out] = data[p]
                if has_ts:
                    tout[out] = tout[p]
                out += 1
        start = end
        indptr[r + 1] = out
    return indptr, indices, data, tout, out
