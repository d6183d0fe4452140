"""Attention kernels: exact softmax and the Vision X-formers' efficient kinds (arXiv 2107.02239).

A *kernel* takes per-head queries, keys and values (B, H, N_q, d), (B, H, N_k, d), (B, H, N_k, d)
and returns (B, H, N_q, d). Projections live outside (in `TokenAttention` for ViT, in the CvT
block for CvT), so the same kernel drops into either backbone.

Every kernel offers the same things to inspection code:
- `map_kind`: "exact" (softmax), "implied" (Performer, Nystromformer: the N x N linear operator
  the kernel applies to v, which it never builds) or "projected" (Linformer: an N x k map over
  projected keys, applied to the projected values F v);
- `implied_attention(q, k)`: that operator, exactly: `implied_attention(q, k) @ v` is the kernel's
  output (Linformer: `@ F v`). Performer's and Nystromformer's approximate softmax attention, but
  they are what the model computes. Nystromformer's is signed (pseudo-inverse) and includes its
  residual depthwise conv as a banded matrix; `operator_parts(q, k)` returns the summands;
- `need_map` (default False) and a hookable `attention_map` Identity module: when `need_map` is
  set, the kernel materialises its map and passes it through `attention_map`, where a forward
  hook can record it. With `need_map` off, softmax takes the fused
  `scaled_dot_product_attention` path and the linear kernels never build an N x N matrix.

Every kernel takes `scale` (default head_dim^-0.5) for the query-key logits; CvT-13's official
code scales by the stage width instead.

Softmax and Nystromformer also take an additive logit bias as a fourth input, `kernel(q, k, v, bias)`
with bias (heads, N_q, N_k) (or broadcastable to the logits): LeViT's learned attention biases, which
are part of its maps: softmax(q k^T * scale + bias). `implied_attention(q, k, bias)` and
`operator_parts(q, k, bias)` take it too. Nystromformer averages the bias over its landmark segments
exactly as it averages the logits (B M_k^T, M_q B M_k^T, M_q B), so with every token a landmark it is
softmax attention with the bias. Performer and Linformer cannot take one: FAVOR+ factorises exp(q k^T)
into phi(q) phi(k)^T, and a full N_q x N_k factor exp(bias) breaks that linear-time product.

- SoftmaxKernel       softmax(q k^T / sqrt(d)) v
- PerformerKernel     FAVOR+: positive orthogonal random features, m = round(d ln d)   (Choromanski 2021)
- LinformerKernel     keys/values projected along the sequence axis N -> k = 64         (Wang 2020)
- NystromKernel       64 segment-mean landmarks, 6-step iterative pseudo-inverse,
                      residual depthwise conv (kernel 33) on v                         (Xiong 2021)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AttentionKernel(nn.Module):
    map_kind = "exact"

    def __init__(self, head_dim: int, scale: float | None = None):
        super().__init__()
        self.head_dim = head_dim
        self.scale = head_dim ** -0.5 if scale is None else float(scale)
        self.need_map = False
        self.attention_map = nn.Identity()  # hook point for the (implied) attention map

    def implied_attention(self, q: torch.Tensor, k: torch.Tensor, *bias: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def operator_parts(self, q: torch.Tensor, k: torch.Tensor, *bias: torch.Tensor) -> dict[str, torch.Tensor]:
        """The summands of `implied_attention` by name (one part unless the kernel adds several); `bias`: the
        additive logit bias of kernels that take one (see the module docstring)."""
        return {type(self).__name__.removesuffix("Kernel").lower(): self.implied_attention(q, k, *bias)}


class SoftmaxKernel(AttentionKernel):
    """Exact attention: fused SDPA unless a map is requested, then the explicit path."""

    def __init__(self, head_dim: int, attn_drop: float = 0.0, scale: float | None = None):
        super().__init__(head_dim, scale)
        self.attn_drop = attn_drop

    def implied_attention(self, q, k, bias=None):
        logits = (q * self.scale) @ k.transpose(-2, -1)
        return (logits if bias is None else logits + bias).softmax(dim=-1)

    def forward(self, q, k, v, bias=None):
        drop = self.attn_drop if self.training else 0.0
        if not self.need_map:
            mask = None if bias is None else bias.to(q.dtype)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, scale=self.scale)
        attn = self.attention_map(self.implied_attention(q, k, bias))
        return F.dropout(attn, drop, self.training) @ v


def orthogonal_random_features(num_features: int, head_dim: int, generator=None) -> torch.Tensor:
    """(m, d) Gaussian projection with orthogonal rows within each d-block, rows rescaled to
    chi-distributed norms so each row is marginally N(0, I) (Performer's ORF).

    Each block is the Q of a Gaussian matrix's QR decomposition with its columns multiplied by
    sign(diag R): that makes Q Haar-distributed (isotropic rows); LAPACK's Q alone is not, and the
    estimator's error then stops falling as features grow."""
    blocks, remaining = [], num_features
    while remaining > 0:
        g = torch.randn(head_dim, head_dim, generator=generator)
        q, r = torch.linalg.qr(g)
        q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)
        blocks.append(q.t()[:remaining])
        remaining -= head_dim
    w = torch.cat(blocks)
    norms = torch.randn(num_features, head_dim, generator=generator).norm(dim=1, keepdim=True)
    return w * norms


