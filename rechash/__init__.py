"""rechash: learned binary codes for cheap recommendation candidate generation.

Public names are imported lazily (PEP 562): ``import rechash`` imports none of torch,
numba, pandas, scikit-learn, implicit, annoy or matplotlib, and ``rechash.X`` (or ``from
rechash import X``) imports only the submodule that defines ``X``, on first use. See
``__all__`` for the API. Importing the package also points numba's on-disk cache at a user
cache directory unless ``NUMBA_CACHE_DIR`` is set (rule in :mod:`rechash._numba_cache`).
"""

from __future__ import annotations

import importlib as _importlib

from rechash import _moved, _numba_cache

__version__ = "0.1.0"

# before any rechash module imports numba (each of them imports this package first)
_numba_cache.configure()
_moved.install()  # old module paths import with a DeprecationWarning

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
    "full_ranking": "rechash.rank.topk",
    "per_user_metrics": "rechash.evaluation",
    "Arm": "rechash.evaluation",
    "compare": "rechash.evaluation",
    "paired_differences": "rechash.evaluation",
    "write_report": "rechash.evaluation",
    "run_compare": "rechash.evaluation",
    "CompareConfig": "rechash.evaluation",
    "FloatEmbeddings": "rechash.data.embeddings",
    "Recommendations": "rechash.models.base",
    "ExactRecommender": "rechash.models.exact",
    "AnnoyRecommender": "rechash.models.annoy",
    "fit_als": "rechash.als.fit",
    "fit_bpr": "rechash.als.fit",
    "tune_als": "rechash.als.fit",
    "Reranker": "rechash.rerank",
    "CodesOnlyReranker": "rechash.rerank",
    "DotReranker": "rechash.rerank",
    "LearnedReranker": "rechash.rerank",
    "RerankedRecommender": "rechash.models.reranked",
    "CandidateGenerator": "rechash.index.candidates",
    "CandidatePolicy": "rechash.index.candidates",
    "Candidates": "rechash.index.candidates",
    "CodeRecommender": "rechash.models.code",
    "load_recommender": "rechash.models.code",
    "RecommenderBase": "rechash.models.base",
    "PopularityRecommender": "rechash.models.exact",
    "set_threads": "rechash.threads",
    "thread_limit": "rechash.threads",
    "CandidateJob": "rechash.jobs.candidates",
    "spark_candidates": "rechash.jobs.spark",
    "export_codes": "rechash.codes.export",
    "import_codes": "rechash.codes.export",
    "HammingIndex": "rechash.index",
    "build_index": "rechash.index",
    "load_index": "rechash.index",
    "TwinTowerHasher": "rechash.hasher.twin_tower",
    "ITQ": "rechash.codes.binarizers",
    "RandomRotationLSH": "rechash.codes.binarizers",
    "code_diagnostics": "rechash.codes.diagnostics",
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
