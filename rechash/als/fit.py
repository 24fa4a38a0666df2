"""implicit ALS / BPR matrix factorisation as float baselines (CPU, deterministic for a seed).

ALS is deterministic for a seed at any thread count (each row is solved independently);
BPR is Hogwild SGD and is deterministic only with ``num_threads=1``. BLAS is pinned to one
thread while fitting: implicit solves many small systems, which an OpenBLAS thread pool
slows down.

``ALS_DEFAULTS`` are hyper-parameters chosen on a *validation* split at 64 factors, from the
grids of ``experiments/baselines/tune.md``; no fixed point suits every catalog, so
:func:`tune_als` re-tunes on your data starting from :data:`ALS_GRID` (``rechash compare``
does this by default). Iterations stay at 15: more add little validation recall for a
proportionally longer fit.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rechash.data.embeddings import FloatEmbeddings
from rechash.data.interactions import Interactions
from rechash.errors import DataError

logger = logging.getLogger(__name__)

#: ALS hyper-parameters chosen on validation (64 factors); see the module docstring.
ALS_DEFAULTS: dict[str, Any] = {"factors": 64, "regularization": 100.0, "alpha": 10.0, "iterations": 15}

#: The starting validation grid of :func:`tune_als` (and ``rechash compare``, and the default
#: teacher of ``rechash fit``): 3 x 3 points, widened along any axis whose best value lies on
#: the grid's edge (see :func:`grid_search`), so the chosen point is always interior.
ALS_GRID: dict[str, Sequence[Any]] = {
    "regularization": (10.0, 30.0, 100.0),
    "alpha": (10.0, 20.0, 40.0),
    "iterations": (15,),
}

#: How far :func:`grid_search` may widen each ALS axis.
ALS_BOUNDS: dict[str, tuple[float, float]] = {"regularization": (0.01, 10_000.0), "alpha": (0.5, 2_000.0)}

#: BPR hyper-parameters chosen on validation by :func:`tune_bpr` (64 factors, 1 thread).
BPR_DEFAULTS: dict[str, Any] = {"factors": 64, "learning_rate": 0.005, "regularization": 0.01, "iterations": 100}

#: The small validation grid :func:`tune_bpr` searches by default.
BPR_GRID: dict[str, Sequence[Any]] = {"learning_rate": (0.0025, 0.005, 0.01), "regularization": (0.01,)}


def _to_numpy(x) -> np.ndarray:
    return x.to_numpy() if hasattr(x, "to_numpy") else np.asarray(x)


def _single_thread_blas():
    import threadpoolctl

    return threadpoolctl.threadpool_limits(1, "blas")


def _fit_embeddings(make_model: Callable[[], Any], train: Interactions) -> FloatEmbeddings:
    """Build and fit an implicit model with BLAS pinned to one thread; return its factors."""
    with _single_thread_blas():
        model = make_model()
        model.fit(train.matrix.astype(np.float32), show_progress=False)
    return FloatEmbeddings(
        _to_numpy(model.user_factors), _to_numpy(model.item_factors), user_ids=train.user_ids, item_ids=train.item_ids
    )


def fit_als(
    train: Interactions,
    factors: int = ALS_DEFAULTS["factors"],
    regularization: float = ALS_DEFAULTS["regularization"],
    alpha: float = ALS_DEFAULTS["alpha"],
    iterations: int = ALS_DEFAULTS["iterations"],
    seed: int = 0,
    num_threads: int = 0,
) -> FloatEmbeddings:
    """Fit implicit's ``AlternatingLeastSquares`` (CPU); implicit's confidence is ``alpha`` * weight.
    The returned embeddings carry ``fold_in`` (regularization, alpha) for new users."""
    import implicit.cpu.als  # a core dependency, imported when used (it loads BLAS)

    emb = _fit_embeddings(
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
    return dataclasses.replace(emb, fold_in={"regularization": float(regularization), "alpha": float(alpha)})


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
    import implicit.cpu.bpr

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
    bounds: Mapping[str, tuple[float, float]] | None = None,
    max_rounds: int = 8,
    max_users: int | None = None,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit ``fit(train, **params)`` for every point of ``grid`` and score it on ``valid``.

    Validation follows the evaluation protocol: full ranking, the user's training items
    excluded, ``metric@k`` averaged over users with at least one validation item. Returns
    ``(best params including fixed ones, table of every point sorted best first)``; ties go
    to the earlier point.

    ``bounds`` (axis -> (low, high)) makes the search adaptive: while the best point sits on
    the edge of a bounded axis (its smallest or largest value tried), the axis is widened by
    one geometric step (the ratio of its first two values) and the new value is tried with
    the neighbouring values of the other axes (at most ``max_rounds`` widenings), so the
    returned point is interior unless a bound stops it (noted in the table's ``edge`` column).
    The best point's fitted embeddings are ``table.attrs["embeddings"]`` (no refit needed).
    ``max_users``: score every point on the same ``max_users`` validation users drawn with
    ``seed`` (paired comparisons stay precise while large catalogs tune in minutes).
    """
    from rechash.rank.metrics import per_user_metrics
    from rechash.rank.topk import full_ranking

    if train.matrix.shape != valid.matrix.shape:
        raise DataError(f"grid_search: train {train.matrix.shape} and valid {valid.matrix.shape} must share id maps")
    fixed = dict(fixed or {})
    names = list(grid)
    axes = {n: sorted(grid[n]) for n in names}
    bounds = {n: b for n, b in (bounds or {}).items() if n in axes and len(axes[n]) >= 2}
    users = np.flatnonzero(np.diff(valid.matrix.indptr) > 0)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
    column = f"valid_{metric}@{k}"
    rows: dict[tuple, dict] = {}
    kept: dict[str, Any] = {"score": -np.inf}

    def score(points) -> None:
        for values in points:
            if values in rows:
                continue
            params = {**fixed, **dict(zip(names, values))}
            start = time.perf_counter()
            emb = fit(train, **params)
            seconds = time.perf_counter() - start
            ids, _ = full_ranking(emb.scores, users, k, train.matrix)
            value = float(per_user_metrics(ids, users, valid.matrix, ks=(k,))[f"{metric}@{k}"].mean())
            rows[values] = {**params, column: value, "fit_seconds": seconds}
            logger.info("grid point %s: %s %.4f (fit %.1fs)", dict(zip(names, values)), column, value, seconds)
            if value > kept["score"]:
                kept.update(score=value, embeddings=emb)

    def best_point() -> tuple:
        return max(rows, key=lambda v: rows[v][column])  # first inserted wins ties

    score(itertools.product(*(axes[n] for n in names)))
    for _ in range(max_rounds):
        best = best_point()
        grown = False
        for j, name in enumerate(names):
            if name not in bounds:
                continue
            values, (low, high) = axes[name], bounds[name]
            ratio = values[1] / values[0]
            if best[j] == values[-1] and values[-1] * ratio <= high:
                new = values[-1] * ratio
                values.append(new)
            elif best[j] == values[0] and values[0] / ratio >= low:
                new = values[0] / ratio
                values.insert(0, new)
            else:
                continue
            grown = True
            near = [
                [new] if m == name else axes[m][max(axes[m].index(best[i]) - 1, 0) : axes[m].index(best[i]) + 2]
                for i, m in enumerate(names)
            ]
            score(itertools.product(*near))
        if not grown:
            break
    best = best_point()
    table = pd.DataFrame(list(rows.values()))
    table["edge"] = [any(n in bounds and v[j] in (axes[n][0], axes[n][-1]) for j, n in enumerate(names)) for v in rows]
    table = table.iloc[np.argsort(-table[column].to_numpy(), kind="stable")].reset_index(drop=True)
    table.attrs["embeddings"] = kept["embeddings"]
    return {**fixed, **dict(zip(names, best))}, table


def tune_als(
    train: Interactions,
    valid: Interactions,
    grid: Mapping[str, Sequence[Any]] = ALS_GRID,
    factors: int = 64,
    seed: int = 0,
    num_threads: int = 0,
    k: int = 20,
    max_users: int | None = 10_000,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick ALS hyper-parameters on ``valid`` (Recall@k) at ``factors`` factors, starting from ``grid``
    and widening it while the best point lies on an edge (within :data:`ALS_BOUNDS`); every point
    is scored on the same ``max_users`` validation users (all when fewer)."""
    fixed = {"factors": factors, "seed": seed, "num_threads": num_threads}
    return grid_search(fit_als, train, valid, grid, fixed=fixed, k=k, bounds=ALS_BOUNDS, max_users=max_users, seed=seed)


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