class PerformerKernel(AttentionKernel):
    """FAVOR+ with positive random features phi(x) = exp(w^T x - |x|^2 / 2) / sqrt(m), x = x * scale^(1/2)
    (x / d^(1/4) by default).

    The projection is a fixed (persistent) buffer so a checkpoint reproduces the same features;
    `redraw_features()` samples new ones. Feature maps are computed in float32.
    """
    map_kind = "implied"

    def __init__(self, head_dim: int, num_features: int | None = None, scale: float | None = None):
        super().__init__(head_dim, scale)
        self.num_features = num_features or int(round(head_dim * math.log(head_dim)))
        self.register_buffer("projection", orthogonal_random_features(self.num_features, head_dim))

    @torch.no_grad()
    def redraw_features(self, generator=None):
        w = orthogonal_random_features(self.num_features, self.head_dim, generator)
        self.projection.copy_(w.to(self.projection))

    def feature_map(self, x: torch.Tensor, is_query: bool) -> torch.Tensor:
        x = x.float() * self.scale ** 0.5
        proj = x @ self.projection.float().t()
        sq_norm = (x ** 2).sum(-1, keepdim=True) / 2
        # a per-row (queries) or per-head (keys) constant cancels in the normalisation
        stab = proj.amax(-1, keepdim=True) if is_query else proj.amax(dim=(-1, -2), keepdim=True)
        return torch.exp(proj - sq_norm - stab.detach()) / math.sqrt(self.num_features)

    def implied_attention(self, q, k):
        a = self.feature_map(q, True) @ self.feature_map(k, False).transpose(-2, -1)
        return a / a.sum(-1, keepdim=True)

    def forward(self, q, k, v):
        if self.need_map:
            self.attention_map(self.implied_attention(q, k))
        qp, kp = self.feature_map(q, True), self.feature_map(k, False)  # (B, H, N, m)
        kv = kp.transpose(-2, -1) @ v.float()                             # (B, H, m, d)
        normaliser = (qp @ kp.sum(dim=-2).unsqueeze(-1)).clamp_min(1e-30)  # (B, H, N, 1)
        return ((qp @ kv) / normaliser).to(v.dtype)


