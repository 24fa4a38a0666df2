"""The one recommender contract: implicit's ``RecommenderBase``, plus a table form in external ids.

Every recommender rechash ships implements :class:`RecommenderBase`: ``CodeRecommender``
(Hamming candidates, then a re-ranker or none), the float baselines (exact inner product,
Annoy), popularity, and a re-ranked first stage. The comparison, the demo, the offline job
and Spark call these methods and nothing else, so a number in a report is a number of the
object ``rechash candidates`` deploys.

Calling conventions:

- ``recommend(userid, user_items, N=10, filter_already_liked_items=True, filter_items=None,
  recalculate_user=False, items=None) -> (ids, scores)``, as implicit (>= 0.5) defines it:
  internal ids; ``userid`` one id (results of shape ``(N,)``) or an array (``(n, N)``);
  ``user_items`` a CSR with one row per requested user (their interactions, filtered when
  ``filter_already_liked_items``; ``None`` filters the training items the recommender was
  given as ``seen``); ``recalculate_user`` computes the users' vectors or codes from those
  rows (new users); ``items`` ranks only those items, ``filter_items`` never returns them.
  Lists have exactly ``N`` entries, padded with id -1 and score -inf when fewer items remain.
- ``similar_items(itemid, N=10, filter_items=None, items=None)`` and ``similar_users``:
  the item (user) itself first with score 1, then the most similar others, no duplicates.
- ``recommend_frame(users, k=10, history=..., ...)``: a table in external ids,
  ``user_id, item_id, rank, score, hamming`` (RecTools' ``recommend(users, dataset, k)``).

Ties are broken by rule, never by memory order: score descending, then item id ascending
(Hamming arms: distance, then the documented tie rule).

Users the model does not know (``recommend_frame``), the cold-user policy ``unknown``:
``"history"`` folds them in from their history (codes from the history encoder, or the
ALS least-squares solution of implicit's ``recalculate_user``) and falls back to
popularity when they have no usable history or the recommender cannot fold in;
``"popular"`` gives every unknown user the most popular unseen items; ``"error"`` refuses.
Fallback rows carry ``hamming`` <NA> and score = the item's share of the training
interactions (0..1, a different scale from the model's scores); the counts of each kind,
of history rows naming items the model does not know and of unknown users are in
``frame.attrs["report"]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash import columns as C
from rechash.data.idmap import IdMap, format_id
from rechash.errors import DataError
from rechash.rank.order import order_rows, pad_lists

Unknown = Literal["history", "popular", "error"]
UNKNOWN_POLICIES = ("history", "popular", "error")


@dataclass(frozen=True)
class Recommendations:
    """Top-k lists of ``users`` (internal ids, -1 for folded-in users): ``items`` /
    ``scores`` / ``hamming`` are ``(n, k)``, padded with -1 / -inf / -1."""

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    hamming: np.ndarray | None = None

    def __post_init__(self) -> None:
        users = np.asarray(self.users, dtype=np.int64)
        items = np.asarray(self.items, dtype=np.int64)
        scores = np.asarray(self.scores, dtype=np.float64)
        if items.ndim != 2 or items.shape != scores.shape or len(items) != len(users):
            raise DataError(
                f"Recommendations: items {items.shape} and scores {scores.shape} "
                f"must be (n_users, k) for {len(users)} users"
            )
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "scores", scores)
        if self.hamming is not None:
            hamming = np.asarray(self.hamming, dtype=np.int32)
            if hamming.shape != items.shape:
                raise DataError(f"Recommendations: hamming {hamming.shape} must match items {items.shape}")
            object.__setattr__(self, "hamming", hamming)

    @property
    def k(self) -> int:
        return self.items.shape[1]

    def to_frame(self, user_ids: IdMap | None = None, item_ids: IdMap | None = None) -> pd.DataFrame:
        """Tidy table ``user_id, item_id, rank, score, hamming`` (one row per non-padding entry;
        ranks 1..k in list order; ids external when the id maps are given)."""
        rows, cols = np.nonzero(self.items >= 0)
        users = self.users[rows]
        items = self.items[rows, cols]
        ham = pd.array(
            self.hamming[rows, cols] if self.hamming is not None else np.full(len(rows), pd.NA), dtype="Int32"
        )
        return pd.DataFrame(
            {
                C.USER_ID: user_ids.to_external(users) if user_ids is not None else users,
                C.ITEM_ID: item_ids.to_external(items) if item_ids is not None else items,
                C.RANK: (cols + 1).astype(np.int32),
                C.SCORE: self.scores[rows, cols],
                C.HAMMING: ham,
            },
            columns=list(C.CANDIDATE_COLUMNS),
        )


def id_rows(ids: np.ndarray | None, n_rows: int, n_cols: int) -> sp.csr_matrix | None:
    """The same id set on every one of ``n_rows`` rows, as a CSR (None passes through)."""
    if ids is None:
        return None
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    indptr = np.arange(n_rows + 1, dtype=np.int64) * len(ids)
    return sp.csr_matrix((np.ones(n_rows * len(ids), np.float32), np.tile(ids, n_rows), indptr), shape=(n_rows, n_cols))


def union_rows(*parts: sp.csr_matrix | None) -> sp.csr_matrix | None:
    """Row-wise union of CSR matrices of one shape as their nonzero positions (None skipped)."""
    present = [p for p in parts if p is not None]
    if not present:
        return None
    if len(present) == 1:  # only the positions matter: no copy
        return present[0] if sp.isspmatrix_csr(present[0]) else sp.csr_matrix(present[0])
    out = sp.csr_matrix(sum(present[1:], present[0]), dtype=np.float32)
    out.sum_duplicates()
    out.data[:] = 1.0
    return out


class RecommenderBase(ABC):
    """The recommender contract (module docstring). A subclass sets ``user_ids``,
    ``item_ids`` (:class:`~rechash.data.IdMap`), ``seen`` (users x items CSR of training
    items, or None) and ``item_popularity`` (training interactions per item), and
    implements :meth:`_rank` (and :meth:`_fold_in` when it can serve new users,
    :meth:`_similar` for the similarity lists, ``save``/``load`` for persistence)."""

    user_ids: IdMap
    item_ids: IdMap
    seen: sp.csr_matrix | None = None
    item_popularity: np.ndarray | None = None

    # ---- what a recommender implements -------------------------------------------------
    @abstractmethod
    def _rank(
        self, users: np.ndarray, queries: Any, n: int, exclude: sp.csr_matrix | None, items: np.ndarray | None
    ) -> Recommendations:
        """Top ``n`` for query rows: ``users`` internal ids (-1 for folded-in users),
        ``queries`` what :meth:`_fold_in` returned for those rows (None when every user is
        known), ``exclude`` rows aligned with ``users``, ``items`` a sorted whitelist."""

    def _fold_in(self, histories: sp.csr_matrix) -> Any:
        """Query state of new users from their history rows (CSR over internal item ids)."""
        raise DataError(f"{type(self).__name__} cannot compute new users from a history (recalculate_user)")

    @property
    def can_fold_in(self) -> bool:
        """Whether :meth:`_fold_in` is implemented (new users from their history)."""
        return type(self)._fold_in is not RecommenderBase._fold_in

    def _similar(self, side: str, ids: np.ndarray, n: int, exclude: sp.csr_matrix, items: np.ndarray | None):
        """``(ids, scores)`` of the ``n`` most similar ``side`` rows ("item" or "user") of
        each id, ``exclude`` rows aligned with ``ids`` (they exclude the id itself)."""
        raise DataError(f"{type(self).__name__} has no similar_{side}s")

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    # ---- implicit's recommend ------------------------------------------------------------
    def recommend(
        self,
        userid,
        user_items: sp.spmatrix | None = None,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items=None,
        recalculate_user: bool = False,
        items=None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """implicit's ``recommend``: ``(ids, scores)`` of shape ``(N,)`` for one user id,
        ``(len(userid), N)`` for an array; see the module docstring."""
        single = np.ndim(userid) == 0
        users = self._ids(userid, self.n_users, "userid", check_range=not recalculate_user)
        n = _positive(N, "N")
        rows = None
        if user_items is not None:
            rows = user_items if sp.isspmatrix_csr(user_items) else sp.csr_matrix(user_items)
            if rows.shape != (len(users), self.n_items):
                raise DataError(
                    f"user_items must have one row per requested user and one column per item: expected "
                    f"({len(users)}, {self.n_items}), got {rows.shape}"
                )
        whitelist = self._whitelist(filter_items, items)
        exclude = None
        if filter_already_liked_items:
            if rows is not None:
                exclude = rows
            elif self.seen is not None and not recalculate_user:
                exclude = self.seen[users]
        exclude = union_rows(exclude, id_rows(self._item_ids(filter_items, "filter_items"), len(users), self.n_items))
        if recalculate_user:
            if rows is None:
                raise DataError("recalculate_user=True needs user_items: the users' interactions to compute them from")
            recs = self._rank(np.full(len(users), -1, dtype=np.int64), self._fold_in(rows), n, exclude, whitelist)
        else:
            recs = self._rank(users, None, n, exclude, whitelist)
        ids, scores = pad_lists(recs.items, recs.scores, n)
        scores = scores.astype(np.float32)
        return (ids[0], scores[0]) if single else (ids, scores)

    # ---- similarity lists ----------------------------------------------------------------
    def similar_items(self, itemid, N: int = 10, filter_items=None, items=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``N`` items most similar to ``itemid`` (internal ids), the item itself first."""
        return self._similar_lists("item", itemid, N, filter_items, items)

    def similar_users(self, userid, N: int = 10, filter_users=None, users=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``N`` users most similar to ``userid`` (internal ids), the user itself first."""
        return self._similar_lists("user", userid, N, filter_users, users)

    def _similar_lists(self, side: str, query, N, blacklist, whitelist):
        single = np.ndim(query) == 0
        size = self.n_items if side == "item" else self.n_users
        ids = self._ids(query, size, f"{side}id")
        n = _positive(N, "N")
        allowed = self._whitelist(blacklist, whitelist, size, f"{side}s")
        banned = self._item_ids(blacklist, f"filter_{side}s", size)
        exclude = union_rows(
            sp.csr_matrix((np.ones(len(ids), np.float32), ids, np.arange(len(ids) + 1)), shape=(len(ids), size)),
            id_rows(banned, len(ids), size),
        )
        others, scores = self._similar(side, ids, n, exclude, allowed)
        others, scores = pad_lists(np.asarray(others, np.int64), np.asarray(scores, np.float64), n)
        keep_self = np.ones(len(ids), dtype=bool)
        if banned is not None:
            keep_self &= ~np.isin(ids, banned)
        if allowed is not None:
            keep_self &= np.isin(ids, allowed)
        out_ids = np.where(keep_self[:, None], np.hstack([ids[:, None], others[:, : n - 1]]), others)
        out_scores = np.where(keep_self[:, None], np.hstack([np.ones((len(ids), 1)), scores[:, : n - 1]]), scores)
        out_scores = out_scores.astype(np.float32)
        return (out_ids[0], out_scores[0]) if single else (out_ids, out_scores)

    # ---- external ids: RecTools' table form ----------------------------------------------
    def recommend_frame(
        self,
        users=None,
        k: int = 10,
        *,
        history: pd.DataFrame | Any | None = None,
        filter_seen: bool = True,
        items=None,
        filter_items=None,
        unknown: Unknown = "history",
    ) -> pd.DataFrame:
        """Top ``k`` per user in external ids: ``user_id, item_id, rank, score, hamming``.

        ``users``: external ids (default: every user the model knows); output rows keep
        their order. ``history``: a table ``user_id, item_id`` in external ids, or an
        :class:`~rechash.data.Interactions` (RecTools' ``dataset``): the source of new
        users' vectors, and items filtered out with the training items when
        ``filter_seen`` (RecTools' ``filter_viewed``). ``items`` / ``filter_items``: external
        item ids to rank only / never.
        ``unknown``: the cold-user policy (module docstring). ``frame.attrs["report"]``
        counts users by kind and the history rows that were not used.
        """
        if unknown not in UNKNOWN_POLICIES:
            raise DataError(f"unknown must be one of {', '.join(UNKNOWN_POLICIES)}, got {unknown!r}")
        n = _positive(k, "k")
        users = self.user_ids.external_ids if users is None else np.asarray(users)
        if users.ndim != 1:
            raise DataError(f"users must be a 1-D sequence of external ids, got shape {users.shape}")
        internal = self.user_ids.to_internal(users, strict=False)
        known = internal >= 0
        hist, unused = self._history_rows(history, users)
        if unknown == "error" and not known.all():
            first = users[~known][0]
            raise DataError(f"user {format_id(first)} is unknown to the model ({int((~known).sum())} unknown users)")
        whitelist = None if items is None else np.unique(self.item_ids.to_internal(np.asarray(items)))
        banned = None if filter_items is None else self.item_ids.to_internal(np.asarray(filter_items))
        exclude = id_rows(banned, len(users), self.n_items)
        if filter_seen:
            exclude = union_rows(exclude, hist)
            if self.seen is not None:
                seen_rows = sp.diags(known.astype(np.float32)) @ self.seen[np.where(known, internal, 0)]
                exclude = union_rows(exclude, sp.csr_matrix(seen_rows))
        has_history = np.diff(hist.indptr) > 0
        fold = ~known & has_history & (unknown == "history") & self.can_fold_in
        fallback = ~known & ~fold
        out_items = np.full((len(users), n), -1, dtype=np.int64)
        out_scores = np.full((len(users), n), -np.inf)
        out_ham = np.full((len(users), n), -1, dtype=np.int32)
        for rows, queries in ((np.flatnonzero(known), None), (np.flatnonzero(fold), True)):
            if not len(rows):
                continue
            ex = None if exclude is None else exclude[rows]
            if queries is None:
                recs = self._rank(internal[rows], None, n, ex, whitelist)
            else:
                recs = self._rank(np.full(len(rows), -1, dtype=np.int64), self._fold_in(hist[rows]), n, ex, whitelist)
            ids, scores = pad_lists(recs.items, recs.scores, n)
            out_items[rows], out_scores[rows] = ids, scores
            if recs.hamming is not None:
                out_ham[rows] = pad_lists(recs.hamming, recs.scores, n)[0]
        rows = np.flatnonzero(fallback)
        if len(rows):
            ex = None if exclude is None else exclude[rows]
            out_items[rows], out_scores[rows] = self.popular(n, ex, whitelist)
        frame = Recommendations(np.arange(len(users)), out_items, out_scores, out_ham).to_frame()
        pos = frame[C.USER_ID].to_numpy()
        frame[C.USER_ID] = users[pos]
        frame[C.ITEM_ID] = self.item_ids.to_external(frame[C.ITEM_ID].to_numpy())
        frame.loc[(frame[C.HAMMING] < 0).fillna(True).to_numpy(), C.HAMMING] = pd.NA
        frame = frame.reset_index(drop=True)
        frame.attrs["report"] = {
            "users": int(len(users)),
            "known": int(known.sum()),
            "from_history": int(fold.sum()),
            "popular_fallback": int(fallback.sum()),
            "history_rows_unknown_item": unused["unknown_item"],
            "history_rows_other_user": unused["other_user"],
        }
        return frame

    def popular(
        self, n: int, exclude: sp.csr_matrix | None, items: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most popular items per exclusion row (training interactions desc, id
        asc); score = the item's share of the training interactions."""
        counts = self.item_popularity
        if counts is None or not counts.any():
            raise DataError(
                f"{type(self).__name__} has no training interactions (seen=) "
                "to rank popular items for users without a history"
            )
        share = counts / counts.sum()
        order = order_rows(np.arange(len(counts)), [-counts])
        if items is not None:
            order = order[np.isin(order, items)]
        m = 1 if exclude is None else exclude.shape[0]
        ids = np.full((m, n), -1, dtype=np.int64)
        for r in range(m):
            banned = () if exclude is None else exclude.indices[exclude.indptr[r] : exclude.indptr[r + 1]]
            top = order[: n + len(banned)]
            top = top[~np.isin(top, banned)][:n]
            ids[r, : len(top)] = top
        return ids, np.where(ids >= 0, share[np.maximum(ids, 0)], -np.inf)

    # ---- helpers -------------------------------------------------------------------------
    def _history_rows(self, history, users: np.ndarray) -> tuple[sp.csr_matrix, dict[str, int]]:
        """History rows aligned with ``users`` (internal item ids) and the unused-row counts."""
        empty = sp.csr_matrix((len(users), self.n_items), dtype=np.float32)
        if history is None:
            return empty, {"unknown_item": 0, "other_user": 0}
        if hasattr(history, "to_frame") and not isinstance(history, pd.DataFrame):
            history = history.to_frame()
        for col in (C.USER_ID, C.ITEM_ID):
            if col not in history.columns:
                raise DataError(f"history table needs column {col!r}, got {list(history.columns)}")
        if not len(history):
            return empty, {"unknown_item": 0, "other_user": 0}
        pos = pd.Index(users).get_indexer(history[C.USER_ID])
        item = self.item_ids.to_internal(history[C.ITEM_ID].to_numpy(), strict=False)
        keep = (pos >= 0) & (item >= 0)
        rows = sp.csr_matrix(
            (np.ones(int(keep.sum()), np.float32), (pos[keep], item[keep])), shape=(len(users), self.n_items)
        )
        rows.sum_duplicates()
        rows.data[:] = 1.0
        return rows, {"unknown_item": int(((pos >= 0) & (item < 0)).sum()), "other_user": int((pos < 0).sum())}

    def _whitelist(self, blacklist, whitelist, size: int | None = None, what: str = "items") -> np.ndarray | None:
        if blacklist is not None and whitelist is not None:
            raise DataError(f"give filter_{what} or {what}, not both")
        return self._item_ids(whitelist, what, size)

    def _item_ids(self, ids, what: str, size: int | None = None) -> np.ndarray | None:
        if ids is None:
            return None
        return np.unique(self._ids(ids, self.n_items if size is None else size, what))

    @staticmethod
    def _ids(ids, size: int, what: str, check_range: bool = True) -> np.ndarray:
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool) and (not check_range or 0 <= ids < size):
            return np.array([ids], dtype=np.int64)  # one id: the online call's fast path
        arr = np.atleast_1d(np.asarray(ids))
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise DataError(f"{what}: expected internal integer ids, got {arr.dtype} of shape {arr.shape}")
        arr = arr.astype(np.int64)
        if check_range and arr.size and (arr.min() < 0 or arr.max() >= size):
            bad = arr[(arr < 0) | (arr >= size)][0]
            raise DataError(f"{what}: internal id {int(bad)} is outside 0..{size - 1}")
        return arr


def _positive(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"{what} must be a positive integer, got {n!r}")
    return int(n)
