"""Q/K/V embedding modules for XCiT (arXiv 2111.10017; Mathematics 11(8):1933, 2023).

Each module maps tokens (B, N, C) to the concatenation [q ; k ; v] of shape (B, N, 3C), the
layout timm's XCA expects from its `attn.qkv` Linear, so any of them can replace it:

- `nn.Linear(C, 3C)`                  the baseline (timm's own module, left untouched)
- `SeparateNonLinearQKV`  (SNE)       per pathway t in {q, k, v}: Linear(C, h) -> ReLU -> Linear(h, C)
- `PartiallySharedQKV`    (P-SNE)     one shared Linear(C, h) -> ReLU, then a Linear(h, C) per pathway
- `FullySharedQKV`        (F-SNE)     one shared 2-layer MLP for all three pathways; a trainable code
                                      vector c_t per block tells it which of q, k, v to produce

The three per-pathway second layers are held as one `GroupedLinear` (weights (3, C, h)) so one
batched matmul serves all pathways; this is numerically the same as three separate Linears.
`pathway_weights()` returns each pathway's effective matrices for weight statistics.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PATHWAYS = ("q", "k", "v")
CODE_MODES = ("concat", "add", "gate")


class GroupedLinear(nn.Module):
    """`groups` independent Linear(in, out) layers applied to x of shape (..., groups, in)."""

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features)) if bias else None
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default init, per group
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("...gi,goi->...go", x, self.weight)
        return out + self.bias if self.bias is not None else out


class SeparateNonLinearQKV(nn.Module):
    """SNE: three independent 2-layer MLPs. fc1 stacks the three Linear(C, h) row-wise."""

    def __init__(self, dim: int, hidden: int | None = None, bias: bool = True):
        super().__init__()
        self.dim, self.hidden = dim, hidden or dim // 2  # h = C/2 keeps ~ the baseline's params
        self.fc1 = nn.Linear(dim, 3 * self.hidden, bias=bias)
        self.fc2 = GroupedLinear(3, self.hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        h = F.relu(self.fc1(x)).reshape(B, N, 3, self.hidden)
        return self.fc2(h).reshape(B, N, 3 * self.dim)

    def pathway_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        first = self.fc1.weight.reshape(3, self.hidden, self.dim)
        return {t: {"fc1": first[i], "fc2": self.fc2.weight[i]} for i, t in enumerate(PATHWAYS)}


class PartiallySharedQKV(nn.Module):
    """P-SNE: a shared first layer, separate second layers. h = C by default."""

    def __init__(self, dim: int, hidden: int | None = None, bias: bool = True):
        super().__init__()
        self.dim, self.hidden = dim, hidden or dim
        self.shared = nn.Linear(dim, self.hidden, bias=bias)
        self.fc2 = GroupedLinear(3, self.hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        h = F.relu(self.shared(x)).unsqueeze(-2).expand(B, N, 3, self.hidden)
        return self.fc2(h).reshape(B, N, 3 * self.dim)

    def pathway_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return {t: {"shared": self.shared.weight, "fc2": self.fc2.weight[i]} for i, t in enumerate(PATHWAYS)}


class FullySharedQKV(nn.Module):
    """F-SNE: one shared MLP; per-block codes c_q, c_k, c_v select the pathway.

    code_mode:
      "concat" (default): input [x ; c_t] -> Linear(C + c, h) -> ReLU -> Linear(h, C).
                Computed as W_x x + (W_c c_t + b), the same numbers without concatenating.
      "add":    codes live in token space (length C): x + c_t -> Linear(C, h) -> ReLU -> Linear(h, C).
      "gate":   ReLU(Linear(C, h)(x)) * sigmoid(Linear(c, h)(c_t)) -> Linear(h, C): a multiplicative
                per-pathway gate on the hidden units.
    Codes are initialised as distinct random unit vectors (orthonormal when c >= 3).
    """

    def __init__(self, dim: int, hidden: int | None = None, code_length: int | None = None,
                 code_mode: str = "concat", bias: bool = True):
        super().__init__()
        if code_mode not in CODE_MODES:
            raise ValueError(f"code_mode must be one of {CODE_MODES}, got {code_mode!r}")
        self.dim, self.hidden, self.code_mode = dim, hidden or dim, code_mode
        self.code_length = dim if code_mode == "add" else (code_length or 8)
        if code_mode == "add" and code_length not in (None, dim):
            raise ValueError(f"code_mode='add' needs code_length == dim ({dim}), got {code_length}")
        self.codes = nn.Parameter(_distinct_unit_vectors(3, self.code_length))
        in_features = dim + self.code_length if code_mode == "concat" else dim
        self.fc1 = nn.Linear(in_features, self.hidden, bias=bias)
        self.gate = nn.Linear(self.code_length, self.hidden) if code_mode == "gate" else None
        self.fc2 = nn.Linear(self.hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        if self.code_mode == "concat":
            w_x, w_c = self.fc1.weight[:, :C], self.fc1.weight[:, C:]
            per_code = self.codes @ w_c.t()  # (3, h)
            if self.fc1.bias is not None:
                per_code = per_code + self.fc1.bias
            h = F.relu((x @ w_x.t()).unsqueeze(-2) + per_code)  # (B, N, 3, h)
        elif self.code_mode == "add":
            h = F.relu(self.fc1(x.unsqueeze(-2) + self.codes))
        else:
            gates = torch.sigmoid(self.gate(self.codes))  # (3, h)
            h = F.relu(self.fc1(x)).unsqueeze(-2) * gates
        return self.fc2(h).reshape(B, N, 3 * C)

    def pathway_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return {t: {"fc1": self.fc1.weight, "fc2": self.fc2.weight, "code": self.codes[i]}
                for i, t in enumerate(PATHWAYS)}


def _distinct_unit_vectors(n: int, length: int) -> torch.Tensor:
    if length >= n:
        q, _ = torch.linalg.qr(torch.randn(length, n))  # (length, n), orthonormal columns
        return q.t().contiguous()
    return F.normalize(torch.randn(n, length), dim=-1)


QKV_EMBEDDINGS = {
    "sne": SeparateNonLinearQKV,
    "psne": PartiallySharedQKV,
    "fsne": FullySharedQKV,
}


def make_qkv_embedding(kind: str, dim: int, bias: bool = True, **kwargs) -> nn.Module:
    """Build the Q/K/V embedding `kind` ("linear", "sne", "psne", "fsne") for width `dim`."""
    if kind == "linear":
        if kwargs:
            raise ValueError(f"the linear embedding takes no options, got {sorted(kwargs)}")
        return nn.Linear(dim, 3 * dim, bias=bias)
    if kind not in QKV_EMBEDDINGS:
        raise ValueError(f"unknown Q/K/V embedding {kind!r}; choose from linear, {', '.join(QKV_EMBEDDINGS)}")
    return QKV_EMBEDDINGS[kind](dim, bias=bias, **kwargs)
