"""Train a variant from scratch, or fine-tune a checkpoint, on a named dataset; return the model
with the metadata its checkpoint needs (writing it is the caller's choice: see `save_run`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import timm
import torch

from .. import checkpoints, models  # noqa: F401  (models: registers the variants with timm)
from ..locations import portable_command, portable_path
from ..data import DATASETS, ImageDataset, load_dataset
from ..catalog import CATALOG
from .config import TrainConfig
from ..device import resolve_device
from .engine import TrainResult, train
from .resume import StateWriter, read_state


@dataclass
class FinetuneResult:
    model: torch.nn.Module
    meta: dict
    result: TrainResult


def _datasets(dataset: str | tuple[ImageDataset, ImageDataset], data_root, img_size: int):
    if isinstance(dataset, str):
        return (dataset, load_dataset(dataset, "train", root=data_root, img_size=img_size),
                load_dataset(dataset, "test", root=data_root, img_size=img_size))
    train_set, test_set = dataset
    return train_set.name, train_set, test_set


def _run_meta(model, base: dict, dataset_name: str, classes, config: TrainConfig, result: TrainResult,
              command: str | None, parent: str | None, data_root=None) -> dict:
    """Metadata of a run; paths (data directory, parent, command) are stored portably (vitviz.locations)."""
    meta = dict(base, classes=list(classes), num_classes=len(classes), dataset=dataset_name,
                parent=portable_path(parent))
    meta["metrics"] = result.final_eval.as_metrics() if result.final_eval else {}
    parallel = getattr(result, "data_parallel", None)  # torchrun runs only (see distributed.py)
    parallel = {"data_parallel": parallel} if parallel else {}
    meta["train_config"] = dict(config.as_dict(), device=result.device, world_size=getattr(result, "world_size", 1),
                                **parallel,
                                seconds=round(result.seconds, 2),
                                steps_done=result.steps, epochs_done=round(result.epochs, 3),
                                images_per_second=round(result.images_per_second, 1),
                                precision=getattr(result, "precision", "float32"),
                                **({"resumed": [dict(r, state=portable_path(r["state"])) for r in resumes]}
                                   if (resumes := getattr(result, "resumes", None)) else {}),
                                command=portable_command(command),
                                history=result.history, data_root=portable_path(data_root))
    return meta


def _resume_options(resume, state_path, state_every) -> dict:
    """The engine's resume arguments: a state read from `resume` (a path), a writer to `state_path`."""
    return {"resume": read_state(resume) if resume else None,
            "state_writer": StateWriter(state_path, state_every) if state_path else None}


def train_from_scratch(variant: str, dataset: str | tuple[ImageDataset, ImageDataset], config: TrainConfig, *,
                       variant_kwargs: dict | None = None, data_root=None, device=None, callbacks=(),
                       cancel=None, command: str | None = None, resume=None, state_path=None,
                       state_every: float = 300.0) -> FinetuneResult:
    """Train `variant` from its seeded initialisation; with `state_path`, a resume state is kept there every
    `state_every` seconds, and `resume` (a state's path) continues such a run bit-for-bit."""
    variant_kwargs = dict(variant_kwargs or {})
    img_size = variant_kwargs.get("img_size", CATALOG[variant].img_size if variant in CATALOG else 32)
    options = _resume_options(resume, state_path, state_every)  # a bad state fails before any data is read
    name, train_set, test_set = _datasets(dataset, data_root, img_size)
    info = DATASETS.get(name)
    mean, std = (info.mean, info.std) if info else ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    torch.manual_seed(config.seed)  # the initial weights follow the seed too (and match on every rank)
    model = timm.create_model(variant, num_classes=train_set.num_classes, **variant_kwargs)
    result = train(model, train_set, config, mean=mean, std=std, img_size=img_size, test_set=test_set,
                   device=resolve_device(device), callbacks=callbacks, cancel=cancel,
                   identity={"variant": variant, "variant_kwargs": variant_kwargs, "dataset": name}, **options)
    base = dict(variant=variant, variant_kwargs=variant_kwargs, img_size=img_size, mean=list(mean), std=list(std))
    return FinetuneResult(model, _run_meta(model, base, name, train_set.classes, config, result, command, None,
                                                      data_root), result)


def finetune(checkpoint: str | Path, dataset: str | tuple[ImageDataset, ImageDataset], config: TrainConfig, *,
             data_root=None, device=None, callbacks=(), cancel=None, command: str | None = None, resume=None,
             state_path=None, state_every: float = 300.0) -> FinetuneResult:
    """Fine-tune a checkpoint on `dataset`. Images are resized to the checkpoint's input size and
    normalised with its statistics; a new head is made when the classes differ. Resume states as in
    `train_from_scratch` (the parent's weights sha is part of the run's identity)."""
    device = resolve_device(device)
    options = _resume_options(resume, state_path, state_every)
    model, parent = checkpoints.load(checkpoint, device=device)
    img_size = parent["img_size"]
    name, train_set, test_set = _datasets(dataset, data_root, img_size)
    if list(train_set.classes) != list(parent["classes"]):
        model.reset_classifier(train_set.num_classes)
        model.to(device)
    identity = {"variant": parent["variant"], "variant_kwargs": parent["variant_kwargs"], "dataset": name,
                "parent_weights_sha256": parent.get("weights_sha256")}
    result = train(model, train_set, config, mean=parent["mean"], std=parent["std"], img_size=img_size,
                   test_set=test_set, device=device, callbacks=callbacks, cancel=cancel, identity=identity, **options)
    base = {k: parent[k] for k in ("variant", "variant_kwargs", "img_size", "mean", "std")}
    meta = _run_meta(model, base, name, train_set.classes, config, result, command, str(checkpoint),
                     data_root)
    return FinetuneResult(model, meta, result)


def save_run(run: FinetuneResult, path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write the run's checkpoint atomically (fp16 weights with dtype=torch.float16)."""
    return checkpoints.save(run.model, path, run.meta, dtype=dtype)
