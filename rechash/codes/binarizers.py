"""Post-hoc binarization of float embeddings: ITQ and random-rotation LSH.

Both are scikit-learn transformers (``BaseEstimator`` + ``TransformerMixin``) over any
``(n, d)`` float array: ``fit`` learns a projection ``W`` (``d x B``) and, optionally, a
mean; ``transform`` returns the real codes ``(x - mean) @ W`` (``(n, B)`` float32, whose
signs are the bits) and ``encode`` the packed codes (``(n, B/8)`` uint8, via
:func:`rechash.codes.bits.binarize`, the one place that knows the bit order).  They clone,
``get_params`` / ``set_params`` and sit in a :class:`~sklearn.pipeline.Pipeline` like any
scikit-learn transformer, and ``save`` / ``load`` round-trip through a pickle-free ``.npz``.

Centring (``center``, default ``False`` for both classes): for user-item retrieval fit one
transformer on users and items together (the joint fit keeps one rotation, so
``sign(u W) . sign(v W)`` approximates ``u . v``) and keep ``center=False``: subtracting a
mean ``m`` turns the score into ``(u - m) . (v - m)``, which adds the item-dependent term
``-m . v`` (popularity, typically) and reorders each user's items.  Set ``center=True``
only when codes are compared within one set by angle around the data's own centre (e.g.
item-item near-duplicate search, or textbook ITQ as in Gong & Lazebnik), where balanced
bits (each ~50 % ones) matter more than preserving raw inner products.
"""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from rechash.codes.bits import MAX_BITS, binarize
from rechash.errors import ConfigError, DataError, ModelError

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator, X, *, reset, **kw):
        return estimator._validate_data(X, reset=reset, **kw)


FORMAT = "rechash.binarizer"
FORMAT_VERSION = 1


class NotFittedError(_SklearnNotFittedError, DataError):
    """``transform`` / ``encode`` / ``save`` before ``fit``: scikit-learn's
    :class:`~sklearn.exceptions.NotFittedError` (so ``check_is_fitted`` semantics hold)
    that is also a :class:`~rechash.errors.DataError` (so rechash's CLI prints it cleanly)."""


def _random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))  # Haar-distributed


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


