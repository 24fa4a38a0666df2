"""Numba kernels of the exact Hamming engine.

Flat scan (``select_topk`` / ``range_scan``): item codes are stored
word-major ``(W, N)`` uint64, so the per-block distance loop is a contiguous, branch-free
popcount loop that LLVM vectorises (AVX2 ``vpshufb`` popcount); a second vectorised loop
counts the block's items under the query's current threshold, and only blocks with a hit
take the scalar path. Work is blocked over queries (``qblock``) and items (``iblock``,
which stays in L1 while the query block reuses it); the caller cuts the work into tasks
of (query range x item range) and runs them on a thread pool (kernels release the GIL).
Kernels avoid numpy array expressions, which keeps numba's cold compile short.

Top-k selection keeps, per query, a histogram of accepted distances over the small
integer range ``0..B``: the acceptance threshold falls as soon as ``k`` items are at or
below a distance, so after a short warm-up almost no item is accepted. Items are scanned
in id order, which makes "first come" equal to "smallest id" and gives the (distance, id)
order without sorting. ``ties=True`` keeps every item tied at the k-th distance (the
caller breaks those ties with its own scores).

Multi-index hashing (``mih_query``, Norouzi et al.): probes substring tables level by
level; level ``l`` probes table ``l % m`` at substring distance exactly ``l // m``. After
levels ``0..r`` every item within distance ``r`` has been seen (pigeonhole), so a radius
query runs levels ``0..r`` and a k-NN query stops at the first level ``l`` with ``k`` verified
items at distance ``<= l``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def popcount64(typingctx, x):
    """``llvm.ctpop.i64``: a ``popcnt`` instruction, or a vectorised popcount in loops."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(cache=True, inline="always")
def _block_distances(qw, q, ct, i0, i1, db):
    """``db[j - i0] = hamming(query q, item j)`` for items ``i0 <= j < i1``."""
    m = i1 - i0
    a = qw[q, 0]
    c = ct[0, i0:i1]
    for j in range(m):
        db[j] = popcount64(a ^ c[j])
    for w in range(1, qw.shape[1]):
        a = qw[q, w]
        c = ct[w, i0:i1]
        for j in range(m):
            db[j] += popcount64(a ^ c[j])


@njit(cache=True, inline="always")
def _count_below(db, m, lim):
    s = 0
    for j in range(m):
        s += db[j] < lim
    return s


@njit(cache=True, inline="always")
def _excluded(j, qi, q, ep, ex_ptr, ex_idx):
    """Is item ``j`` in query ``q``'s sorted exclusion row? (``j`` rises per query)."""
    p = ep[qi]
    end = ex_ptr[q + 1]
    while p < end and ex_idx[p] < j:
        p += 1
    ep[qi] = p
    return p < end and ex_idx[p] == j


@njit(cache=True, inline="always")
def _start_exclusion(ep, q0, nb, lo, ex_ptr, ex_idx):
    """Point each query's exclusion cursor at its first excluded id ``>= lo``."""
    for qi in range(nb):
        p = ex_ptr[q0 + qi]
        end = ex_ptr[q0 + qi + 1]
        while p < end and ex_idx[p] < lo:
            p += 1
        ep[qi] = p


@njit(cache=True)
def _compact(qi, k, ties, lim, nlt, bd, bid, bn):
    """Drop buffered items that can no longer be in the result; keeps the id order."""
    n = bn[qi]
    L = lim[qi]
    room = k - nlt[qi]
    m = 0
    for t in range(n):
        d = bd[qi, t]
        keep = d < L
        if not keep and not ties and d == L and room > 0:
            keep = True
            room -= 1
        if keep:
            bd[qi, m] = d
            bid[qi, m] = bid[qi, t]
            m += 1
    bn[qi] = m


