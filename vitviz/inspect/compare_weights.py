"""Q/K/V weight statistics of several checkpoints side by side: long tables ready to plot or export.

Pure pandas / numpy over the per-checkpoint outputs of `vitviz.inspect.weights` (`weight_stats`,
`pathway_similarity`, `qkv_pathways`), passed as mappings {checkpoint name: output}. A layer that q,
k and v share (F-SNE's MLP, P-SNE's first layer) has identical numbers for the three pathways; here it
appears once, with pathway "qkv (shared)", so a comparison does not count it three times.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from ..layers.qkv_embedding import PATHWAYS
from .weights import singular_values

__all__ = ["STATISTICS", "SHARED_PATHWAY", "combine", "stat_lines", "block_count", "block_spectra", "block_values",
           "similarity_long"]

STATISTICS = ("fro_norm", "spectral_norm", "effective_rank", "stable_rank", "std")
SHARED_PATHWAY = "qkv (shared)"


def combine(tables: Mapping[str, pd.DataFrame], variants: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per-checkpoint tables stacked into one, with `checkpoint` (and `variant`, if given) as first columns."""
    parts = []
    for name, df in tables.items():
        front = {"checkpoint": name}
        if variants is not None:
            front["variant"] = variants.get(name, "")
        parts.append(df.assign(**front)[[*front, *df.columns]])
    if not parts:
        return pd.DataFrame(columns=["checkpoint"] + (["variant"] if variants is not None else []))
    return pd.concat(parts, ignore_index=True)


def stat_lines(stats: Mapping[str, pd.DataFrame], stat: str, variants: Mapping[str, str] | None = None
               ) -> pd.DataFrame:
    """Long table of one statistic for `figures.stat_by_block(df, "block", stat, "series")`.

    `stats` maps a checkpoint name to its `weight_stats` table. One row per (checkpoint, block, pathway,
    layer); a shared layer once per block, pathway "qkv (shared)". Columns: checkpoint, [variant,] kind,
    block, pathway, layer, shared, <stat>, series ("name · q", plus " · layer" where that checkpoint has
    several layers per pathway).
    """
    if stat not in STATISTICS:
        raise ValueError(f"unknown statistic {stat!r}; choose from {', '.join(STATISTICS)}")
    rows = []
    for name, df in stats.items():
        part = df.copy()
        part["shared"] = part["shared"].astype(bool)
        part.loc[part["shared"], "pathway"] = SHARED_PATHWAY
        part = part.drop_duplicates(["block", "pathway", "layer"])
        several = part.groupby(["block", "pathway"]).size().max() > 1 or part["shared"].any()
        part["series"] = [f"{name} · {p}" + (f" · {layer}" if several else "")
                          for p, layer in zip(part["pathway"], part["layer"])]
        rows.append(part[["kind", "block", "pathway", "layer", "shared", stat, "series"]])
    if not rows:
        return pd.DataFrame(columns=["checkpoint", "kind", "block", "pathway", "layer", "shared", stat, "series"])
    return combine(dict(zip(stats, rows)), variants).reset_index(drop=True)


def block_count(pathways: Mapping[str, list[dict]]) -> int:
    """The most attention blocks any of the checkpoints has (`qkv_pathways` lists)."""
    return max((len(p) for p in pathways.values()), default=0)


def _check_pathway(pathway: str) -> None:
    if pathway not in PATHWAYS:
        raise ValueError(f"pathway must be one of {', '.join(PATHWAYS)}, got {pathway!r}")


def block_spectra(pathways: Mapping[str, list[dict]], block: int, pathway: str) -> dict[str, np.ndarray]:
    """Singular values (descending) of one block's `pathway` weights per checkpoint and layer.

    `pathways` maps a checkpoint name to its `qkv_pathways` list. Keys are "name · layer" (with
    " (shared)" for a layer q, k and v share); checkpoints with fewer blocks are left out.
    """
    _check_pathway(pathway)
    out = {}
    for name, entries in pathways.items():
        if block >= len(entries):
            continue
        entry = entries[block]
        for layer, w in entry[pathway].items():
            shared = " (shared)" if entry["shared"][layer] else ""
            out[f"{name} · {layer}{shared}"] = singular_values(w).numpy()
    return out


def block_values(pathways: Mapping[str, list[dict]], block: int | None, pathway: str) -> dict[str, np.ndarray]:
    """Every weight of `pathway` (its layers pooled) in one block, or in all blocks (block None), per
    checkpoint: {name: flat float array}. Checkpoints without that block are left out."""
    _check_pathway(pathway)
    out = {}
    for name, entries in pathways.items():
        chosen = entries if block is None else entries[block:block + 1]
        weights = [w.flatten() for entry in chosen for w in entry[pathway].values()]
        if weights:
            out[name] = torch.cat(weights).to(torch.float64).numpy()
    return out


def similarity_long(sims: Mapping[str, pd.DataFrame], variants: Mapping[str, str] | None = None) -> pd.DataFrame:
    """`pathway_similarity` tables of several checkpoints as one: checkpoint, [variant,] kind, block, pair,
    cosine, cosine_unshared, and cka only where some value is known."""
    table = combine(sims, variants)
    keep = [c for c in ("checkpoint", "variant", "kind", "block", "pair", "cosine", "cosine_unshared")
            if c in table.columns]
    if "cka" in table.columns and table["cka"].notna().any():
        keep.append("cka")
    return table[keep].reset_index(drop=True)
