"""Where two networks' representations diverge: layer x layer linear CKA between the block outputs of two
models on the same images, with the minibatch unbiased HSIC estimator.

- Block outputs are recorded with forward hooks on every block the model runs in order
  (`representation_blocks`): XCiT's `blocks` then `cls_attn_blocks`, ViT / Mixer / FNet `blocks`, and every
  CvT stage's `blocks`. A block that returns a tuple contributes its first element.
- Each image is one example. Its features are the block's output tokens flattened (`features="flatten"`,
  the default: keeps where in the image a feature sits, as Kornblith et al. and Nguyen et al. do) or
  averaged over tokens (`features="mean"`). Only per-image Gram matrices K = X Xᵀ (n x n) are formed, so
  the two models may have different token counts and widths.
- Linear CKA (Kornblith et al., ICML 2019) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)). With many images
  the Gram matrices do not fit at once, so, as in Nguyen, Raghu & Kornblith (ICLR 2021), the unbiased
  estimator HSIC_1 (Song et al., 2012) is computed on each minibatch of k images and averaged:
  CKA_minibatch = mean_i HSIC_1(K_i, L_i) / sqrt(mean_i HSIC_1(K_i, K_i) · mean_i HSIC_1(L_i, L_i)).
  HSIC_1 is unbiased for every minibatch size, so the average does not drift with k (the biased estimator
  would); with one minibatch it is the full-batch unbiased CKA (`unbiased_cka`).

Hooks go on a possibly shared, cached model, so the forward passes run inside
`exclusive.eval_mode(model)` (the model's lock, eval mode restored afterwards) under no_grad.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..inspect.exclusive import eval_mode

__all__ = ["FEATURES", "representation_blocks", "block_outputs", "hsic1", "unbiased_cka",
           "RepresentationCKA", "representation_cka", "minibatch_cka", "qkv_embedding_pairs",
           "checkpoint_cka"]

FEATURES = ("flatten", "mean")
_BLOCK_LISTS = ("blocks", "cls_attn_blocks")
MIN_BATCH = 4  # HSIC_1 divides by n (n - 3)


# --------------------------------------------------------------------------- blocks

def representation_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every block in the order the forward runs them: the children of each
    `blocks` / `cls_attn_blocks` container (XCiT, ViT, Mixer, FNet; CvT's `stages.i.blocks`)."""
    found = []
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in _BLOCK_LISTS and isinstance(module, (nn.ModuleList, nn.Sequential)):
            found.extend((f"{name}.{child}", block) for child, block in module.named_children())
    if not found:
        raise ValueError(f"{type(model).__name__} has no `blocks` / `cls_attn_blocks` container to hook")
    return found


def _features(output, how: str) -> torch.Tensor:
    t = output[0] if isinstance(output, (tuple, list)) else output
    t = t.detach()
    if t.ndim == 4:  # (B, C, H, W) maps -> (B, H*W, C) tokens
        t = t.flatten(2).transpose(1, 2)
    if t.ndim == 2:
        t = t[:, None]
    if how == "mean":
        return t.mean(dim=1)
    return t.reshape(t.shape[0], -1)


def block_outputs(model: nn.Module, images: torch.Tensor, features: str = "flatten"
                  ) -> tuple[list[torch.Tensor], list[str]]:
    """Per block the features of each image, (B, D_l) on the model's device, and the block names.

    `images` are normalised (B, 3, H, W). Runs one forward in eval mode under no_grad, with hooks that are
    removed afterwards, holding the model's lock.
    """
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    device = next(model.parameters()).device
    blocks = representation_blocks(model)
    outputs: list[torch.Tensor | None] = [None] * len(blocks)
    handles = []
    with eval_mode(model):
        try:
            for i, (_, block) in enumerate(blocks):
                def hook(module, args, output, i=i):
                    outputs[i] = _features(output, features)
                handles.append(block.register_forward_hook(hook))
            with torch.no_grad():
                model(images.to(device))
        finally:
            for handle in handles:
                handle.remove()
    missing = [name for (name, _), out in zip(blocks, outputs) if out is None]
    if missing:
        raise ValueError(f"blocks that did not run: {missing}")
    return outputs, [name for name, _ in blocks]


# --------------------------------------------------------------------------- HSIC / CKA

def _hsic1_terms(grams: torch.Tensor):
    """Zero the diagonals of (L, n, n) Gram matrices; return (K̃ flattened (L, n²), row sums (L, n),
    totals (L,))."""
    n = grams.shape[-1]
    k = grams.clone()
    k.diagonal(dim1=-2, dim2=-1).zero_()
    rows = k.sum(-1)
    return k.reshape(k.shape[0], n * n), rows, rows.sum(-1)


