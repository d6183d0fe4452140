"""Training configuration: one dataclass whose comments say why each default is what it is."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

TRAINABLE_SCOPES = ("all", "qkv", "head")


@dataclass
class TrainConfig:
    epochs: float = 100.0          # the shipped recipe; ignored when `steps` is set
    steps: int | None = None       # exact number of optimiser steps (quick fine-tunes, tests)
    batch_size: int = 128          # small data (5k images): small batches generalise better
    lr: float = 1e-3               # AdamW peak lr for batch 128, as in the ViX CIFAR scripts
    min_lr: float = 1e-5           # cosine floor
    weight_decay: float = 0.05     # applied to weight matrices only (see `decay_groups`)
    warmup_epochs: float = 5.0     # linear warmup; transformers diverge without it at lr 1e-3
    label_smoothing: float = 0.1
    crop_padding: int = 4          # random crop after zero padding, the CIFAR standard
    flip: bool = True
    grad_clip: float | None = 1.0
    seed: int = 0
    amp: bool = True               # bf16 autocast on CUDA
    cpu_amp: bool = True           # bf16 autocast on CPUs with native bf16 too (1.6x on XCiT; bench/RESULTS.md)
    compile: bool = False          # torch.compile when available, with a clean eager fallback
    trainable: str = "all"         # freeze policy: "all", "qkv" (Q/K/V embeddings + head), "head"
    eval_every: int = 0            # epochs between evaluations on the test set (0: only at the end)
    max_resident_bytes: int = 2 << 30  # datasets up to this size live on the device as uint8
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.trainable not in TRAINABLE_SCOPES:
            raise ValueError(f"trainable must be one of {TRAINABLE_SCOPES}, got {self.trainable!r}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch_size must be >= 1 and lr > 0")
        if self.steps is None and self.epochs <= 0:
            raise ValueError("give epochs > 0 or steps")

    def as_dict(self) -> dict:
        return asdict(self)
