"""Evaluation: full-ranking oracle, per-user metrics, A/B statistics, comparisons, reports."""

from rechash.evaluation.abtest import ArmCost, bootstrap_mean_ci, paired_differences, paired_test
from rechash.evaluation.compare import Arm, ArmResult, ComparisonResult, compare, evaluate_arm
from rechash.evaluation.report import rerender, write_report
from rechash.rank.metrics import (
    METRICS,
    candidate_recall,
    implicit_precision,
    item_coverage,
    overlap,
    per_user_metrics,
)
from rechash.rank.topk import full_ranking, topk_rows

__all__ = [
    "METRICS",
    "Arm",
    "ArmCost",
    "ArmResult",
    "CompareConfig",
    "ComparisonResult",
    "bootstrap_mean_ci",
    "candidate_recall",
    "compare",
    "evaluate_arm",
    "full_ranking",
    "implicit_precision",
    "item_coverage",
    "overlap",
    "paired_differences",
    "paired_test",
    "per_user_metrics",
    "rerender",
    "run_compare",
    "topk_rows",
    "write_report",
]

_LAZY = {"CompareConfig", "run_compare"}  # rechash.evaluation.pipeline imports the baselines


def __getattr__(name: str):
    if name in _LAZY:
        from rechash.evaluation import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'rechash.evaluation' has no attribute {name!r}")
