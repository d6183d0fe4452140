"""LeViT (Graham et al., arXiv 2104.01136, ICCV 2021) from timm, with its attention run by vitviz kernels.

timm's `Levit` (linear mode, one classifier: no distillation head) is built as it is, then every
attention module is replaced by a subclass of timm's own that computes q, k, v with timm's layers
and hands them to a `vitviz.layers` kernel, so Vision X-formers' swap (arXiv 2107.02239) is one
argument, `attention="softmax" | "nystrom" | "performer"`. State-dict keys are timm's: the softmax
variants load timm's LeViT weights unchanged.

Two kinds of attention module:
- `KernelAttention` (timm `Attention`, the blocks): N x N over the stage's grid, with a residual.
- `KernelAttentionDownsample` (timm `AttentionDownsample`, opening stages 2 and 3): keys and values
  on all N_k tokens of the grid, queries only on every second token of every second row, so its maps
  are N_q x N_k (N_q ~ N_k / 4), and its output *replaces* the tokens (no residual): the next stage's
  tokens are these queries.
Both expose `grid` (queries), `kv_grid` (keys), `has_cls` (False: LeViT mean-pools) and `map_notes`
(what their maps include, for capture's notes) for inspection, and `subsamples` (True for the
downsampling one) for relevance.

Attention biases. LeViT adds a learned bias per head and relative offset (|dy|, |dx|) to the logits,
softmax(q k^T / sqrt(d) + B): B is part of every map capture shows. Softmax: exact (SDPA's additive
mask; the explicit path when a map is asked for). Nystromformer: B enters its three softmax factors
averaged over the landmark segments exactly as the logits are (B M_k^T, M_q B M_k^T, M_q B) [ours]; with
all tokens as landmarks it is softmax(q k^T / sqrt(d) + B). Performer: FAVOR+ factorises exp(q k^T) as
phi(q) phi(k)^T; exp(B) is a full N_q x N_k factor that breaks the linear-time product, so the
Performer variants have no attention biases [ours] (the catalog says so).

Configs: `vitviz_levit_128s_224_*` = timm `levit_128s` without its distillation head (dims 128/256/384,
key_dim 16, heads 4/6/8, depths 2/3/4, stride-16 stem: 14x14 -> 7x7 -> 4x4 tokens); 7.39M parameters
(the paper's 7.8M counts the distillation head). The CIFAR-native `vitviz_levit_*_32` [ours]: the same
LeViT-128S widths on a stride-4 stem (two 3x3 stride-2 ConvNorm + Hardswish, 3 -> 64 -> 128) so 32 px
give 8x8 -> 4x4 -> 2x2 tokens.
"""
from __future__ import annotations

from functools import partial

import torch
from timm.layers import get_act_layer, to_2tuple
from timm.models import generate_default_cfgs, register_model
from timm.models.levit import Attention, AttentionDownsample, ConvNorm, Levit, LevitDownsample, NormLinear
from torch import nn

from ..layers.attention import make_kernel
from ._common import build_variant, cifar_cfg, imagenet_cfg, papers

LEVIT_KINDS = ("softmax", "nystrom", "performer")
BIASED_KINDS = ("softmax", "nystrom")  # kernels that take LeViT's attention biases
KERNEL_OPTIONS = ("num_landmarks", "pinv_iterations", "conv_kernel", "num_features")

LEVIT_128S_224 = dict(img_size=224, embed_dim=(128, 256, 384), key_dim=16, num_heads=(4, 6, 8), depth=(2, 3, 4),
                      stem_stride=16)
LEVIT_128S_32 = dict(LEVIT_128S_224, img_size=32, stem_stride=4)


