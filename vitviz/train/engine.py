"""The training / fine-tuning engine. It knows nothing about any model family.

AdamW with linear warmup + cosine decay, label smoothing, weight decay on weight matrices only
(norms, biases, XCiT temperatures, F-SNE codes, class tokens and position embeddings are exempt),
random crop + flip on the device, bf16 autocast on CUDA, deterministic seeding.

Progress reaches the caller through callbacks (minGPT style): each is called as
`callback(event, state)` with event "step", "epoch" or "end" and a dict of numbers. A cancel flag
(anything with `is_set()`, or a callable returning bool) is checked before every step; a cancelled
run raises `TrainingCancelled` and has written nothing (the engine never writes files).

Under torchrun (a process group of several ranks, see `distributed.py`) the same call trains
data-parallel: `config.batch_size` is the global batch, each rank computes on its slice of it, DDP
averages the gradients, the reported losses and accuracies are over the global batch, and only rank 0
evaluates. Callbacks run on every rank (the caller decides who prints); the cancel flag is per process.
"""
from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..data import ImageDataset
from . import distributed
from .batches import DeviceImages, Normalize, apply_crop_flip, draw_crop_flip
from .config import TrainConfig
from .device import autocast, device_name, resolve_device
from .evaluate import EvalResult, evaluate

NO_DECAY_NAMES = re.compile(r"(temperature|codes|cls_token|pos_embed|reg_token)")
QKV_PARAM_NAMES = re.compile(r"\.attn\.(qkv|q|k|v|conv_[qkv]|proj_[qkv])\.")


class TrainingCancelled(Exception):
    """Raised when the cancel flag was set; nothing was written."""


@dataclass
class TrainResult:
    steps: int
    epochs: float
    seconds: float
    device: str
    images_per_second: float
    history: list[dict] = field(default_factory=list)
    final_eval: EvalResult | None = None  # None on ranks other than 0 (only rank 0 evaluates)
    world_size: int = 1                   # processes that trained the model together (torchrun)
    data_parallel: dict = field(default_factory=dict)  # with world_size > 1: backend, per-rank batch, ...


def is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


def qkv_parameter_names(model: torch.nn.Module) -> list[str]:
    return [n for n, _ in model.named_parameters() if QKV_PARAM_NAMES.search("." + n + ".") or n.endswith(".codes")]


def head_parameter_names(model: torch.nn.Module) -> list[str]:
    head = model.get_classifier()
    ids = {id(p) for p in head.parameters()}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def apply_trainable(model: torch.nn.Module, scope: str) -> list[str]:
    """Set requires_grad by the freeze policy; returns the trainable parameter names."""
    if scope == "all":
        names = [n for n, _ in model.named_parameters()]
    else:
        names = head_parameter_names(model)
        if scope == "qkv":
            qkv = qkv_parameter_names(model)
            if not qkv:
                raise ValueError(f"{type(model).__name__} has no Q/K/V embeddings to fine-tune; use 'head' or 'all'")
            names += qkv
    keep = set(names)
    for n, p in model.named_parameters():
        p.requires_grad_(n in keep)
    return names


