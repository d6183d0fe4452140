"""A claim checked over seeds: per-arm accuracy with t intervals, the paired difference between two arms over the
same seeds, a verdict in words, and how many seeds an inconclusive difference of the observed size would need.

The seed papers report single runs ("F-SNE beats the XCiT baseline by 1.5 points"). One pair of runs cannot tell
an effect from seed noise; several seeds of each arm, trained on the same data in the same order (the seed sets
the initial weights, the data order and the augmentation, identically for both arms), can:

- each arm: mean accuracy over its seeds and a two-sided Student-t interval (n - 1 degrees of freedom);
- the claim "B >= A" (or "B <= A") is tested on the paired differences d_s = acc_B(s) - acc_A(s): their mean and
  its t interval (paired t, n - 1 degrees of freedom; stated as such in the result);
- verdict: "holds" when the interval lies entirely on the claimed side of 0, "contradicted" when entirely on the
  other side, else "inconclusive at this budget";
- seeds needed (inconclusive only): the smallest n at which a paired t-test at this level would detect the
  observed mean difference with the observed spread with power `POWER` (the noncentral t, scipy), capped at
  `MAX_SEEDS`; None when the observed difference is 0 (no size to detect);
- per class: the per-sample predictions of all seeds pooled (every seed's test set, paired sample by sample),
  per-class differences with exact McNemar tests and Holm correction (`vitviz.metrics.compare_per_class`).

[ours] The power estimate treats the observed difference and spread as the truth: it says how many seeds a real
effect of this size would need, not that the effect exists.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from .. import metrics

POWER = 0.8
MAX_SEEDS = 1000
VERDICTS = ("holds", "contradicted", "inconclusive at this budget")


@dataclass
class ArmSummary:
    arm: str
    seeds: list
    accuracies: list
    mean: float
    ci_low: float
    ci_high: float


@dataclass
class Verdict:
    claim: str
    baseline: str               # arm A
    candidate: str              # arm B
    direction: str              # ">=": B at least as accurate as A is claimed; "<=": at most
    seeds: list
    differences: list           # B - A per seed
    mean_difference: float
    ci_low: float
    ci_high: float
    level: float
    interval: str               # how the interval was computed
    verdict: str                # one of VERDICTS
    seeds_needed: int | None    # for an inconclusive verdict: seeds for power POWER at the observed effect

    def as_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        """The verdict in words, with the interval that decides it."""
        text = (f"“{self.claim}”: **{self.verdict}**. {self.candidate} − {self.baseline} = "
                f"{self.mean_difference:+.2%} over {len(self.seeds)} paired seeds, {self.level:.0%} {self.interval} "
                f"[{self.ci_low:+.2%}, {self.ci_high:+.2%}]")
        if self.verdict == VERDICTS[2]:
            text += (f"; a difference of this size would need about {self.seeds_needed} seeds per arm to be resolved "
                     f"(power {POWER:.0%})" if self.seeds_needed else "; no difference was observed at all")
        return text + "."


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided Student-t interval of the mean (a single value: the value, NaN bounds)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return mean, float(mean - half), float(mean + half)


def arm_summary(arm: str, accuracies: dict, level: float = 0.95) -> ArmSummary:
    """Mean and t interval of one arm's accuracies ({seed: accuracy})."""
    seeds = sorted(accuracies)
    values = [float(accuracies[s]) for s in seeds]
    mean, low, high = t_interval(values, level)
    return ArmSummary(arm, seeds, values, mean, low, high)


def seeds_needed(mean_difference: float, sd: float, level: float = 0.95, power: float = POWER) -> int | None:
    """Smallest n for which a two-sided paired t-test at `level` detects `mean_difference` (spread `sd` of the
    differences) with `power`; None for a zero difference, 2 when there is no spread at all."""
    if mean_difference == 0:
        return None
    if sd == 0:
        return 2
    effect = abs(mean_difference) / sd
    for n in range(2, MAX_SEEDS + 1):
        critical = stats.t.ppf(0.5 + level / 2, n - 1)
        achieved = 1 - stats.nct.cdf(critical, n - 1, effect * np.sqrt(n))
        if achieved >= power:
            return n
    return MAX_SEEDS


def paired_verdict(claim: str, baseline: tuple[str, dict], candidate: tuple[str, dict], direction: str = ">=",
                   level: float = 0.95) -> Verdict:
    """The verdict on "candidate `direction` baseline" from their accuracies per seed ({seed: accuracy}); only
    the seeds both arms have are paired."""
    if direction not in (">=", "<="):
        raise ValueError(f"direction must be '>=' or '<=', got {direction!r}")
    (name_a, acc_a), (name_b, acc_b) = baseline, candidate
    seeds = sorted(set(acc_a) & set(acc_b))
    if len(seeds) < 2:
        raise ValueError(f"a paired verdict needs at least 2 seeds run in both arms, got {seeds}")
    diffs = np.array([float(acc_b[s]) - float(acc_a[s]) for s in seeds])
    mean, low, high = t_interval(diffs, level)
    claimed_side, other_side = (low > 0, high < 0) if direction == ">=" else (high < 0, low > 0)
    if claimed_side:
        verdict = VERDICTS[0]
    elif other_side:
        verdict = VERDICTS[1]
    else:
        verdict = VERDICTS[2]
    needed = seeds_needed(mean, float(diffs.std(ddof=1)), level) if verdict == VERDICTS[2] else None
    return Verdict(claim, name_a, name_b, direction, seeds, diffs.tolist(), mean, low, high, level,
                   f"paired t interval ({len(seeds) - 1} degrees of freedom)", verdict, needed)


def pooled_per_class(labels_by_seed: dict, pred_a_by_seed: dict, pred_b_by_seed: dict, classes, level: float = 0.95):
    """Per-class comparison of the two arms with every paired seed's test predictions pooled (same samples,
    seed by seed): `metrics.compare_per_class` on the concatenation (McNemar per class, Holm over classes)."""
    seeds = sorted(set(labels_by_seed) & set(pred_a_by_seed) & set(pred_b_by_seed))
    if not seeds:
        raise ValueError("no seed has test predictions in both arms")
    y = np.concatenate([np.asarray(labels_by_seed[s]) for s in seeds])
    a = np.concatenate([np.asarray(pred_a_by_seed[s]) for s in seeds])
    b = np.concatenate([np.asarray(pred_b_by_seed[s]) for s in seeds])
    return metrics.compare_per_class(y, a, b, classes, level=level)
