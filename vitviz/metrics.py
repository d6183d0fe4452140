"""Accuracy metrics and statistical comparison of two classifiers on the same test set.

Everything here is plain numpy / scipy / pandas, so the app, the CLI and notebooks can use it
without a model in memory: the inputs are label arrays (``y_true``, ``y_pred``) or boolean
"was this sample classified correctly" arrays (``correct``).

Comparing models A and B on the *same* samples is a paired problem, so the tools below are
paired: the bootstrap of the accuracy difference resamples one set of sample indices for both
models, and McNemar's exact test looks only at the samples on which the two models disagree.
Per-class p-values are corrected for multiple testing with Holm's step-down method.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import binom

__all__ = [
    "per_class_accuracy",
    "confusion_matrix",
    "bootstrap_ci",
    "paired_bootstrap_diff_ci",
    "bootstrap_mean_ci",
    "paired_bootstrap_mean_diff_ci",
    "mcnemar_exact",
    "holm",
    "compare_per_class",
    "overall_comparison",
    "disagreements",
    "confusion_cell_indices",
]

# Upper bound on the number of entries in one bootstrap index matrix (n_boot rows x n samples).
# Larger draws are made in row chunks; the result is identical to a single draw.
MAX_BOOT_ELEMENTS = 2**22


# --------------------------------------------------------------------------- input checking

def _labels(x, name: str) -> np.ndarray:
    """`x` as a 1-D int64 array of class labels, or ValueError saying what is wrong."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.mod(arr, 1) == 0):
        raise ValueError(f"{name} must hold integer class labels, got non-integral values")
    return arr.astype(np.int64)


def _check_range(arr: np.ndarray, name: str, num_classes: int) -> None:
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        bad = arr[(arr < 0) | (arr >= num_classes)]
        raise ValueError(f"{name} has labels outside [0, {num_classes - 1}]: "
                         f"e.g. {bad[:5].tolist()}")


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return int(num_classes)


def _label_arrays(num_classes: int | None, **arrays) -> list[np.ndarray]:
    """Validate named label arrays: 1-D integers, equal lengths, within range if given."""
    out = [_labels(v, k) for k, v in arrays.items()]
    lengths = {k: len(v) for k, v in zip(arrays, out)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"label arrays must have the same length, got {lengths}")
    if num_classes is not None:
        for k, v in zip(arrays, out):
            _check_range(v, k, num_classes)
    return out


def _correct(x, name: str) -> np.ndarray:
    """`x` as a 1-D bool array; only booleans or 0/1 values are accepted."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype != bool:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got other values")
        arr = arr.astype(bool)
    return arr


def _check_boot(n_boot: int, level: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")


# --------------------------------------------------------------------------- basic metrics

def per_class_accuracy(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Fraction of samples of each true class that were predicted correctly (per-class recall).

    Returns a float array of length `num_classes`; classes with no samples are NaN.
    """
    num_classes = _check_num_classes(num_classes)
    y_true, y_pred = _label_arrays(num_classes, y_true=y_true, y_pred=y_pred)
    total = np.bincount(y_true, minlength=num_classes)
    right = np.bincount(y_true[y_true == y_pred], minlength=num_classes)
    acc = np.full(num_classes, np.nan)
    np.divide(right, total, out=acc, where=total > 0)
    return acc


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """`num_classes` x `num_classes` int64 counts; rows are true classes, columns predictions."""
    num_classes = _check_num_classes(num_classes)
    y_true, y_pred = _label_arrays(num_classes, y_true=y_true, y_pred=y_pred)
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


# --------------------------------------------------------------------------- bootstrap

