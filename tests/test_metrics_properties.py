"""Statistical properties of vitviz.metrics against independent references.

- Bootstrap interval widths match the normal approximation at the *stated* level (within 10%):
  an interval computed at another level than the one asked for (90% labelled 95%) is off by ~20%.
- The per-class "significant" flag follows the Holm-adjusted p-value, in a fixture where a class
  has raw p < 0.05 < Holm p; Holm and McNemar are checked against hand-computed values.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from vitviz.metrics import (bootstrap_ci, compare_per_class, holm, mcnemar_exact, overall_comparison,
                            paired_bootstrap_diff_ci)

N_BOOT = 4000


def normal_width(sd: float, n: int, level: float) -> float:
    """Width of the normal-approximation interval mean +- z_{(1+level)/2} sd / sqrt(n)."""
    return 2 * norm.ppf(0.5 + level / 2) * sd / math.sqrt(n)


def correct_array(n: int, accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=bool)
    out[rng.permutation(n)[:round(accuracy * n)]] = True
    return out


@pytest.mark.parametrize("level", [0.95, 0.80])
def test_bootstrap_ci_width_matches_the_normal_approximation(level):
    n, p = 1500, 0.7
    correct = correct_array(n, p, seed=0)
    low, high = bootstrap_ci(correct, n_boot=N_BOOT, level=level, seed=1)
    expected = normal_width(math.sqrt(p * (1 - p)), n, level)
    assert abs((high - low) / expected - 1) < 0.10, (high - low, expected)
    assert low < p < high


@pytest.mark.parametrize("level", [0.95, 0.80])
def test_paired_diff_ci_width_matches_the_normal_approximation(level):
    n = 1500
    a = correct_array(n, 0.70, seed=0)
    b = a.copy()
    rng = np.random.default_rng(5)
    flip = rng.random(n) < 0.15  # the models disagree on ~15% of samples
    b[flip] = ~b[flip]
    diff, low, high = paired_bootstrap_diff_ci(a, b, n_boot=N_BOOT, level=level, seed=1)
    per_sample = b.astype(float) - a.astype(float)  # paired: sd of the per-sample difference
    expected = normal_width(per_sample.std(), n, level)
    assert diff == pytest.approx(per_sample.mean())
    assert abs((high - low) / expected - 1) < 0.10, (high - low, expected)


@pytest.mark.parametrize("level", [0.95, 0.80])
def test_compare_per_class_interval_widths_are_at_the_stated_level(level):
    n_per_class, classes = 1200, 2
    y = np.repeat(np.arange(classes), n_per_class)
    rng = np.random.default_rng(3)
    pred_a = np.where(rng.random(len(y)) < 0.75, y, (y + 1) % classes)
    pred_b = np.where(rng.random(len(y)) < 0.6, y, (y + 1) % classes)
    df = compare_per_class(y, pred_a, pred_b, classes, n_boot=N_BOOT, level=level, seed=2)
    for k in range(classes):
        mask = y == k
        a, b = pred_a[mask] == k, pred_b[mask] == k
        row = df.iloc[k]
        for ci, arr in (("ci_a", a), ("ci_b", b)):
            width = row[f"{ci}_high"] - row[f"{ci}_low"]
            expected = normal_width(arr.std(), n_per_class, level)
            assert abs(width / expected - 1) < 0.10, (k, ci, width, expected)
        width = row["diff_ci_high"] - row["diff_ci_low"]
        expected = normal_width((b.astype(float) - a).std(), n_per_class, level)
        assert abs(width / expected - 1) < 0.10, (k, "diff", width, expected)
        assert row["difference"] == pytest.approx(b.mean() - a.mean())


def test_overall_comparison_interval_is_at_the_stated_level():
    n = 1500
    y = np.zeros(n, dtype=int)
    a = correct_array(n, 0.7, seed=0)
    b = correct_array(n, 0.65, seed=1)
    out = overall_comparison(y, np.where(a, 0, 1), np.where(b, 0, 1), n_boot=N_BOOT, level=0.9, seed=3)
    expected = normal_width((b.astype(float) - a).std(), n, 0.9)
    assert abs((out["diff_ci_high"] - out["diff_ci_low"]) / expected - 1) < 0.10


def per_class_fixture():
    """Three classes, 20 samples each. Model A is wrong everywhere B disagrees with it:
    class 0: B alone right on 7 samples -> McNemar p = 2 / 2^7 = 0.015625, Holm x3 = 0.046875 (significant);
    class 1: B alone right on 6 samples -> p = 2 / 2^6 = 0.03125,  Holm x2 = 0.0625  (raw p < 0.05 < Holm p);
    class 2: no disagreement            -> p = 1."""
    y, pred_a, pred_b = [], [], []
    for k, only_b in ((0, 7), (1, 6), (2, 0)):
        wrong = (k + 1) % 3
        for i in range(20):
            y.append(k)
            if i < only_b:                 # A wrong, B right
                pred_a.append(wrong), pred_b.append(k)
            elif i < only_b + 5:           # both wrong
                pred_a.append(wrong), pred_b.append(wrong)
            else:                          # both right
                pred_a.append(k), pred_b.append(k)
    return np.array(y), np.array(pred_a), np.array(pred_b)


def test_significance_follows_the_holm_adjusted_p_not_the_raw_p():
    y, pred_a, pred_b = per_class_fixture()
    df = compare_per_class(y, pred_a, pred_b, ["zero", "one", "two"], n_boot=200, seed=0)
    np.testing.assert_allclose(df["mcnemar_p"], [2 / 2 ** 7, 2 / 2 ** 6, 1.0])
    np.testing.assert_allclose(df["holm_p"], [3 * 2 / 2 ** 7, 2 * 2 / 2 ** 6, 1.0])
    assert list(df["c_only_b_right"]) == [7, 6, 0] and list(df["b_only_a_right"]) == [0, 0, 0]
    one = df.set_index("class").loc["one"]
    assert one["mcnemar_p"] < 0.05 < one["holm_p"]
    assert list(df["significant"]) == [True, False, False]
    # at level 0.90 the threshold is 0.10: class 1's Holm p (0.0625) is then significant
    df90 = compare_per_class(y, pred_a, pred_b, 3, n_boot=200, level=0.90, seed=0)
    assert list(df90["significant"]) == [True, True, False]


def test_holm_by_hand_with_ties_monotonicity_and_nan():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5])
    # sorted: 0.01 (x4) = 0.04, 0.03 (x3) = 0.09, 0.04 (x2) = 0.08 -> running max 0.09, 0.5 (x1) = 0.5
    np.testing.assert_allclose(holm(p), [0.04, 0.09, np.nan, 0.09, 0.5])
    np.testing.assert_allclose(holm([0.6, 0.6]), [1.0, 1.0])  # capped at 1


@pytest.mark.parametrize("b, c", [(0, 0), (3, 3), (1, 9), (9, 1), (12, 30)])
def test_mcnemar_exact_by_direct_binomial_sum(b, c):
    a = np.array([True] * b + [False] * c + [True] * 4 + [False] * 2)
    bb = np.array([False] * b + [True] * c + [True] * 4 + [False] * 2)
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n if n else 0.5
    expected = min(1.0, 2 * tail)
    out = mcnemar_exact(a, bb)
    assert (out["b"], out["c"]) == (b, c)
    assert out["p_value"] == pytest.approx(expected)


# ---------------------------------------------------------------- details that mutation testing found unchecked

def test_every_bootstrap_draw_is_filled_even_for_one_draw():
    """n_boot draws are all real resample means: with all-correct samples every draw is 1.0."""
    assert bootstrap_ci(np.ones(7, dtype=bool), n_boot=1, seed=0) == (1.0, 1.0)
    assert paired_bootstrap_diff_ci(np.ones(7, dtype=bool), np.zeros(7, dtype=bool), n_boot=1) == (-1.0, -1.0, -1.0)


def test_empty_class_row_counts_no_disagreements():
    y = np.array([0] * 10 + [1] * 10)
    df = compare_per_class(y, y, np.where(np.arange(20) < 3, 1, y), 3, n_boot=50)
    empty = df.iloc[2]
    assert empty["b_only_a_right"] == 0 and empty["c_only_b_right"] == 0 and empty["n"] == 0
    assert df["b_only_a_right"].dtype.kind == "i"


def test_holm_reads_missing_p_values_as_nan():
    np.testing.assert_allclose(holm([0.02, None, 0.01]), [0.02, np.nan, 0.02])


def test_overall_comparison_uses_the_given_seed():
    from vitviz.metrics import paired_bootstrap_diff_ci as paired
    y = np.zeros(300, dtype=int)
    a, b = correct_array(300, 0.7, seed=0), correct_array(300, 0.6, seed=1)
    out = overall_comparison(y, np.where(a, 0, 1), np.where(b, 0, 1), n_boot=300, seed=11)
    assert (out["diff_ci_low"], out["diff_ci_high"]) == paired(a, b, n_boot=300, seed=11)[1:]
    assert (out["diff_ci_low"], out["diff_ci_high"]) != paired(a, b, n_boot=300, seed=0)[1:]


def test_length_errors_name_the_argument():
    with pytest.raises(ValueError, match="correct_b must be 1-D"):
        paired_bootstrap_diff_ci([True, False], [[True, False]])
    with pytest.raises(ValueError, match="correct_a must be boolean"):
        paired_bootstrap_diff_ci([2, 0], [True, False])


@pytest.mark.parametrize("level", [0.95, 0.80])
def test_real_valued_bootstrap_intervals_are_at_the_stated_level(level):
    from vitviz.metrics import bootstrap_mean_ci, paired_bootstrap_mean_diff_ci
    rng = np.random.default_rng(4)
    a = rng.gamma(2.0, 1.0, 1500)          # skewed per-sample scores
    b = a + rng.normal(0.3, 0.5, 1500)     # paired, correlated with a
    low, high = bootstrap_mean_ci(a, n_boot=N_BOOT, level=level, seed=1)
    assert abs((high - low) / normal_width(a.std(), 1500, level) - 1) < 0.10
    diff, low, high = paired_bootstrap_mean_diff_ci(a, b, n_boot=N_BOOT, level=level, seed=1)
    assert diff == pytest.approx((b - a).mean())
    assert abs((high - low) / normal_width((b - a).std(), 1500, level) - 1) < 0.10
