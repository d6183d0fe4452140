"""CvT: Convolutional vision Transformer (Wu et al., arXiv 2103.15808, ICCV 2021; microsoft/CvT).

Three stages, each opened by a convolutional token embedding (Conv2d + LayerNorm: the grid
shrinks, the width grows). Attention projects Q, K, V by a depthwise 3x3 conv + BN on the 2D
token map followed by a Linear; K and V use a stride (the "squeezed" projection), so attention
runs over N_q x N_q/s^2. No position embedding anywhere; the class token joins in the last stage
and bypasses the convolutions.

The attention itself is a `vitviz.layers` kernel, so Vision X-formers' swap is one argument:
`vitviz_cvt_nystrom_32` / `vitviz_cvt_performer_32` (Nystromformer's residual conv is dropped:
its keys are strided, and CvT already has convolutional projections [ours]).

Configs: `vitviz_cvt_13_224` (ImageNet CvT-13, ~20M params at 1,000 classes) as in the official
code, so its published weights apply: token-embedding paddings 2/1/1 and attention logits scaled
by the stage width, dim^-0.5 (`attn_scale="dim"`), not by head_dim^-0.5. The CIFAR-native
`vitviz_cvt_32` [ours]: kernels/strides 3/1, 3/2, 3/2 (paddings kernel // 2); dims 64/128/256;
heads 1/2/4; depths 1/2/4; K/V strides 2, 2, 1 (32^2 -> 32^2, 16^2, 8^2 tokens); head_dim^-0.5.
"""
from __future__ import annotations

import math
from functools import partial

import torch
from timm.layers import Mlp, to_2tuple, trunc_normal_
from timm.models import checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from ..layers.attention import make_kernel
from ._common import build_variant, cifar_cfg, imagenet_cfg, papers

CVT_13_224 = dict(img_size=224, kernels=(7, 3, 3), strides=(4, 2, 2), paddings=(2, 1, 1), dims=(64, 192, 384),
                  heads=(1, 3, 6), depths=(1, 2, 10), kv_strides=(2, 2, 2), attn_scale="dim")
CVT_32 = dict(img_size=32, kernels=(3, 3, 3), strides=(1, 2, 2), paddings=(1, 1, 1), dims=(64, 128, 256),
              heads=(1, 2, 4), depths=(1, 2, 4), kv_strides=(2, 2, 1), attn_scale="head")
ATTN_SCALES = ("head", "dim")


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class ConvTokenEmbedding(nn.Module):
    def __init__(self, in_chans: int, dim: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(x)
        grid = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), grid


def conv_projection(dim: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim, 3, stride=stride, padding=1, groups=dim, bias=False), nn.BatchNorm2d(dim))


class ConvAttention(nn.Module):
    """Convolutional projection of Q (stride 1) and K, V (stride kv_stride), then a kernel whose logits
    are scaled by head_dim^-0.5 (attn_scale="head") or dim^-0.5 (attn_scale="dim", official CvT)."""

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], kv_stride: int, has_cls: bool,
                 kind: str = "softmax", qkv_bias: bool = True, attn_scale: str = "head", **kernel_options):
        super().__init__()
        self.num_heads, self.head_dim, self.has_cls = num_heads, dim // num_heads, has_cls
        self.grid = tuple(grid)
        self.kv_grid = tuple(conv_out(g, 3, kv_stride, 1) for g in grid)
        self.conv_q, self.conv_k, self.conv_v = (conv_projection(dim, s) for s in (1, kv_stride, kv_stride))
        self.proj_q, self.proj_k, self.proj_v = (nn.Linear(dim, dim, bias=qkv_bias) for _ in range(3))
        if kind == "nystrom":
            kernel_options.setdefault("conv_kernel", 0)
        if attn_scale not in ATTN_SCALES:
            raise ValueError(f"attn_scale must be one of {ATTN_SCALES}, got {attn_scale!r}")
        if attn_scale == "dim":
            kernel_options["scale"] = dim ** -0.5
        kv_tokens = self.kv_grid[0] * self.kv_grid[1] + int(has_cls)
        self.kernel = make_kernel(kind, self.head_dim, num_heads, seq_len=kv_tokens, **kernel_options)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x):
        B, N, C = x.shape
        return x.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        B, N, C = x.shape
        cls, x = (x[:, :1], x[:, 1:]) if self.has_cls else (None, x)
        x2d = x.transpose(1, 2).reshape(B, C, *self.grid)
        q, k, v = (conv(x2d).flatten(2).transpose(1, 2) for conv in (self.conv_q, self.conv_k, self.conv_v))
        if cls is not None:
            q, k, v = (torch.cat([cls, t], dim=1) for t in (q, k, v))
        q, k, v = self._heads(self.proj_q(q)), self._heads(self.proj_k(k)), self._heads(self.proj_v(v))
        out = self.kernel(q, k, v).transpose(1, 2).reshape(B, N, C)
        return self.proj(out)


class CvTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, grid, kv_stride: int, has_cls: bool, mlp_ratio: float = 4.0,
                 kind: str = "softmax", **kernel_options):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ConvAttention(dim, num_heads, grid, kv_stride, has_cls, kind, **kernel_options)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CvTStage(nn.Module):
    grad_checkpointing = False  # set by CvT.set_grad_checkpointing

    def __init__(self, in_chans: int, dim: int, in_size: int, kernel: int, stride: int, padding: int,
                 num_heads: int, depth: int, kv_stride: int, has_cls: bool, kind: str, **kernel_options):
        super().__init__()
        self.embed = ConvTokenEmbedding(in_chans, dim, kernel, stride, padding)
        size = conv_out(in_size, kernel, stride, padding)
        self.grid = (size, size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if has_cls else None
        self.blocks = nn.ModuleList([CvTBlock(dim, num_heads, self.grid, kv_stride, has_cls, kind=kind,
                                              **kernel_options) for _ in range(depth)])

    def forward(self, x):
        x, grid = self.embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.blocks:
            x = checkpoint(block, x) if self.grad_checkpointing and torch.is_grad_enabled() else block(x)
        return x, grid


class CvT(nn.Module):
    def __init__(self, img_size=32, in_chans=3, num_classes=10, kernels=CVT_32["kernels"],
                 strides=CVT_32["strides"], paddings=None, dims=CVT_32["dims"], heads=CVT_32["heads"],
                 depths=CVT_32["depths"], kv_strides=CVT_32["kv_strides"], attention: str = "softmax",
                 attn_scale: str = "head", **kernel_options):
        super().__init__()
        self.num_classes, self.num_features, self.embed_dim = num_classes, dims[-1], dims[-1]
        self.num_prefix_tokens = 1
        self.stages = nn.ModuleList()
        size, chans = img_size, in_chans
        paddings = tuple(k // 2 for k in kernels) if paddings is None else paddings
        for i in range(len(dims)):
            stage = CvTStage(chans, dims[i], size, kernels[i], strides[i], paddings[i], heads[i], depths[i],
                             kv_strides[i], has_cls=i == len(dims) - 1, kind=attention, attn_scale=attn_scale,
                             **kernel_options)
            self.stages.append(stage)
            size, chans = stage.grid[0], dims[i]
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.in_chans = in_chans
        self.feature_info = [dict(num_chs=dims[i], reduction=math.prod(strides[:i + 1]), module=f"stages.{i}")
                             for i in range(len(dims))]
        self.apply(_init_weights)
        trunc_normal_(self.stages[-1].cls_token, std=0.02)

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes: int, global_pool=None):
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def no_weight_decay(self):
        return {f"stages.{len(self.stages) - 1}.cls_token"}

    def set_grad_checkpointing(self, enable: bool = True):
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def forward_intermediates(self, x, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False):
        """timm's feature-extraction interface: the outputs of the stages `indices` (last n if an int),
        class token left out, as (B, C, H, W) maps (output_fmt NCHW) or (B, N, C) tokens (NLC). `norm`
        applies the final norm to the last stage's output (the only one of its width)."""
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be NCHW or NLC, got {output_fmt!r}")
        take, last = feature_take_indices(len(self.stages), indices)
        stages = self.stages[:last + 1] if stop_early else self.stages
        intermediates = []
        for i, stage in enumerate(stages):
            x, grid = stage(x)
            tokens = x[:, 1:] if stage.cls_token is not None else x
            if i in take:
                y = self.norm(tokens) if norm and i == len(self.stages) - 1 else tokens
                intermediates.append(y.transpose(1, 2).reshape(x.shape[0], -1, *grid) if output_fmt == "NCHW" else y)
            if i < len(self.stages) - 1:
                x = tokens.transpose(1, 2).reshape(x.shape[0], -1, *grid)
        return intermediates if intermediates_only else (self.norm(x), intermediates)

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True):
        take, last = feature_take_indices(len(self.stages), indices)
        if last < len(self.stages) - 1 or prune_norm:
            self.norm = nn.Identity()
        self.stages = self.stages[:last + 1]
        if prune_head:
            self.reset_classifier(0)
        return take

    def forward_features(self, x):
        for i, stage in enumerate(self.stages):
            x, grid = stage(x)
            if i < len(self.stages) - 1:
                x = x.transpose(1, 2).reshape(x.shape[0], -1, *grid)
        return self.norm(x)

    def forward_head(self, x, pre_logits: bool = False):
        x = x[:, 0]
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _init_weights(module):
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _cvt(config: dict, **kwargs) -> CvT:
    args = {**config, **kwargs}
    height, width = to_2tuple(args["img_size"])  # timm passes the config's input size as (H, W)
    if height != width:
        raise ValueError(f"CvT builds square token grids; img_size must be square, got {(height, width)}")
    return CvT(**{**args, "img_size": height})


def _create_cvt(variant, pretrained, config, **kwargs):
    return build_variant(partial(_cvt, config), variant, pretrained, **kwargs)


_CVT_CFG = dict(first_conv="stages.0.embed.proj", classifier="head")
default_cfgs = generate_default_cfgs({
    "vitviz_cvt_32": cifar_cfg(**_CVT_CFG, **papers("cvt")),
    "vitviz_cvt_13_224": imagenet_cfg(**_CVT_CFG, **papers("cvt")),
    "vitviz_cvt_nystrom_32": cifar_cfg(**_CVT_CFG, **papers("cvt", "vix", "nystrom")),
    "vitviz_cvt_performer_32": cifar_cfg(**_CVT_CFG, **papers("cvt", "vix", "performer")),
})


@register_model
def vitviz_cvt_32(pretrained=False, **kwargs):
    return _create_cvt("vitviz_cvt_32", pretrained, CVT_32, **kwargs)


@register_model
def vitviz_cvt_13_224(pretrained=False, **kwargs):
    return _create_cvt("vitviz_cvt_13_224", pretrained, CVT_13_224, **kwargs)


@register_model
def vitviz_cvt_nystrom_32(pretrained=False, **kwargs):
    return _create_cvt("vitviz_cvt_nystrom_32", pretrained, dict(CVT_32, attention="nystrom"), **kwargs)


@register_model
def vitviz_cvt_performer_32(pretrained=False, **kwargs):
    return _create_cvt("vitviz_cvt_performer_32", pretrained, dict(CVT_32, attention="performer"), **kwargs)
