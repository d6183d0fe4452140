"""Every function that turns numbers into a conclusion, on hand-built inputs whose answer is known, in both
directions: A clearly better, B clearly better, a tie; for lower-is-better and higher-is-better metrics alike.
A sign slip in any of them names the worse side as the better one and fails here."""
import re

import numpy as np
import pytest

from vitviz import metrics
from vitviz.explain.faithfulness import METRICS, verdict

RNG = np.random.default_rng(0)
N = 60


def auc(mean, spread=0.01):
    return (mean + spread * RNG.standard_normal(N)).clip(0, 1).tolist()


def result(means: dict, metric: str) -> dict:
    return {"checkpoint": "ck", "settings": {"n_boot": 500},
            "methods": {m: {"auc": {metric: auc(v)}} for m, v in means.items()}}


def named_best(text: str) -> str:
    return re.search(r"\*\*(\w+)\*\*", text).group(1)


LOWER = [m for m, (_, better) in METRICS.items() if better == "lower"]
HIGHER = [m for m, (_, better) in METRICS.items() if better == "higher"]


@pytest.mark.parametrize("metric", LOWER + HIGHER)
@pytest.mark.parametrize("winner", ["chefer", "rollout"])
def test_the_most_faithful_method_is_the_better_one_in_the_metrics_direction(metric, winner):
    good, bad = (0.2, 0.6) if METRICS[metric][1] == "lower" else (0.6, 0.2)
    loser = "rollout" if winner == "chefer" else "chefer"
    text = verdict(result({winner: good, loser: bad, "random": bad}, metric), metric, n_boot=500)
    assert named_best(text) == winner
    assert f"vs {loser}" in text and ", significant at" in text
    assert "it beats a random ranking" in text


@pytest.mark.parametrize("metric", [LOWER[0], HIGHER[0]])
def test_a_tie_is_not_significant_and_a_method_worse_than_random_does_not_beat_it(metric):
    lower = METRICS[metric][1] == "lower"
    text = verdict(result({"chefer": 0.4, "rollout": 0.4, "random": 0.2 if lower else 0.6}, metric), metric,
                   n_boot=500)
    assert "not significant" in text
    assert "does not significantly beat a random ranking" in text


def test_no_method_no_verdict():
    assert "no explanation method is available" in verdict({"checkpoint": "ck", "methods": {"random": {}}})


def predictions(acc_a, acc_b, n=400, k=4, seed=1):
    """Labels and two prediction vectors with the given per-class accuracies (lists of k)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n // k)
    pa, pb = y.copy(), y.copy()
    for cls in range(k):
        idx = np.flatnonzero(y == cls)
        for pred, acc in ((pa, acc_a[cls]), (pb, acc_b[cls])):
            wrong = rng.choice(idx, size=int(round((1 - acc) * len(idx))), replace=False)
            pred[wrong] = (cls + 1) % k
    return y, pa, pb


def test_per_class_differences_point_to_the_better_model_in_each_class():
    # class 0: A far better; class 1: B far better; class 2: a tie; class 3: both perfect
    y, pa, pb = predictions([0.95, 0.40, 0.70, 1.0], [0.40, 0.95, 0.70, 1.0])
    table = metrics.compare_per_class(y, pa, pb, ["a", "b", "tie", "perfect"], n_boot=500).set_index("class")
    assert table.loc["a", "difference"] < 0 and table.loc["a", "diff_ci_high"] < 0 and table.loc["a", "significant"]
    assert table.loc["b", "difference"] > 0 and table.loc["b", "diff_ci_low"] > 0 and table.loc["b", "significant"]
    assert table.loc["a", "b_only_a_right"] > table.loc["a", "c_only_b_right"]  # "only A right" counts A's wins
    assert table.loc["b", "c_only_b_right"] > table.loc["b", "b_only_a_right"]
    assert not table.loc["tie", "significant"] and not table.loc["perfect", "significant"]
    assert (table["holm_p"] >= table["mcnemar_p"]).all()


def test_holm_flags_only_what_survives_the_correction():
    p = np.array([0.01, 0.02, 0.03, 0.5])  # Holm: 0.04, 0.06, 0.06, 0.5
    adjusted = metrics.holm(p)
    np.testing.assert_allclose(adjusted, [0.04, 0.06, 0.06, 0.5])
    assert ((adjusted < 0.05) == [True, False, False, False]).all()
    assert (metrics.holm(p[::-1]) == adjusted[::-1]).all()  # order of the classes does not matter


@pytest.mark.parametrize("better", ["A", "B"])
def test_the_overall_difference_is_b_minus_a_in_both_directions(better):
    high, low = [0.9] * 4, [0.6] * 4
    y, pa, pb = predictions(high if better == "A" else low, low if better == "A" else high)
    overall = metrics.overall_comparison(y, pa, pb, num_classes=4, n_boot=500)
    assert overall["significant"]
    if better == "A":
        assert overall["difference"] < 0 and overall["diff_ci_high"] < 0
        assert overall["b_only_a_right"] > overall["c_only_b_right"]
    else:
        assert overall["difference"] > 0 and overall["diff_ci_low"] > 0
        assert overall["c_only_b_right"] > overall["b_only_a_right"]


def test_identical_models_are_never_significantly_different():
    y, pa, _ = predictions([0.7] * 4, [0.7] * 4)
    overall = metrics.overall_comparison(y, pa, pa.copy(), num_classes=4, n_boot=500)
    assert overall["difference"] == 0 and not overall["significant"] and overall["mcnemar_p"] == 1.0