class Stem4(nn.Sequential):
    """Stride-4 stem [ours], timm's Stem16 cut to two convs: ConvNorm 3x3/2 (in -> out/2), act, ConvNorm 3x3/2."""

    def __init__(self, in_chs: int, out_chs: int, act_layer: type[nn.Module]):
        super().__init__()
        self.stride = 4
        self.add_module("conv1", ConvNorm(in_chs, out_chs // 2, 3, stride=2, padding=1))
        self.add_module("act1", act_layer())
        self.add_module("conv2", ConvNorm(out_chs // 2, out_chs, 3, stride=2, padding=1))


class _KernelMixin:
    """What both LeViT attention modules share: the kernel, and the bias it gets (or not)."""
    subsamples = False
    has_cls = False

    def _init_kernel(self, kind: str, n_q: int, n_k: int, kernel_options: dict):
        if kind not in LEVIT_KINDS:
            raise ValueError(f"LeViT attention must be one of {LEVIT_KINDS}, got {kind!r}")
        self.kind = kind
        if kind == "nystrom" and n_q != n_k:  # the residual conv on V needs as many queries as keys
            kernel_options = {**kernel_options, "conv_kernel": 0}
        self.kernel = make_kernel(kind, self.key_dim, self.num_heads, seq_len=n_k, **kernel_options)
        if kind not in BIASED_KINDS:  # FAVOR+ cannot include an additive logit bias: none at all
            del self.attention_biases
            self.register_parameter("attention_biases", None)
        kept = "include its learned attention biases" if kind in BIASED_KINDS else \
            "have no attention biases (FAVOR+ cannot include an additive logit bias in linear time)"
        self.map_notes = (f"LeViT ({kind}): the maps {kept}.",)  # for capture's notes

    def reset_parameters(self) -> None:
        if getattr(self, "attention_biases", None) is not None:
            nn.init.zeros_(self.attention_biases)
        self._init_buffers()

    def logit_bias(self) -> tuple[torch.Tensor, ...]:
        """(B,) with B (heads, N_q, N_k) the bias added to the logits, or () without biases. Gathered on every
        call (timm caches it per device in eval mode, which breaks a second backward in eval mode)."""
        if self.attention_biases is None:
            return ()
        return (self.attention_biases[:, self.attention_bias_idxs],)

    def get_attention_biases(self, device: torch.device) -> torch.Tensor:
        return self.attention_biases[:, self.attention_bias_idxs]

    def _attend(self, q, k, v):
        """q, k, v (B, N, heads, d) -> (B, N_q, heads * d_v) by the kernel."""
        out = self.kernel(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), *self.logit_bias())
        return out.transpose(1, 2).reshape(q.shape[0], q.shape[1], self.val_attn_dim)


class KernelAttention(_KernelMixin, Attention):
    """timm's LeViT block attention (linear mode) with a vitviz kernel: the q, k, v, biases and projection
    are timm's, the softmax is the kernel's."""

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4.0, resolution=14,
                 act_layer: type[nn.Module] = nn.SiLU, kind: str = "softmax", **kernel_options):
        super().__init__(dim, key_dim, num_heads, attn_ratio, resolution, use_conv=False, act_layer=act_layer)
        self.grid = self.kv_grid = tuple(self.resolution)
        n = self.grid[0] * self.grid[1]
        self._init_kernel(kind, n, n, kernel_options)

    @classmethod
    def like(cls, attn: Attention, kind: str, **kernel_options) -> "KernelAttention":
        return cls(attn.qkv.linear.in_features, attn.key_dim, attn.num_heads, attn.val_dim / attn.key_dim,
                   attn.resolution, type(attn.proj.act), kind, **kernel_options)

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = self.qkv(x).view(B, N, self.num_heads, -1).split([self.key_dim, self.key_dim, self.val_dim], dim=3)
        return self.proj(self._attend(q, k, v))


class KernelAttentionDownsample(_KernelMixin, AttentionDownsample):
    """timm's LeViT subsampling attention (linear mode) with a vitviz kernel: queries on every `stride`-th
    token of every `stride`-th row (N_q x N_k maps); the output replaces the tokens (no residual)."""
    subsamples = True

    def __init__(self, in_dim: int, out_dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 2.0,
                 stride: int = 2, resolution=14, use_pool: bool = False, act_layer: type[nn.Module] = nn.SiLU,
                 kind: str = "softmax", **kernel_options):
        super().__init__(in_dim, out_dim, key_dim, num_heads, attn_ratio, stride, resolution, use_conv=False,
                         use_pool=use_pool, act_layer=act_layer)
        self.kv_grid = tuple(self.resolution)
        self.grid = tuple(-(-r // stride) for r in self.resolution)
        self._init_kernel(kind, self.grid[0] * self.grid[1], self.kv_grid[0] * self.kv_grid[1], kernel_options)
        self.map_notes += ("LeViT's subsampling attention (opening stages 2 and 3) has fewer queries than keys: "
                           "queries on every second token of every second row, keys on the whole grid; its output "
                           "replaces the tokens (no residual), so the next stage's grid is the query grid.",)

    @classmethod
    def like(cls, attn: AttentionDownsample, kind: str, **kernel_options) -> "KernelAttentionDownsample":
        return cls(attn.kv.linear.in_features, attn.proj.ln.linear.out_features, attn.key_dim, attn.num_heads,
                   attn.val_dim / attn.key_dim, attn.stride, attn.resolution, attn.q.down.pool is not None,
                   type(attn.proj.act), kind, **kernel_options)

    def forward(self, x):
        B, N, _ = x.shape
        k, v = self.kv(x).view(B, N, self.num_heads, -1).split([self.key_dim, self.val_dim], dim=3)
        q = self.q(x).view(B, -1, self.num_heads, self.key_dim)
        return self.proj(self._attend(q, k, v))


class LeViT(Levit):
    """timm's `Levit` (linear mode, no distillation head) with vitviz attention kernels; `stem_stride` 16 or 8
    uses timm's stems, 4 the two-conv `Stem4` [ours]."""
    num_prefix_tokens = 0

    def __init__(self, img_size=224, in_chans: int = 3, embed_dim=(128, 256, 384), stem_stride: int = 16,
                 act_layer: str = "hard_swish", attention: str = "softmax", use_conv: bool = False, **kwargs):
        if use_conv:
            raise ValueError("vitviz's LeViT runs timm's linear mode (use_conv=False): its kernels take tokens")
        if attention not in LEVIT_KINDS:
            raise ValueError(f"LeViT attention must be one of {LEVIT_KINDS}, got {attention!r}")
        kernel_options = {k: kwargs.pop(k) for k in KERNEL_OPTIONS if k in kwargs}
        if stem_stride in (8, 16):
            stem = dict(stem_type=f"s{stem_stride}")
        elif stem_stride == 4:
            stem = dict(stem_backbone=Stem4(in_chans, embed_dim[0], get_act_layer(act_layer)), stem_stride=4)
        else:
            raise ValueError(f"stem_stride must be 4, 8 or 16, got {stem_stride}")
        super().__init__(img_size=img_size, in_chans=in_chans, embed_dim=tuple(embed_dim), act_layer=act_layer,
                         **stem, **kwargs)
        self.attention = attention
        for stage in self.stages:
            if isinstance(stage.downsample, LevitDownsample):
                down = stage.downsample
                down.attn_downsample = KernelAttentionDownsample.like(down.attn_downsample, attention,
                                                                      **kernel_options)
            for block in stage.blocks:
                block.attn = KernelAttention.like(block.attn, attention, **kernel_options)

    def get_classifier(self) -> nn.Module:
        """The head's Linear (LeViT's head is BatchNorm1d + Linear, `NormLinear`; the BatchNorm stays with it)."""
        return self.head.linear if isinstance(self.head, NormLinear) else self.head


def _levit(config: dict, **kwargs) -> LeViT:
    args = {**config, **kwargs}
    args["img_size"] = to_2tuple(args["img_size"])
    return LeViT(**args)


def _create_levit(variant, pretrained, config, **kwargs):
    return build_variant(partial(_levit, config), variant, pretrained, **kwargs)


_LEVIT_CFG = dict(first_conv="stem.conv1.linear", classifier="head.linear")


def _papers(kind: str) -> dict:
    return papers("levit") if kind == "softmax" else papers("levit", "vix", kind)


default_cfgs = generate_default_cfgs({
    **{f"vitviz_levit_{kind}_32": cifar_cfg(**_LEVIT_CFG, **_papers(kind)) for kind in LEVIT_KINDS},
    **{f"vitviz_levit_128s_224_{kind}": imagenet_cfg(**_LEVIT_CFG, crop_pct=0.9, **_papers(kind))
       for kind in LEVIT_KINDS},
})


@register_model
def vitviz_levit_softmax_32(pretrained=False, **kwargs):
    return _create_levit("vitviz_levit_softmax_32", pretrained, dict(LEVIT_128S_32, attention="softmax"), **kwargs)


@register_model
def vitviz_levit_nystrom_32(pretrained=False, **kwargs):
    return _create_levit("vitviz_levit_nystrom_32", pretrained, dict(LEVIT_128S_32, attention="nystrom"), **kwargs)


@register_model
def vitviz_levit_performer_32(pretrained=False, **kwargs):
    return _create_levit("vitviz_levit_performer_32", pretrained, dict(LEVIT_128S_32, attention="performer"),
                         **kwargs)


@register_model
def vitviz_levit_128s_224_softmax(pretrained=False, **kwargs):
    return _create_levit("vitviz_levit_128s_224_softmax", pretrained, dict(LEVIT_128S_224, attention="softmax"),
                         **kwargs)


@register_model
def vitviz_levit_128s_224_nystrom(pretrained=False, **kwargs):
    return _create_levit("vitviz_levit_128s_224_nystrom", pretrained, dict(LEVIT_128S_224, attention="nystrom"),
                         **kwargs)


@register_model
def vitviz_levit_128s_224_performer(pretrained=False, **kwargs):
    return _create_levit("vitviz_levit_128s_224_performer", pretrained,
                         dict(LEVIT_128S_224, attention="performer"), **kwargs)
