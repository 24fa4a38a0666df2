"""Evaluation: full-ranking oracle, per-user metrics, A/B statistics, reports."""
from rechash.evaluation.metrics import METRICS, per_user_metrics
from rechash.evaluation.ranking import full_ranking, topk_rows

__all__ = ["METRICS", "full_ranking", "per_user_metrics", "topk_rows"]
