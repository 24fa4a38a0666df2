"""TwinTowerHasher: learns B-bit codes for users and items in one Hamming space."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
import torch

from rechash.codes.binarizers import ITQ
from rechash.codes.bits import binarize
from rechash.data.embeddings import FloatEmbeddings
from rechash.data.features import SideFeatures
from rechash.data.idmap import IdMap, format_id
from rechash.data.interactions import Interactions
from rechash.errors import ConfigError, DataError, ModelError
from rechash.hasher.refine import choose_refinement, pool_refined_codes, refined_user_codes
from rechash.hasher.sampling import holdout_mask
from rechash.hasher.towers import Towers, pool_csr
from rechash.hasher.trainer import EpochLog, TrainConfig, Trainer, all_floats
from rechash.threads import current_threads

if TYPE_CHECKING:  # pragma: no cover
    from rechash.hasher.persistence import SavedModel

logger = logging.getLogger(__name__)


def _as_features(features, n: int, what: str, ids: IdMap | None = None) -> np.ndarray | None:
    """Side features as a dense float32 ``(n, F)`` array aligned with the IdMap (or None).

    Accepts a :class:`rechash.data.SideFeatures` (numeric columns z-scored, categorical and
    multi-token columns one-/multi-hot), a DataFrame, a dense array or a scipy sparse matrix."""
    if features is None:
        return None
    if isinstance(features, SideFeatures):
        if ids is not None and features.ids != ids:
            raise DataError(f"{what} ({features.source}): rows are aligned to a different id map than the data")
        blocks = [sp.csr_matrix(features.numeric_matrix())]
        blocks += [f.to_csr() for f in features.features if f.kind != "numeric"]
        features = sp.hstack(blocks, format="csr")
    if hasattr(features, "to_numpy"):
        features = features.to_numpy()
    if sp.issparse(features):
        features = features.toarray()
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) != n:
        raise DataError(f"{what}: expected a (n={n}, F) table aligned with the id map, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: contains NaN or infinity")
    return x


class TwinTowerHasher:
    """Twin user/item towers trained end to end so that ``sign(z)`` codes retrieve by Hamming distance.

    ``s(u, i) = <h_u, h_i> / B`` with relaxed codes ``h = tanh(beta z)`` during training equals
    ``1 - 2 * Hamming / B`` on the binary codes ``sign(z)``. Keyword arguments are the
    tower options (``user_id``, ``user_history``, ``hidden``) and every field of
    :class:`~rechash.hasher.trainer.TrainConfig` (``epochs``, ``negatives``, ``tau``,
    ``w_distill``, ...).
    """

    def __init__(
        self,
        bits: int = 64,
        *,
        user_id: bool = True,
        user_history: bool = True,
        hidden: int = 128,
        seed: int = 0,
        **train_options,
    ) -> None:
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 16 <= bits <= 256 or bits % 8:
            raise ConfigError(f"--bits: expected a multiple of 8 from 16 to 256, got {bits!r}")
        names = {f.name for f in fields(TrainConfig)}
        unknown = set(train_options) - names
        if unknown:
            raise TypeError(f"unknown TwinTowerHasher options: {sorted(unknown)}")
        self._bits = int(bits)
        self.user_id, self.user_history, self.hidden, self.seed = user_id, user_history, hidden, seed
        self.config = TrainConfig(**train_options)
        self.towers: Towers | None = None
        self.history_: list[EpochLog] = []
        self._user_z = self._item_z = self._user_codes = self.refine_ = None
        self._item_codes: tuple[np.ndarray, np.ndarray] | None = None  # (item floats, their codes)
        self._user_ids = self._item_ids = None
        self.fit_seconds_: float | None = None
        self.teacher_info_: dict | None = None
        self.teacher_: FloatEmbeddings | None = None
        self.stop_reason_: str | None = None
        self.negatives_: int | None = None
        self.holdout_ = 0
        #: the column schema of the item features the model was fitted with (None: no
        #: features, or an unnamed array); new items' tables are encoded through it
        self.item_schema_ = None
        #: items appended after training by :meth:`add_items` (the last rows of the id map)
        self.added_items_ = 0
        self._teacher_map = None
        self._validation = None  # fit's leak-free validation view (_validation_data)
        #: the learned pool re-ranker (rechash.rerank.pool.PoolRanker) when the fit kept one,
        #: and the record of that decision
        self.ranker_ = None
        self.ranker_info_: dict | None = None

    # ---- properties --------------------------------------------------------------------
    @property
    def bits(self) -> int:
        return self._bits

    @property
    def user_ids(self) -> IdMap:
        self._check_fitted()
        return self._user_ids

    @property
    def item_ids(self) -> IdMap:
        self._check_fitted()
        return self._item_ids

    def _check_fitted(self) -> None:
        if self.towers is None:
            raise ModelError("TwinTowerHasher is not fitted: call fit() or TwinTowerHasher.load(dir)")

    def training_run(self) -> dict:
        """Provenance of the fit: the teacher chosen (kind, parameters, validation score, grid),
        why training stopped, how many training interactions were held out for validation, the
        sampled negatives per batch (:meth:`TrainConfig.n_negatives`) and the user-code refinement
        (:func:`rechash.hasher.refine.choose_refinement`: the temperature kept, or None, and the
        validation scores) and the learned re-ranker (:func:`rechash.rerank.pool.fit_pool_ranker`:
        kept or not, held-out validation recalls, users, rounds, seconds)."""
        run = {
            "teacher": self.teacher_info_,
            "stop_reason": self.stop_reason_,
            "holdout": self.holdout_,
            "negatives": self.negatives_,
            "refine": self.refine_,
            "ranker": self.ranker_info_,
        }
        if self.added_items_:
            run["added_items"] = self.added_items_
        return run

    def tower_options(self) -> dict:
        return {"user_id": self.user_id, "user_history": self.user_history, "hidden": self.hidden, "seed": self.seed}

    # ---- training ----------------------------------------------------------------------
    def _device(self) -> torch.device:
        d = self.config.device
        if d == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(d)

    def _build(self, n_users: int, n_items: int, n_item_features: int) -> Towers:
        return Towers(
            n_users,
            n_items,
            self.bits,
            user_id=self.user_id,
            user_history=self.user_history,
            n_item_features=n_item_features,
            hidden=self.hidden,
            tau=self.config.tau,
        )

    def _init_from_teacher(self, towers: Towers, train: sp.csr_matrix, teacher: FloatEmbeddings) -> None:
        """ID embeddings <- ITQ-rotated teacher factors (one joint rotation, no centring);
        history path <- least-squares fit of the rotated user factors from pooled item factors."""
        c = self.config
        if teacher.user_factors.shape[1] < self.bits:
            warnings.warn(
                f"teacher has {teacher.user_factors.shape[1]} factors < {self.bits} bits: its ITQ lift is "
                "rank-deficient and training from it can collapse; use a teacher with >= bits factors",
                stacklevel=3,
            )
        u = teacher.user_factors / np.sqrt(np.mean(np.square(teacher.user_factors)) + 1e-12)
        v = teacher.item_factors / np.sqrt(np.mean(np.square(teacher.item_factors)) + 1e-12)
        itq = ITQ(self.bits, center=False, seed=self.seed).fit(np.vstack([u, v]))
        ru, rv = (itq.transform(x) for x in (u, v))
        scale = (1.0 if c.init_scale is None else c.init_scale) / np.sqrt(
            np.mean(np.square(np.vstack([ru, rv]))) + 1e-12
        )
        ru, rv = ru * scale, rv * scale
        with torch.no_grad():
            towers.item.id_emb.weight.copy_(torch.from_numpy(rv))
            target = ru
            if towers.user.use_history:
                towers.user.hist_emb.weight.copy_(torch.from_numpy(rv))
                pooled = pool_csr(train, rv)
                x = np.hstack([pooled, np.ones((len(pooled), 1), np.float32)])
                w, *_ = np.linalg.lstsq(x, ru, rcond=None)
                towers.user.hist_proj.weight.copy_(torch.from_numpy(w[:-1].T.astype(np.float32)))
                towers.user.hist_proj.bias.copy_(torch.from_numpy(w[-1].astype(np.float32)))
                target = ru - (x @ w).astype(np.float32)
            if towers.user.id_emb is not None:
                towers.user.id_emb.weight.copy_(torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)))

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        teacher: FloatEmbeddings | Literal["auto"] | None = "auto",
        user_features=None,
        item_features=None,
        callbacks: Sequence[Callable[[EpochLog], object]] = (),
    ) -> TwinTowerHasher:
        """Train on ``train``, early stopping on ``valid`` Recall@K of the binary codes.

        Without ``valid``, one interaction each of a sample of users is held out of ``train``
        as validation (:func:`rechash.hasher.sampling.holdout_mask`; ``holdout_`` counts them).
        ``teacher``: ``"auto"`` (the default: implicit ALS tuned on the validation data,
        :func:`rechash.als.teacher.default_teacher`; ``teacher_info_`` records what was
        chosen), ``None``, or float embeddings on the same id maps, used for distillation
        (``w_distill``, ``w_rank``) and, with ``init="teacher"``, for initialisation.
        ``item_features``: ``(n_items, F)`` table aligned with the item IdMap (a
        :class:`~rechash.data.SideFeatures`, a DataFrame or an array); when None,
        ``train.item_features`` is used if the data carries it; a SideFeatures table's column
        schema is kept (``item_schema_``, saved as ``item_features.json``) so items unseen at
        training can be encoded later (:meth:`encode_new_items`, :meth:`add_items`; train with
        ``item_id_dropout=0.5`` for that). ``user_features`` are accepted
        for API symmetry but not used by the towers (a user is their ID and history).
        ``callbacks`` receive an :class:`EpochLog` after every epoch; returning True stops.
        """
        import time

        t_start = time.perf_counter()
        c = self.config
        if valid is not None and (valid.n_users != train.n_users or valid.n_items != train.n_items):
            raise DataError(
                f"valid ({valid.source}) has {valid.n_users} users x {valid.n_items} items but train has "
                f"{train.n_users} x {train.n_items}: load them together with rechash.data.load_many"
            )
        if train.nnz == 0:
            raise DataError(f"{train.source}: no training interactions")
        self.seen_ = train.matrix.tocsr()
        self.holdout_ = 0
        if valid is None:
            mask = holdout_mask(train.matrix, np.random.default_rng(self.seed))
            train, valid = train.subset(~mask), train.subset(mask)
            self.holdout_ = int(mask.sum())
        self.teacher_info_ = None
        if isinstance(teacher, str):
            if teacher != "auto":
                raise ConfigError(f"teacher: expected 'auto', None or FloatEmbeddings, got {teacher!r}")
            from rechash.als.teacher import default_teacher

            teacher, self.teacher_info_ = default_teacher(
                train, valid, self.bits, self.seed, current_threads(c.threads)
            )
        elif teacher is not None:
            self.teacher_info_ = {"kind": "given", "factors": teacher.dim, "fold_in": dict(teacher.fold_in or {})}
        if teacher is not None:  # rows put in the data's id order, or refused naming the first mismatch
            teacher = teacher.aligned_to(train.user_ids, train.item_ids, "teacher")
        # an ALS teacher (one that can fold in new users) also re-ranks the Hamming candidates
        self.teacher_ = teacher if teacher is not None and teacher.fold_in is not None else None
        if item_features is None:  # side features the data layer attached to the interactions, if any
            item_features = getattr(train, "item_features", None)
        feats = _as_features(item_features, train.n_items, "item_features", train.item_ids)
        from rechash.hasher.new_items import ItemFeatureSchema

        self.item_schema_ = (
            ItemFeatureSchema.from_side(item_features) if isinstance(item_features, SideFeatures) else None
        )
        self.added_items_, self._teacher_map = 0, None
        old_threads = torch.get_num_threads()
        torch.set_num_threads(current_threads(c.threads))
        try:
            torch.manual_seed(self.seed)
            rng = np.random.default_rng(self.seed)
            device = self._device()
            matrix = train.matrix.tocsr().astype(np.float32)
            towers = self._build(train.n_users, train.n_items, 0 if feats is None else feats.shape[1])
            with torch.no_grad():
                towers.user.known.copy_(torch.from_numpy((np.diff(matrix.indptr) > 0).astype(np.float32)))
                if feats is not None:
                    towers.item.features.copy_(torch.from_numpy(feats))
                    counts = np.bincount(matrix.indices, minlength=train.n_items)
                    towers.item.known.copy_(torch.from_numpy((counts > 0).astype(np.float32)))
                if teacher is None or c.init != "teacher":
                    for emb in (towers.user.id_emb, towers.user.hist_emb, towers.item.id_emb):
                        if emb is not None:
                            emb.weight.normal_(0.0, 0.1 if c.init_scale is None else c.init_scale)
                    if towers.user.hist_proj is not None:
                        towers.user.hist_proj.weight.copy_(torch.eye(self.bits))
                        towers.user.hist_proj.bias.zero_()
                else:
                    self._init_from_teacher(towers, matrix, teacher)
            towers.to(device)
            trainer = Trainer(
                towers,
                c,
                matrix,
                valid=None if valid is None else valid.matrix,
                teacher=None
                if teacher is None or not (c.w_distill or c.w_rank)
                else (teacher.user_factors, teacher.item_factors),
                device=device,
                rng=rng,
                callbacks=callbacks,
            )
            self.history_ = trainer.run()
            self.stop_reason_, self.negatives_ = trainer.stop_reason, trainer.n_negatives
            uz, iz = all_floats(towers, self.seen_.astype(np.float32), device)  # full histories, holdout included
            self._user_z, self._item_z = self._relaxed(uz), self._relaxed(iz)
            self._validation = self._leak_free_validation(towers, matrix, trainer.valid, device)
            self._refine(teacher, *self._validation)
            self._fit_ranker(None if valid is None else valid.matrix)
            self.towers = towers.cpu()
            self._user_ids, self._item_ids = train.user_ids, train.item_ids
        finally:
            torch.set_num_threads(old_threads)
        self.fit_seconds_ = time.perf_counter() - t_start
        return self

    def _leak_free_validation(
        self, towers: Towers, train: sp.csr_matrix, valid: sp.csr_matrix | None, device: torch.device
    ) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix | None]:
        """``(user floats, train, valid)`` for decisions taken on validation after training: the
        relaxed user floats computed from ``train`` histories (without the held-out interactions
        when ``fit`` held some out; else the stored :meth:`user_floats` themselves, no recomputation),
        with the train and validation matrices (the trainer's validation sample)."""
        if not self.holdout_:
            return self._user_z, train, valid
        return self._relaxed(all_floats(towers, train, device)[0]), train, valid

    def _validation_data(self) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix | None]:
        """The leak-free validation view of the last :meth:`fit` in this process, for steps that
        decide or train on validation after the towers (the user-code refinement, a re-ranker):
        ``(user floats (n_users, B), train (n_users, n_items), valid (n_users, n_items) or None)``.
        The user floats are the towers' relaxed codes of the ``train`` histories, so a user's
        validation items never enter its history input; without ``valid`` given to ``fit``, ``train``
        lacks the held-out interactions (``holdout_``) that ``valid`` holds, and ``seen_`` /
        :meth:`user_floats` (the deployed model) keep them. Not saved: a loaded model raises."""
        if self._validation is None:
            raise ModelError("no validation data: available after fit() in this process, not on a loaded model")
        return self._validation

    def _refine(
        self, teacher: FloatEmbeddings | None, user_z: np.ndarray, train: sp.csr_matrix, valid: sp.csr_matrix | None
    ) -> None:
        """Refined user codes (:mod:`rechash.hasher.refine`) when ``refine`` is on, a teacher and
        validation data exist and validation picks a temperature; else the towers' signs. The
        choice is made on ``user_z`` / ``train`` (:meth:`_validation_data`); the kept temperature
        then refines the deployed floats against ``seen_``."""
        self._user_codes, self.refine_ = None, None
        if not self.config.refine or teacher is None or valid is None:
            return
        pair, k = (teacher.user_factors, teacher.item_factors), self.config.eval_k
        t, self.refine_ = choose_refinement(user_z, self._item_z, pair, train, valid, k)
        if t is not None:
            self._user_codes, self.refine_["flips_per_user"] = refined_user_codes(
                self._user_z, self._item_z, pair, self.seen_, k, t
            )
        logger.info("user-code refinement: %s", self.refine_)

    def _fit_ranker(self, valid: sp.csr_matrix | None) -> None:
        """The learned pool re-ranker (:mod:`rechash.rerank.pool`) when ``learned_rerank`` is on and
        validation data exist: fitted on every ``valid`` user (not the trainer's sample; the pool
        module caps them) over the leak-free view (:meth:`_validation_data`: user floats and train
        without the validation interactions), with the kept ALS teacher's scores as features (when
        there is one); kept (``ranker_``) only when it beats the dot re-ranker on held-out
        validation users; ``ranker_info_`` records it."""
        from rechash.rerank.pool import fit_on_validation

        self.ranker_, self.ranker_info_ = None, None
        user_z, train, _ = self._validation
        if not self.config.learned_rerank or valid is None:
            return
        teacher = self.teacher_
        ranker, self.ranker_info_ = fit_on_validation(
            binarize(self._item_z),
            self._item_z,
            None if teacher is None else teacher.item_factors,
            user_z,
            None if teacher is None else teacher.user_factors,
            train,
            valid,
            k=self.config.eval_k,
            seed=self.seed,
            n_threads=current_threads(self.config.threads),
        )
        self.ranker_ = ranker if self.ranker_info_["kept"] else None

    # ---- encoding ----------------------------------------------------------------------
    def float_beta(self) -> float:
        """``beta`` of the relaxation ``tanh(beta z)`` at the kept (best) epoch."""
        kept = [log for log in self.history_ if log.best] or self.history_[-1:]
        return float(kept[-1].beta) if kept else float(self.config.beta)

    def _relaxed(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(self.float_beta() * z).astype(np.float32)

    @staticmethod
    def _rows(z: np.ndarray, ids, what: str) -> np.ndarray:
        if ids is None:
            return z
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(z)):
            raise DataError(f"{what} ids must lie in 0..{len(z) - 1}")
        return z[ids]

    def user_floats(self, users=None) -> np.ndarray:
        """Relaxed codes ``h = tanh(beta z)`` (float32, ``(n, B)``) of internal user ids (all when None).

        The vectors whose dot product the training loss scores (``s = <h_u, h_i> / B``), so they
        are the re-ranking floats; their signs are the binary codes."""
        self._check_fitted()
        return self._rows(self._user_z, users, "user")

    def item_floats(self, items=None) -> np.ndarray:
        """Relaxed codes ``h = tanh(beta z)`` (float32, ``(n, B)``) of internal item ids (all when None)."""
        self._check_fitted()
        return self._rows(self._item_z, items, "item")

    def rerank_floats(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user, item)`` floats of the default dot re-ranker: the teacher's ALS factors when the
        model kept them (fitted with an ALS teacher), else the towers' relaxed codes."""
        self._check_fitted()
        if self.teacher_ is not None:
            return self.teacher_.user_factors, self.teacher_.item_factors
        return self.user_floats(), self.item_floats()

    def encode_new_users(self, histories: sp.spmatrix, refined: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, re-ranking floats)`` of users unseen at training from their history rows: codes
        from the history encoder (when ``refined`` and the fit kept a refinement, refined at the
        kept temperature toward the folded-in teacher's top-``eval_k`` within the user's Hamming
        pool, two rounds of :func:`~rechash.hasher.refine.pool_refined_codes`: no float scoring of
        the whole catalog; the known users' targets were the top over the catalog), floats as
        :meth:`rerank_floats` (the teacher's ALS fold-in, else the encoder's own floats), one
        encoder pass. Items added after training (:meth:`add_items`) are left out of the
        histories: they have no context embedding."""
        histories = self._trained_columns(histories)
        codes, floats = self.encode_history(histories)
        if self.teacher_ is not None:
            folded = self.teacher_.fold_in_users(histories)
            t = (self.refine_ or {}).get("temperature") if refined else None
            if t is not None and len(floats):
                pair = (folded, self.teacher_.item_factors)
                codes, _ = pool_refined_codes(floats, self.encode_items(), pair, histories, self.config.eval_k, t)
            floats = folded
        return codes, floats

    # ---- items unseen at training (rechash.hasher.new_items) ------------------------------
    @property
    def n_trained_items(self) -> int:
        """Items the model was trained over (the first rows of the item id map); the rest were
        appended by :meth:`add_items`."""
        return len(self.item_ids) - self.added_items_

    def _trained_columns(self, histories: sp.spmatrix) -> sp.csr_matrix:
        """History rows without the columns of added items (none when nothing was added)."""
        histories = sp.csr_matrix(histories, dtype=np.float32)
        if not self.added_items_ or histories.shape[1] != len(self._item_ids):
            return histories
        keep = np.zeros(histories.shape[1], dtype=np.float32)
        keep[: self.n_trained_items] = 1.0
        out = sp.csr_matrix(histories @ sp.diags(keep))
        out.eliminate_zeros()
        return out

    def _require_item_features(self) -> None:
        self._check_fitted()
        if self.towers.item.feat_mlp is None:
            raise DataError(
                "this model was fitted without item features: an item unseen at training has no ID embedding and "
                "nothing to encode it from; fit with item_features= (rechash fit --item-features FILE)"
            )

    def feature_path_warning(self) -> str | None:
        """Why this model's codes for items added by features will be poor, or None: trained
        with ``item_id_dropout`` 0, its feature path only ever learnt a residual next to the
        ID embeddings and does not place an item on its own."""
        if self.config.item_id_dropout > 0:
            return None
        return (
            "this model was trained with item_id_dropout 0: its item-feature path never learnt to place an item "
            "without its ID embedding, so items added by their features get codes far from their users "
            "(experiments/results/new_items.md); fit with item_id_dropout=0.5 (--item-id-dropout 0.5) to add "
            "items later"
        )

    def _new_item_features(self, features) -> tuple[np.ndarray, dict]:
        """New items' features as the float32 matrix the item tower reads, and the report of
        tokens the training vocabulary lacks (see :mod:`rechash.hasher.new_items`)."""
        self._require_item_features()
        width = self.towers.item.features.shape[1]
        unknown: dict = {}
        if isinstance(features, SideFeatures):
            if self.item_schema_ is None:
                raise DataError(
                    f"this model was fitted with an unnamed feature array (no column schema): give new items as an "
                    f"(n, {width}) array in the same layout"
                )
            x, unknown = self.item_schema_.encode(features)
        else:
            if hasattr(features, "to_numpy"):
                features = features.to_numpy()
            if sp.issparse(features):
                features = features.toarray()
            x = np.asarray(features, dtype=np.float32)
            if x.ndim != 2 or x.shape[1] != width:
                raise DataError(
                    f"new item features: expected an (n, {width}) table in the training layout, got shape {x.shape}"
                )
            if not np.isfinite(x).all():
                raise DataError("new item features: contain NaN or infinity")
        return np.ascontiguousarray(x, dtype=np.float32), unknown

    def _feature_floats(self, x: np.ndarray, batch: int = 65536) -> np.ndarray:
        """Relaxed codes ``tanh(beta z)`` of the item tower's feature path alone (ID part 0)."""
        out = []
        self.towers.eval()
        with torch.no_grad():
            for s in range(0, len(x), batch):
                out.append(self.towers.item.feat_mlp(torch.from_numpy(x[s : s + batch])).numpy())
        z = np.concatenate(out) if out else np.zeros((0, self.bits), np.float32)
        return self._relaxed(z)

    def item_feature_floats(self, items=None) -> np.ndarray:
        """Relaxed codes of internal item ids (all when None) from their features alone, as a new
        item with the same features gets them: the item tower with the ID part set to 0."""
        self._require_item_features()
        feats = self.towers.item.features.numpy()
        return self._feature_floats(np.ascontiguousarray(self._rows(feats, items, "item")))

    #: how :meth:`teacher_map` scales its least-squares fit about the mean item
    TEACHER_MAP_SCALES = ("exposure", "mean", "variance")

    def teacher_map(self, scale: str = "exposure") -> tuple[np.ndarray, np.ndarray] | None:
        """``(W, b)``: new items' re-ranking floats are ``h W + b`` (``h``: their feature-only
        floats) when the model kept an ALS teacher; None without one.

        A ridge least-squares map (ridge 1, intercept free) from the feature-only floats
        (:meth:`item_feature_floats`) of the trained items with training interactions to their
        teacher item factors ``v``, then scaled about the mean item ``m``: ``m + s (fit - m)``.
        ``scale`` chooses ``s``:

        - ``"exposure"`` (default): ``s`` such that a mapped item enters a user's top
          ``eval_k`` (20) unseen trained items, ranked by the real factors, as often as an
          average trained item does (measured over a sample of users and trained items, each
          mapped item scored against the real ones): new items are neither buried nor pushed;
        - ``"mean"``: ``s = 1``, the conditional mean (least squares shrinks toward the mean
          item; shrunk vectors rarely reach a top 20 next to real factors);
        - ``"variance"``: ``s`` matching the total variance of the fitted values to the factors'.

        The three are compared in experiments/results/new_items.md."""
        if scale not in self.TEACHER_MAP_SCALES:
            raise DataError(f"teacher_map: scale must be one of {', '.join(self.TEACHER_MAP_SCALES)}, got {scale!r}")
        if self.teacher_ is None:
            return None
        if self._teacher_map is None:
            self._teacher_map = {}
        if scale not in self._teacher_map:
            n = self.n_trained_items
            rows = np.flatnonzero(self.towers.item.known.numpy()[:n] > 0)
            h = self.item_feature_floats(rows).astype(np.float64)
            v = self.teacher_.item_factors[rows].astype(np.float64)
            x = np.hstack([h, np.ones((len(h), 1))])
            reg = np.eye(x.shape[1])
            reg[-1, -1] = 0.0  # the intercept is not shrunk
            w = np.linalg.solve(x.T @ x + reg, x.T @ v)
            fitted, mean = x @ w, v.mean(axis=0)
            if scale == "mean":
                s = 1.0
            elif scale == "variance":
                spread = float(np.square(fitted - fitted.mean(axis=0)).sum())
                s = float(np.sqrt(np.square(v - mean).sum() / spread)) if spread > 0 else 1.0
            else:
                s = self._exposure_scale(rows, v, fitted, mean)
            self._teacher_map[scale] = ((s * w[:-1]).astype(np.float32), (mean + s * (w[-1] - mean)).astype(np.float32))
        return self._teacher_map[scale]

    def _exposure_scale(
        self,
        rows: np.ndarray,
        v: np.ndarray,
        fitted: np.ndarray,
        mean: np.ndarray,
        n_users: int = 1000,
        n_items: int = 4000,
    ) -> float:
        """The ``s`` of :meth:`teacher_map`'s ``"exposure"`` rule (a grid over 1e-2..1e2)."""
        rng = np.random.default_rng(self.seed)
        seen = getattr(self, "seen_", None)
        users = np.arange(len(self.teacher_.user_factors))
        if seen is not None:
            users = np.flatnonzero(np.diff(sp.csr_matrix(seen).indptr) > 0)
        users = np.sort(rng.choice(users, size=min(n_users, len(users)), replace=False))
        pick = np.sort(rng.choice(len(rows), size=min(n_items, len(rows)), replace=False))
        u = self.teacher_.user_factors[users].astype(np.float64)
        real = u @ v[pick].T
        unseen = np.ones(real.shape, dtype=bool)
        if seen is not None:
            unseen = np.asarray(sp.csr_matrix(seen)[users][:, rows[pick]].todense()) == 0
        k = np.minimum(self.config.eval_k, unseen.sum(axis=1) - 1)
        ok = k >= 1
        u, real, unseen, k = u[ok], real[ok], unseen[ok], k[ok]
        if not len(u):
            return 1.0
        masked = np.where(unseen, real, -np.inf)
        tau = -np.sort(-masked, axis=1)[np.arange(len(k)), k - 1]  # each user's k-th best unseen real score
        base = (u @ mean)[:, None]
        spread = u @ (fitted[pick] - mean).T
        target = k.sum() / unseen.sum()
        best, best_gap = 1.0, np.inf
        for s in np.geomspace(1e-2, 1e2, 81):
            share = ((base + s * spread >= tau[:, None]) & unseen).sum() / unseen.sum()
            gap = abs(np.log(max(share, 1e-12) / target))
            if gap < best_gap:
                best, best_gap = float(s), gap
        return best

    def encode_new_items(self, features, scale: str = "exposure") -> tuple[np.ndarray, np.ndarray]:
        """``(codes, re-ranking floats)`` of items unseen at training from their side features:
        one forward pass of the item tower with the ID part 0 (the tower's rule for items
        without training interactions). ``features``: a :class:`~rechash.data.SideFeatures`
        of the new items (encoded through the model's column schema; tokens unseen at training
        are ignored) or an ``(n, F)`` array in the training layout. Floats as
        :meth:`rerank_floats`: the teacher-space estimate of :meth:`teacher_map` when the model
        kept an ALS teacher (``scale`` as there), else the tower's floats. A model fitted without item features
        raises :class:`DataError`. Deterministic (no sampling, eval mode)."""
        x, _ = self._new_item_features(features)
        if warning := self.feature_path_warning():
            warnings.warn(warning, UserWarning, stacklevel=2)
        h = self._feature_floats(x)
        return binarize(h) if len(h) else np.zeros((0, self.bits // 8), np.uint8), self._rerank_new(h, scale)

    def _rerank_new(self, h: np.ndarray, scale: str) -> np.ndarray:
        m = self.teacher_map(scale)
        return h if m is None else np.ascontiguousarray(h @ m[0] + m[1], dtype=np.float32)

    def add_items(self, ids, features, scale: str = "exposure") -> dict:
        """Append items unseen at training, in place: ``ids`` (external, unique, none known to
        the model) with ``features`` as :meth:`encode_new_items` takes them. Their codes and
        tower floats come from the feature path; their ID embedding and history-context rows
        are zero (unused); their teacher factors (when the model kept a teacher) are the
        :meth:`teacher_map` estimate (``scale`` as there); the training-items matrix gains empty columns (they have
        no training interactions, no popularity). Histories of new users leave them out.
        :meth:`save` writes them; ``added_items_`` counts them. Returns a report:
        ``{"added", "n_items", "unknown_tokens"}``."""
        import pandas as pd
        import torch

        x, unknown = self._new_item_features(features)
        if self.teacher_ is not None:
            self.teacher_map(scale)  # an unknown scale fails before anything changes
        if warning := self.feature_path_warning():
            warnings.warn(warning, UserWarning, stacklevel=2)
        ids = np.asarray(ids)
        if ids.ndim != 1 or len(ids) != len(x):
            raise DataError(f"add_items: {ids.shape} ids for {len(x)} feature rows; give one id per row")
        if not len(ids):
            raise DataError("add_items: no items to add")
        old = self._item_ids
        known = old.to_internal(ids, strict=False, what="item id") >= 0
        if known.any():
            raise DataError(
                f"add_items: item {format_id(ids[known][0])} is already in the model ({int(known.sum())} known ids); "
                "give only new ids"
            )
        new_map = IdMap(np.asarray(ids, dtype=object) if old.kind != "integer" else ids)
        if old.kind in ("integer", "string") and new_map.kind != old.kind:
            raise DataError(f"add_items: new ids must be {old.kind}s like the model's item ids, got {ids.dtype}")
        item_ids = IdMap(pd.Index(old.external_ids).append(pd.Index(new_map.external_ids)))
        h = self._feature_floats(x)
        n_new, state = len(ids), {k: v.clone() for k, v in self.towers.state_dict().items()}

        def grow(key: str, rows: torch.Tensor) -> None:
            if key in state:
                state[key] = torch.cat([state[key], rows.to(state[key].dtype)])

        grow("item.id_emb.weight", torch.zeros(n_new, self.bits))
        grow("item.known", torch.zeros(n_new))
        grow("item.features", torch.from_numpy(x))
        grow("user.hist_emb.weight", torch.zeros(n_new, self.bits))
        towers = self._build(len(self._user_ids), len(item_ids), x.shape[1])
        towers.load_state_dict(state)
        towers.eval()
        teacher = self.teacher_
        if teacher is not None:
            teacher = FloatEmbeddings(
                teacher.user_factors,
                np.vstack([teacher.item_factors, self._rerank_new(h, scale)]),
                fold_in=dict(teacher.fold_in),
                user_ids=self._user_ids,
                item_ids=item_ids,
            )
        seen = getattr(self, "seen_", None)
        if seen is not None:
            seen = sp.hstack(
                [sp.csr_matrix(seen), sp.csr_matrix((seen.shape[0], n_new), dtype=seen.dtype)], format="csr"
            )
        self.towers, self._item_z = towers, np.vstack([self._item_z, h]).astype(np.float32)
        self._item_ids, self.teacher_, self.seen_ = item_ids, teacher, seen
        if self.ranker_ is not None:
            self.ranker_ = self.ranker_.extended(
                self.encode_items(), self._item_z, None if teacher is None else teacher.item_factors
            )
        self.added_items_ += n_new
        return {"added": n_new, "n_items": len(item_ids), "unknown_tokens": unknown}

    def encode_users(self, users=None, refined: bool = True) -> np.ndarray:
        """Packed codes ``(n, B/8)`` uint8 of internal user ids (all when None): the refined codes
        when the fit kept a refinement (``training_run()["refine"]``) and ``refined``, else the
        towers' codes, the signs of :meth:`user_floats`. The refined codes are tuned for a
        Hamming-only list of ``eval_k`` items; a re-ranker's deeper pool draws on the towers' codes
        (:mod:`rechash.hasher.refine`)."""
        if not refined or self._user_codes is None:
            return binarize(self.user_floats(users))
        return self._rows(self._user_codes, users, "user")

    def encode_items(self, items=None) -> np.ndarray:
        """Packed codes ``(n, B/8)`` uint8 of internal item ids (all when None: computed once per
        item table, read-only, so a new user's call does not re-binarize the catalog)."""
        if items is not None:
            return binarize(self.item_floats(items))
        floats = self.item_floats()
        if self._item_codes is None or self._item_codes[0] is not floats:
            codes = binarize(floats)
            codes.flags.writeable = False
            self._item_codes = (floats, codes)
        return self._item_codes[1]

    def encode_history(self, histories: sp.spmatrix, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Codes and floats (as :meth:`user_floats`) of users unseen at training time from their history rows
        (CSR over the item id space, weights as in training): a forward pass, no retraining."""
        self._check_fitted()
        if not self.towers.user.use_history:
            raise ModelError("this model has no history encoder (trained with user_history=False)")
        histories = sp.csr_matrix(histories, dtype=np.float32)
        if histories.shape[1] != len(self._item_ids):
            raise DataError(f"histories have {histories.shape[1]} columns, the model knows {len(self._item_ids)} items")
        histories = self._trained_columns(histories)
        out = []
        self.towers.eval()
        with torch.no_grad():
            for s in range(0, histories.shape[0], batch):
                pooled = self.towers.user.pool(histories[s : s + batch])
                out.append(self.towers.user.hist_proj(pooled).numpy())
        z = self._relaxed(np.concatenate(out)) if out else np.zeros((0, self.bits), np.float32)
        return binarize(z) if len(z) else np.zeros((0, self.bits // 8), np.uint8), z

    def diagnostics(self) -> dict:
        """:func:`rechash.codes.diagnostics.code_diagnostics` of this model's codes."""
        from rechash.codes.diagnostics import code_diagnostics

        return code_diagnostics(self.encode_users(), self.encode_items(), seed=self.seed)

    # ---- persistence -------------------------------------------------------------------
    # ---- state: the model owns what it saves; persistence writes it ---------------------
    def get_config(self) -> dict:
        """The options that build this model unfitted: ``{bits, towers, training}``
        (:meth:`from_config` inverts it)."""
        return {"bits": self.bits, "towers": self.tower_options(), "training": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict) -> TwinTowerHasher:
        """An unfitted model with the options of :meth:`get_config`."""
        return cls(config["bits"], **config["towers"], **config["training"])

    def to_state(self) -> SavedModel:
        """Everything a model directory holds (:class:`rechash.hasher.persistence.SavedModel`)."""
        from rechash.hasher.persistence import SavedModel

        self._check_fitted()
        config = {
            **self.get_config(),
            "n_users": len(self.user_ids),
            "n_items": len(self.item_ids),
            "fit_seconds": self.fit_seconds_,
            "history": [asdict(log) for log in self.history_],
            "training_run": self.training_run(),
        }
        return SavedModel(
            config=config,
            params={k: v.detach().cpu().numpy() for k, v in self.towers.state_dict().items()},
            user_z=self.user_floats(),
            item_z=self.item_floats(),
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            seen=getattr(self, "seen_", None),  # set by fit and load; None for a model built otherwise
            teacher=getattr(self, "teacher_", None),
            item_schema=None if getattr(self, "item_schema_", None) is None else self.item_schema_.to_json(),
            user_codes=self._user_codes,
            ranker=None if getattr(self, "ranker_", None) is None else self.ranker_.state(),
        )

    def save(self, path: str | Path) -> Path:
        """Write a model directory (no pickle); see :mod:`rechash.hasher.persistence`."""
        from rechash.hasher.persistence import save_model

        return save_model(self.to_state(), path)

    @classmethod
    def load(cls, path: str | Path) -> TwinTowerHasher:
        """Load a model directory written by :meth:`save` (validated, checksummed; ``seen_``
        is the stored training-items matrix, or None when the directory has none)."""
        from rechash.hasher.persistence import read_model

        saved = read_model(path, {f.name for f in fields(TrainConfig)}, {f.name for f in fields(EpochLog)})
        return cls.from_state(saved, path)

    @classmethod
    def from_state(cls, saved: SavedModel, path: str | Path | None = None) -> TwinTowerHasher:
        """The fitted model of a state (:meth:`to_state`, or a directory's verified by
        :func:`rechash.hasher.persistence.read_model`); errors name files under ``path`` (the
        directory it was read from, when there is one)."""
        from rechash.errors import RechashError
        from rechash.hasher.persistence import CONFIG

        path = Path("<model state>") if path is None else Path(path)

        config, params = saved.config, saved.params
        feats = params.get("item.features")
        try:
            model = cls.from_config(config)
            towers = model._build(
                config["n_users"], config["n_items"], 0 if feats is None or feats.ndim != 2 else feats.shape[1]
            )
            history = [EpochLog(**h) for h in config.get("history", [])]
        except (TypeError, ValueError, RechashError) as exc:
            raise ModelError(f"{path / CONFIG}: invalid model options ({exc})") from None
        expected = towers.state_dict()
        if set(params) != set(expected):
            raise ModelError(
                f"{path / 'params.npz'}: parameters {sorted(set(params) ^ set(expected))} do not match the towers"
            )
        for k, v in params.items():
            if tuple(v.shape) != tuple(expected[k].shape):
                raise ModelError(f"{path / 'params.npz'}: {k} has shape {v.shape}, expected {tuple(expected[k].shape)}")
        towers.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
        towers.eval()
        model.towers = towers
        model._user_z, model._item_z = saved.user_z, saved.item_z
        model._user_ids, model._item_ids = saved.user_ids, saved.item_ids
        model.seen_, model.teacher_ = saved.seen, saved.teacher
        model.fit_seconds_ = config.get("fit_seconds")
        model.history_ = history
        run = config.get("training_run", {})
        model.teacher_info_, model.stop_reason_, model.holdout_ = (
            run.get("teacher"),
            run.get("stop_reason"),
            run.get("holdout", 0),
        )
        model.negatives_, model.refine_, model._user_codes = run.get("negatives"), run.get("refine"), saved.user_codes
        added = run.get("added_items", 0)
        if isinstance(added, bool) or not isinstance(added, int) or not 0 <= added < config["n_items"]:
            raise ModelError(
                f"{path / CONFIG}: training_run.added_items must be an integer in "
                f"0..{config['n_items'] - 1}, got {added!r}"
            )
        model.added_items_ = added
        model.ranker_info_ = run.get("ranker")
        if saved.ranker is not None:
            from rechash.hasher.persistence import RANKER_MODEL
            from rechash.rerank.pool import PoolRanker

            arrays, text = saved.ranker
            teacher = None if model.teacher_ is None else model.teacher_.item_factors
            model.ranker_ = PoolRanker.from_state(
                model.encode_items(), model._item_z, teacher, arrays, text, str(path / RANKER_MODEL)
            )
        if saved.item_schema is not None:
            from rechash.hasher.new_items import ItemFeatureSchema
            from rechash.hasher.persistence import ITEM_FEATURES

            schema = ItemFeatureSchema.from_json(saved.item_schema, str(path / ITEM_FEATURES))
            width = 0 if feats is None or feats.ndim != 2 else feats.shape[1]
            if schema.width != width:
                raise ModelError(
                    f"{path / ITEM_FEATURES}: describes {schema.width} feature columns, the towers read {width}"
                )
            model.item_schema_ = schema
        return model
