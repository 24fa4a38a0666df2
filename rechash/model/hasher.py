"""TwinTowerHasher: learns B-bit codes for users and items in one Hamming space."""
from __future__ import annotations

import warnings
from dataclasses import fields
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from rechash.baselines.embeddings import FloatEmbeddings
from rechash.codes import binarize
from rechash.data.idmap import IdMap
from rechash.data.interactions import Interactions
from rechash.errors import ConfigError, DataError, ModelError
from rechash.threads import current_threads
from rechash.model.itq import ITQ
from rechash.model.sampling import holdout_mask
from rechash.model.towers import Towers, pool_csr
from rechash.model.trainer import EpochLog, Trainer, TrainConfig, all_floats


def _as_features(features, n: int, what: str, ids: IdMap | None = None) -> np.ndarray | None:
    """Side features as a dense float32 ``(n, F)`` array aligned with the IdMap (or None).

    Accepts a :class:`rechash.data.SideFeatures` (numeric columns z-scored, categorical and
    multi-token columns one-/multi-hot), a DataFrame, a dense array or a scipy sparse matrix."""
    if features is None:
        return None
    if hasattr(features, "numeric_matrix") and hasattr(features, "features"):  # SideFeatures
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
    :class:`~rechash.model.trainer.TrainConfig` (``epochs``, ``negatives``, ``tau``,
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
        self._user_z = self._item_z = None
        self._user_ids = self._item_ids = None
        self.fit_seconds_: float | None = None
        self.teacher_info_: dict | None = None
        self.teacher_: FloatEmbeddings | None = None
        self.stop_reason_: str | None = None
        self.holdout_ = 0

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
        why training stopped, and how many training interactions were held out for validation."""
        return {"teacher": self.teacher_info_, "stop_reason": self.stop_reason_, "holdout": self.holdout_}

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
                f"teacher has {teacher.user_factors.shape[1]} factors < {self.bits} bits: its ITQ lift is rank-deficient "
                "and training from it can collapse (seen at 128 bits from 64 factors); use a teacher with >= bits factors",
                stacklevel=3,
            )
        u = teacher.user_factors / np.sqrt(np.mean(np.square(teacher.user_factors)) + 1e-12)
        v = teacher.item_factors / np.sqrt(np.mean(np.square(teacher.item_factors)) + 1e-12)
        itq = ITQ(self.bits, center=False, seed=self.seed).fit(np.vstack([u, v]))
        ru, rv = (itq.transform(x) for x in (u, v))
        scale = (1.0 if c.init_scale is None else c.init_scale) / np.sqrt(np.mean(np.square(np.vstack([ru, rv]))) + 1e-12)
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
    ) -> "TwinTowerHasher":
        """Train on ``train``, early stopping on ``valid`` Recall@K of the binary codes.

        Without ``valid``, one interaction each of a sample of users is held out of ``train``
        as validation (:func:`rechash.model.sampling.holdout_mask`; ``holdout_`` counts them).
        ``teacher``: ``"auto"`` (the default: implicit ALS tuned on the validation data,
        :func:`rechash.baselines.teachers.default_teacher`; ``teacher_info_`` records what was
        chosen), ``None``, or float embeddings on the same id maps, used for distillation
        (``w_distill``, ``w_rank``) and, with ``init="teacher"``, for initialisation.
        ``item_features``: ``(n_items, F)`` table aligned with the item IdMap (a
        :class:`~rechash.data.SideFeatures`, a DataFrame or an array); when None,
        ``train.item_features`` is used if the data carries it. ``user_features`` are accepted
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
            from rechash.baselines.teachers import default_teacher

            teacher, self.teacher_info_ = default_teacher(train, valid, self.bits, self.seed, current_threads(c.threads))
        elif teacher is not None:
            self.teacher_info_ = {"kind": "given", "factors": teacher.dim, "fold_in": dict(teacher.fold_in or {})}
        if teacher is not None:  # rows put in the data's id order, or refused naming the first mismatch
            teacher = teacher.aligned_to(train.user_ids, train.item_ids, "teacher")
        # an ALS teacher (one that can fold in new users) also re-ranks the Hamming candidates
        self.teacher_ = teacher if teacher is not None and teacher.fold_in is not None else None
        if item_features is None:  # side features the data layer attached to the interactions, if any
            item_features = getattr(train, "item_features", None)
        feats = _as_features(item_features, train.n_items, "item_features", train.item_ids)
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
                teacher=None if teacher is None or not (c.w_distill or c.w_rank) else (teacher.user_factors, teacher.item_factors),
                device=device,
                rng=rng,
                callbacks=callbacks,
            )
            self.history_ = trainer.run()
            self.stop_reason_ = trainer.stop_reason
            uz, iz = all_floats(towers, self.seen_.astype(np.float32), device)  # full histories, holdout included
            self._user_z, self._item_z = self._relaxed(uz), self._relaxed(iz)
            self.towers = towers.cpu()
            self._user_ids, self._item_ids = train.user_ids, train.item_ids
        finally:
            torch.set_num_threads(old_threads)
        self.fit_seconds_ = time.perf_counter() - t_start
        return self

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
        are the re-ranking floats; their signs are the binary codes. (Re-ranking 200 Hamming
        candidates of ml-1m by ``<h_u, h_i>`` beat the raw pre-tanh ``z`` by about 0.01 Recall@20.)"""
        self._check_fitted()
        return self._rows(self._user_z, users, "user")

    def item_floats(self, items=None) -> np.ndarray:
        """Relaxed codes ``h = tanh(beta z)`` (float32, ``(n, B)``) of internal item ids (all when None)."""
        self._check_fitted()
        return self._rows(self._item_z, items, "item")

    def rerank_floats(self) -> tuple[np.ndarray, np.ndarray]:
        """``(user, item)`` floats of the default dot re-ranker: the teacher's ALS factors when the
        model kept them (fitted with an ALS teacher: on ml-1m, lastfm and amazon-beauty its dot
        product over the Hamming pool matched or beat exact ALS, the towers' floats stayed 4-6%
        below; experiments/results/codes.md), else the towers' relaxed codes."""
        self._check_fitted()
        if self.teacher_ is not None:
            return self.teacher_.user_factors, self.teacher_.item_factors
        return self.user_floats(), self.item_floats()

    def encode_new_users(self, histories: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, re-ranking floats)`` of users unseen at training from their history rows: codes
        from the history encoder, floats as :meth:`rerank_floats` (the teacher's ALS fold-in, else
        the encoder's own floats), one encoder pass."""
        codes, floats = self.encode_history(histories)
        if self.teacher_ is not None:
            floats = self.teacher_.fold_in_users(histories)
        return codes, floats

    def encode_users(self, users=None) -> np.ndarray:
        """Packed codes ``(n, B/8)`` uint8 of internal user ids (all when None)."""
        return binarize(self.user_floats(users))

    def encode_items(self, items=None) -> np.ndarray:
        """Packed codes ``(n, B/8)`` uint8 of internal item ids (all when None)."""
        return binarize(self.item_floats(items))

    def encode_history(self, histories: sp.spmatrix, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Codes and floats (as :meth:`user_floats`) of users unseen at training time from their history rows
        (CSR over the item id space, weights as in training): a forward pass, no retraining."""
        self._check_fitted()
        if not self.towers.user.use_history:
            raise ModelError("this model has no history encoder (trained with user_history=False)")
        histories = sp.csr_matrix(histories, dtype=np.float32)
        if histories.shape[1] != len(self._item_ids):
            raise DataError(f"histories have {histories.shape[1]} columns, the model knows {len(self._item_ids)} items")
        out = []
        self.towers.eval()
        with torch.no_grad():
            for s in range(0, histories.shape[0], batch):
                pooled = self.towers.user.pool(histories[s : s + batch])
                out.append(self.towers.user.hist_proj(pooled).numpy())
        z = self._relaxed(np.concatenate(out)) if out else np.zeros((0, self.bits), np.float32)
        return binarize(z) if len(z) else np.zeros((0, self.bits // 8), np.uint8), z

    def diagnostics(self) -> dict:
        """:func:`rechash.model.diagnostics.code_diagnostics` of this model's codes."""
        from rechash.model.diagnostics import code_diagnostics

        return code_diagnostics(self.encode_users(), self.encode_items(), seed=self.seed)

    # ---- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a model directory (no pickle); see :mod:`rechash.artifacts`."""
        from rechash.artifacts import save_model

        self._check_fitted()
        return save_model(self, path)

    @classmethod
    def load(cls, path: str | Path) -> "TwinTowerHasher":
        """Load a model directory written by :meth:`save` (validated, checksummed; ``seen_``
        is the stored training-items matrix, or None when the directory has none)."""
        from rechash.artifacts import CONFIG, read_model
        from rechash.errors import RechashError

        saved = read_model(path, {f.name for f in fields(TrainConfig)}, {f.name for f in fields(EpochLog)})
        config, params, path = saved.config, saved.params, Path(path)
        feats = params.get("item.features")
        try:
            model = cls(config["bits"], **config["towers"], **config["training"])
            towers = model._build(config["n_users"], config["n_items"], 0 if feats is None or feats.ndim != 2 else feats.shape[1])
            history = [EpochLog(**h) for h in config.get("history", [])]
        except (TypeError, ValueError, RechashError) as exc:
            raise ModelError(f"{path / CONFIG}: invalid model options ({exc})") from None
        expected = towers.state_dict()
        if set(params) != set(expected):
            raise ModelError(f"{path / 'params.npz'}: parameters {sorted(set(params) ^ set(expected))} do not match the towers")
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
        model.teacher_info_, model.stop_reason_, model.holdout_ = run.get("teacher"), run.get("stop_reason"), run.get("holdout", 0)
        return model

