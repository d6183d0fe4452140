import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from vitviz import metrics as M
from vitviz.metrics import (bootstrap_ci, compare_per_class, confusion_cell_indices,
                            confusion_matrix, disagreements, holm, mcnemar_exact,
                            overall_comparison, paired_bootstrap_diff_ci, per_class_accuracy)


def _pair(b: int, c: int, both_right: int = 0, both_wrong: int = 0):
    """Correctness arrays with b (A right, B wrong) and c (A wrong, B right) disagreements."""
    a = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    bb = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    return np.array(a), np.array(bb)


# --------------------------------------------------------------------------- basic metrics

def test_per_class_accuracy_and_confusion_match_sklearn():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300))
    assert set(y_true) == set(range(5))
    acc = per_class_accuracy(y_true, y_pred, 5)
    expected = skm.recall_score(y_true, y_pred, labels=range(5), average=None)
    np.testing.assert_allclose(acc, expected)
    cm = confusion_matrix(y_true, y_pred, 5)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(5)))


def test_per_class_accuracy_nan_for_empty_class_and_confusion_by_hand():
    y_true = [0, 0, 1, 1, 1, 3]
    y_pred = [0, 1, 1, 1, 0, 2]
    np.testing.assert_allclose(per_class_accuracy(y_true, y_pred, 4),
                               [0.5, 2 / 3, np.nan, 0.0])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 4),
                                  [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])


# --------------------------------------------------------------------------- bootstrap

def test_bootstrap_ci_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(2)
    widths = []
    for n in (100, 4000):
        correct = rng.random(n) < 0.7
        low, high = bootstrap_ci(correct, n_boot=500, seed=0)
        assert low <= correct.mean() <= high
        assert low <= 0.7 <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # roughly 1/sqrt(40) ~ 0.16


def test_bootstrap_ci_degenerate_and_deterministic():
    assert bootstrap_ci(np.ones(50, bool), n_boot=100) == (1.0, 1.0)
    assert bootstrap_ci(np.zeros(50, bool), n_boot=100) == (0.0, 0.0)
    x = np.arange(40) % 3 == 0
    assert bootstrap_ci(x, n_boot=200, seed=5) == bootstrap_ci(x, n_boot=200, seed=5)
    assert all(np.isnan(bootstrap_ci(np.array([], bool), n_boot=10)))


def test_bootstrap_chunking_gives_same_result(monkeypatch):
    rng = np.random.default_rng(3)
    a, b = rng.random(97) < 0.6, rng.random(97) < 0.8
    whole = paired_bootstrap_diff_ci(a, b, n_boot=300, seed=7), bootstrap_ci(a, n_boot=300, seed=7)
    monkeypatch.setattr(M, "MAX_BOOT_ELEMENTS", 97 * 7)  # 7 rows per chunk
    chunked = paired_bootstrap_diff_ci(a, b, n_boot=300, seed=7), bootstrap_ci(a, n_boot=300, seed=7)
    assert whole == chunked


def test_paired_diff_ci_identical_predictions_is_zero():
    x = np.random.default_rng(4).random(200) < 0.5
    assert paired_bootstrap_diff_ci(x, x, n_boot=200) == (0.0, 0.0, 0.0)


def test_paired_diff_ci_is_paired():
    # B is right on exactly the samples A is right on plus 10 more: every paired resample
    # has diff >= 0, which an unpaired bootstrap would not give.
    a, b = _pair(b=0, c=10, both_right=100, both_wrong=90)
    diff, low, high = paired_bootstrap_diff_ci(a, b, n_boot=500)
    assert diff == pytest.approx(0.05)
    assert 0.0 <= low < diff < high


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("b, c, p", [
    (1, 6, 2 * (1 + 7) / 2**7),      # 0.125
    (6, 1, 0.125),
    (0, 3, 2 / 2**3),                # 0.25
    (0, 0, 1.0),
    (5, 5, 1.0),                     # 2 * cdf > 1 is capped
    (2, 10, 2 * (1 + 12 + 66) / 2**12),
])
def test_mcnemar_exact_by_hand(b, c, p):
    a, bb = _pair(b, c, both_right=4, both_wrong=3)
    out = mcnemar_exact(a, bb)
    assert (out["b"], out["c"]) == (b, c)
    assert out["p_value"] == pytest.approx(p)


