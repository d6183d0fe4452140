"""The training / fine-tuning engine. It knows nothing about any model family.

AdamW with linear warmup + cosine decay, label smoothing, weight decay on weight matrices only
(norms, biases, XCiT temperatures, F-SNE codes, class tokens and position embeddings are exempt),
random crop + flip on the device, bf16 autocast on CUDA (and on CPUs with native bf16), deterministic seeding,
resume states (`resume.py`) that continue a stopped run bit-for-bit.

Progress reaches the caller through callbacks (minGPT style): each is called as
`callback(event, state)` with event "step", "epoch" or "end" and a dict of numbers (a step's "loss" is
refreshed every 10 steps, to spare device syncs; "batch_loss" is that step's loss as a 0-d tensor). A cancel flag
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
from ..device import autocast, cpu_bf16_supported, device_name, resolve_device
from .evaluate import EvalResult, evaluate, samples_fingerprint
from .resume import ResumeError, ResumeState, StateWriter, recipe_identity

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
    precision: str = "float32"  # "bf16 autocast" where the forward pass ran in bf16
    resumes: list = field(default_factory=list)  # [{"step", "state"}] for a run continued from resume states


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


def _precision(device, config: TrainConfig) -> str:
    bf16 = config.amp and (device.type == "cuda" or (device.type == "cpu" and config.cpu_amp and cpu_bf16_supported()))
    return "bf16 autocast" if bf16 else "float32"


def _load_model_state(model: torch.nn.Module, resume: ResumeState) -> None:
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(resume.model)), sorted(set(resume.model) - set(own))
    wrong = [k for k in own if k in resume.model and own[k].shape != resume.model[k].shape]
    if missing or extra or wrong:
        raise ResumeError(f"{resume.path}: its weights do not fit this model (missing {missing[:3]}, unexpected "
                          f"{extra[:3]}, other shapes {wrong[:3]}); nothing was written")
    model.load_state_dict(resume.model)


def _compiled_or_eager(model, config: TrainConfig):
    if not config.compile or not hasattr(torch, "compile"):
        return model
    try:
        return torch.compile(model)
    except Exception as exc:  # pragma: no cover - depends on the platform's compiler
        warnings.warn(f"torch.compile unavailable ({exc}); training eagerly")
        return model


def run_identity(identity: dict | None, data: DeviceImages, config: TrainConfig) -> dict:
    """What a resume state must match: the caller's (variant, dataset, parent), the classes, the training
    images (a fingerprint of the uint8 pixels and labels) and the recipe (all but its length)."""
    return {**(identity or {}), "classes": list(data.classes),
            "train_images_sha256": samples_fingerprint(data.images, data.labels),
            "recipe": recipe_identity(config.as_dict())}


def train(model: torch.nn.Module, train_set: ImageDataset, config: TrainConfig, *, mean, std, img_size: int,
          test_set: ImageDataset | None = None, device=None, callbacks=(), cancel=None,
          resume: ResumeState | None = None, state_writer: StateWriter | None = None,
          identity: dict | None = None) -> TrainResult:
    """Train `model` in place on `train_set`; returns timing, history and (with test_set) a final evaluation.

    With `state_writer`, a resume state (vitviz.train.resume) is written every `state_writer.every_seconds`
    and at the end; with `resume`, the run continues from such a state (checked against this run first:
    `identity` names the variant, dataset and parent, the engine adds the data and the recipe).
    """
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
    identity = run_identity(identity, data, config) if (resume or state_writer) else None
    if resume is not None:
        resume.check(identity)  # before anything changes: a foreign state is refused, nothing is written
        if resume.step >= total_steps:
            raise ResumeError(f"{resume.path}: that run already took {resume.step} of the {total_steps} steps asked "
                              f"for; give more --epochs (or --steps) to train longer; nothing was written")
        _load_model_state(model, resume)
    parallel = distributed.DataParallel(model, device)  # the model itself in a single process
    optimizer = torch.optim.AdamW(decay_groups(model, config.weight_decay), lr=config.lr,
                                  **({"fused": True} if device.type == "cuda" else {}))
    step_model = _compiled_or_eager(parallel.module, config)
    cpu_amp = config.cpu_amp

    def emit(event, state):
        for callback in callbacks:
            callback(event, state)

    parallel.module.train()
    freeze_frozen_norm_statistics(model)
    history, step, start, eval_seconds, final = [], 0, time.perf_counter(), 0.0, None
    loss_sum = torch.zeros((), device=device)
    correct_sum = torch.zeros((), device=device, dtype=torch.long)
    seen, last_loss, order, resumes = 0, float("nan"), None, []
    if resume is not None:  # continue where the state stopped: same step, data order, RNG and moments
        optimizer.load_state_dict(resume.optimizer)
        generator.set_state(resume.rng_data)
        torch.set_rng_state(resume.rng_torch)
        step, history, order = resume.step, list(resume.history), resume.order
        loss_sum += resume.sums.get("loss_sum", 0.0)
        correct_sum += int(resume.sums.get("correct_sum", 0))
        seen = int(resume.sums.get("seen", 0))
        start -= resume.train_seconds
        resumes = [*resume.resumes, {"step": step, "state": str(resume.path)}]

    def save_state(mid_epoch_order):
        if state_writer is None or rank != 0:
            return
        state_writer.write(identity=identity, step=step, history=history, model=model, optimizer=optimizer,
                           sums={"loss_sum": loss_sum.item(), "correct_sum": int(correct_sum.item()), "seen": seen},
                           train_seconds=time.perf_counter() - start - eval_seconds, rng_data=generator.get_state(),
                           order=mid_epoch_order, resumes=resumes)

    while step < total_steps:
        order = data.epoch_order(generator) if order is None else order  # a resumed epoch keeps its order
        for batch_start in range((step % steps_per_epoch) * batch_size, steps_per_epoch * batch_size, batch_size):
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
            with autocast(device, config.amp, cpu=cpu_amp):
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
            emit("step", {"step": step, "total_steps": total_steps, "loss": last_loss, "batch_loss": loss.detach(),
                          "lr": optimizer.param_groups[0]["lr"], "elapsed": time.perf_counter() - start})
            if state_writer is not None and step % steps_per_epoch and state_writer.due():
                save_state(order)  # inside an epoch: with its permutation
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
        order = None
        if state_writer is not None and (at_end or state_writer.due()):
            save_state(None)  # at an epoch's end: the next epoch draws its permutation from the saved generator
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
                         step * batch_size / max(seconds, 1e-9), history, final, world_size, data_parallel,
                         precision=_precision(device, config), resumes=resumes)
    emit("end", {"steps": step, "seconds": seconds, "test_accuracy": final.accuracy if final else None})
    return result
