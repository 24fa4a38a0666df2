"""implicit ALS / BPR matrix factorisation as float baselines (CPU, deterministic for a seed)."""
from __future__ import annotations

import numpy as np

from rechash.baselines.embeddings import FloatEmbeddings
from rechash.data.interactions import Interactions
from rechash.errors import require


def _to_numpy(x) -> np.ndarray:
    return x.to_numpy() if hasattr(x, "to_numpy") else np.asarray(x)


def fit_als(
    train: Interactions,
    factors: int = 64,
    regularization: float = 0.01,
    alpha: float = 1.0,
    iterations: int = 15,
    seed: int = 0,
    num_threads: int = 0,
) -> FloatEmbeddings:
    """Fit implicit's ``AlternatingLeastSquares`` (CPU) on the train weights scaled by ``alpha``."""
    implicit = require("implicit", "baselines", "The ALS baseline")
    model = implicit.cpu.als.AlternatingLeastSquares(
        factors=factors,
        regularization=regularization,
        alpha=alpha,
        iterations=iterations,
        random_state=seed,
        num_threads=num_threads,
        calculate_training_loss=False,
    )
    model.fit(train.matrix.astype(np.float32), show_progress=False)
    return FloatEmbeddings(_to_numpy(model.user_factors), _to_numpy(model.item_factors))


def fit_bpr(
    train: Interactions,
    factors: int = 64,
    learning_rate: float = 0.01,
    regularization: float = 0.01,
    iterations: int = 100,
    seed: int = 0,
    num_threads: int = 0,
) -> FloatEmbeddings:
    """Fit implicit's ``BayesianPersonalizedRanking`` (CPU); the bias column is kept in the factors."""
    implicit = require("implicit", "baselines", "The BPR baseline")
    model = implicit.cpu.bpr.BayesianPersonalizedRanking(
        factors=factors,
        learning_rate=learning_rate,
        regularization=regularization,
        iterations=iterations,
        random_state=seed,
        num_threads=num_threads,
    )
    model.fit(train.matrix.astype(np.float32), show_progress=False)
    return FloatEmbeddings(_to_numpy(model.user_factors), _to_numpy(model.item_factors))
