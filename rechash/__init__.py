"""rechash: learned binary codes for cheap recommendation candidate generation.

Public names are imported lazily (``import rechash`` stays fast and does not import
torch); see ``__all__`` for the API.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

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
    "full_ranking": "rechash.evaluation",
    "per_user_metrics": "rechash.evaluation",
    "Arm": "rechash.evaluation",
    "compare": "rechash.evaluation",
    "paired_differences": "rechash.evaluation",
    "write_report": "rechash.evaluation",
    "run_compare": "rechash.evaluation",
    "CompareConfig": "rechash.evaluation",
    "FloatEmbeddings": "rechash.baselines",
    "Recommendations": "rechash.baselines",
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
    "rerank": "rechash.rerank",
    "CandidateGenerator": "rechash.candidates",
    "CandidatePolicy": "rechash.candidates",
    "Candidates": "rechash.candidates",
    "CodeRecommender": "rechash.recommend",
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
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rechash' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
