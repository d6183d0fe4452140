"""Vision X-formers at 32 px (arXiv 2107.02239; WACV 2022): timm's VisionTransformer with every
block's `attn` swapped for `vitviz.layers.TokenAttention` carrying one attention kernel.

Backbone (the authors' CIFAR scripts): dim 128, depth 4, 4 heads x 32, MLP 256, class token,
learned 1D position embedding. Patch size: the authors use 1 (1,024 tokens); our default is 2
(256 tokens + class token) so the app stays interactive on a CPU [ours]; pass patch_size=1 for
the paper's setting.

Options on every variant:
- embed = "linear" (ViT's patch projection) | "conv" (3 conv 3x3 layers 3 -> 32 -> 64 -> 128, no
  activation, as the authors' code) | "conv_bn" (the same with BN + GELU between the convs);
- pos = "learned" | "rope1d" (rotary over the flattened index, the authors' code) |
  "rope2d" (axial rotary, our default for RoPE on images). RoPE replaces the position embedding.
- kernel options, e.g. num_features (Performer), k (Linformer), num_landmarks / pinv_iterations /
  conv_kernel (Nystromformer).
"""
from __future__ import annotations

from functools import partial

from timm.layers import PatchEmbed, trunc_normal_
from timm.models import generate_default_cfgs, register_model
from torch import nn
from timm.models.vision_transformer import VisionTransformer

from ..layers.patch_embed import ConvStemPatchEmbed
from ..layers.rope import RotaryEmbedding
from ..layers.token_attention import TokenAttention
from ._common import build_variant, cifar_cfg, declare_first_conv, papers

VIX_32 = dict(img_size=32, patch_size=2, embed_dim=128, depth=4, num_heads=4, mlp_ratio=2.0)
EMBEDS = ("linear", "conv", "conv_bn")
POSITIONS = ("learned", "rope1d", "rope2d")


def patch_embed_layer(embed: str):
    """timm-compatible patch-embedding class for embed = linear | conv | conv_bn."""
    if embed == "linear":
        return PatchEmbed
    if embed in ("conv", "conv_bn"):
        return partial(ConvStemPatchEmbed, bn_act=embed == "conv_bn")
    raise ValueError(f"unknown embed {embed!r}; choose from {EMBEDS}")


def _vix(attention: str, embed: str = "linear", pos: str = "learned", **kwargs) -> VisionTransformer:
    if pos not in POSITIONS:
        raise ValueError(f"unknown pos {pos!r}; choose from {POSITIONS}")
    kernel_options = {k: kwargs.pop(k) for k in ("num_features", "k", "num_landmarks", "pinv_iterations",
                                                 "conv_kernel") if k in kwargs}
    args = dict(VIX_32, **kwargs)
    model = VisionTransformer(embed_layer=patch_embed_layer(embed),
                              pos_embed="learn" if pos == "learned" else "none", **args)
    grid = tuple(model.patch_embed.grid_size)
    num_tokens = grid[0] * grid[1] + model.num_prefix_tokens
    dim, heads = args["embed_dim"], args["num_heads"]
    for block in model.blocks:
        rope = None if pos == "learned" else RotaryEmbedding(dim // heads, grid, pos[-2:], model.num_prefix_tokens)
        block.attn = TokenAttention(dim, heads, attention, seq_len=num_tokens, rope=rope,
                                    qkv_bias=args.get("qkv_bias", True), attn_drop=args.get("attn_drop_rate", 0.0),
                                    proj_drop=args.get("proj_drop_rate", 0.0), **kernel_options)
        for linear in (block.attn.qkv, block.attn.proj):  # timm's ViT init for the projections
            trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)
    if embed != "linear":
        declare_first_conv(model, "patch_embed.proj.0")
    model.vitviz_attention = attention
    return model


def _create_vix(variant: str, pretrained: bool, attention: str, **kwargs) -> VisionTransformer:
    return build_variant(partial(_vix, attention), variant, pretrained, **kwargs)


_PAPERS = {"softmax": ("vix", "vit"), "performer": ("vix", "performer"), "linformer": ("vix", "linformer"),
           "nystrom": ("vix", "nystrom")}
default_cfgs = generate_default_cfgs({
    f"vitviz_vit_{kind}_32": cifar_cfg(first_conv="patch_embed.proj", classifier="head", **papers(*keys))
    for kind, keys in _PAPERS.items()
})


@register_model
def vitviz_vit_softmax_32(pretrained=False, **kwargs):
    return _create_vix("vitviz_vit_softmax_32", pretrained, "softmax", **kwargs)


@register_model
def vitviz_vit_performer_32(pretrained=False, **kwargs):
    return _create_vix("vitviz_vit_performer_32", pretrained, "performer", **kwargs)


@register_model
def vitviz_vit_linformer_32(pretrained=False, **kwargs):
    return _create_vix("vitviz_vit_linformer_32", pretrained, "linformer", **kwargs)


@register_model
def vitviz_vit_nystrom_32(pretrained=False, **kwargs):
    return _create_vix("vitviz_vit_nystrom_32", pretrained, "nystrom", **kwargs)
