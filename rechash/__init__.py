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
    "full_ranking": "rechash.evaluation",
    "per_user_metrics": "rechash.evaluation",
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