@njit(cache=True)
def _select_block(qw, ct, q0, q1, lo, hi, k, lim0, ex_ptr, ex_idx, ties, iblock, cap, split, out_d, out_i, out_n):
    """Top-k of queries ``q0..q1`` over items ``lo..hi``; writes slot ``split`` of the outputs.

    ``cap`` (>= 2k) bounds the per-query buffer; a query whose ties fill it is marked with
    ``out_n = -1`` (the caller re-runs it with a larger ``cap``). The buffers are never
    reallocated here: a reassigned array in this loop makes numba's scan markedly slower.
    """
    nb = q1 - q0
    B = 64 * qw.shape[1]
    lim = np.empty(nb, np.int64)
    for qi in range(nb):
        lim[qi] = lim0[q0 + qi]
    nlt = np.zeros(nb, np.int64)
    hist = np.zeros((nb, B + 2), np.int64)
    bd = np.empty((nb, cap), np.int32)
    bid = np.empty((nb, cap), np.int64)
    bn = np.zeros(nb, np.int64)
    ep = np.zeros(nb, np.int64)
    use_ex = ex_ptr.shape[0] > 0
    if use_ex:
        _start_exclusion(ep, q0, nb, lo, ex_ptr, ex_idx)
    db = np.empty(iblock, np.int64)
    for i0 in range(lo, hi, iblock):
        i1 = min(hi, i0 + iblock)
        m = i1 - i0
        for qi in range(nb):
            L = lim[qi]
            if L <= 0:
                continue
            _block_distances(qw, q0 + qi, ct, i0, i1, db)
            if _count_below(db, m, L) == 0:
                continue
            for j0 in range(0, m, 32):  # hits are rare: skip 32-item runs without one
                j1 = min(m, j0 + 32)
                if _count_below(db[j0:j1], j1 - j0, L) == 0:
                    continue
                for j in range(j0, j1):
                    d = db[j]
                    if d >= L:
                        continue
                    if use_ex and _excluded(i0 + j, qi, q0 + qi, ep, ex_ptr, ex_idx):
                        continue
                    if bn[qi] == cap:
                        _compact(qi, k, ties, lim, nlt, bd, bid, bn)
                        if bn[qi] * 4 > cap * 3:  # ties keep more than the buffer holds
                            lim[qi] = -1
                            L = -1
                            break
                    n = bn[qi]
                    bd[qi, n] = d
                    bid[qi, n] = i0 + j
                    bn[qi] = n + 1
                    hist[qi, d] += 1
                    c = nlt[qi] + 1
                    if ties:
                        while L > 1 and c - hist[qi, L - 1] >= k:
                            L -= 1
                            c -= hist[qi, L]
                    else:
                        while c >= k:
                            L -= 1
                            c -= hist[qi, L]
                    lim[qi] = L
                    nlt[qi] = c
    cap_out = out_d.shape[2]
    cnt = np.empty(B + 2, np.int64)
    for qi in range(nb):
        q = q0 + qi
        if lim[qi] < 0:
            out_n[q, split] = -1
            continue
        _compact(qi, k, ties, lim, nlt, bd, bid, bn)
        n = bn[qi]
        out_n[q, split] = n
        for t in range(B + 2):
            cnt[t] = 0
        for t in range(n):
            cnt[bd[qi, t] + 1] += 1
        for t in range(1, B + 2):
            cnt[t] += cnt[t - 1]
        for t in range(n):  # stable counting sort: (distance, id)
            d = bd[qi, t]
            p = cnt[d]
            cnt[d] += 1
            if p < cap_out:
                out_d[q, split, p] = d
                out_i[q, split, p] = bid[qi, t]


@njit(nogil=True, cache=True)
def select_topk(qw, ct, q0, q1, qblock, lo, hi, split, k, lim0, ex_ptr, ex_idx, ties, iblock, cap, out_d, out_i, out_n):
    """Top-k of queries ``q0..q1`` (in blocks of ``qblock``) over items ``lo..hi``.

    ``lim0[q]`` is ``radius + 1`` (only items with distance < lim0 qualify); ``ex_ptr`` /
    ``ex_idx`` is a CSR of excluded items per query (empty ``ex_ptr`` = none). Writes
    ``out_*[q, split]``: the split's result in (distance, id) order and its true size
    ``out_n`` (larger than the slot when ``ties`` overflowed it; -1 when ties overflowed
    the scan buffer ``cap``).
    """
    for b0 in range(q0, q1, qblock):
        _select_block(
            qw,
            ct,
            b0,
            min(q1, b0 + qblock),
            lo,
            hi,
            k,
            lim0,
            ex_ptr,
            ex_idx,
            ties,
            iblock,
            cap,
            split,
            out_d,
            out_i,
            out_n,
        )


