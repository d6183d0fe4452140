"""How long a fine-tune takes here, and a "quick" one sized to a time budget from the device's measured speed.

`measure_train_speed` times real optimiser steps of the variant (the engine's precision and freeze policy,
random weights: the cost does not depend on their values) on this device, and keeps the figure on disk
(`<runs dir>/train_speed.speeds`: JSON, but no `.json` name, which checkpoint listings would take for a
checkpoint's metadata; keyed by variant, options, scope, batch, device, threads and torch version),
so each machine measures each setting once (about a second on a 2-core CPU).

`plan_finetune` turns a preset into a job's settings and its expected seconds:
- "quick": only the Q/K/V embeddings and the head (the head alone for families without Q/K/V embeddings),
  as many steps as fit into `budget_seconds` once the fixed costs (worker start, data, the test-set
  evaluation) are taken out, at most `QUICK_MAX_EPOCHS` epochs;
- "full": every weight, `FULL_EPOCHS` epochs, the engine's fine-tune defaults.
The expected time is steps x batch / measured img/s + a forward pass over the test set + `STARTUP_SECONDS`
(measured: python start, imports, checkpoint and data load of a worker on the 2-core CPU).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

STARTUP_SECONDS = 8.0      # worker start to first step, CPU (python, torch/timm imports, checkpoint, data)
FORWARD_FRACTION = 0.35    # a forward pass costs about this share of a training step (per image)
QUICK_BUDGET_SECONDS = 60.0
QUICK_BATCH, QUICK_LR, QUICK_MAX_EPOCHS = 64, 1e-3, 3.0
FULL_EPOCHS, FULL_BATCH, FULL_LR = 3.0, 128, 5e-4
PRESETS = ("quick", "full")


@dataclass
class FinetunePlan:
    preset: str
    trainable: str
    batch_size: int
    steps: int
    lr: float
    images_per_second: float
    expected_seconds: float
    note: str

    def as_dict(self) -> dict:
        return asdict(self)


def _speed_cache(runs_dir: Path) -> Path:
    return Path(runs_dir) / "train_speed.speeds"


def _speed_key(variant, variant_kwargs, trainable, batch_size, device) -> str:
    return json.dumps([variant, variant_kwargs, trainable, batch_size, str(device), torch.get_num_threads(),
                       torch.__version__], sort_keys=True)


def measure_train_speed(variant: str, variant_kwargs: dict, num_classes: int, trainable: str, batch_size: int,
                        device, img_size: int = 32, steps: int = 2, runs_dir: str | os.PathLike | None = None,
                        recompute: bool = False) -> float:
    """Training images per second of `variant` with freeze policy `trainable` at `batch_size` on `device`."""
    import timm
    import torch.nn.functional as F

    from .. import models  # noqa: F401  (registers the variants)
    from ..locations import default_runs_dir
    from .config import TrainConfig
    from ..device import autocast, resolve_device
    from .engine import apply_trainable, decay_groups
    device = resolve_device(device)
    cache = _speed_cache(Path(runs_dir) if runs_dir is not None else default_runs_dir())
    key = _speed_key(variant, variant_kwargs, trainable, batch_size, device)
    known = _read_json(cache)
    if key in known and not recompute:
        return float(known[key])
    model = timm.create_model(variant, num_classes=num_classes, **variant_kwargs).to(device).train()
    apply_trainable(model, trainable)
    optimizer = torch.optim.AdamW(decay_groups(model, 0.05), lr=1e-4)
    x = torch.randn(batch_size, 3, img_size, img_size, device=device)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    config = TrainConfig()

    def step():
        with autocast(device, config.amp, cpu=config.cpu_amp):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    speed = round(batch_size * steps / (time.perf_counter() - start), 2)
    known = _read_json(cache)  # another session may have written meanwhile
    known[key] = speed
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known, indent=1))
    os.replace(tmp, cache)
    return speed


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def quick_scope(has_qkv: bool) -> str:
    return "qkv" if has_qkv else "head"


def expected_seconds(steps: int, batch_size: int, images_per_second: float, test_images: int) -> float:
    train = steps * batch_size / images_per_second
    evaluate = test_images * FORWARD_FRACTION / images_per_second
    return STARTUP_SECONDS + train + evaluate


def plan_finetune(preset: str, *, images_per_second: float, train_images: int, test_images: int,
                  has_qkv: bool, budget_seconds: float = QUICK_BUDGET_SECONDS) -> FinetunePlan:
    """The settings of `preset` ("quick" or "full") and the seconds they are expected to take."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    if images_per_second <= 0 or train_images <= 0:
        raise ValueError("images_per_second and train_images must be positive")
    if preset == "full":
        batch = min(FULL_BATCH, train_images)
        steps = max(1, round(FULL_EPOCHS * max(1, train_images // batch)))
        return FinetunePlan("full", "all", batch, steps, FULL_LR, images_per_second,
                            expected_seconds(steps, batch, images_per_second, test_images),
                            f"every weight, {FULL_EPOCHS:g} epochs")
    batch = min(QUICK_BATCH, train_images)
    left = budget_seconds - STARTUP_SECONDS - test_images * FORWARD_FRACTION / images_per_second
    by_budget = math.floor(max(0.0, left) * images_per_second / batch)
    by_epochs = round(QUICK_MAX_EPOCHS * max(1, train_images // batch))
    steps = max(5, min(by_budget, by_epochs))
    scope = quick_scope(has_qkv)
    what = "the Q/K/V embeddings and the head" if scope == "qkv" else "the head"
    return FinetunePlan("quick", scope, batch, steps, QUICK_LR, images_per_second,
                        expected_seconds(steps, batch, images_per_second, test_images),
                        f"{what} only, {steps} steps ({steps * batch / train_images:.2g} epochs) sized to "
                        f"{budget_seconds:.0f} s at the measured {images_per_second:.0f} img/s")


def has_qkv_embeddings(variant: str, variant_kwargs: dict) -> bool:
    """Whether the variant has Q/K/V embeddings to fine-tune (built on the meta device: no memory, no time)."""
    import timm

    from .. import models  # noqa: F401  (registers the variants)
    from .engine import qkv_parameter_names
    with torch.device("meta"):
        model = timm.create_model(variant, num_classes=2, **variant_kwargs)
    return bool(qkv_parameter_names(model))
