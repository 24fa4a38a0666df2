"""Recommending from binary codes: exact Hamming candidates, then the light re-ranker.

:class:`CodeRecommender` is the one object behind the Python API, ``rechash candidates``,
the sharded offline job and the Spark adapter, so every path returns the same rows:

1. the user's code retrieves a candidate pool from the item codes (exact Hamming search,
   the user's seen items removed inside the scan, ties at the cut-off distance decided by
   the re-ranker's score, then item id);
2. the re-ranker (default: a dot product of the model's re-ranking floats, the ALS teacher's
   factors when the model kept them, else the towers' floats) orders the pool
   and keeps the top ``N``; without a re-ranker the Hamming order is kept and the score is
   the code similarity ``1 - 2 * hamming / B``.

Three calling conventions:

- ``recommend(users, k, exclude)`` -> :class:`~rechash.baselines.recommender.Recommendations`
  (internal ids; the comparison's Recommender protocol);
- ``recommend_implicit(userid, user_items, N, filter_already_liked_items, recalculate_user)``
  -> ``(ids, scores)`` as in implicit (``user_items`` rows belong to ``userid``);
- ``recommend_frame(users, N, history=...)`` -> a table in external ids
  (``user_id, item_id, rank, score, hamming``), RecTools style, with codes from the
  history for users the model has never seen, or a popularity fallback.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash import columns as C
from rechash.baselines.recommender import Recommendations
from rechash.candidates import CandidateGenerator, CandidatePolicy
from rechash.codes import hamming_rows, validate_packed
from rechash.data.idmap import IdMap
from rechash.errors import DataError
from rechash.index.flat import ExactIndex
from rechash.rerank import DotReranker, Reranker, rerank

Unknown = Literal["history", "popular", "error"]


class _RowScorer:
    """Adapts a user-keyed re-ranker to query rows (row r stands for user ``users[r]``)."""

    def __init__(self, reranker: Reranker, users: np.ndarray) -> None:
        self.reranker, self.users = reranker, users

    def score(self, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return self.reranker.score(self.users[rows], candidates)


class _PriorTieBreak:
    """Hamming-only tie rule: among equal distances, the larger quantized popularity first."""

    def __init__(self, prior: np.ndarray) -> None:
        self.prior = prior

    def score(self, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return self.prior[np.maximum(candidates, 0)].astype(np.float64)


def quantized_log_popularity(counts: np.ndarray) -> np.ndarray:
    """``round(255 * log1p(count) / log1p(max count))`` as uint8 (all zeros without counts)."""
    counts = np.asarray(counts, dtype=np.float64)
    top = np.log1p(counts.max(initial=0.0))
    if top == 0:
        return np.zeros(len(counts), dtype=np.uint8)
    return np.rint(255.0 * np.log1p(counts) / top).astype(np.uint8)


class CodeRecommender:
    """Top-N items for users from packed codes, re-ranked over the candidate pool only.

    ``item_codes`` / ``user_codes``: packed codes (rows = internal ids). ``item_floats`` /
    ``user_floats``: the towers' pre-sign outputs, used by the default ``"dot"`` re-ranker.
    ``reranker``: ``"dot"``, ``None`` (Hamming order only) or any :class:`Reranker` keyed
    by internal user id (an external float model, a learned scorer). ``seen``: users x
    items CSR removed from every list unless a call says otherwise (the training items).
    ``pool``: candidate policy of the Hamming stage (default: the ``max(2N, 200)``
    nearest). ``history_encoder(csr) -> (codes, floats)`` gives codes to new users.
    ``tie_rule``: order among equal Hamming distances without a re-ranker (and at the pool's
    cut-off): ``"popularity"`` (default: the training popularity of ``seen``, quantized to one
    byte per item, then item id) or ``"id"``. With 64 bits a user's top 20 usually ends
    inside a tie group of 10-20 items, so the rule matters (experiments/results/codes.md).
    """

    def __init__(
        self,
        item_codes: np.ndarray,
        *,
        user_codes: np.ndarray | None = None,
        item_floats: np.ndarray | None = None,
        user_floats: np.ndarray | None = None,
        user_ids: IdMap | None = None,
        item_ids: IdMap | None = None,
        reranker: Reranker | Literal["dot"] | None = "dot",
        seen: sp.spmatrix | None = None,
        pool: CandidatePolicy | None = None,
        history_encoder=None,
        n_threads: int | None = None,
        tie_rule: Literal["popularity", "id"] = "popularity",
    ) -> None:
        self.n_bits = validate_packed(item_codes, "item codes")
        self.index = ExactIndex.from_codes(item_codes, n_threads=n_threads)
        self.item_codes = item_codes
        self.user_codes = user_codes
        self.item_floats, self.user_floats = item_floats, user_floats
        self.item_ids = item_ids or IdMap(np.arange(len(item_codes)))
        self.user_ids = user_ids or IdMap(np.arange(0 if user_codes is None else len(user_codes)))
        if reranker == "dot" and (item_floats is None or user_floats is None):
            raise DataError("the 'dot' re-ranker needs item_floats and user_floats")
        self.reranker = reranker
        self.seen = None if seen is None else sp.csr_matrix(seen)
        self.pool = pool
        self.history_encoder = history_encoder
        self.n_threads = n_threads
        counts = np.zeros(len(item_codes)) if self.seen is None else np.bincount(self.seen.indices, minlength=len(item_codes))
        #: items by training popularity (count desc, id asc): the fallback for users without codes
        self.popular_items = np.lexsort((np.arange(len(counts)), -counts))
        self.popularity = counts
        if tie_rule not in ("popularity", "id"):
            raise DataError(f"tie_rule must be 'popularity' or 'id', got {tie_rule!r}")
        self.tie_rule = tie_rule
        #: 1 byte per item: log-popularity quantized to 0..255, the Hamming-only tie rule's prior
        self.item_prior = quantized_log_popularity(counts)
        self.index_bytes = int(item_codes.nbytes)

    @classmethod
    def from_model(cls, model, seen: sp.spmatrix | None = None, **options) -> "CodeRecommender":
        """From a fitted :class:`~rechash.model.TwinTowerHasher`: its codes, id maps and re-ranking
        floats (:meth:`~rechash.model.TwinTowerHasher.rerank_floats`: the ALS teacher's factors
        when the model kept them, else the towers' floats)."""
        encoder = model.encode_new_users if getattr(model.towers.user, "use_history", False) else None
        user_floats, item_floats = model.rerank_floats()
        return cls(
            model.encode_items(),
            user_codes=model.encode_users(),
            item_floats=item_floats,
            user_floats=user_floats,
            user_ids=model.user_ids,
            item_ids=model.item_ids,
            seen=seen,
            history_encoder=encoder,
            **options,
        )

    @classmethod
    def from_floats(
        cls,
        user_floats: np.ndarray,
        item_floats: np.ndarray,
        *,
        bits: int = 64,
        binarizer=None,
        seen: sp.spmatrix | None = None,
        **options,
    ) -> "CodeRecommender":
        """Binary codes for float embeddings a team already has (e.g. implicit ALS factors,
        a two-tower model), so candidates come from that model's geometry and the same
        floats re-rank them. ``binarizer``: any fitted-or-unfitted transformer with
        ``fit`` and ``encode`` (default: :class:`~rechash.model.itq.ITQ` fitted jointly on
        users and items, without centring, which preserves dot products)."""
        from rechash.model.itq import ITQ

        binarizer = binarizer or ITQ(bits, center=False)
        if not hasattr(binarizer, "projection_"):
            binarizer.fit(np.vstack([user_floats, item_floats]))
        return cls(
            binarizer.encode(item_floats),
            user_codes=binarizer.encode(user_floats),
            item_floats=item_floats,
            user_floats=user_floats,
            seen=seen,
            **options,
        )

    # ---- core: query rows -> top N -----------------------------------------------------
    def _pool(self, n: int) -> CandidatePolicy:
        return self.pool or CandidatePolicy.top_k(max(2 * n, 200))

    def _scorer(self, users: np.ndarray, floats: np.ndarray | None):
        if self.reranker is None:
            return None
        if self.reranker == "dot":
            if floats is None:
                floats = self.user_floats[users]
            return DotReranker(floats, self.item_floats)
        return _RowScorer(self.reranker, users)

    def rank_rows(
        self,
        codes: np.ndarray,
        n: int,
        exclude: sp.csr_matrix | None = None,
        users: np.ndarray | None = None,
        floats: np.ndarray | None = None,
    ) -> Recommendations:
        """Top ``n`` for query rows: ``codes`` (packed), ``exclude`` rows aligned with them,
        ``users`` their internal ids (-1 for new users), ``floats`` their float vectors."""
        m = len(codes)
        users = np.full(m, -1, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
        scorer = self._scorer(users, floats)
        tie_break = scorer if scorer is not None or self.tie_rule == "id" else _PriorTieBreak(self.item_prior)
        gen = CandidateGenerator(self.index, seen=exclude, tie_break=tie_break, n_threads=self.n_threads)
        cands = gen.generate(codes, np.arange(m), self._pool(n))
        pool_ids, pool_dist = cands.padded(max(n, int(cands.counts.max(initial=0))))
        if scorer is None:
            ids = pool_ids[:, :n]
            ham = pool_dist[:, :n]
            scores = np.where(ids >= 0, 1.0 - 2.0 * ham / self.n_bits, -np.inf)
        else:
            ids, scores = rerank(scorer, np.arange(m), pool_ids, n)
            rows = np.repeat(np.arange(m), n).reshape(m, n)
            ham = np.where(ids >= 0, hamming_rows(codes[rows.ravel()], self.item_codes[np.maximum(ids, 0).ravel()]).reshape(m, n), -1)
        return Recommendations(users, ids, scores, ham)

    # ---- internal ids (comparison protocol) --------------------------------------------
    def recommend(self, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> Recommendations:
        """Top ``k`` for known users (internal ids); ``exclude`` defaults to ``seen``."""
        users = self._known(users)
        exclude = self.seen if exclude is None else sp.csr_matrix(exclude)
        rows = None if exclude is None else exclude[users]
        recs = self.rank_rows(self.user_codes[users], k, rows, users)
        return Recommendations(users, recs.items, recs.scores, recs.hamming)

    def _known(self, users) -> np.ndarray:
        if self.user_codes is None:
            raise DataError("this recommender has no user codes; pass histories instead")
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if users.size and (users.min() < 0 or users.max() >= len(self.user_codes)):
            raise DataError(f"internal user ids must lie in 0..{len(self.user_codes) - 1}")
        return users

    # ---- implicit convention ------------------------------------------------------------
    def recommend_implicit(
        self,
        userid,
        user_items: sp.spmatrix | None,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items: np.ndarray | None = None,
        recalculate_user: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """implicit's ``recommend``: ``(ids, scores)``, shape ``(N,)`` for one user or ``(n, N)``.

        ``user_items`` holds one row per requested user (implicit >= 0.5); its items are
        filtered when ``filter_already_liked_items``; ``recalculate_user`` encodes the users
        from those rows (new users) instead of their trained codes. Padding: -1 / -inf.
        """
        single = np.isscalar(userid)
        users = np.atleast_1d(np.asarray(userid, dtype=np.int64))
        rows = None
        if user_items is not None:
            rows = sp.csr_matrix(user_items)
            if rows.shape[0] != len(users):
                raise DataError(f"user_items must have one row per user ({len(users)}), got {rows.shape[0]}")
        exclude = rows if (filter_already_liked_items and rows is not None) else None
        if filter_items is not None:
            extra = sp.csr_matrix(
                (np.ones(len(users) * len(filter_items)), (np.repeat(np.arange(len(users)), len(filter_items)),
                 np.tile(np.asarray(filter_items), len(users)))), shape=(len(users), len(self.item_codes)))
            exclude = extra if exclude is None else (exclude + extra).tocsr()
        if recalculate_user:
            if rows is None or self.history_encoder is None:
                raise DataError("recalculate_user needs user_items and a model with a history encoder")
            codes, floats = self.history_encoder(rows)
            recs = self.rank_rows(codes, N, exclude, None, floats)
        else:
            users = self._known(users)
            recs = self.rank_rows(self.user_codes[users], N, exclude, users)
        ids, scores = recs.items, recs.scores.astype(np.float32)
        return (ids[0], scores[0]) if single else (ids, scores)

    # ---- external ids (tables) ----------------------------------------------------------
    def recommend_frame(
        self,
        users=None,
        N: int = 10,
        *,
        history: pd.DataFrame | None = None,
        filter_seen: bool = True,
        unknown: Unknown = "history",
    ) -> pd.DataFrame:
        """Top ``N`` per user in external ids: ``user_id, item_id, rank, score, hamming``.

        ``users``: external ids (default: every user the model knows). ``history``: a table
        ``user_id, item_id`` (external ids) of interactions to filter out in addition to the
        training items, and the source of codes for users the model does not know.
        ``unknown``: for such users, ``"history"`` (codes from their history, else the
        popularity fallback), ``"popular"`` (most popular unseen items) or ``"error"``.
        Output rows keep the order of ``users``; ``hamming`` is <NA> for fallback rows.
        """
        if unknown not in ("history", "popular", "error"):
            raise DataError(f"unknown must be 'history', 'popular' or 'error', got {unknown!r}")
        users = self.user_ids.external_ids if users is None else np.asarray(users)
        n_items = len(self.item_codes)
        internal = self.user_ids.to_internal(users, strict=False)
        hist_rows = sp.csr_matrix((len(users), n_items), dtype=np.float32)
        if history is not None and len(history):
            for col in (C.USER_ID, C.ITEM_ID):
                if col not in history.columns:
                    raise DataError(f"history table needs column {col!r}, got {list(history.columns)}")
            pos = pd.Index(users).get_indexer(history[C.USER_ID])
            items = self.item_ids.to_internal(history[C.ITEM_ID], strict=False)
            keep = (pos >= 0) & (items >= 0)
            hist_rows = sp.csr_matrix((np.ones(keep.sum(), np.float32), (pos[keep], items[keep])), shape=(len(users), n_items))
            hist_rows.sum_duplicates()
            hist_rows.data[:] = 1.0
        known = internal >= 0
        if unknown == "error" and not known.all():
            raise DataError(f"user {users[~known][0]!r} is unknown to the model ({int((~known).sum())} unknown users)")
        exclude = hist_rows
        if self.seen is not None:
            seen_rows = self.seen[np.where(known, internal, 0)]
            seen_rows = sp.diags(known.astype(np.float32)) @ seen_rows
            exclude = (exclude + seen_rows).tocsr()
        exclude.data[:] = 1.0
        if not filter_seen:
            exclude = None
        items = np.full((len(users), N), -1, dtype=np.int64)
        scores = np.full((len(users), N), -np.inf)
        ham = np.full((len(users), N), -1, dtype=np.int32)
        fallback = np.zeros(len(users), dtype=bool)
        groups = [np.flatnonzero(known)]
        new = np.flatnonzero(~known)
        has_history = np.diff(hist_rows.indptr)[new] > 0
        if unknown == "history" and self.history_encoder is not None:
            groups.append(new[has_history])
            fallback[new[~has_history]] = True
        else:
            fallback[new] = True
        for g, rows in enumerate(groups):
            if not len(rows):
                continue
            ex = None if exclude is None else exclude[rows]
            if g == 0:
                recs = self.rank_rows(self.user_codes[internal[rows]], N, ex, internal[rows])
            else:
                codes, floats = self.history_encoder(hist_rows[rows])
                recs = self.rank_rows(codes, N, ex, None, floats)
            items[rows], scores[rows], ham[rows] = recs.items, recs.scores, recs.hamming
        for r in np.flatnonzero(fallback):
            banned = set() if exclude is None else set(exclude.indices[exclude.indptr[r] : exclude.indptr[r + 1]])
            top = [i for i in self.popular_items[: N + len(banned)] if i not in banned][:N]
            items[r, : len(top)] = top
            scores[r, : len(top)] = self.popularity[top]
        frame = Recommendations(np.arange(len(users)), items, scores, ham).to_frame()
        rows = frame[C.USER_ID].to_numpy()
        frame[C.USER_ID] = users[rows]
        frame[C.ITEM_ID] = self.item_ids.to_external(frame[C.ITEM_ID].to_numpy())
        frame.loc[fallback[rows] | (frame[C.HAMMING] < 0), C.HAMMING] = pd.NA
        return frame.reset_index(drop=True)
