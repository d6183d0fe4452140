"""Multi-head self-attention over tokens with a pluggable kernel and optional RoPE.

A drop-in for timm's ViT `Attention` (same `qkv` / `proj` names and call signature), so the
Vision X-formers variants are timm's VisionTransformer with each block's `attn` swapped.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import make_kernel
from .rope import RotaryEmbedding


class TokenAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, kind: str = "softmax", seq_len: int | None = None,
                 rope: RotaryEmbedding | None = None, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, **kernel_options):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.rope = rope
        self.kernel = make_kernel(kind, self.head_dim, num_heads, seq_len=seq_len,
                                  attn_drop=attn_drop, **kernel_options)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, attn_mask=None, **_) -> torch.Tensor:
        if attn_mask is not None:
            raise NotImplementedError("vitviz attention kernels take no attention mask")
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        x = self.kernel(q, k, v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))
