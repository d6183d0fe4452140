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


TINY = dict(depth=1, embed_dim=16, num_heads=2, patch_size=8)


def write_tiny_study(folder, seeds=(0, 1), **changes):
    import json
    spec = {"name": "tiny", "claim": "performer >= softmax in test accuracy", "baseline": "softmax",
            "candidate": "performer", "direction": ">=", "seeds": list(seeds), "dataset": "digits",
            "arms": {"softmax": {"variant": "vitviz_vit_softmax_32", "variant_kwargs": TINY},
                     "performer": {"variant": "vitviz_vit_performer_32", "variant_kwargs": TINY}},
            "recipe": {"epochs": 0.1, "batch_size": 64, "warmup_epochs": 0}, "note": "a test-sized budget",
            **changes}
    path = folder / "spec.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return path


def check_finished_study(path):
    import json
    result = json.loads((path.parent / "result.json").read_text())
    assert set(result["arms"]) == {"softmax", "performer"} and result["missing_runs"] == []
    assert result["verdict"]["verdict"] in ("holds", "contradicted", "inconclusive at this budget")
    assert result["verdict"]["seeds"] == [0, 1] and len(result["per_class"]) == 10
    runs = sorted(p.name for p in (path.parent / "runs").glob("*.json"))
    assert runs == ["performer_seed0.json", "performer_seed1.json", "softmax_seed0.json", "softmax_seed1.json"]
    metas = {r: json.loads((path.parent / "runs" / r).read_text()) for r in runs}
    assert {r: m["train_config"]["seed"] for r, m in metas.items()} == {
        "performer_seed0.json": 0, "performer_seed1.json": 1, "softmax_seed0.json": 0, "softmax_seed1.json": 1}
    assert all(m["variant_kwargs"] == TINY and m["train_config"]["epochs"] == 0.1 for m in metas.values())
    assert not list((path.parent / "runs").glob("*.resume.safetensors"))  # finished runs leave no state
    return result, runs


def test_a_study_runs_every_arm_and_seed_once_through_the_job_queue_and_decides(tmp_path, capsys):
    import json

    from vitviz.cli import main as cli_main
    from vitviz.studies.runner import study_jobs, study_status
    from vitviz.studies.study import load_spec, pending_runs
    from vitviz.train.jobs import JobStore
    path = write_tiny_study(tmp_path / "study")
    queue = tmp_path / "queue"
    assert cli_main(["study", "run", str(path), "--runs-dir", str(queue)]) == 0
    out = capsys.readouterr().out
    assert "4/4 runs done" in out and "0/4 runs done" in out
    spec = load_spec(path)
    assert pending_runs(spec) == []
    result, runs = check_finished_study(path)
    store = JobStore(queue)  # every run went through the queue, as a "train" job of this study
    jobs = study_jobs(spec, store)
    assert sorted(jobs) == sorted(spec.runs()) and all(j.state == "done" for j in jobs.values())
    assert all(j.label.startswith("train vitviz_vit_") for j in jobs.values())
    status = study_status(spec, store)
    assert (status.done, status.total, status.active, status.eta_seconds) == (4, 4, False, None)
    before = {r: (path.parent / "runs" / r).stat().st_mtime_ns for r in runs}
    assert cli_main(["study", "run", str(path), "--runs-dir", str(queue)]) == 0  # a rerun skips finished runs
    assert {r: (path.parent / "runs" / r).stat().st_mtime_ns for r in runs} == before
    assert len(store.list()) == 4
    capsys.readouterr()
    assert cli_main(["study", "show", str(path), "--json", "--runs-dir", str(queue)]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["verdict"] == result["verdict"] and shown["progress"]["done"] == 4


def test_a_study_runs_through_submitit_local_executor_and_a_crashed_run_fails_alone(tmp_path, capsys):
    import json

    from vitviz.cli import main as cli_main
    from vitviz.studies.study import load_spec, pending_runs
    path = write_tiny_study(tmp_path / "study")
    spec = load_spec(path)
    broken = spec.state_path("performer", 1)  # a corrupt resume state: this run fails, the other three train
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a resume state")
    assert cli_main(["study", "run", str(path), "--executor", "local"]) == 1
    out = capsys.readouterr().out
    assert "run performer seed 1 failed" in out and "log:" in out, out
    assert pending_runs(spec) == [("performer", 1)]
    result = json.loads((path.parent / "result.json").read_text())
    assert result["missing_runs"] == ["performer seed 1"] and "verdict" not in result  # one paired seed: no verdict
    broken.unlink()
    assert cli_main(["study", "run", str(path), "--executor", "local"]) == 0  # only the missing run trains
    check_finished_study(path)


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


def test_a_study_whose_runs_would_fail_is_refused_before_any_run_naming_the_field(tmp_path):
    from vitviz.studies.runner import submit_study
    from vitviz.studies.study import check_spec, load_spec
    from vitviz.train.jobs import JobStore
    cases = {
        "unknown variant": ({"arms": {"softmax": {"variant": "vitviz_vit_nope_32"},
                                      "performer": {"variant": "vitviz_vit_performer_32", "variant_kwargs": TINY}}},
                            "arms.softmax.variant: 'vitviz_vit_nope_32' is not a registered variant"),
        "unknown option": ({"arms": {"softmax": {"variant": "vitviz_vit_softmax_32", "variant_kwargs": {"nope": 1}},
                                     "performer": {"variant": "vitviz_vit_performer_32", "variant_kwargs": TINY}}},
                           "arms.softmax.variant_kwargs"),
        "different classes": ({"arms": {"softmax": {"variant": "vitviz_vit_softmax_32",
                                                    "variant_kwargs": {**TINY, "num_classes": 5}},
                                        "performer": {"variant": "vitviz_vit_performer_32", "variant_kwargs": TINY}}},
                              "arms: num_classes set per arm"),
        "dataset not on disk": ({"dataset": "cifar10", "data_dir": str(tmp_path / "empty")},
                                "dataset: cifar10 is not on disk"),
    }
    store = JobStore(tmp_path / "queue")
    for name, (changes, expected) in cases.items():
        spec = load_spec(write_tiny_study(tmp_path / name.replace(" ", "_"), **changes))
        with pytest.raises(ValueError) as info:
            check_spec(spec)
        assert expected in str(info.value) and str(spec.path) in str(info.value), (name, str(info.value))
        with pytest.raises(ValueError):
            submit_study(spec, store)
    assert store.list() == []  # nothing was queued
    check_spec(load_spec(write_tiny_study(tmp_path / "fine")))  # the tiny study itself passes


def test_a_study_written_by_a_newer_vitviz_is_refused_not_misread(tmp_path):
    import json

    from vitviz.studies.study import FORMAT_VERSION, load_spec, read_result
    with pytest.raises(ValueError, match="newer vitviz"):
        load_spec(write_tiny_study(tmp_path / "spec", format_version=FORMAT_VERSION + 1))
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"format_version": FORMAT_VERSION + 1, "arms": {}}))
    with pytest.raises(ValueError, match="newer vitviz"):
        read_result(result)
    result.write_text(json.dumps({"format_version": FORMAT_VERSION, "arms": {}}))
    assert read_result(result)["arms"] == {}