class _Binarizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared validation, transform / encode and save / load of the projection binarizers.

    Fitted attributes: ``projection_`` (``d x B``), ``mean_`` (``d``; zeros unless
    ``center``), ``n_features_in_`` and, for DataFrame input, ``feature_names_in_``.
    """

    bits: int
    center: bool
    seed: int | None

    # ---- validation ----------------------------------------------------------------------
    def _check_params(self) -> None:
        b = self.bits
        if not _is_int(b) or b <= 0 or b % 8 or b > MAX_BITS:
            raise ConfigError(
                f"{type(self).__name__}: bits must be a positive multiple of 8 (at most {MAX_BITS}), got {b!r}"
            )
        if not isinstance(self.center, (bool, np.bool_)):
            raise ConfigError(f"{type(self).__name__}: center must be True or False, got {self.center!r}")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise ConfigError(f"{type(self).__name__}: seed must be a non-negative integer or None, got {self.seed!r}")

    def _validate_x(self, x, *, reset: bool) -> np.ndarray:
        """scikit-learn's input validation (2-D, non-empty, finite, numeric, feature count
        and names), its ``ValueError`` re-raised as :class:`DataError` with the same text."""
        try:
            return _validate_data(self, x, reset=reset, dtype=np.float64)
        except ValueError as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{type(self).__name__}: {exc}") from exc

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "projection_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: call fit(X) (or fit_transform) "
                "before transform, encode or save"
            )

    def _start(self, x) -> np.ndarray:
        """Validate parameters and ``X`` (resetting ``n_features_in_``), set ``mean_``; return the centred ``X``."""
        self._check_params()
        x = self._validate_x(x, reset=True)
        self.mean_ = x.mean(axis=0) if self.center else np.zeros(x.shape[1])
        return x - self.mean_

    # ---- outputs -------------------------------------------------------------------------
    def _project(self, x) -> np.ndarray:
        self._check_fitted()
        x = self._validate_x(x, reset=False)
        return ((x - self.mean_) @ self.projection_).astype(np.float32)

    def transform(self, x) -> np.ndarray:
        """Real codes ``(n, B)`` float32; their signs are the bits (``set_output`` aware)."""
        return self._project(x)

    def encode(self, x) -> np.ndarray:
        """Packed codes ``(n, B/8)`` uint8 of ``X`` (bit = 1 where the real code is > 0)."""
        return binarize(self._project(x))

    @property
    def _n_features_out(self) -> int:  # for get_feature_names_out: itq0, itq1, ...
        return int(self.projection_.shape[1])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # transform always returns float32
        return tags

    def _more_tags(self) -> dict:  # pragma: no cover - scikit-learn < 1.6
        return {"preserves_dtype": [np.float32]}

    # ---- persistence ---------------------------------------------------------------------
    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        out = {"projection_": self.projection_, "mean_": self.mean_}
        if hasattr(self, "feature_names_in_"):
            out["feature_names_in_"] = np.asarray(self.feature_names_in_, dtype=str)
        return out

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self.projection_ = arrays["projection_"]
        self.mean_ = arrays["mean_"]
        self.n_features_in_ = int(meta["n_features_in_"])
        if "feature_names_in_" in arrays:
            self.feature_names_in_ = arrays["feature_names_in_"].astype(object)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted transformer to ``path`` (``.npz`` appended if missing): its
        arrays plus a JSON header (format, class, ``get_params()``), no pickles.  Returns
        the path written; :meth:`load` reads it back."""
        self._check_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "class": type(self).__name__,
            "params": self.get_params(),
            "n_features_in_": int(self.n_features_in_),
        }
        arrays = {k: np.ascontiguousarray(v) for k, v in self._fitted_arrays().items()}
        assert all(a.dtype != object for a in arrays.values())  # nothing that would need pickle
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a transformer written by :meth:`save` (``allow_pickle=False``)."""
        path = Path(path)
        if not path.exists() and path.suffix != ".npz" and path.with_name(path.name + ".npz").exists():
            path = path.with_name(path.name + ".npz")
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            meta = json.loads(str(arrays.pop("meta")))
        except FileNotFoundError as exc:
            raise ModelError(f"{cls.__name__}.load: {path} does not exist") from exc
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{cls.__name__}.load: {path} is not a saved rechash binarizer ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelError(f"{cls.__name__}.load: {path} is not a saved rechash binarizer")
        if meta.get("version") != FORMAT_VERSION:
            raise ModelError(
                f"{cls.__name__}.load: {path} has format version {meta.get('version')}, expected {FORMAT_VERSION}"
            )
        if meta.get("class") != cls.__name__:
            raise ModelError(f"{cls.__name__}.load: {path} holds a {meta.get('class')}, not a {cls.__name__}")
        try:
            est = cls(**meta["params"])
            est._check_params()
            est._restore(arrays, meta)
        except (KeyError, TypeError, ConfigError) as exc:
            raise ModelError(f"{cls.__name__}.load: {path} is incomplete or inconsistent ({exc})") from exc
        d, b = est.n_features_in_, est.bits
        if est.projection_.shape != (d, b) or est.mean_.shape != (d,):
            raise ModelError(
                f"{cls.__name__}.load: {path}: projection_ {est.projection_.shape} / mean_ {est.mean_.shape} "
                f"do not match {d} features and {b} bits"
            )
        return est


class RandomRotationLSH(_Binarizer):
    """Sign random projections (SimHash): ``W`` has orthonormal columns when ``B <= d``,
    else ``B`` unit Gaussian directions; no learning beyond the optional mean.

    Parameters
    ----------
    bits : int, default 64
        Code length ``B``: a positive multiple of 8 (validated in ``fit``).
    center : bool, default False
        Subtract the training mean before projecting.  Keep ``False`` when codes must
        preserve dot products (user-item retrieval); see the module docstring.
    seed : int or None, default 0
        Seed of the random directions (``None``: fresh entropy, not reproducible).

    Attributes
    ----------
    projection_ : ndarray (d, B)
    mean_ : ndarray (d,)  (zeros unless ``center``)
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when fitted on a DataFrame
    """

    def __init__(self, bits: int = 64, *, center: bool = False, seed: int | None = 0) -> None:
        self.bits = bits
        self.center = center
        self.seed = seed

    def fit(self, x, y=None) -> RandomRotationLSH:
        """Draw the projection for ``X`` (``(n, d)``); ``y`` is ignored."""
        x = self._start(x)
        d = x.shape[1]
        rng = np.random.default_rng(self.seed)
        if self.bits <= d:
            self.projection_ = _random_orthogonal(d, rng)[:, : self.bits]
        else:
            w = rng.standard_normal((d, self.bits))
            self.projection_ = w / np.linalg.norm(w, axis=0, keepdims=True)
        return self


class ITQ(_Binarizer):
    """Iterative quantization (Gong & Lazebnik 2011): PCA to ``B`` dimensions, then the
    orthogonal rotation ``R`` minimising ``||sign(V R) - V R||_F`` by alternating updates.

    When ``B`` exceeds the input dimension ``d`` the data are lifted by a random
    orthogonal embedding into ``B`` dimensions before the rotation is learned.
    ``projection_ = P @ R`` with ``P`` the PCA (or lift) matrix.

    Parameters
    ----------
    bits : int, default 64
        Code length ``B``: a positive multiple of 8 (validated in ``fit``).
    n_iter : int, default 50
        Alternating (sign, Procrustes) updates of the rotation; a fixed count, not a cap.
    center : bool, default False
        Subtract the training mean first.  The default preserves dot products, which is
        what user-item retrieval needs (fit once on users and items stacked); set ``True``
        for textbook ITQ when codes are compared within one set by angle around the data's
        centre and balanced bits matter more (see the module docstring).
    seed : int or None, default 0
        Seed of the initial rotation and of the lift (``None``: not reproducible).

    Attributes
    ----------
    projection_ : ndarray (d, B)
    rotation_ : ndarray (B, B)
    mean_ : ndarray (d,)  (zeros unless ``center``)
    quantization_loss_ : list of float, one per iteration (non-increasing)
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when fitted on a DataFrame
    """

    def __init__(self, bits: int = 64, *, n_iter: int = 50, center: bool = False, seed: int | None = 0) -> None:
        self.bits = bits
        self.n_iter = n_iter
        self.center = center
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        if not _is_int(self.n_iter) or self.n_iter < 0:
            raise ConfigError(f"ITQ: n_iter must be a non-negative integer, got {self.n_iter!r}")

    def fit(self, x, y=None) -> ITQ:
        """Learn the projection from ``X`` (``(n, d)``); ``y`` is ignored."""
        x = self._start(x)
        n, d = x.shape
        b = self.bits
        rng = np.random.default_rng(self.seed)
        if b <= d:
            # full V^T when there are fewer samples than bits, so P still has B orthonormal columns
            _, _, vt = np.linalg.svd(x, full_matrices=n < b)
            pca = vt[:b].T  # (d, B), leading principal directions
        else:
            pca = _random_orthogonal(b, rng)[:d]  # (d, B), orthonormal rows: an isometric lift
        v = x @ pca
        r = _random_orthogonal(b, rng)
        loss: list[float] = []
        for _ in range(self.n_iter):
            codes = np.where(v @ r > 0, 1.0, -1.0)
            loss.append(float(np.square(codes - v @ r).mean()))
            u, _, wt = np.linalg.svd(codes.T @ v)  # Procrustes: R = argmax tr(R^T V^T B)
            r = (u @ wt).T
        self.quantization_loss_ = loss
        self.rotation_ = r
        self.projection_ = pca @ r
        return self

    def _fitted_arrays(self) -> dict[str, np.ndarray]:
        out = super()._fitted_arrays()
        out["rotation_"] = self.rotation_
        out["quantization_loss_"] = np.asarray(self.quantization_loss_, dtype=np.float64)
        return out

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        super()._restore(arrays, meta)
        self.rotation_ = arrays["rotation_"]
        self.quantization_loss_ = [float(v) for v in arrays["quantization_loss_"]]
