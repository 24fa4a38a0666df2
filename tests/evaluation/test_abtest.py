"""Paired A/B statistics: bootstrap interval, scipy tests, alignment by user id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rechash.errors import DataError
from rechash.evaluation import bootstrap_mean_ci, paired_differences, paired_test


def test_identical_arms_have_zero_difference_and_p_one():
    a = np.random.default_rng(0).random(200)
    out = paired_test(a, a.copy())
    assert out["diff"] == 0 and out["ci_low"] == 0 and out["ci_high"] == 0
    assert out["wilcoxon_p"] == 1.0 and out["ttest_p"] == 1.0


def test_shift_is_detected_and_interval_matches_normal_theory():
    rng = np.random.default_rng(1)
    base = rng.random(3000)
    arm = base + 0.05 + rng.normal(0, 0.2, size=3000)
    out = paired_test(arm, base, n_boot=4000, seed=3)
    d = arm - base
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert out["ci_low"] == pytest.approx(d.mean() - half, abs=0.15 * half)
    assert out["ci_high"] == pytest.approx(d.mean() + half, abs=0.15 * half)
    assert out["ci_low"] < 0.05 < out["ci_high"]
    assert out["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert out["ttest_p"] == pytest.approx(stats.ttest_rel(arm, base).pvalue)
    assert out["wilcoxon_p"] < 1e-6 and out["ttest_p"] < 1e-6
    assert out["rel_diff"] == pytest.approx(d.mean() / base.mean())


def test_bootstrap_is_seeded():
    x = np.random.default_rng(2).random(500)
    assert bootstrap_mean_ci(x, seed=7) == bootstrap_mean_ci(x, seed=7)
    assert bootstrap_mean_ci(x, seed=7) != bootstrap_mean_ci(x, seed=8)
    with pytest.raises(DataError):
        bootstrap_mean_ci(np.array([]))


def test_paired_differences_aligns_by_user_id():
    rng = np.random.default_rng(4)
    users = pd.Index(np.arange(100) * 3, name="user")
    base = pd.DataFrame({"recall@20": rng.random(100)}, index=users)
    arm = pd.DataFrame({"recall@20": base["recall@20"].to_numpy() + 0.1}, index=users)
    shuffled = arm.iloc[rng.permutation(100)]
    out = paired_differences({"base": base, "arm": shuffled}, "base")
    assert len(out) == 1 and out.loc[0, "arm"] == "arm"
    assert out.loc[0, "diff"] == pytest.approx(0.1)
    assert out.loc[0, "ci_low"] == pytest.approx(0.1) and out.loc[0, "ci_high"] == pytest.approx(0.1)
    with pytest.raises(DataError, match="same users"):
        paired_differences({"base": base, "arm": arm.iloc[:50]}, "base")
    with pytest.raises(DataError, match="baseline"):
        paired_differences({"arm": arm}, "base")
