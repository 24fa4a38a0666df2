"""Post-hoc binarization of float embeddings: ITQ and random-rotation LSH.

Both are scikit-learn-style transformers over any ``(n, d)`` float array: ``fit`` learns
a projection ``W`` (``d x B``) and, optionally, a mean; ``transform`` returns the real
codes ``(x - mean) @ W`` (whose signs are the bits) and ``encode`` the packed codes
(:func:`rechash.codes.binarize`, the one place that knows the bit order).

For user-item retrieval fit one transformer on users and items together (the joint
fit keeps one rotation, so ``sign(u W) . sign(v W)`` approximates ``u . v``) and keep
``center=False``: subtracting a mean changes the dot products being preserved.
"""
from __future__ import annotations

import numpy as np

from rechash.codes import binarize
from rechash.errors import DataError


def _check_x(x: np.ndarray, what: str = "X") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"{what}: expected a non-empty 2-D float array (n, d), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: contains NaN or infinity")
    return x


def _random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))  # Haar-distributed


class _Binarizer:
    """Shared transform / encode for the projection-based binarizers."""

    n_bits: int
    center: bool
    projection_: np.ndarray
    mean_: np.ndarray

    def _check_fitted(self) -> None:
        if not hasattr(self, "projection_"):
            raise DataError(f"{type(self).__name__} is not fitted: call fit(X) first")

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Real codes ``(n, B)`` float32; their signs are the bits."""
        self._check_fitted()
        x = _check_x(x)
        if x.shape[1] != self.projection_.shape[0]:
            raise DataError(f"X has {x.shape[1]} columns, the transformer was fitted on {self.projection_.shape[0]}")
        return ((x - self.mean_) @ self.projection_).astype(np.float32)

    def fit_transform(self, x: np.ndarray, y=None) -> np.ndarray:
        return self.fit(x).transform(x)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Packed codes ``(n, B/8)`` uint8 of ``X``."""
        return binarize(self.transform(x))

    def _start(self, x: np.ndarray) -> np.ndarray:
        if self.n_bits <= 0 or self.n_bits % 8:
            raise DataError(f"n_bits must be a positive multiple of 8, got {self.n_bits}")
        x = _check_x(x)
        self.mean_ = x.mean(axis=0) if self.center else np.zeros(x.shape[1])
        return x - self.mean_


class RandomRotationLSH(_Binarizer):
    """Sign random projections (SimHash): ``W`` has orthonormal columns when ``B <= d``,
    else ``B`` unit Gaussian directions; no learning beyond the optional mean."""

    def __init__(self, n_bits: int = 64, center: bool = False, seed: int = 0) -> None:
        self.n_bits, self.center, self.seed = n_bits, center, seed

    def fit(self, x: np.ndarray, y=None) -> "RandomRotationLSH":
        x = self._start(x)
        d = x.shape[1]
        rng = np.random.default_rng(self.seed)
        if self.n_bits <= d:
            self.projection_ = _random_orthogonal(d, rng)[:, : self.n_bits]
        else:
            w = rng.standard_normal((d, self.n_bits))
            self.projection_ = w / np.linalg.norm(w, axis=0, keepdims=True)
        return self


class ITQ(_Binarizer):
    """Iterative quantization (Gong & Lazebnik 2011): PCA to ``B`` dimensions, then the
    orthogonal rotation ``R`` minimising ``||sign(V R) - V R||_F`` by alternating updates.

    When ``B`` exceeds the input dimension ``d`` the data are lifted by a random
    orthogonal embedding into ``B`` dimensions before the rotation is learned.
    ``projection_ = P @ R`` with ``P`` the PCA (or lift) matrix.
    """

    def __init__(self, n_bits: int = 64, n_iter: int = 50, center: bool = True, seed: int = 0) -> None:
        self.n_bits, self.n_iter, self.center, self.seed = n_bits, n_iter, center, seed

    def fit(self, x: np.ndarray, y=None) -> "ITQ":
        x = self._start(x)
        n, d = x.shape
        rng = np.random.default_rng(self.seed)
        if self.n_bits <= d:
            _, _, vt = np.linalg.svd(x, full_matrices=False)
            pca = vt[: self.n_bits].T  # (d, B), leading principal directions
        else:
            pca = _random_orthogonal(self.n_bits, rng)[:d]  # (d, B), orthonormal rows: an isometric lift
        v = x @ pca
        r = _random_orthogonal(self.n_bits, rng)
        self.quantization_loss_: list[float] = []
        for _ in range(self.n_iter):
            b = np.where(v @ r > 0, 1.0, -1.0)
            self.quantization_loss_.append(float(np.square(b - v @ r).mean()))
            u, _, wt = np.linalg.svd(b.T @ v)  # Procrustes: R = argmax tr(R^T V^T B)
            r = (u @ wt).T
        self.rotation_ = r
        self.projection_ = pca @ r
        return self
