"""The scikit-learn re-ranker over (user, candidate) features, and a first stage re-ranked
by any :class:`~rechash.rerank.base.Reranker` (for example exact ALS top 200 re-ranked)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rechash.errors import DataError, require
from rechash.rerank.base import Reranker

#: Feature names of :class:`LearnedReranker`, in column order (a feature is used when its source is given).
LEARNED_FEATURES = ("score", "score_gap", "hamming", "hamming_gap", "log_item_popularity", "log_user_activity")
LEARNED_MODELS = ("logistic", "hgb")
_CONTROLLER = None


class LearnedReranker:
    """A scikit-learn scorer over cheap (user, candidate) features, trained on hard negatives.

    Features, per candidate (those whose source is missing are left out):

    - ``score``: the float scorer's value (e.g. :class:`DotReranker` over the towers' floats
      or an external model), and ``score_gap``: the row's best score minus this score;
    - ``hamming``: Hamming distance of the packed user and item codes, and
      ``hamming_gap``: this distance minus the row's smallest;
    - ``log_item_popularity``: log1p of the item's training interactions;
    - ``log_user_activity``: log1p of the user's training interactions.

    :meth:`fit` labels each candidate by whether it is among the user's held-out items
    (typically the validation split) and keeps every positive plus
    ``negatives_per_positive`` negatives per positive drawn uniformly, for the same user,
    from the candidates that are not positive: hard negatives, since the first stage ranked
    them high. Models: ``"logistic"`` (standardised logistic regression, the default:
    scored as one affine map, the cheaper) or ``"hgb"`` (HistGradientBoostingClassifier
    with monotone constraints: higher score, smaller Hamming distance and smaller gaps never
    lower the output; its cost per user grows with the number of trees). Scores are the model's
    ``decision_function``; deterministic for ``seed``. ``max_iter``: boosting rounds (hgb).
    scikit-learn's OpenMP pool is limited to ``n_threads`` (default 1: one-user calls and
    busy machines are much faster without it).
    """

    def __init__(
        self,
        item_popularity: np.ndarray,
        user_activity: np.ndarray,
        float_scorer: Reranker | None = None,
        user_codes: np.ndarray | None = None,
        item_codes: np.ndarray | None = None,
        model: str = "logistic",
        negatives_per_positive: int = 10,
        seed: int = 0,
        n_threads: int = 1,
        max_iter: int = 150,
    ) -> None:
        if model not in LEARNED_MODELS:
            raise DataError(f"LearnedReranker: model must be one of {LEARNED_MODELS}, got {model!r}")
        if (user_codes is None) != (item_codes is None):
            raise DataError("LearnedReranker: give both user_codes and item_codes, or neither")
        if user_codes is not None:
            from rechash.codes.bits import validate_packed

            if validate_packed(user_codes, "user_codes") != validate_packed(item_codes, "item_codes"):
                raise DataError("LearnedReranker: user and item codes have different bit counts")
        if negatives_per_positive < 1:
            raise DataError(f"LearnedReranker: negatives_per_positive must be >= 1, got {negatives_per_positive}")
        self.item_popularity = np.asarray(item_popularity, dtype=np.float64)
        self.user_activity = np.asarray(user_activity, dtype=np.float64)
        self.float_scorer = float_scorer
        self.user_codes, self.item_codes = user_codes, item_codes
        self.model_name = model
        self.negatives_per_positive = int(negatives_per_positive)
        self.seed = int(seed)
        self.n_threads = int(n_threads)
        self.max_iter = int(max_iter)
        self.model_ = None
        self.linear_: tuple[np.ndarray, float] | None = None
        self.n_train_pairs_ = 0
        self.n_train_positives_ = 0

    @classmethod
    def from_train(cls, train, **kwargs) -> LearnedReranker:
        """Popularity and activity counted from ``train`` (an :class:`~rechash.data.Interactions`)."""
        m = train.matrix
        return cls(np.diff(m.tocsc().indptr), np.diff(m.indptr), **kwargs)

    @property
    def feature_names(self) -> list[str]:
        """The :data:`LEARNED_FEATURES` this scorer uses, in column order."""
        skip = set()
        if self.float_scorer is None:
            skip |= {"score", "score_gap"}
        if self.user_codes is None:
            skip |= {"hamming", "hamming_gap"}
        return [n for n in LEARNED_FEATURES if n not in skip]

    @property
    def index_bytes(self) -> int:
        extra = getattr(self.float_scorer, "index_bytes", 0) or 0
        return int(extra + self.item_popularity.nbytes)

    def features(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """``(n_users, C, n_features)`` float64 features (padding entries hold zeros)."""
        users = np.asarray(users, dtype=np.int64)
        candidates = np.asarray(candidates, dtype=np.int64)
        valid = candidates >= 0
        items = np.maximum(candidates, 0)
        cols: list[np.ndarray] = []
        if self.float_scorer is not None:
            s = np.asarray(self.float_scorer.score(users, candidates), dtype=np.float64)
            best = np.max(np.where(valid, s, -np.inf), axis=1, keepdims=True)
            cols += [s, np.where(np.isfinite(best), best, 0.0) - s]
        if self.user_codes is not None:
            from rechash.codes.bits import hamming_rows

            q = np.repeat(self.user_codes[users], candidates.shape[1], axis=0)
            h = hamming_rows(q, self.item_codes[items.ravel()]).reshape(candidates.shape).astype(np.float64)
            low = np.min(np.where(valid, h, np.inf), axis=1, keepdims=True)
            cols += [h, h - np.where(np.isfinite(low), low, 0.0)]
        cols.append(np.log1p(self.item_popularity[items]))
        cols.append(np.broadcast_to(np.log1p(self.user_activity[users])[:, None], candidates.shape))
        out = np.stack(cols, axis=-1)
        out[~valid] = 0.0
        return out

    def _estimator(self):
        sklearn = require("sklearn", "learn", "The learned re-ranker")
        if self.model_name == "hgb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            sign = {"score": 1, "score_gap": -1, "hamming": -1, "hamming_gap": -1}
            return HistGradientBoostingClassifier(
                max_iter=self.max_iter,
                learning_rate=0.1,
                max_leaf_nodes=31,
                l2_regularization=1.0,
                early_stopping=False,
                monotonic_cst=[sign.get(n, 0) for n in self.feature_names],
                random_state=self.seed,
            )
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        del sklearn
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))

    def training_pairs(
        self, users: np.ndarray, candidates: np.ndarray, positives: sp.csr_matrix
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(row, column, label)`` of the sampled training pairs: all positives, hard negatives."""
        from rechash.rank.metrics import hit_matrix

        users = np.asarray(users, dtype=np.int64)
        candidates = np.asarray(candidates, dtype=np.int64)
        labels = hit_matrix(candidates, users, sp.csr_matrix(positives))
        valid = candidates >= 0
        rng = np.random.default_rng(self.seed)
        # a random key per negative; keep the n_neg(u) smallest keys of each row
        keys = np.where(valid & ~labels, rng.random(candidates.shape), np.inf)
        n_neg = np.minimum(labels.sum(axis=1) * self.negatives_per_positive, (valid & ~labels).sum(axis=1))
        rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
        chosen = labels | (rank < n_neg[:, None])
        rows, cols = np.nonzero(chosen)
        return rows, cols, labels[rows, cols]

    def fit(self, users: np.ndarray, candidates: np.ndarray, positives: sp.csr_matrix) -> LearnedReranker:
        """Train on the candidate rows of ``users`` labelled by ``positives`` (users x items CSR)."""
        users = np.asarray(users, dtype=np.int64)
        candidates = np.asarray(candidates, dtype=np.int64)
        if candidates.ndim != 2 or len(candidates) != len(users):
            raise DataError(f"LearnedReranker.fit: candidates must be (n_users, C) for {len(users)} users")
        rows, cols, y = self.training_pairs(users, candidates, positives)
        if y.sum() == 0 or y.all():
            raise DataError("LearnedReranker.fit: the candidate sets hold no positive (or no negative) item")
        x = self.features(users, candidates)[rows, cols]
        estimator = self._estimator()  # imports scikit-learn (and its OpenMP runtime) first
        with self._threads():
            self.model_ = estimator.fit(x, y.astype(np.int8))
        self.linear_ = None
        if self.model_name == "logistic":
            scaler, logreg = self.model_[0], self.model_[-1]
            w = logreg.coef_[0] / scaler.scale_
            self.linear_ = (w, float(logreg.intercept_[0] - scaler.mean_ @ w))
        self.n_train_pairs_, self.n_train_positives_ = len(y), int(y.sum())
        return self

    def score(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise DataError("LearnedReranker: call fit() before score()")
        candidates = np.asarray(candidates, dtype=np.int64)
        x = self.features(users, candidates)
        x = x.reshape(-1, x.shape[-1])
        if self.linear_ is not None:  # logistic: the fitted affine map, without scikit-learn's per-call checks
            w, b = self.linear_
            return (x @ w + b).reshape(candidates.shape)
        with self._threads():
            return self.model_.decision_function(x).reshape(candidates.shape)

    def _threads(self):
        global _CONTROLLER
        if _CONTROLLER is None:  # scanning the loaded libraries is slow: do it once, after sklearn loaded
            threadpoolctl = require("threadpoolctl", "learn", "The learned re-ranker")
            _CONTROLLER = threadpoolctl.ThreadpoolController()
        return _CONTROLLER.limit(limits=self.n_threads)
