"""Convolutional patch embeddings.

- `ConvStemPatchEmbed`: the Vision X-formers "hybrid" embedding, three 3x3 convs
  (3 -> C/4 -> C/2 -> C, i.e. 3 -> 32 -> 64 -> 128 at C = 128) in place of the linear patch
  projection; the last log2(patch) convs have stride 2. The authors' code has no activation
  between them (default); `bn_act=True` adds BatchNorm + GELU. A subclass of timm's PatchEmbed,
  so timm's VisionTransformer and MlpMixer accept it as `embed_layer` / stem.
- `XcitStem4`: XCiT's conv stem shortened to two stride-2 conv3x3+BN layers (patch 4), for the
  CIFAR-native XCiT (32 px -> 8 x 8 tokens); same interface as timm's xcit ConvPatchEmbed.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from timm.layers import PatchEmbed, to_2tuple
from timm.models.xcit import conv3x3


def conv_stem(in_chans: int, embed_dim: int, patch_size: int, bn_act: bool = False) -> nn.Sequential:
    downsamples = int(math.log2(patch_size))
    if 2 ** downsamples != patch_size or downsamples > 3:
        raise ValueError(f"the conv stem supports patch sizes 1, 2, 4, 8; got {patch_size}")
    widths = [in_chans, embed_dim // 4, embed_dim // 2, embed_dim]
    layers = []
    for i in range(3):
        stride = 2 if i >= 3 - downsamples else 1
        layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, stride=stride, padding=1, bias=not bn_act or i == 2))
        if bn_act and i < 2:
            layers += [nn.BatchNorm2d(widths[i + 1]), nn.GELU()]
    return nn.Sequential(*layers)


class ConvStemPatchEmbed(PatchEmbed):
    def __init__(self, *args, bn_act: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.proj = conv_stem(self.proj.in_channels, self.proj.out_channels, self.patch_size[0], bn_act)


class XcitStem4(nn.Module):
    def __init__(self, img_size: int | tuple[int, int] = 32, in_chans: int = 3, embed_dim: int = 128,
                 act_layer=nn.GELU):
        super().__init__()
        self.patch_size = 4
        height, width = to_2tuple(img_size)
        self.num_patches = (height // 4) * (width // 4)
        self.proj = nn.Sequential(conv3x3(in_chans, embed_dim // 2, 2), act_layer(),
                                  conv3x3(embed_dim // 2, embed_dim, 2))

    def forward(self, x: torch.Tensor):
        x = self.proj(x)
        Hp, Wp = x.shape[2], x.shape[3]
        return x.flatten(2).transpose(1, 2), (Hp, Wp)
