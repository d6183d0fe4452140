"""Rotary position embedding (RoPE, Su et al. 2021) for image tokens.

Two layouts, as the Vision X-formers spec asks:
- "1d": rotation angle from the flattened token index (the authors' code);
- "2d": axial: half of the rotated pairs follow the row index, half the column index (our default
  for images).
Angles are fixed buffers (not saved in checkpoints); prefix tokens (the class token) are not rotated.
Pairs are adjacent channels (x[2i], x[2i+1]).
"""
from __future__ import annotations

import torch
from torch import nn

ROPE_MODES = ("1d", "2d")


def rope_angles(head_dim: int, grid: tuple[int, int], mode: str = "2d", base: float = 10000.0) -> torch.Tensor:
    """(N, head_dim // 2) rotation angles for the N = grid[0] * grid[1] tokens, row-major."""
    h, w = grid
    if mode == "1d":
        if head_dim % 2:
            raise ValueError(f"1d RoPE needs an even head_dim, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim // 2, dtype=torch.float64) * 2 / head_dim)
        return (torch.arange(h * w, dtype=torch.float64)[:, None] * inv_freq).float()
    if mode == "2d":
        if head_dim % 4:
            raise ValueError(f"2d RoPE needs head_dim divisible by 4, got {head_dim}")
        quarter = head_dim // 4
        inv_freq = base ** (-torch.arange(0, quarter, dtype=torch.float64) * 4 / head_dim)
        rows = torch.arange(h, dtype=torch.float64).repeat_interleave(w)
        cols = torch.arange(w, dtype=torch.float64).repeat(h)
        return torch.cat([rows[:, None] * inv_freq, cols[:, None] * inv_freq], dim=1).float()
    raise ValueError(f"unknown RoPE mode {mode!r}; choose from {ROPE_MODES}")


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, grid: tuple[int, int], mode: str = "2d", num_prefix_tokens: int = 1):
        super().__init__()
        self.mode, self.grid, self.num_prefix_tokens = mode, tuple(grid), num_prefix_tokens
        angles = rope_angles(head_dim, self.grid, mode)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate x (B, H, N, d); the first `num_prefix_tokens` tokens pass unchanged."""
        p = self.num_prefix_tokens
        prefix, tokens = x[..., :p, :], x[..., p:, :]
        if tokens.shape[-2] != self.cos.shape[0]:
            raise ValueError(f"RoPE was built for a {self.grid} grid ({self.cos.shape[0]} tokens), "
                             f"got {tokens.shape[-2]}")
        pairs = tokens.float().unflatten(-1, (-1, 2))
        a, b = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack([a * self.cos - b * self.sin, a * self.sin + b * self.cos], dim=-1)
        return torch.cat([prefix, rotated.flatten(-2).to(x.dtype)], dim=-2)
