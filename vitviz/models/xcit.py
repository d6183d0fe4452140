"""XCiT-N12 with the Q/K/V embeddings of "Redesigning Embedding Layers for Queries, Keys, and
Values in Cross-Covariance Image Transformers" (arXiv 2111.10017; Mathematics 11(8):1933, 2023).

The host is timm's own `Xcit` (XCA blocks, LPI, layer-scale, Fourier positional encoding,
2 class-attention blocks). A variant swaps each XCA block's `attn.qkv` Linear(C, 3C) for a
module from `vitviz.layers.qkv_embedding` with the same (B, N, C) -> (B, N, 3C) contract. The
`linear` variant changes nothing, so it loads timm's `xcit_nano_12_p16_224` weights unchanged (its
default pretrained config, tag `fb_in1k`, points at them: `pretrained=True` downloads them from the Hub).

Two configs per embedding:
- `vitviz_xcit_n12_p16_224_*`: the paper's (224 px, patch 16 conv stem, 196 tokens);
- `vitviz_xcit_n12_p4_32_*`: CIFAR-native (32 px, 2-conv stride-2 stem, 8 x 8 = 64 tokens) [ours].
The class-attention blocks keep their Linear projections by default [ours]; pass
`qkv_in_class_attention=True` to give them the new embedding too.
"""
from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from timm.models.xcit import Xcit, checkpoint_filter_fn
from torch import nn

from ..layers.patch_embed import XcitStem4
from ..layers.qkv_embedding import make_qkv_embedding
from ._common import PAPERS, build_variant, cifar_cfg, imagenet_cfg, papers

XCIT_N12 = dict(embed_dim=128, depth=12, num_heads=4, eta=1.0, tokens_norm=False)


class EmbeddedClassAttention(nn.Module):
    """CaiT/XCiT class attention whose q, k, v come from one Q/K/V embedding module
    (replaces timm's ClassAttn and its three Linears; keeps its output projection)."""

    def __init__(self, embedding: nn.Module, dim: int, num_heads: int, proj: nn.Module):
        super().__init__()
        self.qkv, self.dim, self.num_heads = embedding, dim, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.proj = proj

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        x_cls = F.scaled_dot_product_attention(q[:, :, :1], k, v)
        return self.proj(x_cls.transpose(1, 2).reshape(B, 1, C))


def _xcit(qkv: str, patch_size: int = 16, qkv_options: dict | None = None, qkv_in_class_attention: bool = False,
          **kwargs) -> Xcit:
    qkv_options = dict(qkv_options or {})
    for key in ("hidden", "code_length", "code_mode"):  # convenience: accept them at top level
        if key in kwargs:
            qkv_options[key] = kwargs.pop(key)
    args = dict(XCIT_N12, **kwargs)
    model = Xcit(patch_size=8 if patch_size == 4 else patch_size, **args)
    if patch_size == 4:
        model.patch_embed = XcitStem4(img_size=args.get("img_size", 32), in_chans=args.get("in_chans", 3),
                                      embed_dim=args["embed_dim"])
        for info in model.feature_info:
            info["reduction"] = 4
    if qkv != "linear":
        dim = args["embed_dim"]
        for block in model.blocks:
            block.attn.qkv = make_qkv_embedding(qkv, dim, bias=args.get("qkv_bias", True), **qkv_options)
        if qkv_in_class_attention:
            for block in model.cls_attn_blocks:
                embedding = make_qkv_embedding(qkv, dim, bias=args.get("qkv_bias", True), **qkv_options)
                block.attn = EmbeddedClassAttention(embedding, dim, args["num_heads"], block.attn.proj)
    model.vitviz_qkv = qkv
    return model


def _create_xcit(variant: str, pretrained: bool, qkv: str, patch_size: int, **kwargs) -> Xcit:
    # timm's XCiT filter also takes the official XCiT checkpoints (`model` key, fused class-attention qkv)
    return build_variant(partial(_xcit, qkv), variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                         **{"patch_size": patch_size, **kwargs})


def _cfg(size: int, **kwargs) -> dict:
    cfg = imagenet_cfg(crop_pct=1.0) if size == 224 else cifar_cfg()  # crop 1.0 as timm's XCiT configs
    return {**cfg, "first_conv": "patch_embed.proj.0.0", "classifier": "head", **papers("qkv", "xcit"), **kwargs}


default_cfgs = generate_default_cfgs({
    # the baseline is timm's XCiT-N12: timm's ImageNet weights load into it unchanged (when online)
    "vitviz_xcit_n12_p16_224_linear.fb_in1k": _cfg(224, hf_hub_id="timm/xcit_nano_12_p16_224.fb_in1k",
                                                   license="apache-2.0", paper_name=PAPERS["xcit"][1]),
    **{f"vitviz_xcit_n12_p16_224_{qkv}": _cfg(224) for qkv in ("sne", "psne", "fsne")},
    **{f"vitviz_xcit_n12_p4_32_{qkv}": _cfg(32) for qkv in ("linear", "sne", "psne", "fsne")},
})


@register_model
def vitviz_xcit_n12_p16_224_linear(pretrained=False, **kwargs):
    return _create_xcit("vitviz_xcit_n12_p16_224_linear", pretrained, "linear", 16, **kwargs)


@register_model
def vitviz_xcit_n12_p16_224_sne(pretrained=False, **kwargs):
    return _create_xcit("vitviz_xcit_n12_p16_224_sne", pretrained, "sne", 16, **kwargs)


@register_model
def vitviz_xcit_n12_p16_224_psne(pretrained=False, **kwargs):
    return _create_xcit("vitviz_xcit_n12_p16_224_psne", pretrained, "psne", 16, **kwargs)


@register_model
def vitviz_xcit_n12_p16_224_fsne(pretrained=False, **kwargs):
    return _create_xcit("vitviz_xcit_n12_p16_224_fsne", pretrained, "fsne", 16, **kwargs)


@register_model
def vitviz_xcit_n12_p4_32_linear(pretrained=False, **kwargs):
    return _create_xcit("vitviz_xcit_n12_p4_32_linear", pretrained, "linear", 4, **kwargs)


@register_model
def vitviz_xcit_n12_p4_32_sne(pretrained=False, **kwargs):
    return _create_xcit("vitviz_xcit_n12_p4_32_sne", pretrained, "sne", 4, **kwargs)


@register_model
def vitviz_xcit_n12_p4_32_psne(pretrained=False, **kwargs):
    return _create_xcit("vitviz_xcit_n12_p4_32_psne", pretrained, "psne", 4, **kwargs)


@register_model
def vitviz_xcit_n12_p4_32_fsne(pretrained=False, **kwargs):
    return _create_xcit("vitviz_xcit_n12_p4_32_fsne", pretrained, "fsne", 4, **kwargs)
