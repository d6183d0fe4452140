"""Q/K/V weight statistics and pathway similarity of several checkpoints side by side: long tables ready
to plot or export.

Pure pandas / numpy over the per-checkpoint outputs of `vitviz.compare.weights` (`weight_stats`,
`weight_overlap`, `qkv_pathways`) and `vitviz.compare.pathways` (`pathway_cka`, `pathway_drift`), passed
as mappings {checkpoint name: output}. A layer that q, k and v share (F-SNE's MLP, P-SNE's first layer)
has identical numbers for the three pathways; here it appears once, with pathway "qkv (shared)", so a
comparison does not count it three times.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ..layers.qkv_embedding import PATHWAYS
from .weights import singular_values

if TYPE_CHECKING:
    from .pathways import PathwayCKA

__all__ = ["STATISTICS", "STATISTIC_HELP", "SHARED_PATHWAY", "combine", "stat_lines", "block_count", "block_spectra",
           "block_values", "overlap_long", "cka_long", "cka_summary", "cka_at_block", "weight_drift", "drift_table"]

STATISTICS = ("fro_norm", "spectral_norm", "effective_rank", "stable_rank", "std")
# one-line definition and formula of each statistic (σ_1 ≥ σ_2 ≥ ... the singular values of W)
STATISTIC_HELP = {
    "fro_norm": "Frobenius norm: the root of the sum of all squared weights. ‖W‖_F = √(Σ_ij W_ij²) = √(Σ_i σ_i²).",
    "spectral_norm": "Spectral norm: the largest singular value, the most W stretches any vector. ‖W‖_2 = σ_1.",
    "effective_rank": "Effective rank (Roy & Vetterli 2007): exp of the entropy of the normalised singular values; "
                      "1 for rank one, min(rows, cols) when all σ_i are equal. erank = exp(−Σ p_i ln p_i), "
                      "p_i = σ_i / Σ_j σ_j.",
    "stable_rank": "Stable rank: the squared Frobenius norm over the squared spectral norm; small when one direction "
                   "dominates, and usually several times smaller than the effective rank of the same matrix. "
                   "srank = ‖W‖_F² / ‖W‖_2² = Σ σ_i² / σ_1².",
    "std": "Standard deviation of the weights (population, ddof = 0). std = √(mean((W_ij − mean W)²)).",
}
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


def overlap_long(overlaps: Mapping[str, pd.DataFrame], variants: Mapping[str, str] | None = None) -> pd.DataFrame:
    """`weight_overlap` tables of several checkpoints as one: checkpoint, [variant,] kind, block, pair,
    shared_fraction, cosine, cosine_unshared."""
    table = combine(overlaps, variants)
    keep = [c for c in ("checkpoint", "variant", "kind", "block", "pair", "shared_fraction", "cosine",
                        "cosine_unshared") if c in table.columns]
    return table[keep].reset_index(drop=True)


def cka_long(ckas: Mapping[str, "PathwayCKA"], variants: Mapping[str, str] | None = None) -> pd.DataFrame:
    """`pathway_cka` results of several checkpoints as one long table: checkpoint, [variant,] block, pair, cka."""
    return combine({name: result.table() for name, result in ckas.items()}, variants)


def cka_summary(ckas: Mapping[str, "PathwayCKA"], variants: Mapping[str, str] | None = None,
                sources: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per checkpoint: checkpoint, [variant,] blocks, images, [images from (`sources`),]
    tokens_per_image, and the mean CKA over blocks of q-k, q-v and k-v (`PathwayCKA.summary`)."""
    rows = []
    for name, result in ckas.items():
        summary = result.summary()
        row = {"checkpoint": name}
        if variants is not None:
            row["variant"] = variants.get(name, "")
        row.update(blocks=int(result.matrices.shape[0]), images=summary.pop("images"))
        if sources is not None:
            row["images from"] = sources.get(name, "")
        row["tokens_per_image"] = summary.pop("tokens_per_image")
        row.update({f"mean {pair}": value for pair, value in summary.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def cka_at_block(ckas: Mapping[str, "PathwayCKA"], block: int) -> tuple[list[str], np.ndarray]:
    """(checkpoint names, their 3 x 3 CKA matrices of `block` stacked to (n, 3, 3)); checkpoints with fewer
    blocks are left out."""
    names = [name for name, result in ckas.items() if block < result.matrices.shape[0]]
    return names, np.stack([ckas[name].matrices[block] for name in names]) if names else np.zeros((0, 3, 3))


def weight_drift(parent: list[dict], child: list[dict]) -> pd.DataFrame:
    """Weight-space drift of each pathway from a parent to a child (`qkv_pathways` lists of the same shape).

    One row per (block, pathway), the pathway's weight matrices (all its layers, shared ones included)
    pooled: relative_change = ‖W_child − W_parent‖_F / ‖W_parent‖_F and cosine between the flattened
    weights. Not invariant to re-parametrisations that keep the function (see `pathways.pathway_drift`).
    """
    if len(parent) != len(child):
        raise ValueError(f"parent has {len(parent)} Q/K/V blocks, child {len(child)}")
    rows = []
    for b, (old_entry, new_entry) in enumerate(zip(parent, child)):
        for t in PATHWAYS:
            if list(old_entry[t]) != list(new_entry[t]) or any(
                    old_entry[t][k].shape != new_entry[t][k].shape for k in old_entry[t]):
                raise ValueError(f"block {b} pathway {t}: parent and child layers differ in names or shapes")
            old = torch.cat([w.flatten() for w in old_entry[t].values()]).double()
            new = torch.cat([w.flatten() for w in new_entry[t].values()]).double()
            no, nn_ = float(old.norm()), float(new.norm())
            rows.append(dict(block=b, pathway=t,
                             relative_change=float((new - old).norm()) / no if no > 0 else float("nan"),
                             cosine=float(old @ new) / (no * nn_) if no > 0 and nn_ > 0 else float("nan")))
    return pd.DataFrame(rows)


def drift_table(function: pd.DataFrame, weights: pd.DataFrame) -> pd.DataFrame:
    """`pathway_drift` and `weight_drift` of one parent/child pair side by side, one row per (block, pathway):
    block, pathway, function_cka, weight_relative_change, weight_cosine, images."""
    table = function.rename(columns={"cka": "function_cka"}).merge(
        weights.rename(columns={"relative_change": "weight_relative_change", "cosine": "weight_cosine"}),
        on=["block", "pathway"])
    return table[["block", "pathway", "function_cka", "weight_relative_change", "weight_cosine", "images"]]
