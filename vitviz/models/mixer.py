"""MLP-Mixer at 32 px (Tolstikhin et al. 2021, as used in Vision X-formers arXiv 2107.02239).

timm's MlpMixer at the ViX size (dim 128, depth 4, patch 2 -> 256 tokens [ours]; token-mixing
MLP 64, channel-mixing MLP 512: timm's ratios (0.5, 4)). `embed` = linear | conv | conv_bn swaps
the stem for the Vision X-formers convolutional embedding.
"""
from __future__ import annotations

from timm.models import generate_default_cfgs, register_model
from timm.models.mlp_mixer import MlpMixer

from ._common import build_variant, cifar_cfg, declare_first_conv, papers
from .vit import patch_embed_layer

MIXER_32 = dict(img_size=32, patch_size=2, embed_dim=128, num_blocks=4, mlp_ratio=(0.5, 4.0))


def _mixer(embed: str = "linear", **kwargs) -> MlpMixer:
    args = dict(MIXER_32, **kwargs)
    model = MlpMixer(**args)
    if embed != "linear":
        stem = model.stem
        model.stem = patch_embed_layer(embed)(img_size=args["img_size"], patch_size=args["patch_size"],
                                              in_chans=args.get("in_chans", 3), embed_dim=args["embed_dim"])
        model.stem.norm = stem.norm
        declare_first_conv(model, "stem.proj.0")
    return model


default_cfgs = generate_default_cfgs({
    "vitviz_mixer_32": cifar_cfg(first_conv="stem.proj", classifier="head", **papers("mixer", "vix")),
})


@register_model
def vitviz_mixer_32(pretrained=False, **kwargs):
    return build_variant(_mixer, "vitviz_mixer_32", pretrained, **kwargs)
