"""Study verdicts on hand-built accuracies whose answer is known, in both directions, and the seeds an
inconclusive difference would need (checked against a simulation of the paired t-test)."""
import numpy as np
import pytest
from scipy import stats

from vitviz.studies.verdict import (VERDICTS, arm_summary, paired_verdict, pooled_per_class, seeds_needed,
                                    t_interval)

SEEDS = [0, 1, 2, 3, 4]


def arm(values):
    return dict(zip(SEEDS, values))


LINEAR = arm([0.690, 0.684, 0.695, 0.688, 0.692])


@pytest.mark.parametrize("direction, shift, expected", [
    (">=", +0.015, "holds"), (">=", -0.015, "contradicted"), ("<=", -0.015, "holds"), ("<=", +0.015, "contradicted"),
])
def test_a_clear_difference_decides_the_claim_in_its_direction(direction, shift, expected):
    noise = [0.001, -0.002, 0.0015, -0.001, 0.0005]
    fsne = arm([LINEAR[s] + shift + n for s, n in zip(SEEDS, noise)])
    v = paired_verdict("F-SNE vs linear", ("linear", LINEAR), ("fsne", fsne), direction)
    assert v.verdict == expected and v.seeds_needed is None
    assert np.sign(v.mean_difference) == np.sign(shift)
    assert (v.ci_low > 0) == (shift > 0) and (v.ci_high < 0) == (shift < 0)
    assert expected in v.sentence() and "paired t interval (4 degrees of freedom)" in v.sentence()


def test_a_small_noisy_difference_is_inconclusive_and_says_how_many_seeds_it_would_need():
    fsne = arm([0.700, 0.675, 0.699, 0.680, 0.700])  # +0.001 on average, seed-to-seed spread ~0.01
    v = paired_verdict("F-SNE >= linear", ("linear", LINEAR), ("fsne", fsne))
    assert v.verdict == VERDICTS[2]
    assert v.seeds_needed > len(SEEDS)
    assert "seeds per arm" in v.sentence()


def test_identical_arms_are_inconclusive_with_no_effect_to_chase():
    v = paired_verdict("same", ("a", LINEAR), ("b", dict(LINEAR)))
    assert v.verdict == VERDICTS[2] and v.mean_difference == 0 and v.seeds_needed is None


