"""How far each efficient attention is from softmax attention of the same q and k, on a real input.

For every efficient-attention layer of a model (Performer, Nystromformer, Linformer), `fidelity`
takes the q, k, v the layer actually received and compares

    E = the exact N x N operator the layer applies to v (Performer: normalised phi(Q) phi(K)^T;
        Nystromformer: three-factor product + residual conv band; Linformer: P F, its N x k map
        P times the value projection F, which is also exact: P (F v) = (P F) v)
    S = softmax(q k^T * scale (+ LeViT's attention bias)), what softmax attention would do with the same q and k.

Errors are relative Frobenius norms over the heads of the first image: the map error |E - S| / |S|
and the output error |E v - S v| / |S v| (what the next layer sees). For Performer and
Nystromformer a sweep redraws the approximation with a growing budget (random features;
landmarks, at most the number of tokens) and the same q and k, averaging Performer over
`seeds` feature draws. Nystromformer's residual conv is not part of the approximation and is left
out of the sweep; the layer table reports the full operator and the product alone.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..layers.attention import AttentionKernel, LinformerKernel, NystromKernel, PerformerKernel
from .capture import capture
from .exclusive import exclusive

__all__ = ["BUDGETS", "Fidelity", "fidelity", "has_efficient_attention", "relative_error"]

BUDGETS = (16, 64, 256, 1024)
KINDS = {PerformerKernel: "performer", NystromKernel: "nystrom", LinformerKernel: "linformer"}


@dataclass
class Fidelity:
    layers: pd.DataFrame            # layer, block, kind, operator, budget, map_error, output_error, negative_share
    sweep: pd.DataFrame             # layer, kind, budget_name, budget, map_error, output_error
    differences: list = field(default_factory=list)  # per layer (N_q, N_k) head-mean E - S, first image
    notes: list = field(default_factory=list)


def has_efficient_attention(model: nn.Module) -> bool:
    """Whether the model has a Performer, Nystromformer or Linformer layer."""
    return any(type(m) in KINDS for m in model.modules())


def relative_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """|estimate - reference| / |reference| (Frobenius, float64)."""
    estimate, reference = estimate.double(), reference.double()
    return float((estimate - reference).norm() / reference.norm())


def _errors(operator, softmax, v) -> dict:
    operator, softmax, v = operator.double(), softmax.double(), v.double()
    return {"map_error": relative_error(operator, softmax), "output_error": relative_error(operator @ v, softmax @ v)}


def _operator(kernel: AttentionKernel, q, k, *bias) -> dict[str, torch.Tensor]:
    """Named N x N operators of a layer: the exact one first, then parts worth reporting alone."""
    if isinstance(kernel, LinformerKernel):
        return {"P F (exact)": kernel.implied_attention(q, k) @ kernel.proj_v.weight.float()}
    parts = kernel.operator_parts(q, k, *bias)
    ops = {"exact operator": sum(parts.values())}
    if len(parts) > 1:
        ops["Nystrom product only"] = parts["nystrom"]
    return ops


def _budget(kernel: AttentionKernel) -> tuple[str, int]:
    if isinstance(kernel, PerformerKernel):
        return "features", kernel.num_features
    if isinstance(kernel, NystromKernel):
        return "landmarks", kernel.num_landmarks
    return "k", kernel.k


def _sweep(kernel: AttentionKernel, q, k, v, softmax, budgets, seeds: int, *bias) -> list[dict]:
    rows = []
    for budget in budgets:
        if isinstance(kernel, PerformerKernel):
            runs = []
            for seed in range(seeds):
                draw = PerformerKernel(kernel.head_dim, budget, scale=kernel.scale)
                draw.redraw_features(torch.Generator().manual_seed(seed))
                runs.append(_errors(draw.implied_attention(q, k), softmax, v))
            rows.append({"budget_name": "features", "budget": budget,
                         **{key: float(np.mean([r[key] for r in runs])) for key in runs[0]}})
        elif isinstance(kernel, NystromKernel) and budget <= min(q.shape[-2], k.shape[-2]):
            draw = NystromKernel(kernel.head_dim, q.shape[1], budget, kernel.pinv_iterations, conv_kernel=0,
                                 scale=kernel.scale)
            rows.append({"budget_name": "landmarks", "budget": budget,
                         **_errors(draw.implied_attention(q, k, *bias), softmax, v)})
    return rows


def fidelity(model: nn.Module, images: torch.Tensor, budgets=BUDGETS, seeds: int = 3) -> Fidelity:
    """Per efficient-attention layer: distance of its operator to softmax of the same q, k (first image of
    `images`), the difference map, and for Performer / Nystromformer the distance as the budget grows.

    The forward pass runs through `capture` (eval mode, no grad); the kernels are copied to the CPU under
    the model's lock, and the analysis works on those copies, so the shared model is not touched."""
    with exclusive(model):
        kernels = [_cpu_copy(m) for m in model.modules() if isinstance(m, AttentionKernel)]
        art = capture(model, images[:1], want=["qkv", "logit_bias"]) if kernels else {}
    qkvs = art.get("qkv", [])
    biases = art.get("logit_bias") or [None] * len(qkvs)  # LeViT: part of the logits, of softmax's too
    if len(qkvs) != len(kernels):
        raise RuntimeError(f"captured q, k, v for {len(qkvs)} of {len(kernels)} attention kernels")
    layer_rows, sweep_rows, differences = [], [], []
    with torch.no_grad():
        for layer, (kernel, (q, k, v)) in enumerate(zip(kernels, qkvs)):
            if type(kernel) not in KINDS:
                continue
            kind = KINDS[type(kernel)]
            bias = () if biases[layer] is None else (biases[layer],)
            softmax = ((q * kernel.scale) @ k.transpose(-2, -1) + sum(bias)).softmax(-1)
            budget_name, budget = _budget(kernel)
            operators = _operator(kernel, q, k, *bias)
            for name, op in operators.items():
                negative = float(op.clamp(max=0).abs().sum() / op.abs().sum())
                layer_rows.append({"layer": layer, "block": art["block_names"][layer], "kind": kind,
                                   "operator": name, "budget": f"{budget} {budget_name}",
                                   **_errors(op, softmax, v), "negative_share": negative})
            exact = next(iter(operators.values()))
            differences.append((exact - softmax)[0].mean(0).numpy())
            sweep_rows += [{"layer": layer, "kind": kind, **row}
                           for row in _sweep(kernel, q, k, v, softmax, budgets, seeds, *bias)]
    notes = [] if layer_rows else ["This model has no efficient-attention layer (Performer, Nystromformer, "
                                   "Linformer) to compare with softmax."]
    if any(r["kind"] == "linformer" for r in layer_rows):
        notes.append("Linformer's projections E, F are learned for a fixed k, so there is no budget to sweep.")
    if any(b is not None for b in biases):
        notes.append("LeViT's attention biases are part of the logits: of the layer's operator and of the softmax "
                     "it is compared with.")
    if any(r["kind"] == "nystrom" for r in layer_rows):
        notes.append("The Nystromformer sweep varies the landmarks (up to the number of tokens) with the layer's "
                     "pseudo-inverse iterations; its residual conv is not part of the approximation and is left out.")
    return Fidelity(pd.DataFrame(layer_rows), pd.DataFrame(sweep_rows), differences, notes)


def _cpu_copy(kernel: AttentionKernel) -> AttentionKernel:
    """The kernel's parameters and buffers on the CPU in float32, without moving the (shared) model's module."""
    return copy.deepcopy(kernel).to("cpu", torch.float32)
