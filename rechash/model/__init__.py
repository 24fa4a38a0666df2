"""Model: twin towers, losses, sampling, trainer, TwinTowerHasher, post-hoc ITQ / LSH, diagnostics."""
from rechash.model.diagnostics import code_diagnostics, format_diagnostics
from rechash.model.hasher import TwinTowerHasher
from rechash.model.itq import ITQ, RandomRotationLSH
from rechash.model.trainer import EpochLog, TrainConfig, hamming_recall, hamming_topk

__all__ = [
    "ITQ",
    "EpochLog",
    "RandomRotationLSH",
    "TrainConfig",
    "TwinTowerHasher",
    "code_diagnostics",
    "format_diagnostics",
    "hamming_recall",
    "hamming_topk",
]
