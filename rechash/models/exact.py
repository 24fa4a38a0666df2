"""Exact float search (the ceiling every approximate index is measured against) and popularity.

Both implement :class:`~rechash.models.base.RecommenderBase` over the ranking oracle
:func:`rechash.rank.topk.topk_rows`: every item is scored, excluded items are removed, ties
go to the smaller item id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rechash.data.embeddings import FloatEmbeddings
from rechash.data.idmap import IdMap
from rechash.data.interactions import Interactions
from rechash.models.base import Recommendations, RecommenderBase
from rechash.models.persistence import read_recommender, save_recommender
from rechash.rank.topk import topk_rows

#: users scored per dense block
BATCH = 1024


def _ids(ids: IdMap | None, n: int) -> IdMap:
    return ids if ids is not None else IdMap(np.arange(n))


def rank_dense(
    score_block, users: np.ndarray, n: int, exclude: sp.csr_matrix | None, items: np.ndarray | None
) -> Recommendations:
    """Top ``n`` of ``score_block(rows) -> (len(rows), n_items)`` dense scores for the query
    rows, ``exclude`` aligned with them, over the whitelist ``items`` when given."""
    m = len(users)
    ids = np.full((m, n), -1, dtype=np.int64)
    scores = np.full((m, n), -np.inf)
    if items is not None and exclude is not None:
        exclude = sp.csr_matrix(exclude)[:, items]
    for s in range(0, m, BATCH):
        rows = np.arange(s, min(m, s + BATCH))
        block = score_block(rows)
        if items is not None:
            block = block[:, items]
        b_ids, b_scores = topk_rows(block, n, None if exclude is None else exclude[rows])
        if items is not None:
            b_ids = np.where(b_ids >= 0, items[np.maximum(b_ids, 0)], -1)
        ids[rows], scores[rows] = b_ids, b_scores
    return Recommendations(users, ids, scores)


class FloatRecommender(RecommenderBase):
    """What every recommender over :class:`FloatEmbeddings` shares: ids from the embeddings'
    id maps (internal order when they carry none), ``seen`` training items (filtered by
    default, and the popularity of the cold-user fallback), and new users folded in as
    implicit's ``recalculate_user`` does when the embeddings carry their ALS parameters."""

    def __init__(self, embeddings: FloatEmbeddings, seen: sp.spmatrix | None = None) -> None:
        self.embeddings = embeddings
        self.user_ids = _ids(embeddings.user_ids, len(embeddings.user_factors))
        self.item_ids = _ids(embeddings.item_ids, len(embeddings.item_factors))
        self.seen = None if seen is None else sp.csr_matrix(seen)
        self.item_popularity = (
            None if self.seen is None else np.bincount(self.seen.indices, minlength=self.n_items).astype(float)
        )

    @property
    def can_fold_in(self) -> bool:
        return self.embeddings.fold_in is not None

    def _fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        return self.embeddings.fold_in_users(histories)


class ExactRecommender(FloatRecommender):
    """Brute-force maximum inner product over all items of a :class:`FloatEmbeddings`
    (ids, training items and fold-in: :class:`FloatRecommender`). ``similar_items`` /
    ``similar_users``: cosine of the factors, as implicit's ALS."""

    def __init__(self, embeddings: FloatEmbeddings, *, seen: sp.spmatrix | None = None) -> None:
        super().__init__(embeddings, seen)
        self._normed: dict[str, np.ndarray] = {}

    @property
    def index_bytes(self) -> int:
        """Bytes of the item matrix (float32), the whole serving index of exact search."""
        return int(self.embeddings.item_factors.nbytes)

    def _rank(self, users, queries, n, exclude, items) -> Recommendations:
        vectors = self.embeddings.user_factors[users] if queries is None else queries
        return rank_dense(lambda rows: vectors[rows] @ self.embeddings.item_factors.T, users, n, exclude, items)

    def _similar(self, side, ids, n, exclude, allowed):
        if side not in self._normed:
            f = self.embeddings.item_factors if side == "item" else self.embeddings.user_factors
            self._normed[side] = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        normed = self._normed[side]
        recs = rank_dense(lambda rows: normed[ids[rows]] @ normed.T, ids, n, exclude, allowed)
        return recs.items, recs.scores

    def save(self, path: str | Path) -> Path:
        """Factors, id maps, training items and ALS parameters, without pickle."""
        emb = self.embeddings
        meta = {"fold_in": None if emb.fold_in is None else dict(emb.fold_in)}
        return save_recommender(
            path, "exact", self, {"user_factors": emb.user_factors, "item_factors": emb.item_factors}, meta
        )

    @classmethod
    def load(cls, path: str | Path) -> ExactRecommender:
        saved = read_recommender(path, "exact")
        emb = FloatEmbeddings(
            saved.arrays["user_factors"],
            saved.arrays["item_factors"],
            fold_in=saved.params.get("fold_in"),
            user_ids=saved.user_ids,
            item_ids=saved.item_ids,
        )
        return cls(emb, seen=saved.seen)


class PopularityRecommender(RecommenderBase):
    """Most popular training items first (score = summed training weight), the floor arm.
    Every user, new ones included, gets the same list minus their excluded items;
    ``similar_items`` is the item, then the most popular others; no ``similar_users``."""

    def __init__(self, train: Interactions) -> None:
        self._init(
            np.asarray(train.matrix.sum(axis=0), dtype=np.float64).ravel(), train.matrix, train.user_ids, train.item_ids
        )

    def _init(self, popularity, seen, user_ids, item_ids) -> None:
        self.popularity = popularity
        self.seen = None if seen is None else sp.csr_matrix(seen)
        self.user_ids, self.item_ids = user_ids, item_ids
        self.item_popularity = (
            None if self.seen is None else np.bincount(self.seen.indices, minlength=len(popularity)).astype(float)
        )

    @property
    def index_bytes(self) -> int:
        return int(self.popularity.nbytes)

    @property
    def can_fold_in(self) -> bool:
        return True

    def _fold_in(self, histories: sp.csr_matrix) -> None:
        return None  # the list does not depend on the user

    def _rank(self, users, queries, n, exclude, items) -> Recommendations:
        return rank_dense(
            lambda rows: np.broadcast_to(self.popularity, (len(rows), self.n_items)), users, n, exclude, items
        )

    def _similar(self, side, ids, n, exclude, allowed):
        if side != "item":
            return super()._similar(side, ids, n, exclude, allowed)
        share = self.popularity / max(float(self.popularity.sum()), 1e-12)
        recs = rank_dense(lambda rows: np.broadcast_to(share, (len(rows), self.n_items)), ids, n, exclude, allowed)
        return recs.items, recs.scores

    def save(self, path: str | Path) -> Path:
        return save_recommender(path, "popularity", self, {"popularity": self.popularity}, {})

    @classmethod
    def load(cls, path: str | Path) -> PopularityRecommender:
        saved = read_recommender(path, "popularity")
        rec = cls.__new__(cls)
        rec._init(saved.arrays["popularity"], saved.seen, saved.user_ids, saved.item_ids)
        return rec
