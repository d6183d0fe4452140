"""How alike the q, k and v pathways are in what they compute: linear CKA of their outputs on real images.

The Q/K/V paper asks whether q, k and v should share their embedding layers. Comparing weights cannot
answer that (`weights.weight_overlap` mostly reports how many weights are shared, and changes under
re-parametrisations that leave the model's function alone). Here each pathway is described by what it
hands the attention, on the same images:

- q, k, v are the outputs of each block's Q/K/V embedding (timm's `attn.qkv` or its SNE / P-SNE / F-SNE
  replacement), recorded with `capture(model, x, want=["qkv"])`; the tokens of every image are the
  examples (rows), the C channels the features.
- In XCA blocks q and k are used only after XCA's own L2 normalisation of every channel over the tokens
  of an image, so that is what is compared (`normalize_qk`, on by default for XCiT): a positive
  rescaling of q's channels, which XCA cancels, leaves the measure unchanged. v is used as produced.
- Linear CKA (Kornblith et al., ICML 2019): with centred X (n, d1), Y (n, d2),
  CKA = ||Yᵀ X||_F² / (||Xᵀ X||_F ||Yᵀ Y||_F). 1 for representations equal up to rotation and isotropic
  scale, near 0 for unrelated ones; invariant to orthogonal transforms (so to permutations of hidden
  units, which leave the outputs unchanged anyway) and isotropic scaling.

Everything is accumulated batch by batch as one covariance matrix per block over the concatenated
features (Chan et al.'s pairwise update in float64), so any number of images fits in memory and the
result does not depend on the batch size beyond float rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from timm.models.xcit import XCA
from torch import nn

from ..layers.qkv_embedding import PATHWAYS
from ..inspect.capture import capture

__all__ = ["PAIRS", "DEFAULT_PROBE_IMAGES", "linear_cka", "PathwayCKA", "pathway_cka", "pathway_drift", "probe_images"]

PAIRS = (("q", "k"), ("q", "v"), ("k", "v"))
# images the app's CKA rests on by default: about a second per XCiT-N12 checkpoint on a 2-core CPU
# (64 x 64 tokens = 4,096 examples per pathway); on the shipped checkpoints the means over blocks agree with
# 1,000 images to about 0.01
DEFAULT_PROBE_IMAGES = 64


def linear_cka(x, y) -> float:
    """Linear CKA between feature matrices x (n, d1) and y (n, d2) over the same n examples
    (Kornblith et al., ICML 2019): columns are centred, then ||Yᵀ X||_F² / (||Xᵀ X||_F ||Yᵀ Y||_F).

    1 for identical representations; invariant to orthogonal transforms and isotropic scaling of
    either side; NaN if either side is constant.
    """
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    y = torch.as_tensor(y).detach().to("cpu", torch.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka needs (n, d1) and (n, d2) with the same n, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    x = x - x.mean(dim=0, keepdim=True)
    y = y - y.mean(dim=0, keepdim=True)
    denom = torch.linalg.norm(x.t() @ x) * torch.linalg.norm(y.t() @ y)
    if denom <= 0:
        return math.nan
    return float(torch.linalg.norm(y.t() @ x) ** 2 / denom)


# --------------------------------------------------------------------------- streaming covariance

class _Covariance:
    """Running mean and scatter matrix of feature rows (Chan, Golub & LeVeque's pairwise update)."""

    def __init__(self):
        self.n, self.mean, self.scatter = 0, None, None

    def update(self, rows: torch.Tensor) -> None:
        rows = rows.to(torch.float64)
        m = rows.shape[0]
        mean = rows.mean(0)
        centred = rows - mean
        scatter = centred.t() @ centred
        if self.n == 0:
            self.n, self.mean, self.scatter = m, mean, scatter
            return
        delta, total = mean - self.mean, self.n + m
        self.scatter = self.scatter + scatter + torch.outer(delta, delta) * (self.n * m / total)
        self.mean = self.mean + delta * (m / total)
        self.n = total


def _cka_from_scatter(s: torch.Tensor, a: slice, b: slice) -> float:
    denom = torch.linalg.norm(s[a, a]) * torch.linalg.norm(s[b, b])
    if denom <= 0:
        return math.nan
    return float(torch.linalg.norm(s[a, b]) ** 2 / denom)


# --------------------------------------------------------------------------- features

def _uses_xca(model: nn.Module) -> bool:
    return any(isinstance(m, XCA) for m in model.modules())


def _block_features(model: nn.Module, x: torch.Tensor, normalize_qk: bool) -> tuple[list[torch.Tensor], list[str]]:
    """Per block the rows [q | k | v] (B * N, 3C) of one batch, and the block names."""
    art = capture(model, x, want=["qkv"])
    if "qkv" not in art:
        raise ValueError(f"{type(model).__name__} has no Q/K/V tensors that capture records")
    rows = []
    for q, k, v in art["qkv"]:  # each (B, heads, N, d_h)
        if not (q.shape == k.shape == v.shape):
            raise ValueError(f"q, k and v differ in shape ({tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}), "
                             "e.g. strided keys: their tokens cannot be paired for CKA")
        if normalize_qk:  # XCA: every channel L2-normalised over the tokens of its image
            q, k = F.normalize(q, dim=-2), F.normalize(k, dim=-2)
        rows.append(torch.cat([_tokens_by_channels(t) for t in (q, k, v)], dim=-1))
    return rows, list(art.get("block_names", [str(i) for i in range(len(rows))]))


def _tokens_by_channels(t: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d_h) -> (B * N, heads * d_h), channels in the embedding's own order."""
    B, H, N, D = t.shape
    return t.permute(0, 2, 1, 3).reshape(B * N, H * D)


def _scatters(sources: list[tuple[nn.Module, torch.Tensor]], batch_size: int, normalize_qk: list[bool]
              ) -> tuple[list[torch.Tensor], list[str], int, int]:
    """Scatter matrix per block of the features of every (model, images) source side by side:
    rows are the tokens of the same images, columns [q|k|v of source 0, q|k|v of source 1, ...]."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    count = sources[0][1].shape[0]
    if count < 1 or any(images.shape[0] != count for _, images in sources):
        raise ValueError("every model needs the same, non-zero number of images")
    stats, names, tokens = None, [], 0
    for start in range(0, count, int(batch_size)):
        parts = []
        for (model, images), norm in zip(sources, normalize_qk):
            rows, names = _block_features(model, images[start:start + int(batch_size)], norm)
            parts.append(rows)
        if len({len(p) for p in parts}) != 1:
            raise ValueError(f"the models have different numbers of blocks ({[len(p) for p in parts]})")
        if len({r.shape[0] for p in parts for r in p}) != 1:
            raise ValueError("the models see different numbers of tokens per image; their pathways cannot be paired")
        if stats is None:
            stats = [_Covariance() for _ in parts[0]]
        for b, covariance in enumerate(stats):
            covariance.update(torch.cat([p[b] for p in parts], dim=-1))
        tokens = stats[0].n
    return [c.scatter for c in stats], names, count, tokens // count


def _normalize_for(model: nn.Module, normalize_qk: bool | None) -> bool:
    return _uses_xca(model) if normalize_qk is None else bool(normalize_qk)


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class PathwayCKA:
    """Linear CKA between the q, k and v pathways of every block of one model.

    matrices: (blocks, 3, 3) float array, rows/columns q, k, v (symmetric, diagonal 1).
    images, tokens_per_image: how many examples it rests on (images * tokens_per_image rows).
    normalized_qk: whether q and k were compared after XCA's per-channel normalisation.
    """
    matrices: np.ndarray
    blocks: tuple[str, ...]
    images: int
    tokens_per_image: int
    normalized_qk: bool

    def table(self) -> pd.DataFrame:
        """Long table: block, pair ("q-k", "q-v", "k-v"), cka."""
        rows = [dict(block=b, pair=f"{a}-{c}", cka=float(self.matrices[b, PATHWAYS.index(a), PATHWAYS.index(c)]))
                for b in range(self.matrices.shape[0]) for a, c in PAIRS]
        return pd.DataFrame(rows)

    def summary(self) -> dict:
        """Mean CKA over blocks per pair ("q-k", "q-v", "k-v") plus images and tokens_per_image."""
        means = self.table().groupby("pair", sort=False)["cka"].mean()
        return {**{pair: float(means[pair]) for pair in means.index}, "images": self.images,
                "tokens_per_image": self.tokens_per_image}


def pathway_cka(model: nn.Module, images: torch.Tensor, *, batch_size: int = 64,
                normalize_qk: bool | None = None) -> PathwayCKA:
    """Linear CKA between q, k and v of every block on `images` (normalised (B, 3, H, W)).

    The model runs through `capture` (eval mode, no grad, under the model's lock) in batches of
    `batch_size`; the tokens of all images are the examples. `normalize_qk` None: on for models with XCA
    blocks (compare q and k as XCA uses them), off otherwise.
    """
    norm = _normalize_for(model, normalize_qk)
    scatters, names, count, tokens = _scatters([(model, images)], batch_size, [norm])
    matrices = np.ones((len(scatters), 3, 3))
    for b, s in enumerate(scatters):
        c = s.shape[0] // 3
        parts = [slice(i * c, (i + 1) * c) for i in range(3)]
        for i in range(3):
            for j in range(i + 1, 3):
                matrices[b, i, j] = matrices[b, j, i] = _cka_from_scatter(s, parts[i], parts[j])
    return PathwayCKA(matrices, tuple(names), count, tokens, norm)


def pathway_drift(parent: nn.Module, child: nn.Module, parent_images: torch.Tensor,
                  child_images: torch.Tensor | None = None, *, batch_size: int = 64,
                  normalize_qk: bool | None = None) -> pd.DataFrame:
    """How much each pathway's function moved from `parent` to `child` (e.g. a fine-tune).

    Both models see the same images (normalised for each: `child_images` defaults to `parent_images`).
    One row per (block, pathway): block, pathway, cka = linear CKA between the parent's and the child's
    outputs of that pathway (1 = unchanged up to rotation and scale), images, tokens_per_image.
    """
    child_images = parent_images if child_images is None else child_images
    norms = [_normalize_for(parent, normalize_qk), _normalize_for(child, normalize_qk)]
    scatters, _, count, tokens = _scatters([(parent, parent_images), (child, child_images)], batch_size, norms)
    rows = []
    for b, s in enumerate(scatters):
        c = s.shape[0] // 6
        for i, t in enumerate(PATHWAYS):
            rows.append(dict(block=b, pathway=t, cka=_cka_from_scatter(s, slice(i * c, (i + 1) * c),
                                                                       slice((i + 3) * c, (i + 4) * c)),
                             images=count, tokens_per_image=tokens))
    return pd.DataFrame(rows)


from ..data.testsets import probe_images  # noqa: E402, F401  (moved to vitviz.data; re-exported)