@njit(nogil=True, cache=True)
def merge_splits(k, ties, sd, si, sn, out_d, out_i, out_n):
    """Merge per-split sorted lists into one (distance, id) order per query.

    Strict: the first ``k``. Ties: everything up to the k-th distance. Writes at most
    ``out_d.shape[1]`` entries and the true count in ``out_n``.
    """
    nq, S, cap = sd.shape
    cap_out = out_d.shape[1]
    B1 = 1
    for q in range(nq):
        for s in range(S):
            for t in range(min(sn[q, s], cap)):
                B1 = max(B1, sd[q, s, t] + 2)
    cnt = np.empty(B1, np.int64)
    for q in range(nq):
        for t in range(B1):
            cnt[t] = 0
        for s in range(S):
            for t in range(min(sn[q, s], cap)):
                cnt[sd[q, s, t] + 1] += 1
        for t in range(1, B1):
            cnt[t] += cnt[t - 1]
        total = cnt[B1 - 1]
        if ties and total > k:
            kth = 0  # keep every item whose distance is <= the k-th distance
            while cnt[kth + 1] < k:
                kth += 1
            total = cnt[kth + 1]
        elif total > k:
            total = k
        out_n[q] = total
        for s in range(S):  # splits in id order, each sorted: stable placement
            for t in range(min(sn[q, s], cap)):
                d = sd[q, s, t]
                p = cnt[d]
                cnt[d] += 1
                if p < total and p < cap_out:
                    out_d[q, p] = d
                    out_i[q, p] = si[q, s, t]


@njit(nogil=True, cache=True)
def range_scan(qw, ct, q0, q1, qblock, lo, hi, split, radius, ex_ptr, ex_idx, iblock, hist, cursor, out_d, out_i, fill):
    """Radius scan of queries ``q0..q1`` over items ``lo..hi``, two passes: ``fill=False``
    counts ``hist[q, split, d]``; ``fill=True`` writes each item at ``cursor[q, split, d]``
    (offsets precomputed in (distance, id) order)."""
    ep = np.zeros(qblock, np.int64)
    use_ex = ex_ptr.shape[0] > 0
    db = np.empty(iblock, np.int64)
    for b0 in range(q0, q1, qblock):
        nb = min(q1, b0 + qblock) - b0
        if use_ex:
            _start_exclusion(ep, b0, nb, lo, ex_ptr, ex_idx)
        for i0 in range(lo, hi, iblock):
            i1 = min(hi, i0 + iblock)
            m = i1 - i0
            for qi in range(nb):
                q = b0 + qi
                L = radius[q] + 1
                _block_distances(qw, q, ct, i0, i1, db)
                if _count_below(db, m, L) == 0:
                    continue
                for j in range(m):
                    d = db[j]
                    if d >= L:
                        continue
                    if use_ex and _excluded(i0 + j, qi, q, ep, ex_ptr, ex_idx):
                        continue
                    if fill:
                        p = cursor[q, split, d]
                        cursor[q, split, d] = p + 1
                        out_d[p] = d
                        out_i[p] = i0 + j
                    else:
                        hist[q, split, d] += 1


@njit(nogil=True, cache=True)
def histogram_scan(qw, ct, q0, q1, lo, hi, out):
    """``out[q, d] +=`` number of items ``lo..hi`` at distance ``d`` from query ``q``."""
    db = np.empty(512, np.int64)
    for q in range(q0, q1):
        for i0 in range(lo, hi, 512):
            i1 = min(hi, i0 + 512)
            _block_distances(qw, q, ct, i0, i1, db)
            for j in range(i1 - i0):
                out[q, db[j]] += 1