class LinformerKernel(AttentionKernel):
    """Keys and values projected along the sequence axis: K' = E K, V' = F V with E, F: (k, N).

    N (`seq_len`) is fixed at construction. With k == N the projections start as the identity,
    so the kernel is exactly softmax attention until trained.
    """
    map_kind = "projected"

    def __init__(self, head_dim: int, seq_len: int, k: int = 64, attn_drop: float = 0.0,
                 scale: float | None = None):
        super().__init__(head_dim, scale)
        self.seq_len, self.k = seq_len, k
        self.proj_k = nn.Linear(seq_len, k, bias=False)
        self.proj_v = nn.Linear(seq_len, k, bias=False)
        self.attn_drop = attn_drop
        with torch.no_grad():
            for p in (self.proj_k, self.proj_v):
                if k == seq_len:
                    p.weight.copy_(torch.eye(k))
                else:
                    p.weight.normal_(0.0, 1.0 / math.sqrt(k))

    def _project(self, x: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
        if x.shape[-2] != self.seq_len:
            raise ValueError(f"Linformer was built for {self.seq_len} tokens, got {x.shape[-2]}")
        return proj(x.transpose(-2, -1)).transpose(-2, -1)  # (B, H, k, d)

    def implied_attention(self, q, k):
        """The N x k map over projected keys (not an N x N map)."""
        return ((q * self.scale) @ self._project(k, self.proj_k).transpose(-2, -1)).softmax(-1)

    def forward(self, q, k, v):
        kp, vp = self._project(k, self.proj_k), self._project(v, self.proj_v)
        drop = self.attn_drop if self.training else 0.0
        if not self.need_map:
            return F.scaled_dot_product_attention(q, kp, vp, dropout_p=drop, scale=self.scale)
        attn = self.attention_map(((q * self.scale) @ kp.transpose(-2, -1)).softmax(-1))
        return F.dropout(attn, drop, self.training) @ vp


def segment_means_matrix(n: int, m: int, device=None, dtype=None) -> torch.Tensor:
    """(m, n) matrix whose rows average m contiguous, nearly equal segments of n tokens.
    When m divides n this is exactly Nystromformer's segment means."""
    bounds = torch.div(torch.arange(m + 1) * n, m, rounding_mode="floor")
    idx = torch.arange(n)
    member = (idx >= bounds[:-1, None]) & (idx < bounds[1:, None])
    return (member / member.sum(1, keepdim=True)).to(device=device, dtype=dtype)


def iterative_pinv(x: torch.Tensor, iterations: int = 6) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse by the iteration of Razavi et al. (2014), as in Nystromformer."""
    eye = torch.eye(x.shape[-1], device=x.device, dtype=x.dtype)
    z = x.transpose(-2, -1) / (x.abs().sum(-1).amax(-1)[..., None, None] * x.abs().sum(-2).amax(-1)[..., None, None])
    for _ in range(iterations):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
    return z


class NystromKernel(AttentionKernel):
    """softmax(Q K~^T) pinv(softmax(Q~ K~^T)) softmax(Q~ K^T) V (+ depthwise conv of V).

    Landmarks Q~, K~ are segment means (m = num_landmarks, fewer when N < m). Where N is not a
    multiple of m, segments differ in length by at most one token instead of zero-padding
    ([ours]; identical to the paper's segment means when m divides N). The residual conv needs
    N_q == N_k; set conv_kernel=0 to drop it (CvT's strided keys do).

    Both terms are linear in V along the token axis, so the kernel's exact operator is the
    three-factor product plus the conv as a banded (N, N) matrix per head (`operator_parts`).
    """
    map_kind = "implied"

    def __init__(self, head_dim: int, num_heads: int, num_landmarks: int = 64,
                 pinv_iterations: int = 6, conv_kernel: int = 33, scale: float | None = None):
        super().__init__(head_dim, scale)
        if conv_kernel and conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd (or 0 for no conv), got {conv_kernel}")
        self.num_landmarks, self.pinv_iterations = num_landmarks, pinv_iterations
        self.res_conv = (nn.Conv2d(num_heads, num_heads, (conv_kernel, 1), padding=(conv_kernel // 2, 0),
                                   groups=num_heads, bias=False) if conv_kernel else None)

    def _factors(self, q, k, bias=None):
        q = q.float() * self.scale
        k = k.float()
        mq, mk = min(self.num_landmarks, q.shape[-2]), min(self.num_landmarks, k.shape[-2])
        m = min(mq, mk)
        means_q = segment_means_matrix(q.shape[-2], m, q.device, q.dtype)
        means_k = segment_means_matrix(k.shape[-2], m, k.device, k.dtype)
        q_land, k_land = means_q @ q, means_k @ k
        logits_1 = q @ k_land.transpose(-2, -1)
        logits_2 = q_land @ k_land.transpose(-2, -1)
        logits_3 = q_land @ k.transpose(-2, -1)
        if bias is not None:  # the logits' own landmark averages: Q K~^T = (Q K^T) M_k^T, and so on
            bias_k = bias.float() @ means_k.t()
            logits_1 = logits_1 + bias_k
            logits_2 = logits_2 + means_q @ bias_k
            logits_3 = logits_3 + means_q @ bias.float()
        kernel_1, kernel_2, kernel_3 = logits_1.softmax(-1), logits_2.softmax(-1), logits_3.softmax(-1)
        return kernel_1, iterative_pinv(kernel_2, self.pinv_iterations), kernel_3

    def _has_conv(self, n_q: int, n_k: int) -> bool:
        return self.res_conv is not None and n_q == n_k

    def conv_band(self, n: int) -> torch.Tensor:
        """(heads, n, n) matrix C with C[h] @ v[h] == res_conv(v)[h]: C[h, i, j] = w[h, j - i + K // 2]."""
        w = self.res_conv.weight[:, 0, :, 0].float()                       # (heads, K)
        half = w.shape[-1] // 2
        idx = torch.arange(n, device=w.device)
        offset = idx[None, :] - idx[:, None] + half                        # (n, n)
        inside = (offset >= 0) & (offset < w.shape[-1])
        return w[:, offset.clamp(0, w.shape[-1] - 1)] * inside

    def operator_parts(self, q, k, bias=None):
        k1, k2_inv, k3 = self._factors(q, k, bias)
        parts = {"nystrom": k1 @ k2_inv @ k3}
        if self._has_conv(q.shape[-2], k.shape[-2]):
            parts["conv"] = self.conv_band(q.shape[-2]).expand_as(parts["nystrom"])
        return parts

    def implied_attention(self, q, k, bias=None):
        return sum(self.operator_parts(q, k, bias).values())

    def forward(self, q, k, v, bias=None):
        k1, k2_inv, k3 = self._factors(q, k, bias)
        conv = self._has_conv(q.shape[-2], v.shape[-2])
        if self.need_map:
            product = k1 @ k2_inv @ k3
            self.attention_map(product + self.conv_band(q.shape[-2]) if conv else product)
        out = (k1 @ (k2_inv @ (k3 @ v.float()))).to(v.dtype)
        if conv:
            out = out + self.res_conv(v)
        return out


ATTENTION_KINDS = ("softmax", "performer", "linformer", "nystrom")


def make_kernel(kind: str, head_dim: int, num_heads: int, seq_len: int | None = None,
                attn_drop: float = 0.0, **options) -> AttentionKernel:
    """Build an attention kernel by name. `seq_len` (key tokens) is needed by Linformer only."""
    if kind == "softmax":
        return SoftmaxKernel(head_dim, attn_drop=attn_drop, **options)
    if kind == "performer":
        return PerformerKernel(head_dim, **options)
    if kind == "linformer":
        if seq_len is None:
            raise ValueError("Linformer needs the (fixed) number of key tokens, seq_len")
        return LinformerKernel(head_dim, seq_len, attn_drop=attn_drop, **options)
    if kind == "nystrom":
        return NystromKernel(head_dim, num_heads, **options)
    raise ValueError(f"unknown attention kind {kind!r}; choose from {ATTENTION_KINDS}")
