"""The default teacher of ``rechash fit``: implicit ALS tuned on validation data.

Rule (no per-dataset constant): ALS with ``max(64, bits)`` factors, its regularization and
confidence ``alpha`` picked on the validation split's Recall@20 by
:func:`~rechash.als.fit.tune_als`, whose grid widens until the best point is
interior: the best confidence and regularization differ between catalogs (a sparse catalog
prefers a larger ``alpha``), so no fixed value serves every one.
The returned provenance (kind, parameters, validation score, every grid point) is saved in
the model directory. Measured alternatives are in ``experiments/results/codes.md``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rechash.als.fit import tune_als
from rechash.data.embeddings import FloatEmbeddings
from rechash.data.interactions import Interactions

logger = logging.getLogger(__name__)


def default_teacher(
    train: Interactions, valid: Interactions, bits: int, seed: int = 0, num_threads: int = 0
) -> tuple[FloatEmbeddings, dict[str, Any]]:
    """ALS teacher factors tuned on ``valid`` (see the module docstring).

    Parameters: ``train`` / ``valid``: the fitting and validation interactions; ``bits``: the
    code length (the teacher gets ``max(64, bits)`` factors); ``seed`` and ``num_threads``
    (0: every core) of the ALS fits.

    Returns ``(teacher, info)``: the factors and their provenance (``kind``, ``params``,
    ``valid_recall@20``, every ``grid`` point, ``seconds``)."""
    start = time.perf_counter()
    factors = max(64, bits)
    logger.info("ALS teacher: tuning %d factors on the validation data", factors)
    params, table = tune_als(train, valid, factors=factors, seed=seed, num_threads=num_threads)
    params = {k: v for k, v in params.items() if k != "num_threads"}
    teacher = table.attrs["embeddings"]
    info = {
        "kind": "als",
        "params": params,
        "valid_recall@20": float(table["valid_recall@20"].iloc[0]),
        "grid": table.to_dict(orient="records"),
        "seconds": time.perf_counter() - start,
    }
    logger.info("ALS teacher: %s, valid Recall@20 %.4f (%.1f s)", params, info["valid_recall@20"], info["seconds"])
    return teacher, info
