"""Annoy over float item embeddings: the approximate float stack rechash is compared against.

Metrics (``metric=``):

- ``"mips"`` (default): maximum inner product through the augmented-dimension transform of
  Bachrach et al. (RecSys 2014). Every item ``x`` becomes ``[x, sqrt(M^2 - |x|^2)]`` with
  ``M`` the largest item norm, every query ``q`` becomes ``[q, 0]``; then
  ``|q' - x'|^2 = |q|^2 + M^2 - 2 <q, x>``, so Euclidean nearest neighbours in d+1
  dimensions are exactly the largest inner products. The index is Annoy ``"euclidean"``.
- ``"dot"``: Annoy's built-in ``"dot"`` metric (Annoy applies the same transform inside).
- ``"angular"``: plain cosine similarity of the raw vectors (ignores item norms, so it is
  *not* the dot-product ranking of the model; offered because many stacks serve it).

Returned scores are recomputed exactly from the float vectors (inner product, or cosine
for ``"angular"``), and each list is sorted by score descending, then item id ascending.
Excluded (seen) items are filtered by over-fetching ``k + |seen|`` neighbours and dropping
the seen ones, so a user always gets ``k`` items when the catalog allows.
``search_k`` is Annoy's search budget (nodes inspected; ``-1`` means
``n_trees * n_requested``); ``n_trees`` trades build time and memory for accuracy.
Builds are deterministic for ``seed`` (``AnnoyIndex.set_seed``, single-threaded build).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rechash.data.embeddings import FloatEmbeddings
from rechash.errors import DataError, require
from rechash.models.base import Recommendations
from rechash.models.exact import ExactRecommender, FloatRecommender, rank_dense
from rechash.models.persistence import read_recommender, save_recommender
from rechash.rank.order import order_rows

ANNOY_METRICS = ("mips", "dot", "angular")
_ANNOY_NAME = {"mips": "euclidean", "dot": "dot", "angular": "angular"}


def mips_augment(items: np.ndarray) -> tuple[np.ndarray, float]:
    """Bachrach et al.'s item transform ``[x, sqrt(M^2 - |x|^2)]``; returns ``(augmented, M)``."""
    items = np.asarray(items, dtype=np.float64)
    sq = np.einsum("ij,ij->i", items, items)
    max_sq = float(sq.max(initial=0.0))
    extra = np.sqrt(np.maximum(max_sq - sq, 0.0))
    return np.hstack([items, extra[:, None]]).astype(np.float32), float(np.sqrt(max_sq))


