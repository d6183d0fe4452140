"""PiT: Pooling-based Vision Transformer (Heo et al., arXiv 2103.16302, ICCV 2021) from timm, with vitviz kernels.

timm's `PoolingVisionTransformer` is built as it is (no distillation token), then the `attn` of every
block (timm's ViT `Block`) is replaced by `StageAttention`, vitviz's `TokenAttention` (same `qkv` / `proj`
names, so timm's PiT weights load unchanged) that knows its stage's token grid. Vision X-formers' swap
(arXiv 2107.02239) is one argument, `attention="softmax" | "nystrom" | "performer"`.

Stages: a class token plus an h x w grid of patch tokens; between stages a pooling layer (depthwise
conv, kernel 3, stride 2, padding 1, on the grid; a Linear on the class token) halves the grid
((h - 1) // 2 + 1) and doubles the width. `StageAttention.grid` / `kv_grid` (equal) and `has_cls`
(True) give capture the grid of each layer; `PiT.stage_grids` lists them.

Configs: `vitviz_pit_ti_224_*` = timm `pit_ti_224` (patch 16, stride 8: 27x27 -> 14x14 -> 7x7 tokens;
base dim 32, heads 2/4/8 -> widths 64/128/256; depths 2/6/4; MLP ratio 4), 4.85M parameters (the
paper: 4.9M). The CIFAR-native `vitviz_pit_*_32` [ours]: PiT-Ti's widths and depths on a patch-4,
stride-2 stem with padding 1 (the original's kernel = 2 x stride overlap), so 32 px give 16x16 -> 8x8
-> 4x4 tokens (plus the class token). timm's PiT cannot checkpoint gradients; `PiT` can (per block).
"""
from __future__ import annotations

from functools import partial

import torch
from timm.layers import to_2tuple, trunc_normal_
from timm.models import checkpoint, generate_default_cfgs, register_model
from timm.models.pit import ConvEmbedding, PoolingVisionTransformer
from torch import nn

from ..layers.token_attention import TokenAttention
from ._common import build_variant, cifar_cfg, imagenet_cfg, papers

PIT_KINDS = ("softmax", "nystrom", "performer")
KERNEL_OPTIONS = ("num_landmarks", "pinv_iterations", "conv_kernel", "num_features")

PIT_TI_224 = dict(img_size=224, patch_size=16, stride=8, padding=0, base_dims=(32, 32, 32), depth=(2, 6, 4),
                  heads=(2, 4, 8), mlp_ratio=4)
PIT_TI_32 = dict(PIT_TI_224, img_size=32, patch_size=4, stride=2, padding=1)


def pooled(grid: tuple[int, int]) -> tuple[int, int]:
    """The grid after PiT's pooling (kernel 3, stride 2, padding 1)."""
    return tuple((g - 1) // 2 + 1 for g in grid)


class StageAttention(TokenAttention):
    """`TokenAttention` over a class token plus one stage's h x w grid (`grid` = `kv_grid`, `has_cls`)."""

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], has_cls: bool = True, **kwargs):
        super().__init__(dim, num_heads, seq_len=grid[0] * grid[1] + int(has_cls), **kwargs)
        self.grid = self.kv_grid = tuple(grid)
        self.has_cls = has_cls
        self.map_notes = ("PiT: a pooling layer (depthwise conv, stride 2) between stages halves the token grid; each "
                          "layer's map is over its own stage's tokens, the class token first.",)


class CheckpointedBlocks(nn.Sequential):
    """A stage's blocks (same state-dict keys as timm's `nn.Sequential`), each checkpointed when asked."""
    grad_checkpointing = False

    def forward(self, x):
        for block in self:
            x = checkpoint(block, x) if self.grad_checkpointing and torch.is_grad_enabled() else block(x)
        return x


