"""The learned pool re-ranker: LightGBM over each user's Hamming pool, trained on validation.

A :class:`PoolRanker` scores the items of a user's Hamming pool with a gradient-boosted
ranking model over features a production re-ranker uses, each computed over the pool only:

- ``teacher``: the ALS teacher's dot product, ``teacher_gap`` (the row's best minus this one)
  and ``teacher_rank`` (rank of the item in the pool by that score, 0 first);
- ``towers`` / ``towers_rank``: the towers' float dot product ``<h_u, h_i>``;
- ``codes_only`` / ``codes_only_rank``: the user's floats against the item's +-1 bits;
- ``hamming`` / ``hamming_rank``: the Hamming distance of the user and item codes;
- per item-item model (``knn``: cosine item-kNN, implicit's ``CosineRecommender``; ``ease``:
  EASE on catalogs small enough for its dense solve), ``NAME`` and ``NAME_rank``: the model's
  score of the item from the user's training items, ``history @ W``, ``W`` keeping the
  :data:`ITEM_NEIGHBOURS` largest weights per item;
- ``log_item_popularity`` and ``log_user_activity``: ``log1p`` of training interactions.

Feature groups whose source is missing (no teacher) are left out; :attr:`PoolRanker.features`
names the columns in order, and a saved model whose names differ is refused at load.

Training (:func:`fit_pool_ranker`) uses validation interactions only: the validation users
are split by seed into a fitting part and a held-out part (``holdout`` share); the model is
fitted on the first with LightGBM's early stopping on the held-out part's loss, and the
result is kept only when its held-out Recall@K beats the dot re-ranker's over the same pools.
The pool is the one serving uses: the ``pool`` nearest unseen items with every item tied at
the cut-off distance (:meth:`rechash.index.flat.ExactIndex.select` with ``ties=True``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rechash.codes.bits import hamming_rows, to_signs
from rechash.errors import DataError, ModelError
from rechash.rank.order import order_rows
from rechash.rerank.dot import dot_rows
from rechash.rerank.trees import Trees

logger = logging.getLogger(__name__)

#: the Hamming pool the ranker is trained on (the serving default for lists of up to 100 items)
TRAIN_POOL = 200
#: neighbours per item kept of each item-item model
ITEM_NEIGHBOURS = 100
#: EASE's dense item x item solve is used while the catalog has at most this many items (its
#: cost grows as n^3 and its memory as n^2); larger catalogs get item-kNN only
EASE_MAX_ITEMS = 8192
#: EASE's ridge, as multiples of the mean diagonal of X^T X (the mean item popularity): picked on validation
EASE_RIDGE_SCALES = (1.0, 3.0, 10.0, 30.0)
#: LightGBM parameters of :func:`fit_pool_ranker` (the seed and threads are added per call)
#: (pointwise ``binary`` rather than ``lambdarank``: the comparison is in experiments/results/rerank.md)
LGB_PARAMS = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.9,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}
#: the most boosting rounds, and rounds without held-out improvement before stopping
MAX_ROUNDS, PATIENCE = 1000, 50
#: the most validation users whose pools are drawn (a fixed sample beyond), and the most of them
#: with a validation item in their pool that the ranker is fitted on (a fixed sample beyond: at
#: 200 pool rows per user, the rows and so LightGBM's time grow with it; the refinement and early
#: stopping score at most as many validation users)
MAX_USERS, MAX_FIT_USERS = 100_000, 10_000
#: rows of (users x pool) one feature block may hold
FEATURE_ROWS = 1 << 20


@dataclass(frozen=True)
class PoolUsers:
    """The user side of the features, one row per query user: packed ``codes`` (the pool's),
    the towers' relaxed floats ``towers`` ``(m, B)``, the teacher's floats ``teacher``
    ``(m, d)`` or None, and ``history`` (``(m, n_items)`` CSR of training items)."""

    codes: np.ndarray
    towers: np.ndarray
    teacher: np.ndarray | None
    history: sp.csr_matrix

    def take(self, rows) -> PoolUsers:
        return PoolUsers(
            self.codes[rows],
            self.towers[rows],
            None if self.teacher is None else self.teacher[rows],
            self.history[rows],
        )

    __getitem__ = take


def _ranks(values: np.ndarray, cands: np.ndarray, descending: bool) -> np.ndarray:
    """Rank of each pool entry in its row (0 = best), ties by item id, so a rank does not depend
    on the order the pool comes in (the batch and the one-user paths order it differently);
    padding is ranked last."""
    order = order_rows(cands, [-values if descending else values])
    out = np.empty(values.shape, dtype=np.float32)
    np.put_along_axis(out, order, np.arange(values.shape[1], dtype=np.float32)[None, :].repeat(len(values), 0), axis=1)
    return out


def _top_per_row(matrix: np.ndarray | sp.spmatrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest entries of each row (CSR float32), the rest dropped."""
    dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    k = min(k, dense.shape[1])
    cols = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dense, cols, axis=1)
    out = sp.csr_matrix(
        (vals.ravel().astype(np.float32), cols.ravel(), np.arange(0, dense.size + 1, k)[: len(dense) + 1]),
        shape=dense.shape,
    )
    out.eliminate_zeros()
    out.sort_indices()
    return out