def test_holm_by_hand():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # monotone (0.04 * 2 < 0.03 * 3 is raised) and capped at 1
    np.testing.assert_allclose(holm([0.03, 0.04, 0.5]), [0.09, 0.09, 0.5])
    np.testing.assert_allclose(holm([0.4, 0.6]), [0.8, 0.8])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])


def test_holm_ignores_nan():
    out = holm([0.01, np.nan, 0.04, 0.03, np.nan, 0.005])
    np.testing.assert_allclose(out, [0.03, np.nan, 0.06, 0.06, np.nan, 0.02])
    assert np.isnan(holm([np.nan])).all()
    assert holm([]).shape == (0,)


# --------------------------------------------------------------------------- comparisons

COLUMNS = ["class", "n", "accuracy_a", "accuracy_b", "ci_a_low", "ci_a_high", "ci_b_low",
           "ci_b_high", "difference", "diff_ci_low", "diff_ci_high", "b_only_a_right",
           "c_only_b_right", "mcnemar_p", "holm_p", "significant"]


def _three_class_case():
    """Class 0: 200 samples, A always right, B always wrong. Classes 1, 2: both ~equal."""
    rng = np.random.default_rng(5)
    y_true = np.repeat([0, 1, 2], 200)
    pred_a, pred_b = y_true.copy(), y_true.copy()
    pred_b[:200] = 1
    for k in (1, 2):
        idx = np.flatnonzero(y_true == k)
        pred_a[rng.choice(idx, 20, replace=False)] = 0
        pred_b[rng.choice(idx, 20, replace=False)] = 0
    return y_true, pred_a, pred_b


def test_compare_per_class_flags_only_the_different_class():
    y_true, pred_a, pred_b = _three_class_case()
    df = compare_per_class(y_true, pred_a, pred_b, ["cat", "dog", "ship"], n_boot=300)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == COLUMNS
    assert df["class"].tolist() == ["cat", "dog", "ship"]
    assert df["n"].tolist() == [200, 200, 200]
    cat = df.iloc[0]
    assert (cat.accuracy_a, cat.accuracy_b, cat.difference) == (1.0, 0.0, -1.0)
    assert (cat.ci_a_low, cat.ci_a_high, cat.ci_b_low, cat.ci_b_high) == (1, 1, 0, 0)
    assert (cat.diff_ci_low, cat.diff_ci_high) == (-1.0, -1.0)
    assert (cat.b_only_a_right, cat.c_only_b_right) == (200, 0)
    assert cat.mcnemar_p == pytest.approx(2 * 0.5**200)
    assert df["significant"].tolist() == [True, False, False]
    assert df["significant"].dtype == bool
    np.testing.assert_allclose(df["holm_p"], holm(df["mcnemar_p"]))
    np.testing.assert_allclose(df["accuracy_a"], per_class_accuracy(y_true, pred_a, 3))
    # each class's intervals equal the single-class functions with the same seed
    mask = y_true == 1
    a, b = pred_a[mask] == 1, pred_b[mask] == 1
    dog = df.iloc[1]
    assert (dog.ci_a_low, dog.ci_a_high) == bootstrap_ci(a, n_boot=300)
    assert (dog.difference, dog.diff_ci_low, dog.diff_ci_high) == pytest.approx(
        paired_bootstrap_diff_ci(a, b, n_boot=300))


