"""MLP-Mixer at 32 px (Tolstikhin et al. 2021, as used in Vision X-formers arXiv 2107.02239).

timm's MlpMixer at the ViX size (dim 128, depth 4, patch 2 -> 256 tokens [ours]; token-mixing
MLP 64, channel-mixing MLP 512: timm's ratios (0.5, 4)). `embed` = linear | conv | conv_bn swaps
the stem for the Vision X-formers convolutional embedding.
"""
from __future__ import annotations

from timm.models import register_model
from timm.models.mlp_mixer import MlpMixer

from ._common import drop_hub_args
from .vit import patch_embed_layer

MIXER_32 = dict(img_size=32, patch_size=2, embed_dim=128, num_blocks=4, mlp_ratio=(0.5, 4.0))


@register_model
def vitviz_mixer_32(pretrained=False, embed="linear", **kwargs):
    args = dict(MIXER_32, **drop_hub_args("vitviz_mixer_32", pretrained, kwargs))
    model = MlpMixer(**args)
    if embed != "linear":
        stem = model.stem
        model.stem = patch_embed_layer(embed)(img_size=args["img_size"], patch_size=args["patch_size"],
                                              in_chans=args.get("in_chans", 3), embed_dim=args["embed_dim"])
        model.stem.norm = stem.norm
    return model