def test_t_interval_matches_scipy_and_only_paired_seeds_count():
    values = [0.61, 0.64, 0.60, 0.66]
    mean, low, high = t_interval(values, 0.9)
    ref = stats.t.interval(0.9, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (low, high) == pytest.approx(ref) and mean == pytest.approx(np.mean(values))
    v = paired_verdict("x", ("a", {0: 0.5, 1: 0.6, 7: 0.9}), ("b", {0: 0.55, 1: 0.66, 3: 0.1}))
    assert v.seeds == [0, 1] and v.differences == pytest.approx([0.05, 0.06])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_verdict("x", ("a", {0: 0.5}), ("b", {0: 0.6, 1: 0.7}))
    assert arm_summary("a", {2: 0.7, 1: 0.6}).seeds == [1, 2]


def test_seeds_needed_gives_the_power_it_promises():
    """Simulate paired t-tests at the returned n: about 80% of them detect the effect; at n - 1, fewer."""
    rng = np.random.default_rng(0)
    effect, sd = 0.004, 0.006
    n = seeds_needed(effect, sd)
    assert seeds_needed(effect / 2, sd) > n > seeds_needed(effect * 2, sd)  # smaller effects need more seeds

    def power(k):
        d = effect + sd * rng.standard_normal((4000, k))
        p = stats.ttest_1samp(d, 0.0, axis=1).pvalue
        return float((p < 0.05).mean())
    assert power(n) >= 0.77 and power(n - 1) < 0.8


def test_per_class_differences_are_pooled_over_seeds():
    y = {s: np.repeat(np.arange(2), 50) for s in (0, 1)}
    a = {s: y[s].copy() for s in (0, 1)}
    b = {s: y[s].copy() for s in (0, 1)}
    for s in (0, 1):
        b[s][:20] = 1  # class 0: B wrong on 20 of 50 in each seed
    table = pooled_per_class(y, a, b, ["c0", "c1"]).set_index("class")
    assert table.loc["c0", "n"] == 100 and table.loc["c0", "b_only_a_right"] == 40
    assert table.loc["c0", "difference"] == pytest.approx(-0.4) and table.loc["c0", "significant"]
    assert not table.loc["c1", "significant"]


def test_a_study_runs_every_arm_and_seed_once_and_decides(tmp_path, capsys):
    import json

    from vitviz.cli import main as cli_main
    from vitviz.studies.study import load_spec, pending_runs
    tiny = dict(depth=1, embed_dim=16, num_heads=2, patch_size=8)
    spec = {"name": "tiny", "claim": "performer >= softmax in test accuracy", "baseline": "softmax",
            "candidate": "performer", "direction": ">=", "seeds": [0, 1], "dataset": "digits",
            "arms": {"softmax": {"variant": "vitviz_vit_softmax_32", "variant_kwargs": tiny},
                     "performer": {"variant": "vitviz_vit_performer_32", "variant_kwargs": tiny}},
            "recipe": {"epochs": 0.1, "batch_size": 64, "warmup_epochs": 0}, "note": "a test-sized budget"}
    path = tmp_path / "study" / "spec.json"
    path.parent.mkdir()
    path.write_text(json.dumps(spec))
    assert cli_main(["study", "run", str(path)]) == 0
    assert "[4/4] performer, seed 1" in capsys.readouterr().out
    assert pending_runs(load_spec(path)) == []
    result = json.loads((path.parent / "result.json").read_text())
    assert set(result["arms"]) == {"softmax", "performer"} and result["missing_runs"] == []
    assert result["verdict"]["verdict"] in ("holds", "contradicted", "inconclusive at this budget")
    assert result["verdict"]["seeds"] == [0, 1] and len(result["per_class"]) == 10
    runs = sorted(p.name for p in (path.parent / "runs").glob("*.json"))
    assert runs == ["performer_seed0.json", "performer_seed1.json", "softmax_seed0.json", "softmax_seed1.json"]
    seeds = {json.loads((path.parent / "runs" / r).read_text())["train_config"]["seed"] for r in runs}
    assert seeds == {0, 1}
    before = {r: (path.parent / "runs" / r).stat().st_mtime_ns for r in runs}
    assert cli_main(["study", "run", str(path)]) == 0  # a rerun skips the finished runs
    assert {r: (path.parent / "runs" / r).stat().st_mtime_ns for r in runs} == before
    assert cli_main(["study", "show", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["verdict"] == result["verdict"]


def test_a_bad_spec_is_refused_with_its_file_and_what_is_wrong(tmp_path):
    import json

    from vitviz.studies.study import load_spec
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"name": "x", "claim": "c", "baseline": "a", "candidate": "zz", "seeds": [0],
                                "dataset": "digits", "arms": {"a": {"variant": "v"}}, "recipe": {"lr": 1}}))
    with pytest.raises(ValueError) as info:
        load_spec(path)
    text = str(info.value)
    assert str(path) in text and "at least two arms" in text and "candidate 'zz'" in text
    assert "two different seeds" in text


def test_every_shipped_study_spec_loads_and_names_registered_variants():
    from pathlib import Path

    from vitviz.catalog import CATALOG
    from vitviz.studies.study import load_spec
    specs = sorted((Path(__file__).resolve().parents[1] / "studies").glob("*/spec.json"))
    assert len(specs) >= 2
    for path in specs:
        spec = load_spec(path)
        assert spec.name == path.parent.name and len(spec.seeds) >= 3
        assert all(a["variant"] in CATALOG for a in spec.arms.values()), path
