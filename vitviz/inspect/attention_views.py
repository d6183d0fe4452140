"""Views over captured attention: which maps to show, query rows on the key grid, rollout heat, class attention.

Pure functions over `capture()` artifacts (one image: batch index 0), shared by the app pages.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..explain.rollout import STOCHASTIC_TOLERANCE, _grid_of, attention_rollout, cls_rollout_map, rollout_problem

SOURCES = (
    ("attention", "Softmax attention"),
    ("implied_attention", "Implied attention of the efficient kernel: exactly the operator it applies to V "
                          "(never built by the model; the kernel is an approximation of softmax attention)"),
    ("projected_attention", "Linformer attention over k projected keys (N x k), applied to the projected values F V"),
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


def _tokens(grid: dict, side: str = "q") -> int:
    return grid[side][0] * grid[side][1] + int(grid["cls"])


def rollout_refusal(maps: list, grids: list[dict]) -> str | None:
    """Why there is no attention rollout of these maps (as a sentence for the page), or None if there is."""
    if not maps:
        return "There are no token attention maps to roll out."
    if any(g != grids[0] for g in grids) or grids[0]["q"] != grids[0]["k"]:
        why = []
        if any(g["q"] != g["k"] for g in grids):
            why.append("queries and keys lie on different grids (strided keys, or LeViT's subsampled queries)")
        sizes = [f"{g['q'][0]}x{g['q'][1]}" for g in grids]
        sizes = [s_ for i, s_ in enumerate(sizes) if i == 0 or s_ != sizes[i - 1]]
        if len(sizes) > 1:
            why.append(f"the token grid changes between stages ({' -> '.join(sizes)})")
        why = why or ["the tokens differ between layers"]
        return f"Rollout needs square maps over the same tokens in every layer (not the case here: {'; '.join(why)})."
    signed = signed_summary(maps)
    if signed is not None:
        return (f"No rollout: these maps are not probability distributions ({signed['negative_share']:.1%} of the "
                f"absolute mass is negative; rows sum to {signed['row_sum_min']:.3g} to {signed['row_sum_max']:.3g}). "
                "Rollout multiplies row-stochastic maps; renormalising these rows would misstate what the model "
                "computes.")
    problem = rollout_problem([m[:1] for m in maps], tokens=_tokens(grids[0]))
    return None if problem is None else f"No rollout: {problem}."


def rollout_heat(maps: list, grids: list[dict], fusion: str = "mean", discard: float = 0.0,
                 pool=None) -> np.ndarray | None:
    """Attention rollout read at the class token (or averaged over queries) on the token grid; None when
    `rollout_refusal` gives a reason (maps not square over the same tokens in every layer, or not row-stochastic).
    `pool`: CCT's sequence-pooling weights (capture's ``seq_pool``, (B, N)): the rollout is read at the pooled
    read-out, w @ R, instead of the query mean (see `cls_rollout_map`)."""
    if rollout_refusal(maps, grids) is not None:
        return None
    rollout = attention_rollout([m[:1] for m in maps], head_fusion=fusion, discard_ratio=discard,
                                tokens=_tokens(grids[0]))
    pool = None if pool is None or grids[0]["cls"] else torch.as_tensor(pool)[:1]
    return cls_rollout_map(rollout, grids[0]["q"], has_cls=grids[0]["cls"], pool=pool)[0].numpy()


def seq_pool_heat(art) -> np.ndarray | None:
    """CCT's sequence-pooling weights of the first image on the token grid (h, w), or None without them."""
    if "seq_pool" not in art:
        return None
    weights = art["seq_pool"][0]
    h, w = art["grids"][-1]["q"] if "grids" in art else _grid_of(None, weights.numel())
    return weights.reshape(h, w).numpy()


def signed_summary(maps: list) -> dict | None:
    """For maps (list of (B, heads, N_q, N_k)) that are not row-stochastic: {"negative_share": share of the
    absolute mass in negative entries, "negative_entries": share of entries < 0, "row_sum_min"/"row_sum_max"}
    over the first image; None when every row is a probability distribution."""
    values = torch.cat([torch.as_tensor(m[0]).double().flatten() for m in maps])
    sums = torch.cat([torch.as_tensor(m[0]).double().sum(-1).flatten() for m in maps])
    if values.min() >= -STOCHASTIC_TOLERANCE and float((sums - 1).abs().max()) <= STOCHASTIC_TOLERANCE:
        return None
    return {"negative_share": float(values.clamp(max=0).abs().sum() / values.abs().sum()),
            "negative_entries": float((values < 0).double().mean()),
            "row_sum_min": float(sums.min()), "row_sum_max": float(sums.max())}


def signed_caption(summary: dict) -> str:
    return (f"Signed map: {summary['negative_share']:.1%} of its absolute mass is negative "
            f"({summary['negative_entries']:.1%} of entries); rows sum to {summary['row_sum_min']:.3g} to "
            f"{summary['row_sum_max']:.3g}, not 1. Colours are centred at 0 (blue < 0 < red).")


def operator_share_table(art) -> pd.DataFrame:
    """Per layer, each part of the implied operator: |part @ V| / |output| (head mean, first image)."""
    rows = []
    for layer, shares in enumerate(art.get("operator_shares", [])):
        row = {"layer": layer}
        row.update({f"|{name} · V| / |output|": float(s[0].mean()) for name, s in shares.items()})
        rows.append(row)
    return pd.DataFrame(rows)


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


QUERIES = ("class token", "centre token")


def explorer_heats(maps: list, grids: list[dict], queries=QUERIES) -> tuple[list, list[str], list[str]]:
    """Every layer's query heats for `figures.attention_explorer`: (heats[layer][query][column], query
    labels, column labels), columns "head 0".."head n-1" then "mean". A query row that does not exist in
    a layer (the class token of a layer without one, such as CvT's first stages) and heads a layer lacks
    are None. Query tokens as in `query_index`."""
    n_heads = max(m.shape[1] for m in maps)
    columns = [f"head {h}" for h in range(n_heads)] + ["mean"]
    rows = [q for q in queries if q != "class token" or any(g["cls"] for g in grids)]
    heats = []
    for layer_map, grid in zip(maps, grids):
        layer = []
        for q in rows:
            if q == "class token" and not grid["cls"]:
                layer.append([None] * len(columns))
                continue
            query = query_index(grid, q)
            heads = layer_map.shape[1]
            layer.append([query_heat(layer_map[0], grid, query, h) if h < heads else None for h in range(n_heads)]
                         + [query_heat(layer_map[0], grid, query, "mean")])
        heats.append(layer)
    return heats, rows, columns
