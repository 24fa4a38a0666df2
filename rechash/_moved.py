"""Deprecation aliases: module paths of the layout before the package split keep importing.

``import rechash.recommend`` (or ``from rechash.model import TwinTowerHasher``) warns with a
:class:`DeprecationWarning` naming the new module and returns a module whose attributes are
those of the new module(s). The public API is ``rechash`` itself; these paths go away in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

#: old module -> the new modules its names now live in (looked up in this order)
MOVED: dict[str, tuple[str, ...]] = {
    "rechash.artifacts": ("rechash.hasher.persistence", "rechash.io.store", "rechash.codes.export"),
    "rechash.evaluation.metrics": ("rechash.rank.metrics",),
    "rechash.atomic": ("rechash.io.atomic",),
    "rechash.batch": ("rechash.jobs.batch",),
    "rechash.job": ("rechash.jobs.candidates",),
    "rechash.spark": ("rechash.jobs.spark",),
    "rechash.candidates": ("rechash.index.candidates",),
    "rechash.ranking": ("rechash.rank.topk",),
    "rechash.recommend": ("rechash.models.code",),
    "rechash.recommender": ("rechash.models.base", "rechash.models.persistence", "rechash.rank.order"),
    "rechash.online": ("rechash.models.online",),
    "rechash.train_config": ("rechash.hasher.config",),
    "rechash.model": (
        "rechash.hasher.twin_tower",
        "rechash.hasher.trainer",
        "rechash.hasher.config",
        "rechash.codes.binarizers",
        "rechash.codes.diagnostics",
    ),
    "rechash.model.hasher": ("rechash.hasher.twin_tower",),
    "rechash.model.itq": ("rechash.codes.binarizers",),
    "rechash.model.diagnostics": ("rechash.codes.diagnostics",),
    **{
        f"rechash.model.{m}": (f"rechash.hasher.{m}",)
        for m in ("towers", "losses", "sampling", "trainer", "refine", "new_items")
    },
    "rechash.baselines": ("rechash.models.exact", "rechash.models.annoy", "rechash.data.embeddings", "rechash.als.fit"),
    "rechash.baselines.embeddings": ("rechash.data.embeddings",),
    "rechash.baselines.exact": ("rechash.models.exact",),
    "rechash.baselines.annoy_index": ("rechash.models.annoy",),
    "rechash.baselines.implicit_mf": ("rechash.als.fit",),
    "rechash.baselines.teachers": ("rechash.als.teacher",),
}


class _Alias(types.ModuleType):
    """An old module path: attributes come from the new modules, in order."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Moved to {', '.join(targets)}.")
        self.__path__ = []  # old packages (rechash.model) keep their submodules importable
        self._targets = targets

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(
            f"module {self.__name__!r} (moved to {', '.join(self._targets)}) has no attribute {attr!r}"
        )


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        targets = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {', '.join(targets)}; import from there or from rechash",
            DeprecationWarning,
            stacklevel=3,
        )
        return _Alias(spec.name, targets)

    def exec_module(self, module) -> None:
        pass


#: names that left a package which stays: package -> {name: its new module}
MOVED_NAMES: dict[str, dict[str, str]] = {
    "rechash.rerank": {
        "top_by_score": "rechash.rank.order",
        "order_online": "rechash.models.online",
        "RerankedRecommender": "rechash.models.reranked",
    },
}


def moved_name(package: str, name: str):
    """A name that moved out of ``package`` (its module-level ``__getattr__``), with a warning."""
    target = MOVED_NAMES.get(package, {}).get(name)
    if target is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    warnings.warn(
        f"{package}.{name} moved to {target}; import it from there or from rechash", DeprecationWarning, stacklevel=2
    )
    return getattr(importlib.import_module(target), name)


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
