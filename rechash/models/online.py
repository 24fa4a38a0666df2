"""One user's list in one compiled call: the online path of :class:`~rechash.models.code.CodeRecommender`.

A single ``recommend`` call spends most of its time outside the kernels once the catalog
is small (thousands of items: the scan is short) and most of it in the scan once it is
large (millions of items). :func:`top_one` serves both: the Hamming pool
(:func:`rechash.index.kernels.pool_one`), its scores and its order in one call, with the
same arithmetic and order rules as the batch path (:func:`rechash.rerank.dot.dot_row`,
:func:`order_online`), so one user's list equals its row in a batch.
"""

from __future__ import annotations

import numba
import numpy as np

from rechash.index.kernels import pool_one
from rechash.rerank.dot import dot_row

#: :func:`top_one`'s ``mode``: Hamming order with item-id ties, with prior ties, re-ranked by a dot product
BY_ID, BY_PRIOR, BY_DOT = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def top_one(
    ct, qw, excl, pool, n, n_bits, dist, mode, prior, vector, item_floats, local_to_item
):  # pragma: no cover - compiled
    """``(ids, scores, distances, nan)`` of one query's top ``n`` over the word-major codes
    ``ct``: the pool of the ``pool`` nearest items not in ``excl`` (every tie at the cut-off
    kept), scored by ``mode`` (:data:`BY_DOT`: ``<vector, item_floats[item]>``, item ``=
    local_to_item[id]`` when that map is non-empty; :data:`BY_PRIOR`: ``prior[id]``, higher
    first; :data:`BY_ID`: none), ordered as :func:`order_online`. Without a
    re-ranker the score is ``1 - 2 * hamming / B``. ``nan``: a pool score was NaN."""
    ids, d = pool_one(ct, qw, excl, pool, n_bits, dist)
    m = ids.shape[0]
    s = np.zeros(m, dtype=np.float64)
    nan = False
    if mode == BY_DOT:
        rows = ids if local_to_item.shape[0] == 0 else local_to_item[ids]
        dots = np.zeros(m, dtype=np.float32)
        dot_row(vector, item_floats, rows, dots)
        for i in range(m):
            s[i] = dots[i]
            nan |= np.isnan(dots[i])
    elif mode == BY_PRIOR:
        for i in range(m):
            s[i] = prior[ids[i]]
    top = order_online(d, s, pool, n, mode == BY_DOT)
    k = top.shape[0]
    out_ids = np.empty(k, dtype=np.int64)
    out_scores = np.empty(k, dtype=np.float64)
    out_d = np.empty(k, dtype=np.int32)
    for i in range(k):
        j = top[i]
        out_ids[i] = ids[j]
        out_d[i] = d[j]
        out_scores[i] = s[j] if mode == BY_DOT else 1.0 - 2.0 * d[j] / n_bits
    return out_ids, out_scores, out_d, nan


@numba.njit(cache=True, nogil=True)
def order_online(dist, scores, pool, n, by_score):  # pragma: no cover - compiled
    """Positions of one user's top ``n`` in a pool given in item-id order: the ``pool``
    best by (distance, score desc, id), then by (score desc, id) when ``by_score`` (a
    re-ranker), else kept in that Hamming order. Stable sorts carry the id tie rule.

    With a re-ranker one sort does: walking the pool by (score desc, id), every item
    nearer than the cut-off distance is in the pool and the first ``pool - #nearer``
    items at the cut-off are the ones (distance, score desc, id) would keep."""
    by_s = np.argsort(-scores, kind="mergesort")
    if not by_score:
        return by_s[np.argsort(dist[by_s], kind="mergesort")][: min(pool, n)]
    cut = dist.max() if dist.shape[0] else 0
    quota = pool
    for i in range(dist.shape[0]):
        quota -= dist[i] < cut
    out = np.empty(min(n, dist.shape[0]), dtype=np.int64)
    k = 0
    for i in by_s:
        if k == out.shape[0]:
            break
        if dist[i] == cut:
            if quota == 0:
                continue
            quota -= 1
        out[k] = i
        k += 1
    return out[:k]
