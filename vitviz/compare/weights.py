"""Weight statistics of the Q/K/V embedding layers, comparable across linear / SNE / P-SNE / F-SNE.

Every attention block's Q/K/V embedding is described the same way (`qkv_pathways`): for each
pathway t in {q, k, v} a dict {layer name: weight matrix (out, in)} of the layers t passes through,
plus which of those layers all three pathways share:

    linear  nn.Linear(C, 3C) split row-wise into W_q, W_k, W_v   {"linear": (C, C)}        none shared
    sne     SeparateNonLinearQKV                                 {"fc1": (h, C), "fc2": (C, h)}   none shared
    psne    PartiallySharedQKV                                   {"shared": (h, C), "fc2": (C, h)}  "shared"
    fsne    FullySharedQKV                                       {"fc1": (h, C[+c]), "fc2": (C, h)} both

Separate q/k/v Linears (timm's class attention, CvT's proj_q/k/v) are reported like "linear".
F-SNE's per-pathway code vectors are not weight matrices; see `vitviz.inspect.codes`.
A shared layer appears once per pathway with identical numbers and `shared=True`.

These describe parameters. `weight_overlap` says how much weight the pathways share; how alike they are
in what they compute is `vitviz.compare.pathways.pathway_cka` (on real images).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..layers.qkv_embedding import PATHWAYS, QKV_EMBEDDINGS

__all__ = ["qkv_modules", "qkv_pathways", "singular_values", "effective_rank", "stable_rank", "weight_stats",
           "weight_overlap", "weight_histograms"]

_KIND_OF = {cls: kind for kind, cls in QKV_EMBEDDINGS.items()}
PAIRS = (("q", "k"), ("q", "v"), ("k", "v"))


# --------------------------------------------------------------------------- discovery

def _is_class_attention(name: str) -> bool:
    return "cls_attn" in name


def qkv_modules(model: nn.Module, include_class_attention: bool = False) -> list[tuple[str, nn.Module, str]]:
    """The Q/K/V embeddings of `model` in forward (registration) order as (module name, module, kind).

    Found: modules with `pathway_weights()` (SNE / P-SNE / F-SNE), Linears named `*qkv` with
    out = 3 * in (kind "linear"), and attention modules holding separate q/k/v (or
    proj_q/proj_k/proj_v) Linears (kind "linear", module name is the attention module's).
    Class-attention blocks (names containing "cls_attn") are left out unless include_class_attention.
    """
    found = []
    for name, module in model.named_modules():
        if not include_class_attention and _is_class_attention(name):
            continue
        if callable(getattr(module, "pathway_weights", None)):
            found.append((name, module, _KIND_OF.get(type(module), type(module).__name__.lower())))
        elif (isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] == "qkv"
              and module.out_features == 3 * module.in_features):
            found.append((name, module, "linear"))
        elif _separate_linears(module) is not None:
            found.append((name, module, "linear"))
    return found


def _separate_linears(module: nn.Module) -> tuple[nn.Linear, nn.Linear, nn.Linear] | None:
    for names in (("q", "k", "v"), ("proj_q", "proj_k", "proj_v")):
        layers = tuple(getattr(module, n, None) for n in names)
        if all(isinstance(layer, nn.Linear) for layer in layers):
            return layers
    return None


def _raw_pathways(module: nn.Module, kind: str) -> dict[str, dict[str, torch.Tensor]]:
    if callable(getattr(module, "pathway_weights", None)):
        raw = module.pathway_weights()
        # keep weight matrices only (F-SNE's code vectors live in vitviz.inspect.codes)
        return {t: {layer: w for layer, w in raw[t].items() if w.ndim == 2} for t in PATHWAYS}
    if isinstance(module, nn.Linear):
        return {t: {"linear": w} for t, w in zip(PATHWAYS, module.weight.chunk(3, dim=0))}
    return {t: {"linear": layer.weight} for t, layer in zip(PATHWAYS, _separate_linears(module))}


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


def qkv_pathways(model: nn.Module, include_class_attention: bool = False) -> list[dict]:
    """One dict per attention block (forward order, see `qkv_modules`):

        {"q": {layer: W}, "k": {layer: W}, "v": {layer: W},   # detached float copies on the CPU
         "shared": {layer: bool},                             # True if q, k and v use the same tensor
         "block": index, "module": module name, "kind": "linear"|"sne"|"psne"|"fsne",
         "class_attention": bool}

    Weights are (out_features, in_features). For a Linear(C, 3C), torch.cat([q, k, v]) of the
    "linear" layer reproduces `qkv.weight` exactly. Raises ValueError if no Q/K/V embedding is found.
    """
    modules = qkv_modules(model, include_class_attention)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no Q/K/V embedding (no `qkv` Linear(C, 3C), separate q/k/v "
                         "Linears or module with pathway_weights())")
    out = []
    for index, (name, module, kind) in enumerate(modules):
        with torch.no_grad():
            raw = _raw_pathways(module, kind)
            layers = list(raw["q"])
            shared = {layer: all(_same_tensor(raw["q"][layer], raw[t][layer]) for t in PATHWAYS[1:])
                      for layer in layers}
            entry = {t: {layer: w.detach().to("cpu", torch.float32).clone() for layer, w in raw[t].items()}
                     for t in PATHWAYS}
        entry.update(shared=shared, block=index, module=name, kind=kind,
                     class_attention=_is_class_attention(name))
        out.append(entry)
    return out


# --------------------------------------------------------------------------- spectra

def _matrix(w) -> torch.Tensor:
    t = torch.as_tensor(w).detach().to("cpu", torch.float64)
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2:
        raise ValueError(f"expected a matrix, got shape {tuple(t.shape)}")
    return t


def singular_values(w) -> torch.Tensor:
    """Singular values of a matrix (a vector counts as one row), descending, float64."""
    return torch.linalg.svdvals(_matrix(w))


def _effective_rank_of(s: torch.Tensor) -> float:
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _stable_rank_of(s: torch.Tensor) -> float:
    if s.numel() == 0 or s[0] <= 0:
        return 0.0
    return float((s ** 2).sum() / s[0] ** 2)


def effective_rank(w) -> float:
    """Effective rank exp(H(p)), p = sigma / sum(sigma) (Roy & Vetterli, EUSIPCO 2007); 0 log 0 = 0.

    Between 1 (rank one) and min(rows, cols) (all singular values equal); 0.0 for a zero matrix.
    """
    return _effective_rank_of(singular_values(w))


def stable_rank(w) -> float:
    """||W||_F^2 / ||W||_2^2 (sum of squared singular values over the largest squared); 0.0 for zero."""
    return _stable_rank_of(singular_values(w))


def weight_stats(model: nn.Module, include_class_attention: bool = False) -> pd.DataFrame:
    """Long table, one row per (block, pathway, layer).

    Columns: block (index), module, kind, class_attention, pathway, layer, shared, shape ("out x in"),
    rows, cols, fro_norm, spectral_norm (largest singular value), mean, std (population, ddof=0),
    effective_rank (Roy & Vetterli), stable_rank (||W||_F^2 / ||W||_2^2).
    A shared layer gives identical rows for q, k and v (shared=True).
    """
    rows = []
    for entry in qkv_pathways(model, include_class_attention):
        cache: dict[str, dict] = {}
        for t in PATHWAYS:
            for layer, w in entry[t].items():
                shared = entry["shared"][layer]
                if shared and layer in cache:
                    stats = cache[layer]
                else:
                    stats = _matrix_stats(w)
                    cache[layer] = stats
                rows.append(dict(block=entry["block"], module=entry["module"], kind=entry["kind"],
                                 class_attention=entry["class_attention"], pathway=t, layer=layer, shared=shared,
                                 **stats))
    return pd.DataFrame(rows)


def _matrix_stats(w: torch.Tensor) -> dict:
    m = _matrix(w)
    s = torch.linalg.svdvals(m)
    erank, srank = _effective_rank_of(s), _stable_rank_of(s)
    return dict(shape=f"{m.shape[0]}x{m.shape[1]}", rows=int(m.shape[0]), cols=int(m.shape[1]),
                fro_norm=float(torch.linalg.norm(m)), spectral_norm=float(s[0]) if s.numel() else 0.0,
                mean=float(m.mean()), std=float(m.std(correction=0)), effective_rank=erank, stable_rank=srank)


# --------------------------------------------------------------------------- weight overlap

def _flat(entry: dict, t: str, unshared_only: bool) -> torch.Tensor | None:
    parts = [w.flatten() for layer, w in entry[t].items() if not (unshared_only and entry["shared"][layer])]
    return torch.cat(parts).double() if parts else None


def _cosine(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    if a is None or b is None:
        return math.nan
    na, nb = a.norm(), b.norm()
    if na <= 0 or nb <= 0:
        return math.nan
    return float(a @ b / (na * nb))


def _shared_fraction(entry: dict, t: str) -> float:
    total = sum(w.numel() for w in entry[t].values())
    shared = sum(w.numel() for layer, w in entry[t].items() if entry["shared"][layer])
    return shared / total if total else math.nan


def weight_overlap(model: nn.Module, include_class_attention: bool = False) -> pd.DataFrame:
    """How much of their weights the q, k and v pathways of each block have in common; one row per
    (block, pair) for the pairs q-k, q-v, k-v. This is about parameters, not function: for how alike
    the pathways are in what they compute, see `vitviz.compare.pathways.pathway_cka`.

    shared_fraction: the fraction of a pathway's weight-matrix entries that q, k and v share (the same
        tensor): 0 for linear and SNE, 1/2 for P-SNE at default widths (its first layer), 1 for F-SNE
        (its pathways differ only by their codes, which are not weight matrices; biases not counted).
    cosine: cosine similarity of the flattened weights of the two pathways (all their layers,
        concatenated in layer order). Shared layers are identical in both, so F-SNE gives exactly 1 and
        P-SNE is pulled towards 1; unshared random-like weights give about 0.
    cosine_unshared: the same over the non-shared layers only (NaN for F-SNE, where none are).

    Neither cosine is invariant to re-parametrisations that leave the model's function unchanged:
    permuting a pathway's hidden units, or rescaling q's channels (XCA normalises them away).
    """
    rows = []
    for entry in qkv_pathways(model, include_class_attention):
        for a, b in PAIRS:
            rows.append(dict(block=entry["block"], module=entry["module"], kind=entry["kind"],
                             class_attention=entry["class_attention"], pair=f"{a}-{b}",
                             shared_fraction=_shared_fraction(entry, a),
                             cosine=_cosine(_flat(entry, a, False), _flat(entry, b, False)),
                             cosine_unshared=_cosine(_flat(entry, a, True), _flat(entry, b, True))))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- histograms

def weight_histograms(model: nn.Module, bins: int = 50, value_range: tuple[float, float] | None = None,
                      include_class_attention: bool = False) -> dict:
    """Histograms of every block's q, k and v weights (all the pathway's layers pooled) on shared edges.

    Returns {"edges": ndarray (bins + 1,), "counts": {"q"|"k"|"v": ndarray int64 (blocks, bins)},
    "blocks": [module names]}. Edges span `value_range`, or the min and max over all blocks and
    pathways, so every histogram is comparable; values outside `value_range` are not counted.
    """
    if int(bins) < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    entries = qkv_pathways(model, include_class_attention)
    values = {t: [torch.cat([w.flatten() for w in e[t].values()]).numpy() for e in entries] for t in PATHWAYS}
    if value_range is None:
        lo = min(float(v.min()) for vs in values.values() for v in vs)
        hi = max(float(v.max()) for vs in values.values() for v in vs)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
    else:
        lo, hi = (float(r) for r in value_range)
    edges = np.linspace(lo, hi, int(bins) + 1)
    counts = {t: np.stack([np.histogram(v, bins=edges)[0] for v in values[t]]).astype(np.int64) for t in PATHWAYS}
    return {"edges": edges, "counts": counts, "blocks": [e["module"] for e in entries]}
