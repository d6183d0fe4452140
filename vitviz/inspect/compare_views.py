"""One heat map per model for side-by-side comparison, from `capture()` artifacts (batch index 0).

`attention_view(art, view)` returns (heat (h, w) on the patch grid or None, caption saying what it is or
why there is none), so models of different families can be shown in the same way.
"""
from __future__ import annotations

import numpy as np
import torch

from .attention_views import (attention_source, class_attention_heats, query_heat, rollout_heat, rollout_refusal,
                              seq_pool_heat, signed_summary)

__all__ = ["VIEWS", "CAPTURE_WANT", "attention_view", "preferred_defaults", "top_predictions"]

VIEWS = ("attention rollout / class attention", "last-layer attention (class token)", "saliency")
CAPTURE_WANT = ("attention", "implied_attention", "projected_attention", "class_attention", "grids", "seq_pool")


def _approx(key: str, maps: list) -> str:
    if key != "implied_attention":
        return ""
    signed = signed_summary(maps[-1:])
    sign = "" if signed is None else f"; signed, {signed['negative_share']:.0%} of its mass negative"
    return (" of the implied map (exactly what the model computes; the model's attention is an approximation "
            f"of softmax{sign})")


def attention_view(art, view: str) -> tuple[np.ndarray | None, str]:
    """The heat of an attention view (one of the first two `VIEWS`) and a caption.

    Rollout: attention rollout of the token maps read at the class token (CvT, whose keys are strided, falls
    back to the last layer's class-token map; signed maps such as Nystromformer's are not rolled out, and the
    caption says why); for XCiT (no token attention map) the class attention, averaged over heads and
    class-attention blocks. Last layer: the class token's attention in the last token-attention layer (head
    mean); for XCiT the last class-attention block. CCT (no class token) is read through its sequence pooling,
    the head's only read-out: rollout at the pool (w @ R), and the pooling weights w themselves as the last-layer
    view. Models without attention maps (FNet, Mixer, Linformer's
    projected keys) give None and why.
    """
    if view not in VIEWS[:2]:
        raise ValueError(f"unknown attention view {view!r}; choose from {', '.join(VIEWS[:2])}")
    source = attention_source(art)
    rollout = view == VIEWS[0]
    if source is not None and source[0] != "projected_attention":
        key, maps, grids, _ = source
        pool = art.get("seq_pool")
        if rollout:
            heat = rollout_heat(maps, grids, pool=pool)
            if heat is not None:
                at = "" if pool is None or grids[0]["cls"] else " read at the sequence pooling (w @ R)"
                return heat, "attention rollout" + at + _approx(key, maps)
            strided = any(g["q"] != g["k"] for g in grids)
            if strided and grids[-1]["cls"]:  # CvT: strided keys, no rollout; its last stage has a class token
                return (query_heat(maps[-1][0], grids[-1], 0), "no rollout over strided keys: class token, "
                        "last layer, head mean" + _approx(key, maps))
            return None, rollout_refusal(maps, grids)
        if not grids[-1]["cls"] and pool is not None:
            return seq_pool_heat(art), ("sequence-pooling weights (no class token: the head reads this weighted sum "
                                        "of the last layer's tokens)")
        if not grids[-1]["cls"]:
            return None, "The last attention layer has no class token."
        return query_heat(maps[-1][0], grids[-1], 0), "class token, last layer, head mean" + _approx(key, maps)
    if "class_attention" in art and len(art["class_attention"]):
        heats = class_attention_heats(art)
        if rollout:
            return np.mean([h["mean"] for h in heats], axis=0), "class attention (mean of heads and blocks)"
        return heats[-1]["mean"], "class attention, last block, head mean"
    if source is not None:
        return None, "Linformer attends to k projected keys, which have no place on the image."
    return None, "This model has no token attention (it mixes tokens another way)."


def preferred_defaults(table, count: int = 2) -> list[str]:
    """Checkpoint paths to preselect for comparison: one per family, attention models first (XCiT, ViT, CvT)."""
    if table is None or len(table) == 0:
        return []
    order = {"XCiT": 0, "ViT": 1, "CvT": 2}
    inexact = ("linformer", "performer", "nystrom")  # exact softmax maps first within a family

    def rank(r):
        return order.get(r.get("family"), 9), any(k in str(r["variant"]) for k in inexact), str(r["checkpoint"])
    rows = sorted(table.to_dict("records"), key=rank)
    picked, families = [], set()
    for row in rows:
        if row.get("family") not in families:
            picked.append(row["path"])
            families.add(row.get("family"))
    return picked[:count]


def top_predictions(logits, classes, k: int = 3) -> list[tuple[str, float]]:
    """The k most probable classes of the first row of `logits` as (name, probability)."""
    probs = torch.as_tensor(logits).detach().float().cpu().reshape(-1, len(classes))[0].softmax(-1)
    top = probs.topk(min(k, len(classes)))
    return [(classes[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())]