def test_compare_per_class_empty_class_is_nan_and_not_counted_by_holm():
    y_true = np.array([0] * 30 + [1] * 30)
    pred_a = y_true.copy()
    pred_b = y_true.copy()
    pred_b[:12] = 1
    df = compare_per_class(y_true, pred_a, pred_b, 3, n_boot=100)
    assert df["class"].tolist() == [0, 1, 2]
    empty = df.iloc[2]
    assert empty.n == 0 and np.isnan(empty.accuracy_a) and np.isnan(empty.holm_p)
    assert not empty.significant
    # Holm over the two non-empty classes only
    assert df.iloc[0].holm_p == pytest.approx(min(1.0, 2 * df.iloc[0].mcnemar_p))


def test_overall_comparison():
    y_true, pred_a, pred_b = _three_class_case()
    out = overall_comparison(y_true, pred_a, pred_b, num_classes=3, n_boot=300)
    assert out["n"] == 600
    assert out["accuracy_a"] == pytest.approx(560 / 600)
    assert out["accuracy_b"] == pytest.approx(360 / 600)
    assert out["difference"] == pytest.approx(-200 / 600)
    assert out["diff_ci_low"] <= out["difference"] <= out["diff_ci_high"] < 0
    test = mcnemar_exact(pred_a == y_true, pred_b == y_true)
    assert (out["b_only_a_right"], out["c_only_b_right"]) == (test["b"], test["c"])
    assert out["mcnemar_p"] == test["p_value"] and out["significant"]


# --------------------------------------------------------------------------- sample lookup

def test_disagreements_and_confusion_cell_indices():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    pred_a = np.array([0, 1, 1, 0, 2, 2])
    pred_b = np.array([1, 0, 1, 1, 0, 2])
    d = disagreements(y_true, pred_a, pred_b)
    np.testing.assert_array_equal(d["a_right_b_wrong"], [0, 4])
    np.testing.assert_array_equal(d["b_right_a_wrong"], [1, 3])
    d0 = disagreements(y_true, pred_a, pred_b, cls=0)
    np.testing.assert_array_equal(d0["a_right_b_wrong"], [0])
    np.testing.assert_array_equal(d0["b_right_a_wrong"], [1])
    np.testing.assert_array_equal(confusion_cell_indices(y_true, pred_b, 0, 1), [0])
    np.testing.assert_array_equal(confusion_cell_indices(y_true, pred_b, 2, 0), [4])
    assert confusion_cell_indices(y_true, pred_b, 1, 2).size == 0
    cm = confusion_matrix(y_true, pred_b, 3)
    for t in range(3):
        for p in range(3):
            assert len(confusion_cell_indices(y_true, pred_b, t, p)) == cm[t, p]


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("call, message", [
    (lambda: per_class_accuracy([0, 1], [0], 2), "same length"),
    (lambda: confusion_matrix([0, 3], [0, 1], 3), r"y_true has labels outside \[0, 2\]"),
    (lambda: confusion_matrix([0, 1], [0, -1], 3), "y_pred has labels outside"),
    (lambda: confusion_matrix([[0, 1]], [[0, 1]], 2), "1-D"),
    (lambda: confusion_matrix([0.5, 1], [0, 1], 2), "integer"),
    (lambda: per_class_accuracy([0], [0], 0), "num_classes"),
    (lambda: compare_per_class([0, 1], [0, 1], [0, 2], ["a", "b"]), "pred_b has labels"),
    (lambda: compare_per_class([0, 1], [0, 1], [0], ["a", "b"]), "same length"),
    (lambda: compare_per_class([0, 1], [0, 1], [0, 1], ["a", "b"], level=1.5), "level"),
    (lambda: overall_comparison([0, 1], [0, 5], [0, 1], num_classes=2), "pred_a has labels"),
    (lambda: overall_comparison([], [], []), "zero samples"),
    (lambda: bootstrap_ci([0, 1, 2]), "boolean"),
    (lambda: bootstrap_ci([True], n_boot=0), "n_boot"),
    (lambda: paired_bootstrap_diff_ci([True], [True, False]), "same length"),
    (lambda: mcnemar_exact([True], [True, False]), "same length"),
    (lambda: holm([0.1, 1.5]), r"\[0, 1\]"),
    (lambda: disagreements([0, 1], [0, 1], [0]), "same length"),
])
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
