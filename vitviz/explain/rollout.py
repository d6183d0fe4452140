"""Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020).

Rollout follows how much each input token contributes to each output token across the depth of
the network by multiplying the (head-fused, residual-corrected) attention matrices of all blocks:

    A_l' = rownorm(0.5 * fuse(A_l) + 0.5 * I)        (residual=True)
    R    = A_L' @ ... @ A_2' @ A_1'

Row i of R is a distribution over input tokens for output token i.

Only token-to-token, row-stochastic attention can be rolled out, and `attention_rollout` refuses
anything else with a ValueError saying why:
- the caller states the model's token count (`tokens`); maps of another size are refused. XCiT's
  XCA maps are channel-by-channel (d_h x d_h per head) and its class-attention maps are
  (B, heads, 1, N): neither is a token map, whatever its size happens to be;
- every row must be a probability distribution (entries >= 0, sums 1). Nystromformer's exact
  operator is signed, with rows that do not sum to 1; renormalising it as if it were
  probabilities would misstate what the model computes, so it is refused
  (`rollout_problem` gives the reason without raising).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

HEAD_FUSIONS = ("mean", "min", "max")

__all__ = ["HEAD_FUSIONS", "fuse_heads", "attention_rollout", "rollout_problem", "cls_rollout_map", "upsample_map"]

STOCHASTIC_TOLERANCE = 1e-3   # |row sum - 1| and -min(entry) allowed for a row-stochastic map


def _as_tensor(x) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.float()
    return t


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def fuse_heads(attention: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """(B, heads, N, M) -> (B, N, M) by the mean, elementwise min or elementwise max over heads."""
    if head_fusion == "mean":
        return attention.mean(dim=1)
    if head_fusion == "min":
        return attention.amin(dim=1)
    if head_fusion == "max":
        return attention.amax(dim=1)
    raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")


def _discard_lowest(a: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the lowest `ratio` fraction of the off-diagonal entries of each sample's (N, N) matrix."""
    B, N, _ = a.shape
    k = int(ratio * (N * N - N))
    if k <= 0:
        return a
    diag = torch.eye(N, dtype=torch.bool, device=a.device).flatten()
    flat = a.reshape(B, N * N)
    candidates = flat.masked_fill(diag, float("inf"))  # the diagonal is never discarded
    idx = candidates.topk(k, dim=-1, largest=False).indices
    return flat.scatter(-1, idx, 0.0).reshape(B, N, N)


def _row_normalise(a: torch.Tensor) -> torch.Tensor:
    """Rows divided by their sums; a row that sums to 0 becomes the identity row (keeps rows stochastic)."""
    sums = a.sum(dim=-1, keepdim=True)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
    empty = sums <= 0
    return torch.where(empty, eye, a / torch.where(empty, torch.ones_like(sums), sums))


def rollout_problem(attentions: Sequence[torch.Tensor], tokens: int) -> str | None:
    """Why `attention_rollout(attentions, tokens=tokens)` would refuse these maps, or None if it accepts them."""
    blocks = list(attentions)
    if not blocks:
        return "attention_rollout needs at least one block of attention"
    first_shape = None
    for i, attn in enumerate(blocks):
        attn = _as_tensor(attn)
        if attn.ndim != 4 or attn.shape[-1] != attn.shape[-2]:
            return (f"attention_rollout needs square token attention (B, heads, N, N); block {i} has shape "
                    f"{tuple(attn.shape)}")
        if attn.shape[-1] != tokens:
            return (f"block {i} is {attn.shape[-1]} x {attn.shape[-1]}, but the model has {tokens} tokens: not a "
                    "token-to-token map (XCiT's XCA maps are d_h x d_h over channels)")
        if first_shape is None:
            first_shape = attn.shape
        elif attn.shape[0] != first_shape[0]:
            return (f"block {i} has shape {tuple(attn.shape)}, but block 0 has {tuple(first_shape)}: every block "
                    "needs the same batch size")
        low, sums = float(attn.min()), attn.sum(-1)
        off = float((sums - 1).abs().max())
        if low < -STOCHASTIC_TOLERANCE or off > STOCHASTIC_TOLERANCE:
            return (f"block {i} is not row-stochastic (smallest entry {low:.3g}, row sums "
                    f"{float(sums.min()):.3g} to {float(sums.max()):.3g}): rollout multiplies probability "
                    "distributions, and renormalising a signed operator would misstate it")
    return None


