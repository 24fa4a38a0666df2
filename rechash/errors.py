"""Exceptions raised by rechash.

Every error a user can cause derives from :class:`RechashError`; the CLI prints its
message on one line and exits with status 2, without a traceback.
"""

from __future__ import annotations


class RechashError(Exception):
    """Base class of every error rechash raises on purpose."""


class DataError(RechashError, ValueError):
    """Bad input data: the message names the file, line or column and what was expected."""


class ModelError(RechashError, ValueError):
    """A model directory or artifact is missing, corrupted or incompatible."""


class ConfigError(RechashError, ValueError):
    """An option is out of range; the message names the option and what was expected."""


class TrainingError(RechashError, RuntimeError):
    """Training diverged (non-finite loss): the message names the step and the likely option."""


class MissingExtraError(RechashError, ImportError):
    """An optional engine is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package '{module}', which is not installed: pip install 'rechash[{extra}]'"
        )
        self.module = module
        self.extra = extra


def require(module: str, extra: str, purpose: str):
    """Import an optional module lazily, or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(module, extra, purpose) from exc
