"""F-SNE codes: the trainable per-block vectors c_q, c_k, c_v that tell the one shared Q/K/V MLP
which pathway to produce (`vitviz.layers.qkv_embedding.FullySharedQKV.codes`, shape (3, code_length)).

The raw codes depend on their basis: any invertible map R applied to the codes and undone in the layer
that reads them (c -> R c, W_c -> W_c R⁻¹) changes them, their cosines and their drift, but not the
network. The network sees a code only through that layer, so `code_contributions` describes the codes
as the first layer of the shared MLP receives them (per `code_mode`, see `CODE_CONTRIBUTION`); that is
the view to compare pathways with. `qkv_codes` gives the raw vectors.
"""
from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..layers.qkv_embedding import PATHWAYS, FullySharedQKV

__all__ = ["fsne_modules", "qkv_codes", "CODE_CONTRIBUTION", "code_contributions", "code_contribution_label",
           "code_similarity", "code_drift"]

# what `code_contributions` returns per code_mode: (without the shared bias, with it)
CODE_CONTRIBUTION = {
    "concat": ("W_c c_t", "W_c c_t + b"),   # fc1 = [W_x | W_c]: pre-activation W_x x + W_c c_t + b
    "add": ("W c_t", "W c_t + b"),          # fc1(x + c_t) = W x + W c_t + b
    "gate": ("W_g c_t", "σ(W_g c_t + b_g)"),  # hidden ReLU(fc1 x) multiplied by the gate σ(W_g c_t + b_g)
}


def fsne_modules(model: nn.Module) -> list[tuple[str, FullySharedQKV]]:
    """Every F-SNE embedding in `model`, as (module name, module), in registration (forward) order:
    the XCA blocks first, then the class-attention blocks where those have F-SNE embeddings."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, FullySharedQKV)]


def qkv_codes(model: nn.Module) -> torch.Tensor:
    """The codes of every F-SNE block stacked to (blocks, 3, code_length), rows in order q, k, v.

    Blocks are the model's F-SNE embeddings in forward order: the XCA blocks, then the class-attention
    blocks *only* if their embedding is F-SNE too (`qkv_in_class_attention=True`); class-attention
    blocks that keep timm's Linear q/k/v are skipped. Detached float32 copy on the CPU.
    Raises ValueError if the model has no F-SNE embedding or the code lengths differ.
    """
    modules = fsne_modules(model)
    if not modules:
        kind = getattr(model, "vitviz_qkv", None)
        what = f" (its Q/K/V embedding is {kind!r})" if kind else ""
        raise ValueError(f"{type(model).__name__}{what} has no F-SNE (FullySharedQKV) embeddings, so it has no "
                         "Q/K/V codes; build an *_fsne variant")
    lengths = {m.codes.shape[-1] for _, m in modules}
    if len(lengths) > 1:
        raise ValueError(f"F-SNE code lengths differ between blocks ({sorted(lengths)}); cannot stack them")
    return torch.stack([m.codes.detach().to("cpu", torch.float32).clone() for _, m in modules])


def _contribution(module: FullySharedQKV, include_bias: bool) -> torch.Tensor:
    codes = module.codes.detach().double()
    if module.code_mode == "concat":
        layer, weight = module.fc1, module.fc1.weight[:, module.dim:]
    elif module.code_mode == "add":
        layer, weight = module.fc1, module.fc1.weight
    else:
        layer, weight = module.gate, module.gate.weight
    out = codes @ weight.detach().double().t()  # (3, hidden)
    if include_bias and layer.bias is not None:
        out = out + layer.bias.detach().double()
    if include_bias and module.code_mode == "gate":
        out = torch.sigmoid(out)
    return out.to("cpu", torch.float32)


def code_contributions(model: nn.Module, include_bias: bool = False) -> torch.Tensor:
    """The codes as the network sees them: what each code adds to (or, for "gate", multiplies into) the
    hidden units of the shared MLP's first layer, stacked to (blocks, 3, hidden), rows q, k, v.

    Per code_mode (F-SNE blocks in forward order, as `qkv_codes`):
      concat  W_c c_t, the code columns W_c of fc1 = [W_x | W_c] times the code; include_bias: W_c c_t + b
      add     W c_t (fc1(x + c_t) = W x + W c_t + b); include_bias: W c_t + b
      gate    W_g c_t, the code's part of the gate's pre-activation; include_bias: the gate σ(W_g c_t + b_g)
              itself, which multiplies the hidden units ReLU(fc1 x)
    The bias b is the same for q, k and v: without it the vectors differ only where the pathways differ;
    with it they are the whole per-pathway input of the hidden units (and look more alike, e.g. a cosine
    of about 0.5 at initialisation for orthonormal codes). Unlike the raw codes, these do not depend on
    the codes' basis. Detached float32 on the CPU; ValueError as `qkv_codes`.
    """
    qkv_codes(model)  # the same checks and messages
    out = [_contribution(m, include_bias) for _, m in fsne_modules(model)]
    if len({t.shape for t in out}) > 1:
        raise ValueError("F-SNE hidden widths differ between blocks; cannot stack their code contributions")
    return torch.stack(out)


def code_contribution_label(model: nn.Module, include_bias: bool = False) -> str:
    """The formula `code_contributions` evaluates for this model, e.g. "W_c c_t" (concat)."""
    modes = {m.code_mode for _, m in fsne_modules(model)}
    return " / ".join(CODE_CONTRIBUTION[mode][int(bool(include_bias))] for mode in sorted(modes))


def _codes(x) -> torch.Tensor:
    if isinstance(x, nn.Module):
        return qkv_codes(x)
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3:
        raise ValueError(f"codes must be (blocks, 3, code_length) or (3, code_length), got {tuple(t.shape)}")
    return t


def code_similarity(codes) -> torch.Tensor:
    """Cosine similarity between the q, k and v codes of each block: (blocks, 3, 3), order q, k, v.

    `codes` is (blocks, 3, code_length) (a single (3, code_length) is treated as one block) or a model.
    The diagonal is 1 for non-zero codes; a zero code has similarity 0 with everything.
    """
    c = _codes(codes).double()
    unit = F.normalize(c, dim=-1)
    return unit @ unit.transpose(-1, -2)


def code_drift(codes_parent, codes_child) -> pd.DataFrame:
    """How far each code moved from a parent checkpoint to a child (e.g. before/after fine-tuning).

    Arguments are code tensors (blocks, 3, code_length) of the same shape, or models (`qkv_codes`).
    One row per (block, pathway): block, pathway, norm_parent, norm_child, l2_change = ||new - old||,
    cosine (old vs new; NaN if either is zero), relative_change = ||new - old|| / ||old|| (NaN if old is
    zero, unless nothing changed: then 0).
    """
    old, new = _codes(codes_parent).double(), _codes(codes_child).double()
    if old.shape != new.shape:
        raise ValueError(f"parent codes {tuple(old.shape)} and child codes {tuple(new.shape)} differ in shape")
    rows = []
    for b in range(old.shape[0]):
        for i, t in enumerate(PATHWAYS[:old.shape[1]]):
            o, n = old[b, i], new[b, i]
            change = float((n - o).norm())
            no, nn_ = float(o.norm()), float(n.norm())
            cosine = float(o @ n / (no * nn_)) if no > 0 and nn_ > 0 else math.nan
            relative = change / no if no > 0 else (0.0 if change == 0 else math.nan)
            rows.append(dict(block=b, pathway=t, norm_parent=no, norm_child=nn_, l2_change=change,
                             cosine=cosine, relative_change=relative))
    return pd.DataFrame(rows)
