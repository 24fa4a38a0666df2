"""Paired A/B statistics between arms evaluated on the same users, and per-arm cost.

Statistics (per metric, arm vs baseline, users aligned by internal user id, users without
test items already left out by :func:`~rechash.evaluation.per_user_metrics`):

- ``diff``: mean of the per-user differences ``arm - baseline``;
- ``ci_low`` / ``ci_high``: percentile bootstrap interval of that mean (users resampled
  with replacement, ``n_boot`` resamples, seeded, so the report is reproducible);
- ``wilcoxon_p``: two-sided Wilcoxon signed-rank test of the differences
  (``scipy.stats.wilcoxon``, zero differences dropped as in Wilcoxon's original method;
  normal approximation for large samples). It is the primary test: per-user ranking
  metrics are bounded, skewed and full of ties, so the median of the differences matters.
- ``ttest_p``: two-sided paired t test (``scipy.stats.ttest_rel``), the test of the mean
  itself; with thousands of users it agrees with the bootstrap interval.

No correction for multiple comparisons is applied; with many arms and metrics read the
p-values with Holm or Bonferroni in mind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from rechash.errors import DataError


def bootstrap_mean_ci(
    values: np.ndarray, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0, chunk: int = 200
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(values)``, deterministic for ``seed``."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise DataError(f"bootstrap: expected a non-empty 1-D array, got shape {values.shape}")
    if not 0 < confidence < 1:
        raise DataError(f"bootstrap: confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        means[start : start + m] = values[rng.integers(0, n, size=(m, n))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def paired_test(
    arm: np.ndarray, baseline: np.ndarray, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Paired comparison of two aligned per-user arrays (see the module docstring)."""
    from scipy import stats

    a = np.asarray(arm, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise DataError(f"paired_test: expected two non-empty aligned 1-D arrays, got {a.shape} and {b.shape}")
    d = a - b
    low, high = bootstrap_mean_ci(d, n_boot, confidence, seed)
    if not d.any():
        p_w = p_t = 1.0
    else:
        p_w = float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
        constant = np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max()))
        p_t = 0.0 if constant else float(stats.ttest_rel(a, b).pvalue)
    mean_b = float(b.mean())
    return {
        "n_users": int(len(d)),
        "mean_arm": float(a.mean()),
        "mean_baseline": mean_b,
        "diff": float(d.mean()),
        "ci_low": low,
        "ci_high": high,
        "rel_diff": float(d.mean() / mean_b) if mean_b else float("nan"),
        "wilcoxon_p": p_w,
        "ttest_p": p_t,
    }


def paired_differences(
    per_user: Mapping[str, pd.DataFrame],
    baseline: str,
    metrics: Sequence[str] | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Every arm of ``per_user`` (name -> per-user metric frame) against ``baseline``.

    Frames are aligned on their index (user id); arms must have been evaluated on the same
    users, otherwise :class:`DataError`. One row per (arm, metric) with the columns of
    :func:`paired_test`; the baseline itself is left out.
    """
    if baseline not in per_user:
        raise DataError(f"paired_differences: baseline arm {baseline!r} not among {sorted(per_user)}")
    base = per_user[baseline]
    metrics = list(metrics) if metrics is not None else list(base.columns)
    rows = []
    for name, frame in per_user.items():
        if name == baseline:
            continue
        if len(frame.index) != len(base.index) or not frame.index.sort_values().equals(base.index.sort_values()):
            raise DataError(
                f"paired_differences: arm {name!r} was evaluated on other users than {baseline!r} "
                f"({len(frame)} vs {len(base)}); A/B pairs need the same users"
            )
        aligned = frame.reindex(base.index)
        for metric in metrics:
            stats = paired_test(aligned[metric].to_numpy(), base[metric].to_numpy(), n_boot, confidence, seed)
            rows.append({"arm": name, "baseline": baseline, "metric": metric, **stats})
    return pd.DataFrame(rows)


@dataclass
class ArmCost:
    """What an arm costs: fitting, index build, memory per item, online latency, batch throughput.

    ``latency_ms_p50/p95/p99``: one-user ``recommend`` calls (online serving, wall clock,
    over a seeded sample of users, BLAS/OpenMP limited to one thread as when one request
    is served per core); ``users_per_second``: one batch call over every evaluated user
    (the arm's own thread settings) divided into its wall time.
    """

    train_seconds: float = 0.0
    build_seconds: float = 0.0
    bytes_per_item: float = float("nan")
    latency_ms_p50: float = float("nan")
    latency_ms_p95: float = float("nan")
    latency_ms_p99: float = float("nan")
    users_per_second: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_latency(
    fn: Callable[[np.ndarray], Any], users: np.ndarray, n_sample: int = 300, seed: int = 0, warmup: int = 3
) -> np.ndarray:
    """Wall seconds of ``fn(np.array([u]))`` for a seeded sample of ``n_sample`` users."""
    users = np.asarray(users, dtype=np.int64)
    if len(users) == 0:
        raise DataError("measure_latency: no users")
    rng = np.random.default_rng(seed)
    sample = rng.choice(users, size=min(n_sample, len(users)), replace=False)
    for u in sample[:warmup]:
        fn(np.array([u]))
    out = np.empty(len(sample))
    for j, u in enumerate(sample):
        start = time.perf_counter()
        fn(np.array([u]))
        out[j] = time.perf_counter() - start
    return out


def latency_quantiles(seconds: np.ndarray) -> dict[str, float]:
    """``latency_ms_p50/p95/p99`` of per-call wall seconds."""
    p50, p95, p99 = np.quantile(np.asarray(seconds), [0.5, 0.95, 0.99]) * 1e3
    return {"latency_ms_p50": float(p50), "latency_ms_p95": float(p95), "latency_ms_p99": float(p99)}