def item_knn(train: sp.csr_matrix, k: int = ITEM_NEIGHBOURS) -> sp.csr_matrix:
    """Item x item cosine similarities, the ``k`` nearest per item (implicit's ``CosineRecommender``):
    ``history @ knn`` scores an item by its similarity to the user's items."""
    import warnings

    from implicit.nearest_neighbours import CosineRecommender

    model = CosineRecommender(K=k)
    with warnings.catch_warnings():  # implicit converts its own transpose to CSR and says so
        warnings.simplefilter("ignore")
        model.fit(sp.csr_matrix(train, dtype=np.float32), show_progress=False)
    return sp.csr_matrix(model.similarity, dtype=np.float32)


def item_ease(train: sp.csr_matrix, ridge: float, k: int = ITEM_NEIGHBOURS) -> sp.csr_matrix:
    """EASE (Steck 2019): ``B = I - P / diag(P)``, ``P = (X^T X + ridge I)^-1``, zero diagonal, the
    ``k`` largest weights into each item kept (``history @ B`` scores the items)."""
    x = sp.csr_matrix(train, dtype=np.float64)
    x.data[:] = 1.0
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += ridge
    p = np.linalg.inv(gram)
    b = p / -np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return _top_per_row(b.T, k).T.tocsr()


def _item_item_scores(history: sp.csr_matrix, weights: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
    """``(history @ weights)[r, items[r, c]]`` as float32, a dense block of rows at a time (reading
    single entries of the sparse product is several times slower once it is dense-ish)."""
    out = np.empty(items.shape, dtype=np.float32)
    step = max(1, FEATURE_ROWS * 16 // max(1, weights.shape[1]))
    for s in range(0, len(items), step):
        dense = (history[s : s + step] @ weights).toarray()
        out[s : s + step] = np.take_along_axis(dense, items[s : s + step], axis=1)
    return out


class PoolRanker:
    """Scores ``(user, pool item)`` pairs with a LightGBM ranking model (module docstring).

    Item tables: packed ``item_codes``, the towers' ``item_towers`` floats, the teacher's
    ``item_teacher`` factors (or None), training ``popularity`` counts and ``item_item``, named
    item x item CSR models (``history @ matrix`` scores an item: item-kNN, EASE). ``booster``: the
    fitted model's :class:`~rechash.rerank.trees.Trees` (None until :func:`fit_pool_ranker`)."""

    def __init__(
        self,
        item_codes: np.ndarray,
        item_towers: np.ndarray,
        item_teacher: np.ndarray | None,
        popularity: np.ndarray,
        item_item: dict[str, sp.csr_matrix],
        booster=None,
    ) -> None:
        n = len(item_codes)
        for what, arr in (("item_towers", item_towers), ("item_teacher", item_teacher), ("popularity", popularity)):
            if arr is not None and len(arr) != n:
                raise DataError(f"PoolRanker: {what} has {len(arr)} rows for {n} items")
        for name, m in item_item.items():
            if not name.isidentifier() or m.shape != (n, n):
                raise DataError(f"PoolRanker: item-item model {name!r} must be named by an identifier and {n} x {n}")
        self.item_codes = np.ascontiguousarray(item_codes)
        self.item_towers = np.ascontiguousarray(item_towers, dtype=np.float32)
        self.item_signs = to_signs(self.item_codes)
        self.item_teacher = None if item_teacher is None else np.ascontiguousarray(item_teacher, dtype=np.float32)
        self.popularity = np.asarray(popularity, dtype=np.float32)
        self.log_popularity = np.log1p(self.popularity)
        self.item_item = {name: sp.csr_matrix(m, dtype=np.float32) for name, m in item_item.items()}
        self.booster = None
        if booster is not None:
            self.set_booster(booster)

    @property
    def features(self) -> list[str]:
        """The feature columns this ranker computes, in order (see the module docstring)."""
        teacher = ["teacher", "teacher_gap", "teacher_rank"] if self.item_teacher is not None else []
        pairs = [f for name in self.item_item for f in (name, f"{name}_rank")]
        return [
            *teacher,
            "towers",
            "towers_rank",
            "codes_only",
            "codes_only_rank",
            "hamming",
            "hamming_rank",
            *pairs,
            "log_item_popularity",
            "log_user_activity",
        ]

    @property
    def index_bytes(self) -> int:
        """Bytes of the item tables the ranker keeps beyond the item codes."""
        sim = sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in self.item_item.values())
        teacher = 0 if self.item_teacher is None else self.item_teacher.nbytes
        return int(self.item_towers.nbytes + teacher + self.log_popularity.nbytes + sim)

    def set_booster(self, booster) -> None:
        """Attach a fitted booster; refused when its feature names are not :attr:`features`."""
        names = list(booster.feature_names)
        if names != self.features:
            raise ModelError(
                f"the re-ranker model's features {names} do not match the features this model computes {self.features}"
            )
        self.booster = booster

    def extended(self, item_codes: np.ndarray, item_towers: np.ndarray, item_teacher: np.ndarray | None) -> PoolRanker:
        """This ranker over a catalog grown at its end (items added after the fit): the new items
        have no training interactions (popularity 0, no item-item weights); the same booster."""
        n, old = len(item_codes), len(self.popularity)
        if n < old:
            raise DataError(f"PoolRanker.extended: {n} items, fewer than the {old} it was fitted over")
        grown = {
            name: sp.block_diag([m, sp.csr_matrix((n - old, n - old))], format="csr")
            for name, m in self.item_item.items()
        }
        popularity = np.concatenate([self.popularity, np.zeros(n - old, np.float32)])
        return PoolRanker(item_codes, item_towers, item_teacher, popularity, grown, self.booster)

    def feature_matrix(self, users: PoolUsers, cands: np.ndarray) -> np.ndarray:
        """``(m, C, F)`` float32 features of the pool ``cands`` (``(m, C)`` item ids, -1 padded;
        padding entries hold zeros)."""
        cands = np.asarray(cands, dtype=np.int64)
        valid = cands >= 0
        items = np.maximum(cands, 0)
        cols: list[np.ndarray] = []
        if self.item_teacher is not None:
            if users.teacher is None:
                raise DataError("PoolRanker: this ranker uses teacher scores but the users have no teacher floats")
            t = dot_rows(users.teacher, self.item_teacher, cands)
            best = np.max(np.where(valid, t, -np.inf), axis=1, keepdims=True)
            cols += [t, np.where(np.isfinite(best), best, 0.0) - t, _ranks(t, cands, True)]
        tw = dot_rows(users.towers, self.item_towers, cands)
        co = dot_rows(users.towers, self.item_signs, cands)
        q = np.repeat(users.codes, cands.shape[1], axis=0)
        ham = hamming_rows(q, self.item_codes[items.ravel()]).reshape(cands.shape).astype(np.float32)
        cols += [tw, _ranks(tw, cands, True), co, _ranks(co, cands, True), ham, _ranks(ham, cands, False)]
        history = sp.csr_matrix(users.history, dtype=np.float32)
        for m in self.item_item.values():
            scores = _item_item_scores(history, m, items)
            cols += [scores, _ranks(scores, cands, True)]
        activity = np.log1p(np.diff(history.indptr)).astype(np.float32)
        cols += [self.log_popularity[items], np.broadcast_to(activity[:, None], cands.shape)]
        out = np.stack(cols, axis=-1).astype(np.float32, copy=False)
        out[~valid] = 0.0
        return out

    def score(self, users: PoolUsers, cands: np.ndarray) -> np.ndarray:
        """``(m, C)`` float64 scores of the pool (higher first; padding entries -inf)."""
        if self.booster is None:
            raise ModelError("PoolRanker: no fitted model (fit_pool_ranker)")
        cands = np.asarray(cands, dtype=np.int64)
        out = np.full(cands.shape, -np.inf)
        step = max(1, FEATURE_ROWS // max(1, cands.shape[1]))
        for s in range(0, len(cands), step):
            block = cands[s : s + step]
            x = self.feature_matrix(users.take(slice(s, s + step)), block)
            pred = self.booster.predict(x.reshape(-1, x.shape[-1])).reshape(block.shape)
            out[s : s + step] = np.where(block >= 0, pred, -np.inf)
        return out

    # ---- persistence: arrays plus the booster as LightGBM's text model (no pickle) -------------
    def state(self) -> tuple[dict[str, np.ndarray], str]:
        """``(arrays, model text)`` to save: the popularity counts and item-item models the
        features read (the code, float and teacher tables belong to the model), and the booster."""
        if self.booster is None:
            raise ModelError("PoolRanker: no fitted model to save")
        arrays = {"popularity": self.popularity}
        for name, m in self.item_item.items():
            arrays |= {
                f"{name}.indptr": m.indptr.astype(np.int64),
                f"{name}.indices": m.indices.astype(np.int32),
                f"{name}.data": m.data.astype(np.float32),
            }
        return arrays, self.booster.text

    @classmethod
    def from_state(
        cls,
        item_codes: np.ndarray,
        item_towers: np.ndarray,
        item_teacher: np.ndarray | None,
        arrays: dict[str, np.ndarray],
        text: str,
        source: str,
    ) -> PoolRanker:
        """The ranker :meth:`state` saved, over the model's item tables; a missing or malformed
        array, a booster that is not LightGBM's text model, or one whose features differ from
        those these tables give, raise :class:`~rechash.errors.ModelError` naming ``source``."""
        n = len(item_codes)
        try:
            popularity = arrays["popularity"]
            trained = len(popularity)  # items the ranker was fitted over; the model may have added more since
            if popularity.ndim != 1 or not 0 < trained <= n:
                raise ValueError(f"popularity of shape {popularity.shape} for {n} items")
            names = [k[: -len(".indptr")] for k in arrays if k.endswith(".indptr")]
            if set(arrays) != {"popularity"} | {f"{m}.{p}" for m in names for p in ("indptr", "indices", "data")}:
                raise ValueError(f"unexpected arrays {sorted(arrays)}")
            item_item = {}
            for m in names:
                mat = sp.csr_matrix(
                    (arrays[f"{m}.data"], arrays[f"{m}.indices"], arrays[f"{m}.indptr"]), shape=(trained, trained)
                )
                mat.check_format(full_check=True)
                if not np.isfinite(mat.data).all():
                    raise ValueError(f"non-finite weights in {m}")
                item_item[m] = mat
            ranker = cls(
                item_codes[:trained],
                item_towers[:trained],
                None if item_teacher is None else item_teacher[:trained],
                popularity,
                item_item,
            )
            ranker.set_booster(cls.booster_from_text(text, source))
            ranker = ranker.extended(item_codes, item_towers, item_teacher)
        except (KeyError, ValueError, TypeError, DataError, ModelError) as exc:
            raise ModelError(f"{source}: corrupted learned re-ranker ({exc})") from None
        return ranker

    @staticmethod
    def booster_from_text(text: str, source: str) -> Trees:
        """The trees of a LightGBM text model, read by :class:`~rechash.rerank.trees.Trees`
        (no LightGBM at serving, nothing executed)."""
        return Trees.from_text(text, source)


def _recall(cands: np.ndarray, scores: np.ndarray, labels: np.ndarray, n_pos: np.ndarray, k: int) -> float:
    """Mean Recall@k of each row's top ``k`` by score (ties by item id) over rows with a positive."""
    order = order_rows(cands, [-scores], k)
    hits = np.take_along_axis(labels, order, axis=1).sum(axis=1)
    keep = n_pos > 0
    return float(np.mean(hits[keep] / n_pos[keep])) if keep.any() else 0.0


def fit_pool_ranker(
    ranker: PoolRanker,
    users: PoolUsers,
    cands: np.ndarray,
    labels: np.ndarray,
    n_positive: np.ndarray,
    dot_scores: np.ndarray,
    fit_rows: np.ndarray,
    hold_rows: np.ndarray,
    k: int = 20,
    seed: int = 0,
    n_threads: int = 1,
) -> dict:
    """Fit ``ranker``'s booster on validation pools and decide whether it is kept.

    ``users``, ``cands`` (``(m, C)`` pools, -1 padded) and ``labels`` (bool ``(m, C)``: the
    entry is a validation item of the user) describe validation users; ``n_positive`` counts
    each user's validation items (the Recall@K denominator, in the pool or not); ``dot_scores``
    are the dot re-ranker's scores of the same pools (the reference). The booster is fitted on
    ``fit_rows`` with early stopping on ``hold_rows``' loss (:data:`LGB_PARAMS`). Returns the record saved as
    ``training_run.ranker``: ``kept`` (held-out Recall@``k`` above the dot re-ranker's), both
    held-out recalls, users, rounds and seconds. The booster stays attached either way."""
    import lightgbm as lgb

    start = time.perf_counter()

    def dataset(rows: np.ndarray, reference=None):
        x = np.concatenate(
            [
                ranker.feature_matrix(users.take(rows[s : s + 4096]), cands[rows[s : s + 4096]])
                for s in range(0, len(rows), 4096)
            ]
        )
        valid = cands[rows] >= 0
        return lgb.Dataset(
            x[valid],
            labels[rows][valid].astype(np.float32),
            group=valid.sum(axis=1),
            feature_name=ranker.features,
            reference=reference,
            free_raw_data=True,
        ), x

    train_set, _ = dataset(fit_rows)
    hold_set, hold_x = dataset(hold_rows, reference=train_set)
    params = {**LGB_PARAMS, "seed": seed, "num_threads": n_threads}
    if params["objective"] == "lambdarank":
        params["eval_at"] = [k]
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[hold_set],
        callbacks=[lgb.early_stopping(PATIENCE, verbose=False)],
    )
    booster = PoolRanker.booster_from_text(booster.model_to_string(num_iteration=booster.best_iteration), "booster")
    ranker.set_booster(booster)
    hc = cands[hold_rows]
    pred = booster.predict(hold_x.reshape(-1, hold_x.shape[-1])).reshape(hc.shape)
    learned = _recall(hc, np.where(hc >= 0, pred, -np.inf), labels[hold_rows], n_positive[hold_rows], k)
    dot = _recall(hc, np.where(hc >= 0, dot_scores[hold_rows], -np.inf), labels[hold_rows], n_positive[hold_rows], k)
    info = {
        "kept": bool(learned > dot),
        "valid_recall": {"dot": dot, "learned": learned},
        "k": k,
        "users": {"fit": len(fit_rows), "holdout": len(hold_rows)},
        "rounds": booster.n_trees,
        "features": ranker.features,
        "seconds": time.perf_counter() - start,
    }
    logger.info("learned re-ranker: %s", info)
    return info


def serving_pools(
    item_codes: np.ndarray,
    user_codes: np.ndarray,
    exclude: sp.csr_matrix,
    pool: int = TRAIN_POOL,
    n_threads: int | None = None,
) -> np.ndarray:
    """``(m, width)`` item ids of each user's Hamming pool as serving draws it: the ``pool``
    nearest items not in ``exclude`` plus every item tied at the cut-off, by (distance, id), -1 padded."""
    from rechash.index.flat import ExactIndex

    index = ExactIndex.from_codes(item_codes, n_threads=n_threads)
    return index.select(user_codes, pool, exclude=exclude, ties=True)[1]


def _pick_ease(
    train: sp.csr_matrix, history: sp.csr_matrix, cands: np.ndarray, labels: np.ndarray, n_positive: np.ndarray, k: int
) -> tuple[sp.csr_matrix, dict]:
    """EASE at the ridge of :data:`EASE_RIDGE_SCALES` whose pool Recall@``k`` is best on the given rows."""
    mean_popularity = train.nnz / max(train.shape[1], 1)
    rows = np.repeat(np.arange(len(cands)), cands.shape[1])
    best, scores = None, {}
    for scale in EASE_RIDGE_SCALES:
        b = item_ease(train, scale * mean_popularity)
        s = np.asarray(sp.csr_matrix(history @ b)[rows, np.maximum(cands, 0).ravel()]).reshape(cands.shape)
        scores[scale] = _recall(cands, np.where(cands >= 0, s, -np.inf), labels, n_positive, k)
        if best is None or scores[scale] > scores[best[0]]:
            best = (scale, b)
    return best[1], {"ridge": best[0] * mean_popularity, "ridge_scale": best[0], "pool_recall": scores}


def fit_on_validation(
    item_codes: np.ndarray,
    item_towers: np.ndarray,
    item_teacher: np.ndarray | None,
    user_towers: np.ndarray,
    user_teacher: np.ndarray | None,
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    *,
    k: int = 20,
    max_users: int = MAX_USERS,
    max_fit_users: int = MAX_FIT_USERS,
    holdout: float = 0.2,
    seed: int = 0,
    n_threads: int = 1,
) -> tuple[PoolRanker, dict]:
    """A :class:`PoolRanker` fitted on the validation users' serving pools, and its record.

    ``item_*``: the model's packed item codes, towers' item floats and teacher item factors (or
    None); ``user_towers`` / ``user_teacher``: every user's towers' floats (their signs draw the
    pool) and teacher floats, computed without the validation interactions; ``train`` /
    ``valid``: users x items. At most ``max_users`` validation users (a fixed sample by
    ``seed``); those whose pool holds none of their validation items carry no ranking signal and
    are left out, and at most ``max_fit_users`` of the rest are kept (a fixed sample by ``seed``).
    A ``holdout`` share of them, drawn by ``seed``, is held out for early stopping
    and the keep decision (:func:`fit_pool_ranker`). Item-item models: item-kNN always, and EASE
    when the catalog has at most :data:`EASE_MAX_ITEMS` items, its ridge picked on the fitting
    users. The reference is the dot product of the teacher's floats (the towers' without one)."""
    from rechash.codes.bits import binarize
    from rechash.rank.metrics import hit_matrix

    start = time.perf_counter()
    train, valid = sp.csr_matrix(train), sp.csr_matrix(valid)
    users = np.flatnonzero(np.diff(valid.indptr))
    rng = np.random.default_rng(seed)
    if len(users) > max_users:
        users = np.sort(rng.choice(users, max_users, replace=False))
    codes = binarize(user_towers[users])
    cands = serving_pools(item_codes, codes, train[users], n_threads=n_threads)
    labels = hit_matrix(cands, users, valid)
    keep = np.flatnonzero(labels.any(axis=1))
    if len(keep) > max_fit_users:
        keep = np.sort(rng.choice(keep, max_fit_users, replace=False))
    users, codes, cands, labels = users[keep], codes[keep], cands[keep], labels[keep]
    teacher = None if user_teacher is None else user_teacher[users]
    side = PoolUsers(codes, user_towers[users], teacher, train[users])
    n_positive = np.diff(valid.indptr)[users]
    perm = rng.permutation(len(users))
    n_hold = int(round(holdout * len(users)))
    fit_rows, hold_rows = np.sort(perm[n_hold:]), np.sort(perm[:n_hold])
    popularity = np.bincount(train.indices, minlength=train.shape[1])
    item_item, extra = {"knn": item_knn(train)}, {}
    if train.shape[1] <= EASE_MAX_ITEMS and len(fit_rows):
        item_item["ease"], extra["ease"] = _pick_ease(
            train, side.history[fit_rows], cands[fit_rows], labels[fit_rows], n_positive[fit_rows], k
        )
    ranker = PoolRanker(item_codes, item_towers, item_teacher, popularity, item_item)
    if min(len(fit_rows), len(hold_rows)) < 10:
        return ranker, {"kept": False, "reason": f"{len(users)} validation users with a validation item in their pool"}
    reference = dot_rows(
        side.towers if teacher is None else teacher, item_towers if teacher is None else item_teacher, cands
    )
    info = fit_pool_ranker(
        ranker, side, cands, labels, n_positive, reference, fit_rows, hold_rows, k=k, seed=seed, n_threads=n_threads
    )
    return ranker, {**info, **extra, "seconds": time.perf_counter() - start}
