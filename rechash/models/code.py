"""Recommending from binary codes: exact Hamming candidates, then the light re-ranker.

:class:`CodeRecommender` implements the one recommender contract
(:class:`~rechash.models.base.RecommenderBase`: implicit's ``recommend`` /
``similar_items`` / ``similar_users`` and the table form ``recommend_frame``), and it is
the one object behind the Python API, ``rechash candidates``, the offline job, Spark, the
comparison's rechash arms and the demo, so every path returns the same rows:

1. the user's code retrieves a candidate pool from the item codes (exact Hamming search,
   excluded items removed inside the scan; the pool is the ``max(2N, 200)`` nearest, or
   the ``pool`` policy), every item tied at the pool's cut-off distance kept;
2. the re-ranker scores that pool once: the ``"dot"`` default is the dot product of the
   model's re-ranking floats (the ALS teacher's factors when the model kept them, else the
   towers' floats); the same scores decide which items tied at the cut-off enter the pool
   and, with item id, the final order of the top ``N``;
3. without a re-ranker (``reranker=None``) the Hamming order is kept: distance, then
   ``tie_rule`` (the items' training popularity quantized to one byte, or item id), and
   the score is the code similarity ``1 - 2 * hamming / B``.

Hamming distances travel with the pool to the output; nothing is scored twice.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

from rechash.codes.bits import validate_packed
from rechash.data.idmap import IdMap
from rechash.errors import DataError, ModelError
from rechash.index.candidates import CandidateGenerator, CandidatePolicy
from rechash.index.flat import ExactIndex
from rechash.models.base import Recommendations, RecommenderBase
from rechash.models.online import BY_DOT, BY_ID, BY_PRIOR, order_online, top_one
from rechash.models.persistence import read_recommender, save_recommender
from rechash.rank.order import order_pool, top_by_score
from rechash.rerank import CodesOnlyReranker, Reranker, dot_rows
from rechash.rerank.pool import PoolRanker, PoolUsers


def quantized_log_popularity(counts: np.ndarray) -> np.ndarray:
    """``round(255 * log1p(count) / log1p(max count))`` as uint8 (all zeros without counts)."""
    counts = np.asarray(counts, dtype=np.float64)
    top = np.log1p(counts.max(initial=0.0))
    if top == 0:
        return np.zeros(len(counts), dtype=np.uint8)
    return np.rint(255.0 * np.log1p(counts) / top).astype(np.uint8)


@functools.lru_cache(maxsize=64)
def _default_pool(k: int) -> CandidatePolicy:
    return CandidatePolicy.top_k(k)


_NO_IDS = np.empty(0, dtype=np.int64)
_NO_PRIOR = np.empty(0, dtype=np.uint8)
_NO_VECTOR = np.empty(0, dtype=np.float32)
_NO_FLOATS = np.empty((0, 0), dtype=np.float32)

#: the batch path's block of query rows, and the pool entries (rows x widest pool) a block may hold
RANK_BLOCK = 4096
POOL_ENTRIES = 1 << 24

#: query batches up to this size take the online path (:meth:`CodeRecommender._rank_online`)
ONLINE_USERS = 4


class FoldInEncoder:
    """New users of a float model binarized by :meth:`CodeRecommender.from_floats`: the ALS
    least-squares vector of implicit's ``recalculate_user`` (:meth:`FloatEmbeddings.fold_in_users`),
    then the binarizer's codes of that vector."""

    def __init__(self, embeddings, binarizer) -> None:
        self.embeddings, self.binarizer = embeddings, binarizer

    def __call__(self, histories: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        floats = self.embeddings.fold_in_users(histories)
        return self.binarizer.encode(floats), floats


class CodeRecommender(RecommenderBase):
    """Top-N items for users from packed codes, re-ranked over the candidate pool only.

    ``item_codes`` / ``user_codes``: packed codes (rows = internal ids). ``item_floats`` /
    ``user_floats``: the re-ranking floats of the default ``"dot"`` re-ranker.
    ``reranker``: ``"dot"``, ``"learned"`` (``ranker``, a fitted
    :class:`~rechash.rerank.pool.PoolRanker`, over the pool with ``user_towers``, the towers'
    float user vectors, and ``user_floats`` as its teacher scores), ``None`` (Hamming order
    only) or any :class:`Reranker` keyed by internal user id (an external float model, a
    codes-only or scikit-learn scorer; such a re-ranker cannot score users folded in from a
    history). ``seen``: users x items CSR of
    training items, filtered unless a call says otherwise, and the popularity of the
    fallback and of the tie rule. ``pool``: candidate policy of the Hamming stage
    (default: the ``max(2N, 200)`` nearest). ``history_encoder(csr) -> (codes, floats)``
    gives codes (and re-ranking floats) to new users. ``tie_rule``: order among equal
    Hamming distances without a re-ranker: ``"popularity"`` (default: the training
    popularity quantized to one byte per item, then item id) or ``"id"``. With 64 bits a
    user's top 20 usually ends inside a tie group of 10-20 items, so the rule matters
    (experiments/results/codes.md). ``n_threads``: the scan's threads (default: the
    :mod:`rechash.threads` setting).
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
        reranker: Reranker | Literal["dot", "learned"] | None = "dot",
        seen: sp.spmatrix | None = None,
        pool: CandidatePolicy | None = None,
        history_encoder=None,
        n_threads: int | None = None,
        tie_rule: Literal["popularity", "id"] = "popularity",
        ranker: PoolRanker | None = None,
        user_towers: np.ndarray | None = None,
    ) -> None:
        self.n_bits = validate_packed(item_codes, "item codes")
        if user_codes is not None and validate_packed(user_codes, "user codes") != self.n_bits:
            raise DataError("user and item codes have different bit counts")
        self.index = ExactIndex.from_codes(item_codes, n_threads=n_threads)
        self.item_codes, self.user_codes = item_codes, user_codes
        self.item_floats = None if item_floats is None else np.ascontiguousarray(item_floats, dtype=np.float32)
        self.user_floats = None if user_floats is None else np.ascontiguousarray(user_floats, dtype=np.float32)
        self.item_ids = item_ids or IdMap(np.arange(len(item_codes)))
        self.user_ids = user_ids or IdMap(np.arange(0 if user_codes is None else len(user_codes)))
        if len(self.item_ids) != len(item_codes) or (user_codes is not None and len(self.user_ids) != len(user_codes)):
            raise DataError("id maps must have one id per code row")
        if reranker == "dot" and (self.item_floats is None or self.user_floats is None):
            raise DataError("the 'dot' re-ranker needs item_floats and user_floats")
        if reranker == "learned":
            if ranker is None or ranker.booster is None or len(ranker.item_codes) != len(item_codes):
                raise DataError(
                    "the 'learned' re-ranker needs a fitted ranker over the same items (a model fitted with "
                    "validation data whose learned re-ranker was kept)"
                )
            if ranker.item_teacher is not None and self.user_floats is None:
                raise DataError("the 'learned' re-ranker scores teacher floats: give the users' as user_floats")
            if user_codes is not None and (user_towers is None or len(user_towers) != len(user_codes)):
                raise DataError("the 'learned' re-ranker needs user_towers, one row per user code")
        elif reranker is not None and reranker != "dot" and not callable(getattr(reranker, "score", None)):
            raise DataError(
                f"reranker must be 'dot', 'learned', None or an object with .score(users, candidates), got {reranker!r}"
            )
        self.reranker = reranker
        self.ranker = ranker if reranker == "learned" else None
        self.user_towers = None if user_towers is None else np.ascontiguousarray(user_towers, dtype=np.float32)
        self.seen = None if seen is None else sp.csr_matrix(seen)
        if self.seen is not None and self.seen.shape != (len(self.user_ids), len(item_codes)):
            raise DataError(
                f"seen must be users x items {(len(self.user_ids), len(item_codes))}, got {self.seen.shape}"
            )
        self.pool = pool
        self.history_encoder = history_encoder
        self.n_threads = n_threads
        if tie_rule not in ("popularity", "id"):
            raise DataError(f"tie_rule must be 'popularity' or 'id', got {tie_rule!r}")
        self.tie_rule = tie_rule
        counts = (
            np.zeros(len(item_codes))
            if self.seen is None
            else np.bincount(self.seen.indices, minlength=len(item_codes))
        )
        self.item_popularity = counts.astype(np.float64)
        #: 1 byte per item: log-popularity quantized to 0..255, the Hamming-only tie rule's prior
        self.item_prior = quantized_log_popularity(counts)
        self.model = None  # the TwinTowerHasher, when built by from_model
        self._user_index: ExactIndex | None = None

    @property
    def index_bytes(self) -> int:
        """Bytes of the serving state over the catalog: item codes, plus the re-ranker's item table."""
        extra = 0
        if self.reranker == "dot":
            extra = self.item_floats.nbytes
        elif self.reranker == "learned":
            extra = self.ranker.index_bytes
        elif self.reranker is not None:
            shared = isinstance(self.reranker, CodesOnlyReranker) and np.array_equal(
                self.reranker.item_codes, self.item_codes
            )
            extra = (
                0 if shared else int(getattr(self.reranker, "index_bytes", 0) or 0)
            )  # codes-only reads the same codes
        return int(self.item_codes.nbytes + extra)

    @property
    def can_fold_in(self) -> bool:
        """A history encoder, and a re-ranker that can score its users (not one keyed by user id)."""
        return self.history_encoder is not None and self.reranker in ("dot", "learned", None)

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def from_model(
        cls, model, seen: sp.spmatrix | None = None, refined: bool | None = None, **options
    ) -> CodeRecommender:
        """From a fitted :class:`~rechash.hasher.twin_tower.TwinTowerHasher`: its codes, id maps,
        re-ranking floats (:meth:`~rechash.hasher.twin_tower.TwinTowerHasher.rerank_floats`: the ALS
        teacher's factors when the model kept them, else the towers' floats) and training
        items (``seen`` defaults to ``model.seen_``, stored with the model). User codes:
        ``refined`` (None: when ``reranker=None``) takes the model's refined codes, tuned for a
        Hamming-only top-``eval_k`` list; otherwise the towers' codes, whose deeper Hamming pool
        holds more of the relevant items (:mod:`rechash.hasher.refine`); users folded in from a
        history always get refined codes (when the fit kept a refinement). ``reranker`` defaults to
        ``"auto"``: ``"learned"`` when the fit kept a learned re-ranker (``model.ranker_``; the
        decision is ``training_run()["ranker"]``), else ``"dot"``."""
        reranker = options.pop("reranker", "auto")
        ranker = getattr(model, "ranker_", None)
        if reranker == "auto":
            reranker = "dot" if ranker is None else "learned"
        if reranker == "learned" and ranker is None:
            raise DataError(
                "this model has no learned re-ranker (fitted without validation data or with "
                "--no-learned-rerank, or validation refused it: see training_run.ranker in config.json)"
            )
        if refined is None:
            refined = reranker is None
        encoder = None
        if getattr(model.towers.user, "use_history", False):
            # new users' codes are always refined when the fit kept a refinement: the history path's own
            # signs draw a far weaker pool for them (experiments/results/new_users.md)
            encoder = functools.partial(model.encode_new_users, refined=True)
        user_floats, item_floats = model.rerank_floats()
        rec = cls(
            model.encode_items(),
            user_codes=model.encode_users(refined=refined),
            item_floats=item_floats,
            user_floats=user_floats,
            user_ids=model.user_ids,
            item_ids=model.item_ids,
            seen=getattr(model, "seen_", None) if seen is None else seen,
            history_encoder=encoder,
            reranker=reranker,
            ranker=ranker if reranker == "learned" else None,
            user_towers=model.user_floats() if reranker == "learned" else None,
            **options,
        )
        rec.model = model
        return rec

    def add_items(self, ids, features, scale: str = "exposure") -> CodeRecommender:
        """This recommender with items unseen at training appended from their side features
        (:meth:`~rechash.hasher.twin_tower.TwinTowerHasher.add_items`, ``scale`` as there: codes by a
        forward pass of the item tower, no retraining); only for a recommender built by
        :meth:`from_model` (or loaded from a model directory). The model is extended in place
        and :meth:`save` writes the new items; the returned recommender serves them with the
        same options (its ``seen`` gains empty columns). Use the returned object: this one
        keeps the old catalog."""
        if self.model is None:
            raise ModelError(
                "add_items needs a recommender built from a TwinTowerHasher (from_model or a model directory)"
            )
        self.model.add_items(ids, features, scale=scale)
        n_new = len(self.model.item_ids) - self.n_items
        seen = (
            None
            if self.seen is None
            else sp.hstack([self.seen, sp.csr_matrix((self.n_users, n_new), dtype=self.seen.dtype)], format="csr")
        )
        return type(self).from_model(
            self.model,
            seen=seen,
            reranker=self.reranker,
            pool=self.pool,
            n_threads=self.n_threads,
            tie_rule=self.tie_rule,
        )

    @classmethod
    def from_floats(
        cls,
        embeddings,
        item_floats: np.ndarray | None = None,
        *,
        bits: int = 64,
        binarizer=None,
        seen: sp.spmatrix | None = None,
        fold_in: dict | None = None,
        **options,
    ) -> CodeRecommender:
        """Binary codes for float embeddings a team already has (implicit ALS factors, a
        two-tower model), so candidates come from that model's geometry and the same floats
        re-rank them. ``embeddings``: a :class:`~rechash.data.embeddings.FloatEmbeddings` (its
        id maps and ALS parameters travel with it) or the user factor array with
        ``item_floats``. ``binarizer``: a fitted or unfitted transformer with ``fit`` and
        ``encode`` (default :class:`~rechash.codes.binarizers.ITQ`, fitted on users and items
        together, without centring, which preserves dot products). New users are folded in
        from their history by ALS least squares, exactly as implicit's ``recalculate_user``,
        with the embeddings' ALS parameters, ``fold_in={"regularization", "alpha"}``, or
        implicit's ALS defaults (0.01, 1.0) when neither is given; then binarized."""
        from rechash.codes.binarizers import ITQ
        from rechash.data.embeddings import FloatEmbeddings

        if not isinstance(embeddings, FloatEmbeddings):
            if item_floats is None:
                raise DataError("from_floats needs FloatEmbeddings, or user and item float arrays")
            embeddings = FloatEmbeddings(np.asarray(embeddings), np.asarray(item_floats))
        elif item_floats is not None:
            raise DataError("give FloatEmbeddings or two arrays, not both")
        params = fold_in or embeddings.fold_in or {"regularization": 0.01, "alpha": 1.0}
        embeddings = FloatEmbeddings(
            embeddings.user_factors,
            embeddings.item_factors,
            fold_in=dict(params),
            user_ids=embeddings.user_ids,
            item_ids=embeddings.item_ids,
        )
        binarizer = binarizer or ITQ(bits, center=False)
        if not hasattr(binarizer, "projection_"):
            binarizer.fit(np.vstack([embeddings.user_factors, embeddings.item_factors]))
        rec = cls(
            binarizer.encode(embeddings.item_factors),
            user_codes=binarizer.encode(embeddings.user_factors),
            item_floats=embeddings.item_factors,
            user_floats=embeddings.user_factors,
            user_ids=embeddings.user_ids,
            item_ids=embeddings.item_ids,
            seen=seen,
            history_encoder=FoldInEncoder(embeddings, binarizer),
            **options,
        )
        return rec

    # ---- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save without pickle. A recommender built by :meth:`from_model` saves its model
        directory (what ``rechash fit`` writes: towers, codes, id maps, training items,
        teacher); one built by :meth:`from_floats` saves codes, floats, id maps, training
        items, the binarizer and the fold-in parameters. Both load with :meth:`load` and
        run with ``rechash candidates PATH``. Serving options (re-ranker, pool, tie rule)
        are chosen at load, as ``rechash candidates`` options are."""
        if self.model is not None:
            return self.model.save(path)
        encoder = self.history_encoder
        if encoder is not None and not isinstance(encoder, FoldInEncoder):
            raise ModelError(
                "this recommender's history encoder cannot be saved; build it with from_model or from_floats"
            )
        if self.reranker not in ("dot", None):
            raise ModelError(f"a custom re-ranker ({type(self.reranker).__name__}) is not saved; pass it again at load")
        arrays = {
            "item_codes": self.item_codes,
            "user_codes": self.user_codes,
            "item_floats": self.item_floats,
            "user_floats": self.user_floats,
        }
        meta: dict = {"bits": self.n_bits}
        extra = {}
        if isinstance(encoder, FoldInEncoder):
            meta["fold_in"] = dict(encoder.embeddings.fold_in)
            meta["binarizer"] = type(encoder.binarizer).__name__
            extra["binarizer.npz"] = encoder.binarizer.save
        arrays = {k: v for k, v in arrays.items() if v is not None}
        return save_recommender(path, "code", self, arrays, meta, extra)

    @classmethod
    def load(cls, path: str | Path, **options) -> CodeRecommender:
        """The recommender that ``rechash candidates PATH`` runs: from a ``rechash fit``
        model directory (:meth:`from_model`) or a directory written by :meth:`save`.
        ``options`` (``reranker``, ``pool``, ``tie_rule``, ``n_threads``, ``seen``) as in
        the constructor."""
        path = Path(path)
        if not (path / "recommender.json").is_file():
            from rechash.hasher.twin_tower import TwinTowerHasher

            return cls.from_model(TwinTowerHasher.load(path), **options)
        saved = read_recommender(path, "code")
        a = saved.arrays
        encoder = None
        if "binarizer" in saved.params:
            from rechash.codes import binarizers
            from rechash.data.embeddings import FloatEmbeddings

            binarizer = getattr(binarizers, saved.params["binarizer"]).load(path / "binarizer.npz")
            emb = FloatEmbeddings(a["user_floats"], a["item_floats"], fold_in=saved.params["fold_in"])
            encoder = FoldInEncoder(emb, binarizer)
        options.setdefault("seen", saved.seen)
        if options.get("reranker", "dot") == "auto":  # a saved recommender has no learned re-ranker
            options["reranker"] = "dot"
        return cls(
            a["item_codes"],
            user_codes=a.get("user_codes"),
            item_floats=a.get("item_floats"),
            user_floats=a.get("user_floats"),
            user_ids=saved.user_ids,
            item_ids=saved.item_ids,
            history_encoder=encoder,
            **options,
        )

    # ---- the contract ----------------------------------------------------------------------
    def _fold_in(self, histories: sp.csr_matrix):
        if not self.can_fold_in:
            return super()._fold_in(histories)
        codes, floats = self.history_encoder(histories)
        codes, floats = (
            np.ascontiguousarray(codes),
            None if floats is None else np.ascontiguousarray(floats, dtype=np.float32),
        )
        if self.reranker == "learned":  # the ranker's user side: the towers' floats and the history too
            return codes, floats, self.model.encode_history(histories)[1], sp.csr_matrix(histories)
        return codes, floats

    def _policy(self, n: int) -> CandidatePolicy:
        return self.pool or _default_pool(max(2 * n, 200))

    def _prior_tie(self, items: np.ndarray | None = None):
        """The Hamming-only tie rule over (local ids of) ``items``: the quantized popularity
        prior, higher first; None for id ties."""
        if self.tie_rule == "id":
            return None
        prior = self.item_prior if items is None else self.item_prior[items]
        return lambda rows, cands: prior[np.maximum(cands, 0)].astype(np.float64)

    def _scorer(self, users: np.ndarray, floats: np.ndarray | None, items: np.ndarray | None):
        """``score(rows, candidates)`` over query rows and local candidate ids, or None."""
        glob = (lambda c: c) if items is None else (lambda c: np.where(c >= 0, items[np.maximum(c, 0)], -1))
        if self.reranker is None:
            return self._prior_tie(items)
        if self.reranker == "dot":
            vectors = floats if floats is not None else self.user_floats[users]
            return lambda rows, cands: dot_rows(vectors[rows], self.item_floats, glob(cands))
        if self.reranker == "learned":  # ``floats``: the rows' PoolUsers (:meth:`_pool_users`)
            return lambda rows, cands: self.ranker.score(floats.take(rows), glob(cands))
        if (users < 0).any():
            raise DataError(f"the re-ranker {type(self.reranker).__name__} cannot score users folded in from a history")
        return lambda rows, cands: self.reranker.score(users[rows], glob(cands))

    def _rank(self, users, queries, n, exclude, items) -> Recommendations:
        if queries is None and self.user_codes is None:
            raise DataError("this recommender has no user codes; pass histories (recalculate_user) instead")
        codes, floats = (self.user_codes[users], None) if queries is None else queries[:2]
        if self.reranker == "learned":
            floats = self._pool_users(users, codes, queries)
        m = len(users)
        index = self.index
        if items is not None:  # a whitelist: the same search over those items' codes only
            index = ExactIndex.from_codes(self.item_codes[items], n_threads=self.n_threads)
            if exclude is not None:
                exclude = sp.csr_matrix(exclude)[:, items]
        policy = self._policy(n)
        if policy.mode == "top_k" and m <= ONLINE_USERS:  # a user or a few: one pass each, the top n already
            ids, scores, dist = self._rank_online(index, codes, users, floats, items, policy.k, n, exclude)
        else:
            ids, scores, dist = self._rank_blocks(index, codes, users, floats, items, policy, n, exclude)
        if items is not None:
            ids = np.where(ids >= 0, items[np.maximum(ids, 0)], -1)
        return Recommendations(users, ids, scores, dist)

    def _pool_users(self, users: np.ndarray, codes: np.ndarray, queries) -> PoolUsers:
        """The learned re-ranker's user side of the query rows: known users' from the stored
        arrays and ``seen``, folded-in users' from :meth:`_fold_in`."""
        teacher = self.ranker.item_teacher is not None
        if queries is not None:
            _, floats, towers, history = queries
            return PoolUsers(codes, towers, floats if teacher else None, history)
        history = (
            self.seen[users] if self.seen is not None else sp.csr_matrix((len(users), self.n_items), dtype=np.float32)
        )
        return PoolUsers(codes, self.user_towers[users], self.user_floats[users] if teacher else None, history)

    def _rank_blocks(self, index, codes, users, floats, items, policy: CandidatePolicy, n: int, exclude):
        """The batch path over the blocks of query rows of :func:`_in_blocks` (sized so that a
        collapsed model's tied pools fit in memory)."""

        def rank(block: slice):
            scorer = self._scorer(users[block], None if floats is None else floats[block], items)
            ex = None if exclude is None else exclude[block]
            return self._rank_batch(index, codes[block], scorer, policy, n, ex)

        return _in_blocks(len(codes), n, index.ntotal, rank)

    def _pool(self, index, codes, scorer, policy: CandidatePolicy, exclude):
        """The one batch entry point of every Hamming pool (lists, :meth:`candidates`,
        similarity lists): ``(dist, ids, scores, width)`` of each query row's pool under
        ``policy`` without ``exclude``'s rows, ordered by (distance, ``scorer`` descending, id)
        (``scores`` its values, zeros without one), -1 padded; ``width`` is the widest pool
        before the cut to ``policy``'s size. Lists of up to :data:`ONLINE_USERS` rows take the
        one-row path instead (:meth:`_rank_online`), which orders the same way."""
        m = len(codes)
        if policy.mode == "top_k":  # one select, every item tied at the cut kept, scored once
            dist, ids, _ = index.select(codes, policy.k, exclude=exclude, ties=scorer is not None)
            found = ids.shape[1]
            if scorer is None:
                scores = np.zeros(ids.shape)
            else:
                dist, ids, scores = order_pool(dist, ids, scorer(np.arange(m), ids), policy.k)
        else:
            gen = CandidateGenerator(
                index, seen=exclude, tie_break=scorer, n_threads=self.n_threads, count_filtered=False
            )
            ids, dist, scores = gen.generate(codes, np.arange(m), policy).padded_scored()
            found = ids.shape[1]
        return dist, ids, scores, found

    def _hamming_lists(self, index, codes, tie, n: int, exclude) -> tuple[np.ndarray, np.ndarray]:
        """``(dist, ids)`` of each query row's ``n`` nearest items in Hamming order (``tie``
        between equal distances, else id), through :meth:`_pool` in the blocks of
        :func:`_in_blocks` (a pool keeps every item tied at its cut-off)."""

        def pool(block: slice):
            scorer = None if tie is None else (lambda rows, cands: tie(rows + block.start, cands))
            ex = None if exclude is None else exclude[block]
            dist, ids, scores, found = self._pool(index, codes[block], scorer, CandidatePolicy.top_k(n), ex)
            return ids[:, :n], scores[:, :n], dist[:, :n], found

        ids, _, dist = _in_blocks(len(codes), n, index.ntotal, pool)
        return dist, ids

    def _rank_batch(self, index, codes, scorer, policy: CandidatePolicy, n: int, exclude):
        """``(ids, scores, distances, pool width)`` of each query row's top ``n`` by the batch kernels."""
        dist, ids, scores, width = self._pool(index, codes, scorer, policy, exclude)
        if self.reranker is None:
            ids, dist = ids[:, :n], dist[:, :n]
            return ids, np.where(ids >= 0, 1.0 - 2.0 * dist / self.n_bits, -np.inf), dist, width
        ids, scores, dist = top_by_score(ids, scores, n, dist)
        return ids, scores, dist, width

    def _rank_online(self, index, codes, users, floats, items, pool: int, n: int, exclude):
        """``(ids, scores, distances)`` of each query row's top ``n``, one row at a time on
        the calling thread: the dot re-ranker and the Hamming order run as one compiled call
        (:func:`rechash.models.online.top_one`); another re-ranker scores the pool of
        :meth:`ExactIndex.pool_one` once. Both order as the batch path does."""
        m = len(codes)
        out_ids = np.full((m, n), -1, dtype=np.int64)
        out_scores = np.full((m, n), -np.inf)
        out_dist = np.full((m, n), -1, dtype=np.int32)
        prior, vectors, scorer = _NO_PRIOR, None, None
        if self.reranker == "dot":
            mode = BY_DOT
            vectors = floats if floats is not None else self.user_floats[users]
        elif self.reranker is None:
            mode = BY_ID if self.tie_rule == "id" else BY_PRIOR
            prior = self.item_prior if items is None else self.item_prior[items]
        else:
            mode, scorer = None, self._scorer(users, floats, items)
        local_to_item = _NO_IDS if items is None else items
        for r in range(m):
            banned = None if exclude is None else exclude.indices[exclude.indptr[r] : exclude.indptr[r + 1]]
            if mode is None:
                ids, dist = index.pool_one(codes[r], pool, banned)
                s = np.asarray(scorer(np.array([r]), ids[None, :])[0], dtype=np.float64)
                nan = np.isnan(s).any()
                top = order_online(dist, s, pool, n, True)
                ids, s, dist = ids[top], s[top], dist[top]
            else:
                vector = vectors[r] if mode == BY_DOT else _NO_VECTOR
                q, excl = index.one_query(codes[r], banned)
                ids, s, dist, nan = top_one(
                    index.words,
                    q,
                    excl,
                    pool,
                    n,
                    self.n_bits,
                    index.scratch(),
                    mode,
                    prior,
                    vector,
                    self.item_floats if mode == BY_DOT else _NO_FLOATS,
                    local_to_item,
                )
            if nan:
                raise DataError("the re-ranker returned NaN scores")
            k = len(ids)
            out_ids[r, :k], out_scores[r, :k], out_dist[r, :k] = ids, s, dist
        return out_ids, out_scores, out_dist

    def candidates(self, users: np.ndarray, n: int, exclude: sp.csr_matrix | None = None) -> Recommendations:
        """The Hamming pool of known ``users`` (internal ids): the ``n`` nearest items in
        Hamming order without ``exclude``'s (indexed by internal user id; None: nothing
        excluded, as :func:`rechash.evaluation.compare.top_lists`)."""
        users = self._ids(users, self.n_users, "users")
        if exclude is not None and exclude.shape[1] != self.n_items:
            raise DataError(
                f"candidates: exclude has {exclude.shape[1]} item columns, the model has {self.n_items} items"
            )
        rows = None if exclude is None else sp.csr_matrix(exclude)[users]
        dist, ids = self._hamming_lists(self.index, self.user_codes[users], self._prior_tie(), n, rows)
        return Recommendations(users, ids, np.where(ids >= 0, 1.0 - 2.0 * dist / self.n_bits, -np.inf), dist)

    def _similar(self, side, ids, n, exclude, allowed):
        """Hamming order between codes of one side (distance, then the tie rule for items or
        id for users); score ``1 - 2 * hamming / B``."""
        if side == "item":
            codes, index, tie = self.item_codes, self.index, self._prior_tie(allowed)
        else:
            if self.user_codes is None:
                raise DataError("this recommender has no user codes")
            if self._user_index is None:
                self._user_index = ExactIndex.from_codes(self.user_codes, n_threads=self.n_threads)
            codes, index, tie = self.user_codes, self._user_index, None
        if allowed is not None:
            index, exclude = ExactIndex.from_codes(codes[allowed], n_threads=self.n_threads), exclude[:, allowed]
        dist, out = self._hamming_lists(index, codes[ids], tie, n, exclude)
        if allowed is not None:
            out = np.where(out >= 0, allowed[np.maximum(out, 0)], -1)
        return out, np.where(out >= 0, 1.0 - 2.0 * dist / self.n_bits, -np.inf)


def _in_blocks(m: int, n: int, n_items: int, rank) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, scores, distances)`` of ``m`` query rows, ``n`` columns (-1 / -inf / -1 padded),
    from ``rank(block) -> (ids, scores, distances, pool width)`` over blocks of rows. A pool
    keeps every item tied at its cut-off, so one block's arrays are rows x its widest pool: a
    collapsed model (many equal codes) ties thousands of items per user. The first block
    assumes the worst width (the whole catalog), later ones size themselves by the widest pool
    seen, within :data:`POOL_ENTRIES` entries and :data:`RANK_BLOCK` rows."""
    out_ids, out_scores = np.full((m, n), -1), np.full((m, n), -np.inf)
    out_dist = np.full((m, n), -1, dtype=np.int32)
    start, width = 0, max(n_items, 1)
    while start < m:
        block = slice(start, min(m, start + int(np.clip(POOL_ENTRIES // width, 1, RANK_BLOCK))))
        ids, scores, dist, pool_width = rank(block)
        k = ids.shape[1]
        out_ids[block, :k], out_scores[block, :k], out_dist[block, :k] = ids, scores, dist
        width, start = max(pool_width, 1), block.stop
    return out_ids, out_scores, out_dist


#: saved kind -> the class that loads it (``recommender.json``'s ``kind``)
KINDS = {
    "code": "rechash.models.code:CodeRecommender",
    "exact": "rechash.models.exact:ExactRecommender",
    "popularity": "rechash.models.exact:PopularityRecommender",
    "annoy": "rechash.models.annoy:AnnoyRecommender",
}


def load_recommender(path: str | Path) -> RecommenderBase:
    """Any saved recommender, or a ``rechash fit`` model directory as the
    :class:`CodeRecommender` that ``rechash candidates`` runs."""
    import importlib

    path = Path(path)
    if not (path / "recommender.json").is_file():
        return CodeRecommender.load(path)
    kind = read_recommender(path).kind
    if kind not in KINDS:
        raise ModelError(f"{path}: unknown recommender kind {kind!r}")
    module, _, name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name).load(path)
