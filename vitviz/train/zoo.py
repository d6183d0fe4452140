"""The shipped checkpoint set: which variants, with which options, under one shared recipe.

Every entry trains with the same `TrainConfig` (same epochs, batch, lr, augmentation) on the same
data, so differences between checkpoints come from the architectures. The Vision X-formers
attentions ship with the paper's best embedding (conv) and RoPE (2D axial); the plain ViT
(linear embedding, learned positions) ships as their baseline, plus a conv + RoPE softmax ViT so
attention kinds can be compared at equal embedding.
"""
from __future__ import annotations

ZOO: dict[str, tuple[str, dict]] = {
    "xcit_n12_p4_32_linear": ("vitviz_xcit_n12_p4_32_linear", {}),
    "xcit_n12_p4_32_sne": ("vitviz_xcit_n12_p4_32_sne", {}),
    "xcit_n12_p4_32_psne": ("vitviz_xcit_n12_p4_32_psne", {}),
    "xcit_n12_p4_32_fsne": ("vitviz_xcit_n12_p4_32_fsne", {}),
    "vit_softmax_32": ("vitviz_vit_softmax_32", {}),
    "vit_softmax_32_conv_rope": ("vitviz_vit_softmax_32", {"embed": "conv", "pos": "rope2d"}),
    "vit_performer_32_conv_rope": ("vitviz_vit_performer_32", {"embed": "conv", "pos": "rope2d"}),
    "vit_linformer_32_conv_rope": ("vitviz_vit_linformer_32", {"embed": "conv", "pos": "rope2d"}),
    "vit_nystrom_32_conv_rope": ("vitviz_vit_nystrom_32", {"embed": "conv", "pos": "rope2d"}),
    "fnet_32_conv": ("vitviz_fnet_32", {"embed": "conv"}),
    "mixer_32_conv": ("vitviz_mixer_32", {"embed": "conv"}),
    "cvt_32": ("vitviz_cvt_32", {}),
    "cct_7_3x1_32": ("vitviz_cct_7_3x1_32_softmax", {}),
    "levit_32": ("vitviz_levit_softmax_32", {}),
    "pit_32": ("vitviz_pit_softmax_32", {}),
}