def test_study_status_counts_runs_and_estimates_the_time_left_from_finished_runs(tmp_path):
    import sqlite3
    import subprocess
    import sys

    from vitviz.studies.runner import job_spec, study_status
    from vitviz.studies.study import load_spec
    from vitviz.train.jobs import JobStore
    spec = load_spec(write_tiny_study(tmp_path / "study", seeds=(0, 1, 2)))
    store = JobStore(tmp_path / "queue")
    ids = {run: store.submit(job_spec(spec, *run), start=False) for run in spec.runs()}
    (spec.folder / "runs").mkdir()
    spec.run_path("softmax", 0).with_suffix(".json").write_text("{}")  # one run finished: 100 s
    db = sqlite3.connect(store.path)
    db.execute("UPDATE jobs SET state='done', started=1000, finished=1100 WHERE id=?", (ids[("softmax", 0)],))
    # a live process standing in for the running run's worker (the store checks its pid and command line)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", ids[("softmax", 1)]])
    db.execute("UPDATE jobs SET state='running', pid=?, started=?, updated=?, step=25, total_steps=100 WHERE id=?",
               (worker.pid, 2000.0, 2030.0, ids[("softmax", 1)]))  # a quarter done in 30 s: 90 s left
    db.execute("UPDATE jobs SET state='failed', message='boom' WHERE id=?", (ids[("performer", 2)],))
    db.commit()
    db.close()
    try:
        status = study_status(spec, store)
    finally:
        worker.kill()
        worker.wait()
    assert (status.total, status.done) == (6, 1)
    assert status.running == [("softmax", 1, 0.25)] and len(status.queued) == 3
    assert [(a, s) for a, s, _, _ in status.failed] == [("performer", 2)] and "boom" in status.failed[0][2]
    assert status.eta_seconds == pytest.approx(90 + 3 * 100)
    assert status.line().startswith("1/6 runs done; running softmax seed 1 (25%); 3 queued; 1 failed; ETA")


def test_durations_read_in_seconds_minutes_or_hours_and_executors_are_named():
    from vitviz.studies.runner import _duration, submitit_executor
    assert [_duration(s) for s in (-5, 89, 90, 5399, 5400)] == ["0 s", "89 s", "2 min", "90 min", "1.5 h"]
    with pytest.raises(ValueError, match="slurm, local or debug"):
        submitit_executor("pbs", "/tmp/nowhere")
