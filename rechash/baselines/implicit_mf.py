"""implicit ALS / BPR matrix factorisation as float baselines (CPU, deterministic for a seed).

ALS is deterministic for a seed at any thread count (each row is solved independently);
BPR is Hogwild SGD and is deterministic only with ``num_threads=1``. BLAS is pinned to one
thread while fitting: implicit solves many small systems and an OpenBLAS thread pool makes
it 2-3x slower.

``ALS_DEFAULTS`` are the hyper-parameters chosen on the *validation* split of ml-1m at 64
factors (regularization 100, alpha 10, 15 iterations: valid Recall@20 0.2615; lastfm
prefers alpha 20: 0.2693), from the grids of ``experiments/baselines/tune.md``;
:func:`tune_als` re-tunes on your data over :data:`ALS_GRID`, which holds both datasets'
optimum (``rechash compare`` does this by default). More iterations (30-50) add about
0.001 valid Recall@20 for 2-3x the fit time.
"""
from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from rechash.baselines.embeddings import FloatEmbeddings
from rechash.data.interactions import Interactions
from rechash.errors import DataError, require

#: ALS hyper-parameters chosen on validation (64 factors); see the module docstring.
ALS_DEFAULTS: dict[str, Any] = {"factors": 64, "regularization": 100.0, "alpha": 10.0, "iterations": 15}

#: The small validation grid :func:`tune_als` (and ``rechash compare``) searches by default (9 fits).
ALS_GRID: dict[str, Sequence[Any]] = {
    "regularization": (30.0, 100.0, 300.0),
    "alpha": (10.0, 20.0, 40.0),
    "iterations": (15,),
}

#: BPR hyper-parameters chosen on validation by :func:`tune_bpr` (64 factors, 1 thread).
BPR_DEFAULTS: dict[str, Any] = {"factors": 64, "learning_rate": 0.005, "regularization": 0.01, "iterations": 100}
# (valid Recall@20: ml-1m 0.1702, best 0.1726 at learning_rate 0.0025; lastfm best at 0.005 x 200 iterations)

#: The small validation grid :func:`tune_bpr` searches by default.
BPR_GRID: dict[str, Sequence[Any]] = {"learning_rate": (0.0025, 0.005, 0.01), "regularization": (0.01,)}


def _to_numpy(x) -> np.ndarray:
    return x.to_numpy() if hasattr(x, "to_numpy") else np.asarray(x)


def _single_thread_blas():
    threadpoolctl = require("threadpoolctl", "baselines", "Pinning BLAS threads for implicit")
    return threadpoolctl.threadpool_limits(1, "blas")


def _fit_embeddings(make_model: Callable[[], Any], train: Interactions) -> FloatEmbeddings:
    """Build and fit an implicit model with BLAS pinned to one thread; return its factors."""
    with _single_thread_blas():
        model = make_model()
        model.fit(train.matrix.astype(np.float32), show_progress=False)
    return FloatEmbeddings(_to_numpy(model.user_factors), _to_numpy(model.item_factors))


def fit_als(
    train: Interactions,
    factors: int = ALS_DEFAULTS["factors"],
    regularization: float = ALS_DEFAULTS["regularization"],
    alpha: float = ALS_DEFAULTS["alpha"],
    iterations: int = ALS_DEFAULTS["iterations"],
    seed: int = 0,
    num_threads: int = 0,
) -> FloatEmbeddings:
    """Fit implicit's ``AlternatingLeastSquares`` (CPU); confidence = 1 + ``alpha`` * weight."""
    implicit = require("implicit", "baselines", "The ALS baseline")
    return _fit_embeddings(
        lambda: implicit.cpu.als.AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
            num_threads=num_threads,
            calculate_training_loss=False,
        ),
        train,
    )


