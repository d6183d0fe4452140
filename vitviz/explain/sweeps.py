"""Every setting of a cheap explanation at once, so a figure can switch between them in the browser (no
Streamlit rerun, issue 12): attention rollout for every head fusion and discard ratio, and Chefer relevance
for every class.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..inspect.attention_views import rollout_refusal
from .relevance import chefer_relevance
from .rollout import _row_normalise, _work_dtype, fuse_heads

__all__ = ["ROLLOUT_FUSIONS", "ROLLOUT_DISCARDS", "rollout_sweep", "RelevanceSweep", "relevance_all_classes"]

ROLLOUT_FUSIONS = ("mean", "max", "min")
ROLLOUT_DISCARDS = tuple(round(0.1 * i, 1) for i in range(10))   # 0.0, 0.1, ..., 0.9


def rollout_sweep(maps: list, grids: list[dict], fusions=ROLLOUT_FUSIONS, discards=ROLLOUT_DISCARDS,
                  pool=None) -> list[list[np.ndarray]] | None:
    """heats[d][f] = `rollout_heat(maps, grids, fusions[f], discards[d], pool=pool)` (the first image, on the
    token grid) for every discard ratio and head fusion; None when `rollout_refusal` gives a reason.

    The same computation as `rollout.attention_rollout` + `cls_rollout_map` (fuse heads, zero the lowest
    off-diagonal share, add the residual, row-normalise, multiply in forward order, read one row), but each
    block's fused map is sorted once for all discard ratios instead of once per ratio (top-k), and only the row
    that is read out is carried through the blocks (a vector times each map, from the last block back), which
    made 30 rollouts of ViT's 257 tokens take over a second on a 2-core CPU. Ties at the discard boundary may
    be broken differently from top-k."""
    if rollout_refusal(maps, grids) is not None:
        return None
    grid = grids[0]
    h, w = grid["q"]
    blocks = [torch.as_tensor(m[:1]) for m in maps]
    n = blocks[0].shape[-1]
    diagonal = torch.eye(n, dtype=torch.bool).flatten()
    if grid["cls"]:
        start = torch.zeros(1, n)
        start[0, 0] = 1.0                      # the class token's row
    elif pool is not None:
        start = torch.as_tensor(pool)[:1].reshape(1, n).float()   # CCT: the sequence pooling's row, w @ R
    else:
        start = torch.full((1, n), 1.0 / n)    # the mean over the query rows
    heats = [[None] * len(fusions) for _ in discards]
    for f, fusion in enumerate(fusions):
        fused = [fuse_heads(b.to(_work_dtype(b)), fusion) for b in blocks]
        orders = [a.reshape(1, n * n).masked_fill(diagonal, float("inf")).argsort(dim=-1) for a in fused] \
            if any(int(float(d) * (n * n - n)) > 0 for d in discards) else None
        for d, discard in enumerate(discards):
            k = int(float(discard) * (n * n - n))
            row = start.to(fused[0].dtype)
            for i in reversed(range(len(fused))):
                a = fused[i]
                if k > 0:
                    a = a.reshape(1, n * n).scatter(-1, orders[i][:, :k], 0.0).reshape(1, n, n)
                a = _row_normalise(0.5 * a + 0.5 * torch.eye(n, dtype=a.dtype))
                row = row @ a[0]
            heats[d][f] = (row[0, 1:] if grid["cls"] else row[0]).reshape(h, w).numpy()
    return heats


@dataclass
class RelevanceSweep:
    heats: np.ndarray               # (classes, h, w): Chefer relevance of every class for one image
    predicted: int                  # the class the model predicts
    what: str                       # which maps it was built on
    notes: list[str] = field(default_factory=list)


def relevance_all_classes(model: nn.Module, image: torch.Tensor, classes: int | None = None,
                          chunk: int = 32) -> RelevanceSweep:
    """`chefer_relevance` of one normalised image (1, 3, H, W) for every class 0..classes-1 (default: all the
    model's outputs): the image repeated, one target per copy, `chunk` copies per forward and backward pass.
    heats[c] equals `chefer_relevance(model, image, c).relevance[0]`."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be one normalised image (1, 3, H, W), got shape {tuple(image.shape)}")
    if classes is None:
        with torch.no_grad():
            classes = int(model(image.to(next(model.parameters()).device)).shape[-1])
    heats, predicted, what, notes = [], None, "", []
    for lo in range(0, int(classes), int(chunk)):
        targets = torch.arange(lo, min(int(classes), lo + int(chunk)))
        result = chefer_relevance(model, image.expand(len(targets), -1, -1, -1), targets)
        heats.append(result.relevance.numpy())
        if predicted is None:
            predicted = int(result.logits[0].argmax())
            what, notes = result.what, list(result.notes)
    return RelevanceSweep(np.concatenate(heats), int(predicted), what, notes)
