"""A study: a claim, two or more arms (a variant with options each), one recipe, a list of seeds, a dataset.

The spec is a small JSON file; its folder holds the spec, every run's checkpoint (`runs/<arm>_seed<k>`) with its
resume state, and the result (`result.json`). `vitviz.studies.runner` trains every arm x seed that has no
checkpoint yet (through the app's job queue, or submitit), so a stopped study resumes: finished runs are skipped,
a run that was stopped continues from its resume state. `study_result` reads the checkpoints back and decides the
claim (`vitviz.studies.verdict`). `check_spec` refuses, before any run starts, what would fail later: an unknown
variant or option, a dataset not on disk, arms trained on different classes.

Spec keys: name, claim (words), baseline and candidate (arm names), direction (">=": the candidate is claimed at
least as accurate as the baseline; "<="), arms ({name: {"variant": ..., "variant_kwargs": {...}}}), seeds,
dataset, data_dir (optional), recipe (epochs, batch_size, lr, warmup_epochs; the rest of `TrainConfig`'s
defaults), note (the budget, in words), format_version (optional; a spec or result written by a newer vitviz is
refused, not misread).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..checkpoint_meta import read_meta
from ..locations import resolve_stored_path
from .verdict import arm_summary, paired_verdict, pooled_per_class

RECIPE_KEYS = ("epochs", "batch_size", "lr", "warmup_epochs")
FORMAT_VERSION = 1  # of spec.json and result.json


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
    format_version: int = FORMAT_VERSION
    path: str | None = field(default=None, compare=False)

    def __post_init__(self):
        problems = []
        if not isinstance(self.format_version, int) or self.format_version > FORMAT_VERSION:
            raise ValueError(f"{self.path or 'study spec'}: written by a newer vitviz (format_version "
                             f"{self.format_version!r}; this one reads up to {FORMAT_VERSION}): update vitviz")
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

    def as_dict(self) -> dict:
        """The spec as its JSON file holds it."""
        return {k: v for k, v in asdict(self).items() if k != "path"}

    def state_path(self, arm: str, seed: int) -> Path:
        """The run's resume state, beside its checkpoint."""
        run = self.run_path(arm, seed)
        return run.with_name(run.name + ".resume.safetensors")

    @property
    def data_root(self) -> str | None:
        return str(resolve_stored_path(self.data_dir) or self.data_dir) if self.data_dir else None

    def recipe_config(self, seed: int, **extra):
        """The run's `TrainConfig`: the spec's recipe over TrainConfig's defaults, evaluated every epoch."""
        from ..train.config import TrainConfig
        return TrainConfig(**self.recipe, seed=seed, eval_every=1,
                           extra={"note": f"study {self.name}: {self.note}".strip(), **extra})


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


def list_studies(directory) -> list[tuple[Path, StudySpec | None, str | None]]:
    """Every `<directory>/*/spec.json`, sorted: (path, spec, None), or (path, None, why it cannot be read)."""
    found = []
    for path in sorted(Path(directory).glob("*/spec.json")):
        try:
            found.append((path, load_spec(path), None))
        except ValueError as exc:
            found.append((path, None, str(exc)))
    return found


def save_spec(spec: StudySpec, path) -> Path:
    data = spec.as_dict()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)


def check_spec(spec: StudySpec) -> None:
    """Refuse, before any run starts, a spec whose runs would fail or could not be compared: an unknown variant
    or option (the model is built on the meta device, so this costs no memory), a dataset not on disk, arms
    trained on different classes. The message names the field."""
    import timm
    import torch

    from ..data import DATASETS, is_available
    from ..data.paths import dataset_folder
    from ..models import list_variants
    problems = []
    known = set(list_variants())
    for arm, a in spec.arms.items():
        if a["variant"] not in known:
            problems.append(f"arms.{arm}.variant: {a['variant']!r} is not a registered variant")
            continue
        try:
            with torch.device("meta"):
                timm.create_model(a["variant"], **(a.get("variant_kwargs") or {}))
        except TypeError as exc:
            problems.append(f"arms.{arm}.variant_kwargs: {a['variant']} does not take these options ({exc})")
        except ValueError as exc:
            problems.append(f"arms.{arm}.variant_kwargs: {exc}")
    classes = {arm: (a.get("variant_kwargs") or {}).get("num_classes") for arm, a in spec.arms.items()}
    if any(c is not None for c in classes.values()):
        problems.append(f"arms: num_classes set per arm ({classes}): every arm is trained on the dataset's own "
                        "classes, so that their test predictions can be paired")
    if spec.dataset not in DATASETS:
        problems.append(f"dataset: {spec.dataset!r} unknown; known: {', '.join(DATASETS)}")
    elif not is_available(spec.dataset, spec.data_root):
        folder = dataset_folder(spec.data_root, DATASETS[spec.dataset].folder)
        problems.append(f"dataset: {spec.dataset} is not on disk (looked in {folder}"
                        + (f", from data_dir {spec.data_dir!r}" if spec.data_dir else "")
                        + f"); `python -m vitviz download {spec.dataset}` fetches it, or set data_dir")
    if problems:
        raise ValueError(f"{spec.path or 'study spec'}: " + "; ".join(problems))


def pending_runs(spec: StudySpec) -> list[tuple[str, int]]:
    """The arm x seed runs without a checkpoint yet."""
    return [(arm, seed) for arm, seed in spec.runs()
            if not spec.run_path(arm, seed).with_suffix(".json").exists()]


def study_result(spec: StudySpec) -> dict:
    """The result from the runs' checkpoints: per-arm summaries, the verdict, per-class differences pooled over
    seeds, and which runs are still missing."""
    accuracy, predictions, labels, classes = {}, {}, {}, None
    for arm, seed in spec.runs():
        path = spec.run_path(arm, seed).with_suffix(".json")
        if not path.exists():
            continue
        meta = read_meta(path)
        if classes is not None and list(meta["classes"]) != list(classes):
            raise ValueError(f"{path}: trained on other classes than the study's other runs ({meta['classes']} "
                             f"vs {classes}): its predictions cannot be paired")
        m = meta["metrics"]
        accuracy.setdefault(arm, {})[seed] = float(m["test_accuracy"])
        predictions.setdefault(arm, {})[seed] = m.get("test_predictions")
        labels[seed] = m.get("test_labels")
        classes = meta["classes"]
    missing = [f"{arm} seed {seed}" for arm, seed in pending_runs(spec)]
    result = {"format_version": FORMAT_VERSION, "study": spec.name, "claim": spec.claim, "note": spec.note,
              "recipe": spec.recipe, "dataset": spec.dataset, "missing_runs": missing,
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


def read_result(path) -> dict:
    """A study's result.json; one written by a newer vitviz is refused, not misread."""
    result = json.loads(Path(path).read_text())
    version = result.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path}: written by a newer vitviz (format_version {version!r}; this one reads up to "
                         f"{FORMAT_VERSION}): update vitviz")
    return result