def attention_rollout(attentions: Sequence[torch.Tensor], head_fusion: str = "mean",
                      discard_ratio: float = 0.0, residual: bool = True, *, tokens: int) -> torch.Tensor:
    """Roll attention out through the blocks; returns R (B, N, N) with rows summing to 1.

    attentions: one tensor per block, in forward order, each (B, heads, N, N) with the same B and N
        (a stacked (blocks, B, heads, N, N) tensor works too); every row a probability distribution
        (within 1e-3), else ValueError (see `rollout_problem`).
    tokens: the model's token count N (patch tokens + class token); maps of any other size are
        refused, which is how channel maps (XCiT's d_h x d_h) are told apart from token maps.
    head_fusion: "mean", "min" or "max" over heads.
    discard_ratio: per block and per sample, the lowest `discard_ratio` fraction of the off-diagonal
        entries of the fused map is set to 0 before the residual is added (the diagonal is never
        discarded). 0 keeps everything.
    residual: use 0.5 * A + 0.5 * I for the skip connection (Abnar & Zuidema); otherwise A alone.

    Every block's matrix is row-normalised after these steps, then R = A_L @ ... @ A_1 per sample.
    Computed in float32 (float64 if the input is float64) on the input's device.
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if not 0.0 <= float(discard_ratio) <= 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1], got {discard_ratio}")
    blocks = list(attentions)
    problem = rollout_problem(blocks, tokens)
    if problem is not None:
        raise ValueError(problem)
    rollout = None
    for attn in blocks:
        attn = _as_tensor(attn)
        a = fuse_heads(attn.to(_work_dtype(attn)), head_fusion)
        if discard_ratio > 0:
            a = _discard_lowest(a, float(discard_ratio))
        if residual:
            eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
            a = 0.5 * a + 0.5 * eye
        a = _row_normalise(a)
        rollout = a if rollout is None else torch.bmm(a, rollout.to(a.device, a.dtype))
    return rollout


def _grid_of(grid, tokens: int) -> tuple[int, int]:
    if grid is None:
        side = int(round(tokens ** 0.5))
        if side * side != tokens:
            raise ValueError(f"{tokens} patch tokens are not a square grid; pass grid=(h, w)")
        return side, side
    if isinstance(grid, int):
        return grid, grid
    h, w = (int(g) for g in grid)
    return h, w


def cls_rollout_map(rollout: torch.Tensor, grid: int | tuple[int, int] | None = None,
                    has_cls: bool = True, pool: torch.Tensor | None = None) -> torch.Tensor:
    """Per-patch relevance (B, h, w) from a rollout (B, N, N).

    has_cls=True: the class token's row, without its own column 0 (the N - 1 patch tokens).
    has_cls=False: the mean over all query rows (how much every patch is attended to on average), or, with
    `pool` (B, N) or (N,), the pool-weighted sum of the rows, pool @ R: CCT's head reads sum_i w_i x_i of the
    last tokens (sequence pooling, no class token), which is one more attention row over the tokens, without
    a residual (the pooled vector has no skip path), so its rollout row is w @ R.
    grid: (h, w), an int for a square grid, or None to infer a square grid.
    """
    rollout = _as_tensor(rollout)
    if rollout.ndim == 2:
        rollout = rollout.unsqueeze(0)
    if rollout.ndim != 3 or rollout.shape[-1] != rollout.shape[-2]:
        raise ValueError(f"cls_rollout_map needs a rollout of shape (B, N, N), got {tuple(rollout.shape)}")
    if pool is not None:
        if has_cls:
            raise ValueError("pool weights replace the class token's row; a model has one or the other")
        pool = _as_tensor(pool).to(rollout.device, rollout.dtype).reshape(-1, rollout.shape[-1])
        if pool.shape[0] not in (1, rollout.shape[0]):
            raise ValueError(f"pool {tuple(pool.shape)} does not match rollout {tuple(rollout.shape)}")
        relevance = (pool.unsqueeze(1) @ rollout)[:, 0]
    else:
        relevance = rollout[:, 0, 1:] if has_cls else rollout.mean(dim=1)
    h, w = _grid_of(grid, relevance.shape[-1])
    if h * w != relevance.shape[-1]:
        raise ValueError(f"grid {h}x{w} does not match {relevance.shape[-1]} patch tokens "
                         f"(rollout {tuple(rollout.shape)}, has_cls={has_cls})")
    return relevance.reshape(rollout.shape[0], h, w)


def upsample_map(relevance: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of (B, h, w) maps (or one (h, w) map) to `size`, each min-max scaled to [0, 1].

    A constant map becomes all zeros.
    """
    m = _as_tensor(relevance)
    single = m.ndim == 2
    if single:
        m = m.unsqueeze(0)
    if m.ndim != 3:
        raise ValueError(f"upsample_map needs maps of shape (B, h, w) or (h, w), got {tuple(relevance.shape)}")
    size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    m = m.to(_work_dtype(m))
    up = F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    flat = up.reshape(up.shape[0], -1)
    lo = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - lo
    flat = torch.where(span > 0, (flat - lo) / torch.where(span > 0, span, torch.ones_like(span)),
                       torch.zeros_like(flat))
    out = flat.reshape(up.shape)
    return out[0] if single else out