class AnnoyItemIndex:
    """An Annoy forest over item vectors with exact re-scoring and seen-item filtering."""

    def __init__(
        self,
        item_vectors: np.ndarray,
        metric: str = "mips",
        n_trees: int = 10,
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        annoy = require("annoy", "baselines", "The Annoy baseline")
        if metric not in ANNOY_METRICS:
            raise DataError(f"Annoy metric must be one of {ANNOY_METRICS}, got {metric!r}")
        items = np.asarray(item_vectors, dtype=np.float32)
        if items.ndim != 2 or len(items) == 0:
            raise DataError(f"Annoy: expected a non-empty (items, d) array, got shape {items.shape}")
        if n_trees < 1:
            raise DataError(f"Annoy: n_trees must be >= 1, got {n_trees}")
        self.metric, self.n_trees, self.seed = metric, int(n_trees), int(seed)
        self.items = np.ascontiguousarray(items)
        stored = mips_augment(items)[0] if metric == "mips" else self.items
        start = time.perf_counter()
        index = annoy.AnnoyIndex(stored.shape[1], _ANNOY_NAME[metric])
        index.set_seed(self.seed)
        for i, row in enumerate(stored):
            index.add_item(i, row.tolist())
        index.build(self.n_trees, n_jobs=n_jobs)
        self.build_seconds = time.perf_counter() - start
        # Annoy's save() writes the forest and re-opens it memory-mapped, the way it is
        # served; the file size is the index's footprint (vectors + trees).
        self._tmp = tempfile.TemporaryDirectory(prefix="rechash-annoy-")
        self.path = os.path.join(self._tmp.name, "items.ann")
        index.save(self.path)
        self._opened(index)

    def _opened(self, index) -> None:
        self.index_bytes = os.path.getsize(self.path)
        self._index = index
        self._norms = np.maximum(np.linalg.norm(self.items, axis=1), 1e-12)

    @classmethod
    def open(cls, path: str | Path, item_vectors: np.ndarray, metric: str, n_trees: int, seed: int) -> AnnoyItemIndex:
        """A forest saved by Annoy (``items.ann``, Annoy's own format, memory-mapped)."""
        annoy = require("annoy", "baselines", "The Annoy baseline")
        self = cls.__new__(cls)
        self.metric, self.n_trees, self.seed = metric, int(n_trees), int(seed)
        self.items = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.build_seconds = 0.0
        self.path = str(path)
        index = annoy.AnnoyIndex(self.items.shape[1] + (metric == "mips"), _ANNOY_NAME[metric])
        if not index.load(self.path):  # pragma: no cover - annoy raises on its own
            raise DataError(f"{path}: unreadable Annoy index")
        self._opened(index)
        return self

    @property
    def n_items(self) -> int:
        return len(self.items)

    def _query_vector(self, q: np.ndarray) -> list[float]:
        return (np.append(q, 0.0) if self.metric == "mips" else q).tolist()

    def search(
        self,
        queries: np.ndarray,
        k: int,
        search_k: int = -1,
        exclude: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top ``k`` items for each query row -> ``(ids int64, scores float64)``.

        ``exclude[i]`` (item ids) are never returned for query ``i``. Padding: -1 / -inf.
        """
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.items.shape[1]:
            raise DataError(f"Annoy search: queries must be (q, {self.items.shape[1]}), got {queries.shape}")
        if k <= 0:
            raise DataError(f"Annoy search: k must be positive, got {k}")
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores = np.full((len(queries), k), -np.inf)
        get = self._index.get_nns_by_vector
        for r, q in enumerate(queries):
            seen = exclude[r] if exclude is not None else None
            n = min(k + (0 if seen is None else len(seen)), self.n_items)
            ids = np.asarray(get(self._query_vector(q), n, search_k), dtype=np.int64)
            if seen is not None and len(seen):
                ids = ids[~np.isin(ids, seen)]
            scores = self.items[ids] @ q
            if self.metric == "angular":
                scores = scores / (self._norms[ids] * max(float(np.linalg.norm(q)), 1e-12))
            order = order_rows(ids, [-scores], k)
            out_ids[r, : len(order)] = ids[order]
            out_scores[r, : len(order)] = scores[order]
        return out_ids, out_scores


class AnnoyRecommender(FloatRecommender):
    """Users' float vectors queried against an :class:`AnnoyItemIndex` at a given ``search_k``.

    Ids, training items and fold-in as :class:`~rechash.models.exact.ExactRecommender` (new users
    folded in by ALS least squares, then queried). ``items=`` whitelists are ranked
    exactly over the whitelist (a forest over the whole catalog does not restrict to a
    subset); ``similar_items`` queries the forest with the item's vector (approximate) and
    orders what it finds by cosine, as the exact recommender scores; ``similar_users`` is
    exact cosine (the forest indexes items only).
    """

    def __init__(
        self, embeddings: FloatEmbeddings, index: AnnoyItemIndex, search_k: int = -1, *, seen: sp.spmatrix | None = None
    ) -> None:
        if embeddings.user_factors.shape[1] != index.items.shape[1]:
            raise DataError(
                f"AnnoyRecommender: user vectors {embeddings.user_factors.shape} do not match items {index.items.shape}"
            )
        super().__init__(embeddings, seen)
        self.index = index
        self.search_k = int(search_k)

    @classmethod
    def build(
        cls,
        embeddings: FloatEmbeddings,
        metric: str = "mips",
        n_trees: int = 10,
        search_k: int = -1,
        seed: int = 0,
        *,
        seen: sp.spmatrix | None = None,
    ) -> AnnoyRecommender:
        """Build the item index of ``embeddings`` and serve its users."""
        return cls(embeddings, AnnoyItemIndex(embeddings.item_factors, metric, n_trees, seed), search_k, seen=seen)

    def with_search_k(self, search_k: int) -> AnnoyRecommender:
        """The same index queried with another budget (for a ``search_k`` sweep)."""
        return AnnoyRecommender(self.embeddings, self.index, search_k, seen=self.seen)

    @property
    def index_bytes(self) -> int:
        return self.index.index_bytes

    @property
    def build_seconds(self) -> float:
        return self.index.build_seconds

    def _rank(self, users, queries, n, exclude, items) -> Recommendations:
        vectors = self.embeddings.user_factors[users] if queries is None else queries
        if items is not None:
            return rank_dense(lambda rows: vectors[rows] @ self.index.items.T, users, n, exclude, items)
        seen = (
            None
            if exclude is None
            else [exclude.indices[exclude.indptr[r] : exclude.indptr[r + 1]] for r in range(len(users))]
        )
        ids, scores = self.index.search(vectors, n, self.search_k, seen)
        return Recommendations(users, ids, scores)

    def _similar(self, side, ids, n, exclude, allowed):
        if side != "item":  # the forest indexes items only: users by exact cosine
            return ExactRecommender(self.embeddings)._similar(side, ids, n, exclude, allowed)
        vectors = self.index.items[ids]
        if allowed is not None:
            recs = rank_dense(lambda rows: vectors[rows] @ self.index.items.T, ids, n, exclude, allowed)
            return recs.items, recs.scores
        seen = [exclude.indices[exclude.indptr[r] : exclude.indptr[r + 1]] for r in range(len(ids))]
        found, _ = self.index.search(vectors, n, self.search_k, seen)
        normed = self.index.items / self.index._norms[:, None]  # cosine, as the exact recommender scores
        cos = np.where(found >= 0, np.einsum("rcd,rd->rc", normed[np.maximum(found, 0)], normed[ids]), -np.inf)
        order = order_rows(found, [-cos])
        return np.take_along_axis(found, order, axis=1), np.take_along_axis(cos, order, axis=1)

    def save(self, path: str | Path) -> Path:
        """Factors, id maps, training items and the forest (Annoy's own file), no pickle."""
        emb, ix = self.embeddings, self.index
        meta = {
            "fold_in": None if emb.fold_in is None else dict(emb.fold_in),
            "metric": ix.metric,
            "n_trees": ix.n_trees,
            "seed": ix.seed,
            "search_k": self.search_k,
        }
        return save_recommender(
            path,
            "annoy",
            self,
            {"user_factors": emb.user_factors, "item_factors": emb.item_factors},
            meta,
            extra={"items.ann": lambda f: shutil.copyfile(ix.path, f)},
        )

    @classmethod
    def load(cls, path: str | Path) -> AnnoyRecommender:
        saved = read_recommender(path, "annoy")
        p = saved.params
        emb = FloatEmbeddings(
            saved.arrays["user_factors"],
            saved.arrays["item_factors"],
            fold_in=p.get("fold_in"),
            user_ids=saved.user_ids,
            item_ids=saved.item_ids,
        )
        index = AnnoyItemIndex.open(Path(path) / "items.ann", emb.item_factors, p["metric"], p["n_trees"], p["seed"])
        return cls(emb, index, p["search_k"], seen=saved.seen)
