"""A study: a claim, two or more arms (a variant with options each), one recipe, a list of seeds, a dataset.

The spec is a small JSON file; its folder holds the spec, every run's checkpoint (`runs/<arm>_seed<k>`) with its
resume state, and the result (`result.json`). `run_study` trains every arm x seed that has no checkpoint yet, each
as its own `python -m vitviz train` process (so a stopped study resumes: finished runs are skipped, a run that was
stopped continues from its resume state), then `study_result` reads the checkpoints back and decides the claim
(`vitviz.studies.verdict`).

Spec keys: name, claim (words), baseline and candidate (arm names), direction (">=": the candidate is claimed at
least as accurate as the baseline; "<="), arms ({name: {"variant": ..., "variant_kwargs": {...}}}), seeds,
dataset, data_dir (optional), recipe (epochs, batch_size, lr, warmup_epochs), note (the budget, in words).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..checkpoint_meta import read_meta
from ..locations import resolve_stored_path
from .verdict import arm_summary, paired_verdict, pooled_per_class

RECIPE_KEYS = ("epochs", "batch_size", "lr", "warmup_epochs")


@dataclass
class StudySpec:
    name: str
    claim: str
    baseline: str
    candidate: str
    arms: dict
    seeds: list
    dataset: str
    recipe: dict
    direction: str = ">="
    data_dir: str | None = None
    note: str = ""
    path: str | None = field(default=None, compare=False)

    def __post_init__(self):
        problems = []
        if self.direction not in (">=", "<="):
            problems.append(f"direction must be '>=' or '<=', got {self.direction!r}")
        if len(self.arms) < 2 or any("variant" not in a for a in self.arms.values()):
            problems.append("arms must name at least two arms, each with a 'variant'")
        for role in ("baseline", "candidate"):
            if getattr(self, role) not in self.arms:
                problems.append(f"{role} {getattr(self, role)!r} is not one of the arms {sorted(self.arms)}")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            problems.append("seeds must list at least two different seeds")
        unknown = set(self.recipe) - set(RECIPE_KEYS)
        if unknown:
            problems.append(f"recipe keys {sorted(unknown)} unknown; known: {RECIPE_KEYS}")
        if problems:
            raise ValueError(f"{self.path or 'study spec'}: " + "; ".join(problems))

    @property
    def folder(self) -> Path:
        return Path(self.path).parent if self.path else Path.cwd()

    def run_path(self, arm: str, seed: int) -> Path:
        return self.folder / "runs" / f"{arm}_seed{seed}"

    def runs(self) -> list[tuple[str, int]]:
        return [(arm, seed) for arm in self.arms for seed in self.seeds]


def load_spec(path) -> StudySpec:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable study spec ({exc})") from exc
    known = {f for f in StudySpec.__dataclass_fields__ if f != "path"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    return StudySpec(**data, path=str(path))


def save_spec(spec: StudySpec, path) -> Path:
    data = {k: v for k, v in asdict(spec).items() if k != "path"}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)


def train_command(spec: StudySpec, arm: str, seed: int) -> list[str]:
    a = spec.arms[arm]
    cmd = [sys.executable, "-m", "vitviz", "train", "--variant", a["variant"],
           "--variant-kwargs", json.dumps(a.get("variant_kwargs", {})), "--dataset", spec.dataset,
           "--seed", str(seed), "--out", str(spec.run_path(arm, seed)), "--quiet",
           "--note", f"study {spec.name}: {spec.note}".strip()]
    for key in RECIPE_KEYS:
        if key in spec.recipe:
            cmd += [f"--{key.replace('_', '-')}", str(spec.recipe[key])]
    if spec.data_dir:
        cmd += ["--data-dir", str(resolve_stored_path(spec.data_dir) or spec.data_dir)]
    state = spec.run_path(arm, seed).with_name(spec.run_path(arm, seed).name + ".resume.safetensors")
    if state.exists():
        cmd += ["--resume", str(state)]
    return cmd


def pending_runs(spec: StudySpec) -> list[tuple[str, int]]:
    """The arm x seed runs without a checkpoint yet."""
    return [(arm, seed) for arm, seed in spec.runs()
            if not spec.run_path(arm, seed).with_suffix(".json").exists()]


def run_study(spec: StudySpec, progress=print, env=None) -> dict:
    """Train every pending run, one process each, in order; returns the result (also written to result.json)."""
    pending = pending_runs(spec)
    total = len(spec.runs())
    for done, (arm, seed) in enumerate(pending, start=total - len(pending) + 1):
        progress(f"[{done}/{total}] {arm}, seed {seed}")
        proc = subprocess.run(train_command(spec, arm, seed), env=env, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"run {arm} seed {seed} failed: {(proc.stderr or proc.stdout)[-2000:]}")
    return write_result(spec)


def study_result(spec: StudySpec) -> dict:
    """The result from the runs' checkpoints: per-arm summaries, the verdict, per-class differences pooled over
    seeds, and which runs are still missing."""
    accuracy, predictions, labels, classes = {}, {}, {}, None
    for arm, seed in spec.runs():
        path = spec.run_path(arm, seed).with_suffix(".json")
        if not path.exists():
            continue
        meta = read_meta(path)
        m = meta["metrics"]
        accuracy.setdefault(arm, {})[seed] = float(m["test_accuracy"])
        predictions.setdefault(arm, {})[seed] = m.get("test_predictions")
        labels[seed] = m.get("test_labels")
        classes = meta["classes"]
    missing = [f"{arm} seed {seed}" for arm, seed in pending_runs(spec)]
    result = {"study": spec.name, "claim": spec.claim, "note": spec.note, "recipe": spec.recipe,
              "dataset": spec.dataset, "missing_runs": missing,
              "arms": {arm: asdict(arm_summary(arm, acc)) for arm, acc in accuracy.items()}}
    a, b = accuracy.get(spec.baseline, {}), accuracy.get(spec.candidate, {})
    if len(set(a) & set(b)) >= 2:
        verdict = paired_verdict(spec.claim, (spec.baseline, a), (spec.candidate, b), spec.direction)
        result["verdict"] = verdict.as_dict()
        result["verdict_sentence"] = verdict.sentence()
        pa, pb = predictions.get(spec.baseline, {}), predictions.get(spec.candidate, {})
        seeds = [s for s in verdict.seeds if pa.get(s) is not None and pb.get(s) is not None and labels.get(s)]
        if seeds:
            table = pooled_per_class({s: labels[s] for s in seeds}, {s: pa[s] for s in seeds},
                                     {s: pb[s] for s in seeds}, classes)
            result["per_class"] = json.loads(table.to_json(orient="records"))
    return result


def write_result(spec: StudySpec) -> dict:
    result = study_result(spec)
    (spec.folder / "result.json").write_text(json.dumps(result, indent=1))
    return result