def _hsic1_cross(a, b, n: int) -> torch.Tensor:
    """HSIC_1 between every Gram matrix of `a` and of `b` (terms from `_hsic1_terms`): (La, Lb).

    HSIC_1(K, L) = [tr(K̃ L̃) + 1ᵀK̃1 · 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃ L̃1] / (n (n-3)), K̃, L̃ symmetric
    with zero diagonals (Song et al., 2012)."""
    fa, ra, sa = a
    fb, rb, sb = b
    trace = fa @ fb.t()
    return (trace + torch.outer(sa, sb) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ra @ rb.t())) / (n * (n - 3))


def _grams(features: list[torch.Tensor]) -> torch.Tensor:
    """(L, n, n) float64 Gram matrices, computed where the features are, returned on the CPU (small; the two
    models may sit on different devices)."""
    return torch.stack([((f := x.to(torch.float64)) @ f.t()).cpu() for x in features])


def hsic1(gram_k, gram_l) -> float:
    """The unbiased HSIC estimator of Song et al. (2012) between two n x n Gram matrices (n >= 4)."""
    k = torch.as_tensor(gram_k, dtype=torch.float64)
    m = torch.as_tensor(gram_l, dtype=torch.float64)
    n = k.shape[0]
    if k.shape != (n, n) or m.shape != (n, n) or n < MIN_BATCH:
        raise ValueError(f"hsic1 needs two n x n Gram matrices with n >= {MIN_BATCH}, got {tuple(k.shape)}, "
                         f"{tuple(m.shape)}")
    return float(_hsic1_cross(_hsic1_terms(k[None]), _hsic1_terms(m[None]), n)[0, 0])


def _cka_from(cross: torch.Tensor, self_a: torch.Tensor, self_b: torch.Tensor) -> np.ndarray:
    denom = torch.sqrt(torch.clamp(torch.outer(self_a, self_b), min=0.0))
    out = torch.where(denom > 0, cross / torch.where(denom > 0, denom, torch.ones_like(denom)),
                      torch.full_like(cross, math.nan))
    return out.cpu().numpy()


def minibatch_cka(xs: list, ys: list, batch_size: int = 64) -> np.ndarray:
    """Layer x layer linear CKA between feature sets over the same n examples, minibatch unbiased estimator.

    xs: La arrays (n, d_l); ys: Lb arrays (n, d'_l). Examples are taken in order in minibatches of
    `batch_size` (a last minibatch under 4 examples joins the one before). Returns (La, Lb)."""
    xs = [torch.as_tensor(x) for x in xs]
    ys = [torch.as_tensor(y) for y in ys]
    n = xs[0].shape[0]
    if any(t.shape[0] != n for t in xs + ys):
        raise ValueError("every feature matrix needs the same number of examples")
    acc = _Accumulator()
    for lo, hi in _batches(n, batch_size):
        acc.update([x[lo:hi] for x in xs], [y[lo:hi] for y in ys])
    return acc.cka()