def fit_bpr(
    train: Interactions,
    factors: int = BPR_DEFAULTS["factors"],
    learning_rate: float = BPR_DEFAULTS["learning_rate"],
    regularization: float = BPR_DEFAULTS["regularization"],
    iterations: int = BPR_DEFAULTS["iterations"],
    seed: int = 0,
    num_threads: int = 1,
) -> FloatEmbeddings:
    """Fit implicit's ``BayesianPersonalizedRanking`` (CPU); the bias column is kept in the factors.

    ``num_threads=1`` (the default) makes the fit deterministic for ``seed``.
    """
    implicit = require("implicit", "baselines", "The BPR baseline")
    return _fit_embeddings(
        lambda: implicit.cpu.bpr.BayesianPersonalizedRanking(
            factors=factors,
            learning_rate=learning_rate,
            regularization=regularization,
            iterations=iterations,
            random_state=seed,
            num_threads=num_threads,
        ),
        train,
    )


def grid_search(
    fit: Callable[..., FloatEmbeddings],
    train: Interactions,
    valid: Interactions,
    grid: Mapping[str, Sequence[Any]],
    fixed: Mapping[str, Any] | None = None,
    k: int = 20,
    metric: str = "recall",
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit ``fit(train, **params)`` for every point of ``grid`` and score it on ``valid``.

    Validation follows the evaluation protocol: full ranking, the user's training items
    excluded, ``metric@k`` averaged over users with at least one validation item. Returns
    ``(best params including fixed ones, table of every point sorted best first)``; ties go
    to the earlier grid point.
    """
    from rechash.evaluation.metrics import per_user_metrics
    from rechash.evaluation.ranking import full_ranking

    if train.matrix.shape != valid.matrix.shape:
        raise DataError(f"grid_search: train {train.matrix.shape} and valid {valid.matrix.shape} must share id maps")
    fixed = dict(fixed or {})
    names = list(grid)
    users = np.flatnonzero(np.diff(valid.matrix.indptr) > 0)
    rows = []
    for values in itertools.product(*(grid[n] for n in names)):
        params = {**fixed, **dict(zip(names, values))}
        start = time.perf_counter()
        emb = fit(train, **params)
        seconds = time.perf_counter() - start
        ids, _ = full_ranking(emb.scores, users, k, train.matrix)
        value = float(per_user_metrics(ids, users, valid.matrix, ks=(k,))[f"{metric}@{k}"].mean())
        rows.append({**params, f"valid_{metric}@{k}": value, "fit_seconds": seconds})
    table = pd.DataFrame(rows)
    best = int(np.argmax(table[f"valid_{metric}@{k}"].to_numpy()))
    table = table.iloc[np.argsort(-table[f"valid_{metric}@{k}"].to_numpy(), kind="stable")].reset_index(drop=True)
    best_params = {**fixed, **{n: rows[best][n] for n in names}}
    return best_params, table


def tune_als(
    train: Interactions,
    valid: Interactions,
    grid: Mapping[str, Sequence[Any]] = ALS_GRID,
    factors: int = 64,
    seed: int = 0,
    num_threads: int = 0,
    k: int = 20,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick ALS hyper-parameters on ``valid`` (Recall@k) over ``grid`` at ``factors`` factors."""
    return grid_search(
        fit_als, train, valid, grid, fixed={"factors": factors, "seed": seed, "num_threads": num_threads}, k=k
    )


def tune_bpr(
    train: Interactions,
    valid: Interactions,
    grid: Mapping[str, Sequence[Any]] = BPR_GRID,
    factors: int = 64,
    iterations: int = BPR_DEFAULTS["iterations"],
    seed: int = 0,
    num_threads: int = 1,
    k: int = 20,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick BPR hyper-parameters on ``valid`` (Recall@k) over ``grid`` at ``factors`` factors."""
    fixed = {"factors": factors, "iterations": iterations, "seed": seed, "num_threads": num_threads}
    return grid_search(fit_bpr, train, valid, grid, fixed=fixed, k=k)
