"""One user's list in one compiled call: the online path of :class:`~rechash.recommend.CodeRecommender`.

A single ``recommend`` call spends most of its time outside the kernels once the catalog
is small (ml-1m: the scan is a few microseconds) and most of it in the scan once it is
large (1M items). :func:`top_one` serves both: the Hamming pool
(:func:`rechash.index._kernels.pool_one`), its scores and its order in one call, with the
same arithmetic and order rules as the batch path (:func:`rechash.rerank._dot_row`,
:func:`rechash.rerank.order_online`), so one user's list equals its row in a batch.
"""
from __future__ import annotations

import numba
import numpy as np

from rechash.index._kernels import pool_one
from rechash.rerank.base import order_online
from rechash.rerank.dot import _dot_row

#: :func:`top_one`'s ``mode``: Hamming order with item-id ties, with prior ties, re-ranked by a dot product
BY_ID, BY_PRIOR, BY_DOT = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def top_one(ct, qw, excl, pool, n, n_bits, dist, mode, prior, vector, item_floats, local_to_item):  # pragma: no cover - compiled
    """``(ids, scores, distances, nan)`` of one query's top ``n`` over the word-major codes
    ``ct``: the pool of the ``pool`` nearest items not in ``excl`` (every tie at the cut-off
    kept), scored by ``mode`` (:data:`BY_DOT`: ``<vector, item_floats[item]>``, item ``=
    local_to_item[id]`` when that map is non-empty; :data:`BY_PRIOR`: ``prior[id]``, higher
    first; :data:`BY_ID`: none), ordered as :func:`rechash.rerank.order_online`. Without a
    re-ranker the score is ``1 - 2 * hamming / B``. ``nan``: a pool score was NaN."""
    ids, d = pool_one(ct, qw, excl, pool, n_bits, dist)
    m = ids.shape[0]
    s = np.zeros(m, dtype=np.float64)
    nan = False
    if mode == BY_DOT:
        rows = ids if local_to_item.shape[0] == 0 else local_to_item[ids]
        dots = np.zeros(m, dtype=np.float32)
        _dot_row(vector, item_floats, rows, dots)
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
