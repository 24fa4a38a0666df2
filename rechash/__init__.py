"""rechash: learned binary codes for cheap recommendation candidate generation.

Public names are imported lazily (PEP 562): ``import rechash`` imports none of torch,
numba, pandas, scikit-learn, implicit, annoy or matplotlib, and ``rechash.X`` (or ``from
rechash import X``) imports only the submodule that defines ``X``, on first use. See
``__all__`` for the API. Importing the package also points numba's on-disk cache at a user
cache directory unless ``NUMBA_CACHE_DIR`` is set (rule in :mod:`rechash._numba_cache`).
"""
from __future__ import annotations

import importlib as _importlib

from rechash import _numba_cache

__version__ = "0.1.0"

# before any rechash module imports numba (each of them imports this package first)
_numba_cache.configure()

# public name -> module that defines it
_EXPORTS = {
    "IdMap": "rechash.data",
    "Interactions": "rechash.data",
    "load": "rechash.data",
    "load_many": "rechash.data",
    "load_split": "rechash.data",
    "load_side_features": "rechash.data",
    "SideFeatures": "rechash.data",
    "Split": "rechash.data",
    "split_random": "rechash.data",
    "split_leave_last": "rechash.data",
    "split_time": "rechash.data",
    "k_core": "rechash.data",
    "to_implicit": "rechash.data",
    "save_split": "rechash.data",
    "synthetic": "rechash.data",
    "synthetic_split": "rechash.data",
    "full_ranking": "rechash.ranking",
    "per_user_metrics": "rechash.evaluation",
    "Arm": "rechash.evaluation",
    "compare": "rechash.evaluation",
    "paired_differences": "rechash.evaluation",
    "write_report": "rechash.evaluation",
    "run_compare": "rechash.evaluation",
    "CompareConfig": "rechash.evaluation",
    "FloatEmbeddings": "rechash.baselines",
    "Recommendations": "rechash.recommender",
    "ExactRecommender": "rechash.baselines",
    "AnnoyRecommender": "rechash.baselines",
    "fit_als": "rechash.baselines",
    "fit_bpr": "rechash.baselines",
    "tune_als": "rechash.baselines",
    "Reranker": "rechash.rerank",
    "CodesOnlyReranker": "rechash.rerank",
    "DotReranker": "rechash.rerank",
    "LearnedReranker": "rechash.rerank",
    "RerankedRecommender": "rechash.rerank",
    "CandidateGenerator": "rechash.candidates",
    "CandidatePolicy": "rechash.candidates",
    "Candidates": "rechash.candidates",
    "CodeRecommender": "rechash.recommend",
    "load_recommender": "rechash.recommend",
    "RecommenderBase": "rechash.recommender",
    "PopularityRecommender": "rechash.baselines",
    "set_threads": "rechash.threads",
    "thread_limit": "rechash.threads",
    "CandidateJob": "rechash.job",
    "spark_candidates": "rechash.spark",
    "export_codes": "rechash.artifacts",
    "import_codes": "rechash.artifacts",
    "HammingIndex": "rechash.index",
    "build_index": "rechash.index",
    "load_index": "rechash.index",
    "TwinTowerHasher": "rechash.model",
    "ITQ": "rechash.model",
    "RandomRotationLSH": "rechash.model",
    "code_diagnostics": "rechash.model",
    "ModelError": "rechash.errors",
    "RechashError": "rechash.errors",
    "DataError": "rechash.errors",
    "MissingExtraError": "rechash.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
