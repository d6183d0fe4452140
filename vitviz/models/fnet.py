"""FNet at 32 px (Lee-Thorp et al. 2021, as used in Vision X-formers arXiv 2107.02239).

Each block replaces attention by parameter-free Fourier token mixing, Re(FFT_seq(FFT_hidden(x))),
followed by an MLP. Same size as the ViX ViT (dim 128, depth 4, MLP 256, patch 2 [ours]), learned
position embedding, pre-norm blocks [ours; FNet's paper uses post-norm], average-pooled head
(Fourier mixing has no class token to read). `embed` = linear | conv | conv_bn as for the ViT.
"""
from __future__ import annotations

import torch
from timm.layers import Mlp, trunc_normal_
from timm.models import register_model
from torch import nn

from ..layers.fourier import FourierMixing
from ._common import drop_hub_args
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
        self.global_pool = global_pool
        self.num_prefix_tokens = 0
        self.patch_embed = patch_embed_layer(embed)(img_size=img_size, patch_size=patch_size,
                                                    in_chans=in_chans, embed_dim=embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches, embed_dim))
        self.blocks = nn.ModuleList([FNetBlock(embed_dim, mlp_ratio, drop_rate) for _ in range(depth)])
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

    def forward_features(self, x):
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

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


@register_model
def vitviz_fnet_32(pretrained=False, **kwargs):
    return FNet(**drop_hub_args("vitviz_fnet_32", pretrained, kwargs))