class PiT(PoolingVisionTransformer):
    """timm's `PoolingVisionTransformer` (no distillation token) with vitviz attention kernels; `padding` pads the
    patch-embedding conv (timm's has none)."""
    num_prefix_tokens = 1

    def __init__(self, img_size=224, patch_size: int = 16, stride: int = 8, padding: int = 0, in_chans: int = 3,
                 attention: str = "softmax", attn_drop_rate: float = 0.0, proj_drop_rate: float = 0.0, **kwargs):
        if attention not in PIT_KINDS:
            raise ValueError(f"PiT attention must be one of {PIT_KINDS}, got {attention!r}")
        if kwargs.pop("distilled", False):
            raise ValueError("vitviz's PiT has no distillation token")
        kernel_options = {k: kwargs.pop(k) for k in KERNEL_OPTIONS if k in kwargs}
        height, width = to_2tuple(img_size)
        if height != width:
            raise ValueError(f"PiT builds square token grids; img_size must be square, got {(height, width)}")
        super().__init__(img_size=height, patch_size=patch_size, stride=stride, in_chans=in_chans,
                         attn_drop_rate=attn_drop_rate, proj_drop_rate=proj_drop_rate, **kwargs)
        if padding:
            dim = self.pos_embed.shape[1]
            self.patch_embed = ConvEmbedding(in_chans, dim, height, patch_size, stride, padding)
            self.pos_embed = nn.Parameter(torch.zeros(1, dim, *self.patch_embed.grid_size))
            trunc_normal_(self.pos_embed, std=0.02)
        self.attention = attention
        grid = tuple(self.patch_embed.grid_size)
        self.stage_grids = []
        for stage in self.transformers:
            if stage.pool is not None:
                grid = pooled(grid)
            self.stage_grids.append(grid)
            for block in stage.blocks:
                old = block.attn
                block.attn = StageAttention(old.qkv.in_features, old.num_heads, grid, kind=attention,
                                            attn_drop=attn_drop_rate, proj_drop=proj_drop_rate, **kernel_options)
            stage.blocks = CheckpointedBlocks(*stage.blocks)

    def set_grad_checkpointing(self, enable: bool = True):
        for stage in self.transformers:
            stage.blocks.grad_checkpointing = enable


def _pit(config: dict, **kwargs) -> PiT:
    return PiT(**{**config, **kwargs})


def _create_pit(variant, pretrained, config, **kwargs):
    return build_variant(partial(_pit, config), variant, pretrained, **kwargs)


_PIT_CFG = dict(first_conv="patch_embed.conv", classifier="head")


def _papers(kind: str) -> dict:
    return papers("pit") if kind == "softmax" else papers("pit", "vix", kind)


default_cfgs = generate_default_cfgs({
    **{f"vitviz_pit_{kind}_32": cifar_cfg(**_PIT_CFG, **_papers(kind)) for kind in PIT_KINDS},
    **{f"vitviz_pit_ti_224_{kind}": imagenet_cfg(**_PIT_CFG, crop_pct=0.9, **_papers(kind)) for kind in PIT_KINDS},
})


@register_model
def vitviz_pit_softmax_32(pretrained=False, **kwargs):
    return _create_pit("vitviz_pit_softmax_32", pretrained, dict(PIT_TI_32, attention="softmax"), **kwargs)


@register_model
def vitviz_pit_nystrom_32(pretrained=False, **kwargs):
    return _create_pit("vitviz_pit_nystrom_32", pretrained, dict(PIT_TI_32, attention="nystrom"), **kwargs)


@register_model
def vitviz_pit_performer_32(pretrained=False, **kwargs):
    return _create_pit("vitviz_pit_performer_32", pretrained, dict(PIT_TI_32, attention="performer"), **kwargs)


@register_model
def vitviz_pit_ti_224_softmax(pretrained=False, **kwargs):
    return _create_pit("vitviz_pit_ti_224_softmax", pretrained, dict(PIT_TI_224, attention="softmax"), **kwargs)


@register_model
def vitviz_pit_ti_224_nystrom(pretrained=False, **kwargs):
    return _create_pit("vitviz_pit_ti_224_nystrom", pretrained, dict(PIT_TI_224, attention="nystrom"), **kwargs)


@register_model
def vitviz_pit_ti_224_performer(pretrained=False, **kwargs):
    return _create_pit("vitviz_pit_ti_224_performer", pretrained, dict(PIT_TI_224, attention="performer"),
                       **kwargs)