def unbiased_cka(x, y) -> float:
    """Full-batch linear CKA of x (n, d1) and y (n, d2) with the unbiased HSIC_1 estimator (n >= 4)."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    return float(minibatch_cka([x], [y], batch_size=max(int(x.shape[0]), MIN_BATCH))[0, 0])


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    if int(batch_size) < MIN_BATCH:
        raise ValueError(f"batch_size must be >= {MIN_BATCH}, got {batch_size}")
    if n < MIN_BATCH:
        raise ValueError(f"the unbiased HSIC estimator needs at least {MIN_BATCH} images, got {n}")
    edges = list(range(0, n, int(batch_size))) + [n]
    spans = list(zip(edges[:-1], edges[1:]))
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < MIN_BATCH:
        spans[-2:] = [(spans[-2][0], n)]
    return spans


class _Accumulator:
    """Sums of HSIC_1 over minibatches: cross (La, Lb), and each side with itself."""

    def __init__(self):
        self.cross = self.self_a = self.self_b = None
        self.batches = 0

    def update(self, xs: list[torch.Tensor], ys: list[torch.Tensor]) -> None:
        n = xs[0].shape[0]
        a, b = _hsic1_terms(_grams(xs)), _hsic1_terms(_grams(ys))
        cross = _hsic1_cross(a, b, n)
        self_a = _hsic1_diag(a, n)
        self_b = _hsic1_diag(b, n)
        if self.cross is None:
            self.cross, self.self_a, self.self_b = cross, self_a, self_b
        else:
            self.cross, self.self_a, self.self_b = self.cross + cross, self.self_a + self_a, self.self_b + self_b
        self.batches += 1

    def cka(self) -> np.ndarray:
        return _cka_from(self.cross, self.self_a, self.self_b)


def _hsic1_diag(terms, n: int) -> torch.Tensor:
    """HSIC_1(K_l, K_l) for every layer l."""
    f, r, s = terms
    return ((f * f).sum(-1) + s * s / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (r * r).sum(-1)) / (n * (n - 3))


# --------------------------------------------------------------------------- two models

@dataclass(frozen=True)
class RepresentationCKA:
    """Layer x layer linear CKA between the block outputs of two models on the same images.

    matrix: (blocks of a, blocks of b) float array. images: how many images; batch_size: minibatch size of
    the HSIC_1 estimator; features: "flatten" or "mean" (how an image's tokens become one feature vector).
    """
    matrix: np.ndarray
    blocks_a: tuple[str, ...]
    blocks_b: tuple[str, ...]
    images: int
    batch_size: int
    features: str

    def diagonal(self) -> pd.DataFrame:
        """CKA at matching depth: depth, block_a, block_b, cka (the b block at the same relative depth
        when the depths differ)."""
        la, lb = self.matrix.shape
        rows = []
        for i in range(la):
            j = i if la == lb else int(round(i * (lb - 1) / max(la - 1, 1)))
            rows.append(dict(depth=i, block_a=self.blocks_a[i], block_b=self.blocks_b[j],
                             cka=float(self.matrix[i, j])))
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """Long table: block_a, block_b, cka."""
        return pd.DataFrame([dict(block_a=a, block_b=b, cka=float(self.matrix[i, j]))
                             for i, a in enumerate(self.blocks_a) for j, b in enumerate(self.blocks_b)])

    def divergence_depth(self, threshold: float = 0.9) -> int | None:
        """The first depth whose matching-depth CKA falls below `threshold` (None if none does)."""
        below = self.diagonal().query("cka < @threshold")
        return None if below.empty else int(below["depth"].iloc[0])


def representation_cka(model_a: nn.Module, images_a: torch.Tensor, model_b: nn.Module,
                       images_b: torch.Tensor | None = None, *, batch_size: int = 64,
                       features: str = "flatten") -> RepresentationCKA:
    """Linear CKA between every block output of `model_a` and of `model_b` on the same images.

    `images_a` / `images_b`: the same images, normalised for each model (B, 3, H, W); `images_b` defaults
    to `images_a`. Each minibatch of `batch_size` images runs through both models (same images in both), and
    its HSIC_1 terms are accumulated (Nguyen et al. 2021), so memory does not grow with the number of images.
    """
    images_b = images_a if images_b is None else images_b
    n = images_a.shape[0]
    if images_b.shape[0] != n:
        raise ValueError("both models need the same images")
    acc, names_a, names_b = _Accumulator(), [], []
    for lo, hi in _batches(n, batch_size):
        xs, names_a = block_outputs(model_a, images_a[lo:hi], features)
        ys, names_b = block_outputs(model_b, images_b[lo:hi], features)
        acc.update(xs, ys)
    return RepresentationCKA(acc.cka(), tuple(names_a), tuple(names_b), int(n), int(batch_size), features)


def checkpoint_cka(model_a: nn.Module, meta_a: dict, model_b: nn.Module, meta_b: dict, count: int = 256, *,
                   batch_size: int = 64, features: str = "flatten", data_root=None
                   ) -> tuple[RepresentationCKA, str]:
    """(`representation_cka` of two checkpoints' models, where the images come from).

    The images are `count` test images of checkpoint a (`pathways.probe_images`: its test set when on disk,
    else the digits), the same for both models, each normalised with its own checkpoint's mean and std and
    resized (bilinear) to b's input size if b's differs."""
    from ..data.images import to_input
    from ..data.testsets import probe_images

    images, source = probe_images(meta_a, count, data_root)
    images_b = images
    if int(meta_b["img_size"]) != images.shape[1]:
        t = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        t = torch.nn.functional.interpolate(t, size=(int(meta_b["img_size"]),) * 2, mode="bilinear",
                                            align_corners=False, antialias=True)
        images_b = t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
        source += f" (resized to {meta_b['img_size']} px for the second model)"
    result = representation_cka(model_a, to_input(images, meta_a["mean"], meta_a["std"]), model_b,
                                to_input(images_b, meta_b["mean"], meta_b["std"]), batch_size=batch_size,
                                features=features)
    return result, source


# --------------------------------------------------------------------------- presets

QKV_SUFFIXES = {"sne": "SNE", "psne": "P-SNE", "fsne": "F-SNE"}


def qkv_embedding_pairs(variants: dict) -> list[tuple[str, str, str]]:
    """The preset "baseline vs SNE / P-SNE / F-SNE" of the Q/K/V paper among checkpoints.

    `variants` maps a checkpoint (any key, e.g. its path) to its variant name. Returns (baseline, other,
    label) for every XCiT checkpoint whose variant ends in _sne / _psne / _fsne, paired with the XCiT
    `_linear` baseline of the same variant prefix (the first such, in the given order); [] if there is none.
    """
    baselines = {}
    for key, variant in variants.items():
        if "xcit" in variant and variant.endswith("_linear"):
            baselines.setdefault(variant[: -len("_linear")], key)
    pairs = []
    for suffix, label in QKV_SUFFIXES.items():
        for key, variant in variants.items():
            stem = variant[: -len(suffix) - 1]
            if "xcit" in variant and variant.endswith(f"_{suffix}") and stem in baselines:
                pairs.append((baselines[stem], key, label))
    return pairs