# ---- multi-index hashing ------------------------------------------------------------------
@njit(cache=True, inline="always")
def _bucket(t, key, fbits, dbits, dirs, dir_off, keys, key_off, starts):
    """Range ``[a, b)`` of table ``t``'s sorted id list holding substring ``key`` (empty if none)."""
    d0 = dir_off[t]
    top = np.int64(key >> np.uint64(fbits[t] - dbits[t]))
    lo = dirs[d0 + top]
    hi = dirs[d0 + top + 1]
    k0 = key_off[t]
    while lo < hi:  # binary search among the few keys of this directory cell
        mid = (lo + hi) >> 1
        if keys[k0 + mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < dirs[d0 + top + 1] and keys[k0 + lo] == key:
        s0 = k0 + t  # each table's starts array has one extra entry
        return starts[s0 + lo], starts[s0 + lo + 1]
    return 0, 0


@njit(cache=True, inline="always")
def _in_sorted(a, lo, hi, x):
    """Is ``x`` in the sorted slice ``a[lo:hi]``?"""
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and a[lo] == x


@njit(nogil=True, cache=True)
def mih_query(
    qw,
    qkeys,
    ct,
    fbits,
    dbits,
    dirs,
    dir_off,
    keys,
    key_off,
    starts,
    ids,
    masks,
    mask_off,
    radius,
    k,
    max_level,
    budget,
    ex_ptr,
    ex_idx,
    stamp,
    gen0,
    ties,
):
    """Multi-index hashing for a chunk of queries (single thread, releases the GIL).

    ``radius[q] >= 0`` with ``k == 0``: every item within the radius. ``k > 0``: the k
    nearest (``radius`` caps the distance; ``ties`` also keeps every item tied with the
    k-th distance). ``ct`` is the word-major ``(W, N)`` item codes. Returns ``(counts,
    dist, ids, status, work)``: the results concatenated query after query in (distance,
    id) order; ``status[q]`` is 1 when the query needed more than ``max_level`` levels or
    verified more than ``budget`` items (it must then be answered by a flat scan), and
    ``work[q]`` the number of candidates verified.
    """
    nq, W = qw.shape
    m = qkeys.shape[1]
    N = ct.shape[1]
    counts = np.zeros(nq, np.int64)
    status = np.zeros(nq, np.int64)
    work = np.zeros(nq, np.int64)
    cap = 1024
    out_d = np.empty(cap, np.int32)
    out_i = np.empty(cap, np.int64)
    n_out = 0
    pool_d = np.empty(1024, np.int64)
    pool_i = np.empty(1024, np.int64)
    B = 64 * W
    hist = np.zeros(B + 2, np.int64)
    use_ex = ex_ptr.shape[0] > 0
    for q in range(nq):
        gen = gen0 + q + 1
        for t in range(B + 2):
            hist[t] = 0
        n_pool = 0
        verified = 0
        r = radius[q]
        last = r if k == 0 else min(r, B)
        level = 0
        done = False
        failed = False
        while level <= last and not done:
            if level > max_level:
                failed = True
                break
            t = level % m
            delta = level // m
            if delta <= fbits[t]:
                mo = mask_off[t, delta]
                me = mask_off[t, delta + 1]
                qk = qkeys[q, t]
                i0 = t * N
                for mi in range(mo, me):
                    a, b = _bucket(t, qk ^ masks[mi], fbits, dbits, dirs, dir_off, keys, key_off, starts)
                    for p in range(a, b):
                        x = ids[i0 + p]
                        if stamp[x] == gen:
                            continue
                        stamp[x] = gen
                        verified += 1
                        d = 0
                        for w in range(W):
                            d += popcount64(qw[q, w] ^ ct[w, x])
                        if d > r:
                            continue
                        if use_ex and _in_sorted(ex_idx, ex_ptr[q], ex_ptr[q + 1], x):
                            continue
                        if n_pool == pool_d.shape[0]:
                            nd = np.empty(2 * n_pool, np.int64)
                            ni = np.empty(2 * n_pool, np.int64)
                            for u in range(n_pool):
                                nd[u] = pool_d[u]
                                ni[u] = pool_i[u]
                            pool_d = nd
                            pool_i = ni
                        pool_d[n_pool] = d
                        pool_i[n_pool] = x
                        n_pool += 1
                        hist[d] += 1
                    if verified > budget:
                        failed = True
                        break
                if failed:
                    break
            if k > 0:
                c = 0
                for d in range(min(level, B) + 1):
                    c += hist[d]
                if c >= k:
                    done = True
            level += 1
        work[q] = verified
        if failed:
            status[q] = 1
            continue
        # items within reach: distance <= level - 1 (all levels up to it were probed)
        reach = level - 1 if k > 0 else r
        key = np.empty(n_pool, np.int64)
        n_key = 0
        for t in range(n_pool):
            if pool_d[t] <= reach:
                key[n_key] = pool_d[t] * N + pool_i[t]
                n_key += 1
        key = np.sort(key[:n_key])
        take = n_key if k == 0 else min(k, n_key)
        if ties and 0 < k < n_key:
            kth = key[k - 1] // N
            while take < n_key and key[take] // N == kth:
                take += 1
        if n_out + take > cap:
            cap = max(2 * cap, n_out + take)
            od = np.empty(cap, np.int32)
            oi = np.empty(cap, np.int64)
            for t in range(n_out):
                od[t] = out_d[t]
                oi[t] = out_i[t]
            out_d = od
            out_i = oi
        for t in range(take):
            out_d[n_out + t] = key[t] // N
            out_i[n_out + t] = key[t] % N
        n_out += take
        counts[q] = take
    return counts, out_d[:n_out].copy(), out_i[:n_out].copy(), status, work


#: catalogs of at least this many items take ``pool_one``'s sampled cut-off instead of a full histogram
SAMPLED_CUTOFF_ITEMS = 1 << 16
_SAMPLE = 1 << 13
_LOW_BYTES = np.uint64(0x0101010101010101)
_HIGH_BITS = np.uint64(0x8080808080808080)


@njit(cache=True, inline="always")
def _count_at_most(dist, t, swar):
    """``#(dist <= t)``. ``swar``: uint8 distances below 128, counted 8 per word (a byte
    ``b <= t`` keeps the high bit of ``(b | 0x80) - (t + 1)`` clear)."""
    if t < 0:
        return 0
    n = dist.shape[0]
    c = 0
    start = 0
    if swar:
        start = n - n % 8
        packed = dist[:start].view(np.uint64)
        lim = _LOW_BYTES * np.uint64(t + 1)
        over = np.uint64(0)
        for w in range(packed.shape[0]):
            over += popcount64(((packed[w] | _HIGH_BITS) - lim) & _HIGH_BITS)
        c = start - np.int64(over)
    for j in range(start, n):
        c += dist[j] <= t
    return c


@njit(cache=True, inline="always")
def _sampled_cut(ct, qw, k, n_bits):
    """The distance whose count in a strided sample of the catalog reaches ``k``'s share."""
    n = ct.shape[1]
    step = n // _SAMPLE
    hist = np.zeros(n_bits + 1, dtype=np.int64)
    m = 0
    for j in range(0, n, step):
        d = 0
        for w in range(ct.shape[0]):
            d += popcount64(qw[w] ^ ct[w, j])
        hist[d] += 1
        m += 1
    want = k * m / n
    cum = 0
    for b in range(n_bits + 1):
        cum += hist[b]
        if cum >= want:
            return b
    return n_bits


@njit(cache=True, nogil=True)
def pool_one(ct, qw, excl, k, n_bits, dist):
    """One query's pool: every item (not in ``excl``) within the distance of its k-th
    nearest, ties at that distance included, in id order -> ``(ids, distances)``.

    ``dist`` is scratch of length n (uint8 when ``n_bits <= 254``, else int32). Small
    catalogs take the cut-off from a histogram of all distances. From
    :data:`SAMPLED_CUTOFF_ITEMS` items a strided sample guesses it and counting passes
    move the guess a level at a time until ``#(< cut) < k <= #(<= cut)``: at 1M items a
    histogram's scattered increments cost more than the distances themselves, while a
    count over uint8 distances (8 per word) costs a tenth of them. The collect pass skips
    words of 8 distances with none at or below the cut-off."""
    n = ct.shape[1]
    gone = n_bits + 1
    a = qw[0]
    c = ct[0]
    for j in range(n):
        dist[j] = popcount64(a ^ c[j])
    for w in range(1, ct.shape[0]):
        a = qw[w]
        c = ct[w]
        for j in range(n):
            dist[j] += popcount64(a ^ c[j])
    for e in range(excl.shape[0]):
        dist[excl[e]] = gone
    swar = dist.itemsize == 1 and gone < 128
    if n >= SAMPLED_CUTOFF_ITEMS:
        cut = _sampled_cut(ct, qw, k, n_bits)
        total = _count_at_most(dist, cut, swar)
        while total < k and cut < n_bits:
            cut += 1
            total = _count_at_most(dist, cut, swar)
        below = _count_at_most(dist, cut - 1, swar)
        while below >= k:
            cut -= 1
            total = below
            below = _count_at_most(dist, cut - 1, swar)
    else:
        hist = np.zeros(n_bits + 2, dtype=np.int64)
        for j in range(n):
            hist[dist[j]] += 1
        cut = n_bits
        cum = 0
        for b in range(n_bits + 1):
            cum += hist[b]
            if cum >= k:
                cut = b
                break
        total = 0
        for b in range(cut + 1):
            total += hist[b]
    ids = np.empty(total, dtype=np.int64)
    out = np.empty(total, dtype=np.int32)
    m = 0
    start = 0
    if swar:  # a word holds a byte <= cut iff ((x - (cut+1)*0x01..) & ~x & 0x80..) != 0 (bytes < 128)
        start = n - n % 8
        packed = dist[:start].view(np.uint64)
        lim = _LOW_BYTES * np.uint64(cut + 1)
        for w in range(packed.shape[0]):
            x = packed[w]
            if (x - lim) & ~x & _HIGH_BITS:
                for j in range(8 * w, 8 * w + 8):
                    if dist[j] <= cut:
                        ids[m] = j
                        out[m] = dist[j]
                        m += 1
    for j in range(start, n):
        if dist[j] <= cut:
            ids[m] = j
            out[m] = dist[j]
            m += 1
    return ids, out
