"""FNet at 32 px (Lee-Thorp et al. 2021, as used in Vision X-formers arXiv 2107.02239).

Each block replaces attention by parameter-free Fourier token mixing, Re(FFT_seq(FFT_hidden(x))),
followed by an MLP. Same size as the ViX ViT (dim 128, depth 4, MLP 256, patch 2 [ours]), learned
position embedding, pre-norm blocks [ours; FNet's paper uses post-norm], average-pooled head
(Fourier mixing has no class token to read). `embed` = linear | conv | conv_bn as for the ViT.
"""
from __future__ import annotations

import torch
from timm.layers import Mlp, trunc_normal_
from timm.models import checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from ..layers.fourier import FourierMixing
from ._common import build_variant, cifar_cfg, declare_first_conv, papers
from .vit import patch_embed_layer


class FNetBlock(nn.Module):
    def __init__(self, dim: int, mlp_ratio: float, drop: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mixing = FourierMixing()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x):
        x = x + self.mixing(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class FNet(nn.Module):
    def __init__(self, img_size: int = 32, patch_size: int = 2, in_chans: int = 3, num_classes: int = 10,
                 embed_dim: int = 128, depth: int = 4, mlp_ratio: float = 2.0, embed: str = "linear",
                 drop_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        self.num_classes, self.num_features, self.embed_dim = num_classes, embed_dim, embed_dim
        self.in_chans, self.global_pool = in_chans, global_pool
        self.num_prefix_tokens = 0
        self.grad_checkpointing = False
        self.patch_embed = patch_embed_layer(embed)(img_size=img_size, patch_size=patch_size,
                                                    in_chans=in_chans, embed_dim=embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches, embed_dim))
        self.blocks = nn.ModuleList([FNetBlock(embed_dim, mlp_ratio, drop_rate) for _ in range(depth)])
        self.feature_info = [dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}") for i in range(depth)]
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(_init_linear)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None):
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def no_weight_decay(self):
        return {"pos_embed"}

    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    def _blocks(self, x, blocks):
        for block in blocks:
            x = checkpoint(block, x) if self.grad_checkpointing and torch.is_grad_enabled() else block(x)
            yield x

    def forward_features(self, x):
        x = self.patch_embed(x) + self.pos_embed
        for x in self._blocks(x, self.blocks):
            pass
        return self.norm(x)

    def forward_intermediates(self, x, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False):
        """timm's feature-extraction interface: the outputs of the blocks `indices` (last n if an int),
        as (B, C, H, W) maps of the patch grid (output_fmt NCHW) or (B, N, C) tokens (NLC)."""
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be NCHW or NLC, got {output_fmt!r}")
        take, last = feature_take_indices(len(self.blocks), indices)
        blocks = self.blocks[:last + 1] if stop_early else self.blocks
        B, grid = x.shape[0], self.patch_embed.dynamic_feat_size(x.shape[-2:])
        intermediates = []
        h = self.patch_embed(x) + self.pos_embed
        for i, h in enumerate(self._blocks(h, blocks)):
            if i in take:
                y = self.norm(h) if norm else h
                intermediates.append(y.transpose(1, 2).reshape(B, -1, *grid) if output_fmt == "NCHW" else y)
        return intermediates if intermediates_only else (self.norm(h), intermediates)

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True):
        take, last = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:last + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean(dim=1)
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _init_linear(module):
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


default_cfgs = generate_default_cfgs({
    "vitviz_fnet_32": cifar_cfg(first_conv="patch_embed.proj", classifier="head", **papers("fnet", "vix")),
})


def _fnet(**kwargs) -> FNet:
    model = FNet(**kwargs)
    if kwargs.get("embed", "linear") != "linear":
        declare_first_conv(model, "patch_embed.proj.0")
    return model


@register_model
def vitviz_fnet_32(pretrained=False, **kwargs):
    return build_variant(_fnet, "vitviz_fnet_32", pretrained, **kwargs)