def _bootstrap_means(arrays: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator
                     ) -> list[np.ndarray]:
    """Means of each array over the same `n_boot` resamples of sample indices.

    One (n_boot, n) index matrix is drawn, in row chunks of at most MAX_BOOT_ELEMENTS entries so
    memory stays bounded; chunking does not change the draws.
    """
    n = len(arrays[0])
    means = [np.empty(n_boot) for _ in arrays]
    rows = max(1, MAX_BOOT_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, rows):
        stop = min(start + rows, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        for arr, out in zip(arrays, means):
            out[start:stop] = arr[idx].mean(axis=1)
    return means


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = 1.0 - level
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(correct, *, n_boot: int = 2000, level: float = 0.95, seed=0
                 ) -> tuple[float, float]:
    """Percentile bootstrap confidence interval for the mean of a boolean array (an accuracy).

    `seed` is anything `np.random.default_rng` accepts. Returns ``(nan, nan)`` for an empty
    array.
    """
    _check_boot(n_boot, level)
    correct = _correct(correct, "correct")
    if correct.size == 0:
        return float("nan"), float("nan")
    (means,) = _bootstrap_means([correct], int(n_boot), np.random.default_rng(seed))
    return _interval(means, level)


def paired_bootstrap_diff_ci(correct_a, correct_b, *, n_boot: int = 2000, level: float = 0.95,
                             seed=0) -> tuple[float, float, float]:
    """Accuracy difference (B - A) with a paired percentile bootstrap interval.

    Each resample picks one set of sample indices and uses it for both models, so the
    correlation between the two models' errors is kept. Returns ``(diff, low, high)``;
    all NaN for empty input.
    """
    _check_boot(n_boot, level)
    a, b = _correct(correct_a, "correct_a"), _correct(correct_b, "correct_b")
    if len(a) != len(b):
        raise ValueError(f"correct_a and correct_b must have the same length, "
                         f"got {len(a)} and {len(b)}")
    if a.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean_a, mean_b = _bootstrap_means([a, b], int(n_boot), np.random.default_rng(seed))
    low, high = _interval(mean_b - mean_a, level)
    return float(b.mean() - a.mean()), low, high


def _values(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def bootstrap_mean_ci(values, *, n_boot: int = 2000, level: float = 0.95, seed=0) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of real-valued per-sample scores (e.g. per-image AUCs).
    ``(nan, nan)`` for an empty array."""
    _check_boot(n_boot, level)
    values = _values(values, "values")
    if values.size == 0:
        return float("nan"), float("nan")
    (means,) = _bootstrap_means([values], int(n_boot), np.random.default_rng(seed))
    return _interval(means, level)


def paired_bootstrap_mean_diff_ci(values_a, values_b, *, n_boot: int = 2000, level: float = 0.95,
                                  seed=0) -> tuple[float, float, float]:
    """Mean difference (B - A) of paired real-valued scores with a paired percentile bootstrap interval
    (one resample of sample indices for both). Returns ``(diff, low, high)``; all NaN for empty input."""
    _check_boot(n_boot, level)
    a, b = _values(values_a, "values_a"), _values(values_b, "values_b")
    if len(a) != len(b):
        raise ValueError(f"values_a and values_b must have the same length, got {len(a)} and {len(b)}")
    if a.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean_a, mean_b = _bootstrap_means([a, b], int(n_boot), np.random.default_rng(seed))
    low, high = _interval(mean_b - mean_a, level)
    return float(b.mean() - a.mean()), low, high


# --------------------------------------------------------------------------- tests

def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact two-sided McNemar test of "models A and B have the same accuracy".

    b = samples A got right and B got wrong, c = A wrong and B right. Under the null each
    disagreement is a fair coin, so p = min(1, 2 * P[Binom(b + c, 1/2) <= min(b, c)]);
    p = 1.0 when the models never disagree.
    """
    a, bb = _correct(correct_a, "correct_a"), _correct(correct_b, "correct_b")
    if len(a) != len(bb):
        raise ValueError(f"correct_a and correct_b must have the same length, "
                         f"got {len(a)} and {len(bb)}")
    b = int(np.count_nonzero(a & ~bb))
    c = int(np.count_nonzero(~a & bb))
    n = b + c
    p = 1.0 if n == 0 else float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))
    return {"b": b, "c": c, "p_value": p}


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values.

    With the m non-NaN p-values sorted ascending, the i-th (0-based) is multiplied by m - i,
    a running maximum keeps the result monotone, and values are capped at 1. NaNs are left out
    of m and stay NaN in place.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p_values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    where = np.flatnonzero(finite)
    order = where[np.argsort(p[where], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


# --------------------------------------------------------------------------- comparisons

def _class_names(classes) -> list:
    """`classes` as a list of names; an int k means classes 0..k-1."""
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, (bool, np.bool_)):
        names = list(range(int(classes)))
    else:
        names = list(classes)
    if not names:
        raise ValueError("classes must name at least one class")
    return names


def compare_per_class(y_true, pred_a, pred_b, classes, *, n_boot: int = 2000,
                      level: float = 0.95, seed=0) -> pd.DataFrame:
    """Per-class comparison of models A and B evaluated on the same samples.

    `classes` is the list of class names (label k is ``classes[k]``) or a class count.
    One row per class with columns: class, n, accuracy_a, accuracy_b, ci_a_low, ci_a_high,
    ci_b_low, ci_b_high, difference (B - A), diff_ci_low, diff_ci_high, b_only_a_right,
    c_only_b_right, mcnemar_p, holm_p (Holm over the classes that have samples) and
    significant (holm_p < 1 - level).

    Every class is bootstrapped with the same `seed`, so its intervals equal those of
    `bootstrap_ci` / `paired_bootstrap_diff_ci` on that class's samples. Classes with no
    samples get NaN statistics and are not significant.
    """
    _check_boot(n_boot, level)
    names = _class_names(classes)
    y_true, pred_a, pred_b = _label_arrays(len(names), y_true=y_true, pred_a=pred_a,
                                           pred_b=pred_b)
    rows = []
    for k, name in enumerate(names):
        mask = y_true == k
        a, b = pred_a[mask] == k, pred_b[mask] == k
        row = {"class": name, "n": int(mask.sum())}
        if row["n"] == 0:
            nan = float("nan")
            row.update(accuracy_a=nan, accuracy_b=nan, ci_a_low=nan, ci_a_high=nan,
                       ci_b_low=nan, ci_b_high=nan, difference=nan, diff_ci_low=nan,
                       diff_ci_high=nan, b_only_a_right=0, c_only_b_right=0, mcnemar_p=nan)
        else:
            mean_a, mean_b = _bootstrap_means([a, b], int(n_boot), np.random.default_rng(seed))
            test = mcnemar_exact(a, b)
            row.update(zip(("accuracy_a", "accuracy_b"), (float(a.mean()), float(b.mean()))))
            row.update(zip(("ci_a_low", "ci_a_high"), _interval(mean_a, level)))
            row.update(zip(("ci_b_low", "ci_b_high"), _interval(mean_b, level)))
            row["difference"] = row["accuracy_b"] - row["accuracy_a"]
            row.update(zip(("diff_ci_low", "diff_ci_high"), _interval(mean_b - mean_a, level)))
            row.update(b_only_a_right=test["b"], c_only_b_right=test["c"],
                       mcnemar_p=test["p_value"])
        rows.append(row)
    df = pd.DataFrame(rows)
    df["holm_p"] = holm(df["mcnemar_p"].to_numpy())
    df["significant"] = (df["holm_p"] < 1.0 - level).fillna(False).astype(bool)
    return df


def overall_comparison(y_true, pred_a, pred_b, *, num_classes: int | None = None,
                       n_boot: int = 2000, level: float = 0.95, seed=0) -> dict:
    """Overall accuracy of A and B, their paired difference (B - A) with a bootstrap interval,
    and McNemar's exact test over all samples.

    Keys: n, accuracy_a, accuracy_b, difference, diff_ci_low, diff_ci_high, b_only_a_right,
    c_only_b_right, mcnemar_p, significant (mcnemar_p < 1 - level). Labels are range-checked
    when `num_classes` is given.
    """
    _check_boot(n_boot, level)
    if num_classes is not None:
        num_classes = _check_num_classes(num_classes)
    y_true, pred_a, pred_b = _label_arrays(num_classes, y_true=y_true, pred_a=pred_a,
                                           pred_b=pred_b)
    if y_true.size == 0:
        raise ValueError("cannot compare models on zero samples")
    a, b = pred_a == y_true, pred_b == y_true
    diff, low, high = paired_bootstrap_diff_ci(a, b, n_boot=n_boot, level=level, seed=seed)
    test = mcnemar_exact(a, b)
    return {
        "n": int(y_true.size),
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "difference": diff,
        "diff_ci_low": low,
        "diff_ci_high": high,
        "b_only_a_right": test["b"],
        "c_only_b_right": test["c"],
        "mcnemar_p": test["p_value"],
        "significant": bool(test["p_value"] < 1.0 - level),
    }


# --------------------------------------------------------------------------- sample lookup

def disagreements(y_true, pred_a, pred_b, cls: int | None = None) -> dict:
    """Indices of samples where exactly one of A and B is right.

    Returns ``{"a_right_b_wrong": idx, "b_right_a_wrong": idx}`` (sorted int arrays),
    restricted to samples whose true class is `cls` when given.
    """
    y_true, pred_a, pred_b = _label_arrays(None, y_true=y_true, pred_a=pred_a, pred_b=pred_b)
    a, b = pred_a == y_true, pred_b == y_true
    keep = np.ones_like(a) if cls is None else (y_true == int(cls))
    return {
        "a_right_b_wrong": np.flatnonzero(keep & a & ~b),
        "b_right_a_wrong": np.flatnonzero(keep & ~a & b),
    }


def confusion_cell_indices(y_true, y_pred, true_class: int, pred_class: int) -> np.ndarray:
    """Indices of samples of true class `true_class` that were predicted as `pred_class`."""
    y_true, y_pred = _label_arrays(None, y_true=y_true, y_pred=y_pred)
    return np.flatnonzero((y_true == int(true_class)) & (y_pred == int(pred_class)))