def freeze_frozen_norm_statistics(model: torch.nn.Module) -> None:
    """BatchNorm layers whose parameters are all frozen keep their running statistics too."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            if not any(p.requires_grad for p in module.parameters(recurse=False)):
                module.eval()


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exempt = p.ndim <= 1 or n in skip or NO_DECAY_NAMES.search(n) or any(
            s.endswith("*") and n.startswith(s[:-1]) for s in skip)
        (no_decay if exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, warmup: int, peak: float, floor: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def _compiled_or_eager(model, config: TrainConfig):
    if not config.compile or not hasattr(torch, "compile"):
        return model
    try:
        return torch.compile(model)
    except Exception as exc:  # pragma: no cover - depends on the platform's compiler
        warnings.warn(f"torch.compile unavailable ({exc}); training eagerly")
        return model


def train(model: torch.nn.Module, train_set: ImageDataset, config: TrainConfig, *, mean, std, img_size: int,
          test_set: ImageDataset | None = None, device=None, callbacks=(), cancel=None) -> TrainResult:
    """Train `model` in place on `train_set`; returns timing, history and (with test_set) a final evaluation."""
    device = resolve_device(device)
    rank, world_size = distributed.rank(), distributed.world_size()
    torch.manual_seed(config.seed + rank)  # dropout / drop-path differ between ranks; the data order does not:
    generator = torch.Generator().manual_seed(config.seed)  # same permutation and augmentation on every rank
    model.to(device)
    apply_trainable(model, config.trainable)
    data = DeviceImages(train_set, device, img_size, config.max_resident_bytes)
    test_data = (DeviceImages(test_set, device, img_size, config.max_resident_bytes)
                 if test_set is not None and rank == 0 else None)
    normalize = Normalize(mean, std, device)
    batch_size = min(config.batch_size, len(data))  # the global batch: images per step over all ranks
    if world_size > 1:
        if config.batch_size % world_size or batch_size < world_size:
            raise ValueError(f"--batch-size {config.batch_size} (the global batch) must be a multiple of the "
                             f"{world_size} processes, and the data must hold at least one batch")
        batch_size -= batch_size % world_size
    mine = distributed.shard_slice(batch_size, rank, world_size)  # this rank's part of every global batch
    steps_per_epoch = max(1, len(data) // batch_size)
    total_steps = config.steps if config.steps is not None else max(1, round(config.epochs * steps_per_epoch))
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total_steps // 4)
    parallel = distributed.DataParallel(model, device)  # the model itself in a single process
    optimizer = torch.optim.AdamW(decay_groups(model, config.weight_decay), lr=config.lr,
                                  **({"fused": True} if device.type == "cuda" else {}))
    step_model = _compiled_or_eager(parallel.module, config)

    def emit(event, state):
        for callback in callbacks:
            callback(event, state)

    parallel.module.train()
    freeze_frozen_norm_statistics(model)
    history, step, start, eval_seconds, final = [], 0, time.perf_counter(), 0.0, None
    loss_sum = torch.zeros((), device=device)
    correct_sum = torch.zeros((), device=device, dtype=torch.long)
    seen, last_loss = 0, float("nan")
    while step < total_steps:
        order = data.epoch_order(generator)
        for batch_start in range(0, steps_per_epoch * batch_size, batch_size):
            if step >= total_steps:
                break
            if is_cancelled(cancel):
                raise TrainingCancelled(f"cancelled at step {step} of {total_steps}")
            index = order[batch_start:batch_start + batch_size]
            augmentation = draw_crop_flip(len(index), config.crop_padding, config.flip, generator)
            images, labels = data.take(index[mine])
            images = apply_crop_flip(images, {k: v[mine] for k, v in augmentation.items()}, config.crop_padding)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, warmup, config.lr, config.min_lr)
            with autocast(device, config.amp):
                logits = step_model(normalize(images))
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                               config.grad_clip)
            optimizer.step()
            parallel.after_step(step + 1)
            loss_sum += loss.detach() * len(labels)
            correct_sum += (logits.detach().argmax(-1) == labels).sum()
            seen += len(labels)
            step += 1
            if step == 1 or step % 10 == 0 or step == total_steps:
                last_loss = loss.item() if world_size == 1 else (  # a device sync: not every step
                    distributed.all_reduce_sum(loss.detach().clone()).item() / world_size)
            emit("step", {"step": step, "total_steps": total_steps, "loss": last_loss,
                          "lr": optimizer.param_groups[0]["lr"], "elapsed": time.perf_counter() - start})
        epoch = step / steps_per_epoch
        train_loss, correct, count = (loss_sum / max(seen, 1)).item(), correct_sum.item(), seen
        if world_size > 1:  # the epoch's figures over every rank's images
            totals = torch.stack([loss_sum.double(), correct_sum.double(),
                                  torch.tensor(seen, dtype=torch.float64, device=device)])
            loss_total, correct, count = distributed.all_reduce_sum(totals).tolist()
            train_loss = loss_total / max(count, 1)
        record = {"epoch": epoch, "step": step, "train_loss": train_loss,
                  "train_accuracy": correct / max(count, 1), "elapsed": time.perf_counter() - start}
        loss_sum.zero_(), correct_sum.zero_()
        seen = 0
        at_end = step >= total_steps
        if test_data is not None and (at_end or (config.eval_every and round(epoch) % config.eval_every == 0)):
            eval_start = time.perf_counter()
            final = evaluate(model, test_data, mean=mean, std=std, img_size=img_size)
            record["test_accuracy"] = final.accuracy
            eval_seconds += time.perf_counter() - eval_start
        history.append(record)
        emit("epoch", record)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start - eval_seconds  # training time, evaluations excluded
    in_sync = parallel.finish()  # on every rank: BatchNorm restored, weights compared across the ranks
    model.eval()
    data_parallel = {} if world_size == 1 else {
        "backend": distributed.backend(), "batch_size_per_rank": batch_size // world_size,
        "sync_batchnorm": parallel.sync_batchnorm, "ranks_in_sync": in_sync,
        "ranks_checked": "every step" if parallel.check_every_step else "at the end"}
    result = TrainResult(step, step / steps_per_epoch, seconds, device_name(device),
                         step * batch_size / max(seconds, 1e-9), history, final, world_size, data_parallel)
    emit("end", {"steps": step, "seconds": seconds, "test_accuracy": final.accuracy if final else None})
    return result
