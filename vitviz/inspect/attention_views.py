"""Views over captured attention: which maps to show, query rows on the key grid, rollout heat, class attention.

Pure functions over `capture()` artifacts (one image: batch index 0), shared by the app pages.
"""
from __future__ import annotations

import numpy as np
import torch

from .rollout import attention_rollout, cls_rollout_map

SOURCES = (
    ("attention", "Softmax attention"),
    ("implied_attention", "Implied attention of the efficient kernel (an approximation: the model never builds it)"),
    ("projected_attention", "Linformer attention over k projected keys (N x k)"),
)


def attention_source(art) -> tuple[str, list, list, str] | None:
    """(artifact key, maps, grids, label) of the token maps to show, preferring exact maps; None if none."""
    for key, label in SOURCES:
        if key in art and len(art[key]):
            return key, list(art[key]), list(art["grids"]), label
    return None


def group_by_grid(maps: list, grids: list[dict]) -> list[tuple[list[int], list, dict]]:
    """Consecutive layers with the same query/key grids (CvT stages), as (layer indices, maps, grid)."""
    groups: list[tuple[list[int], list, dict]] = []
    for i, (m, g) in enumerate(zip(maps, grids)):
        if groups and groups[-1][2] == g:
            groups[-1][0].append(i)
            groups[-1][1].append(m)
        else:
            groups.append(([i], [m], g))
    return groups


def query_index(grid: dict, choice: str) -> int:
    """Index of the query token: the class token (0) or the centre patch token (also for layers without a
    class token, such as CvT's first stages)."""
    if choice == "class token" and grid["cls"]:
        return 0
    h, w = grid["q"]
    return int(grid["cls"]) + (h // 2) * w + w // 2


def query_heat(layer_map: torch.Tensor, grid: dict, query: int, head="mean") -> np.ndarray:
    """(heads, N_q, N_k) -> the query's attention over the key grid (h_k, w_k), one head or the head mean."""
    row = layer_map[:, query] if head == "mean" else layer_map[int(head), query][None]
    row = row.float().mean(0)
    if grid["cls"]:
        row = row[1:]
    h, w = grid["k"]
    if row.numel() != h * w:
        raise ValueError(f"{row.numel()} keys do not fit the key grid {h}x{w}")
    return row.reshape(h, w).numpy()


def rollout_heat(maps: list, grids: list[dict], fusion: str = "mean", discard: float = 0.0) -> np.ndarray | None:
    """Attention rollout read at the class token (or averaged over queries) on the token grid; None when the
    maps are not square over the same tokens in every layer."""
    if not maps or any(g != grids[0] for g in grids) or grids[0]["q"] != grids[0]["k"]:
        return None
    if any(m.shape[-1] != m.shape[-2] for m in maps):
        return None
    rollout = attention_rollout([m[:1] for m in maps], head_fusion=fusion, discard_ratio=discard)
    return cls_rollout_map(rollout, grids[0]["q"], has_cls=grids[0]["cls"])[0].numpy()


def class_attention_heats(art) -> list[dict[str, np.ndarray]]:
    """XCiT class attention per class-attention block: {"head i": (h, w)} over the patch grid."""
    h, w = art["grids"][0]["q"]
    out = []
    for block in art["class_attention"]:
        cls_map = block[0, :, 1:]  # (heads, N): drop the class token's attention to itself
        heats = {f"head {i}": cls_map[i].reshape(h, w).numpy() for i in range(cls_map.shape[0])}
        heats["mean"] = cls_map.mean(0).reshape(h, w).numpy()
        out.append(heats)
    return out
