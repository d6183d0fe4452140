"""The variant catalog: what each registered vitviz model is, where it comes from, and its size."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import timm
import torch

QKV_PAPER = "Q/K/V embedding for XCiT (arXiv 2111.10017; Mathematics 11(8):1933, 2023)"
VIX_PAPER = "Vision X-formers (arXiv 2107.02239; WACV 2022)"
CVT_PAPER = "CvT (arXiv 2103.15808; ICCV 2021)"


@dataclass(frozen=True)
class VariantInfo:
    name: str
    family: str
    paper: str
    baseline: str
    differs: str
    img_size: int
    default_classes: int
    choices_ours: str = ""

    def as_dict(self, with_params: bool = True) -> dict:
        d = asdict(self)
        if with_params:
            d["param_count"] = param_count(self.name)
        return d


_XCIT_QKV = {
    "linear": ("baseline: one Linear(C, 3C) for Q, K, V (timm's XCiT unchanged)", ""),
    "sne": ("SNE: separate Linear(C, h) -> ReLU -> Linear(h, C) for each of Q, K, V", "h = C/2"),
    "psne": ("P-SNE: shared Linear(C, h) -> ReLU, separate Linear(h, C) for Q, K, V",
             "the shared layer is the first one; h = C"),
    "fsne": ("F-SNE: one shared MLP for Q, K, V selected by trainable per-block codes c_q, c_k, c_v",
             "code length 8, concatenated to the input (code_mode concat|add|gate); h = C"),
}
_VIX_ATTN = {
    "softmax": "exact softmax attention (fused SDPA unless a map is requested)",
    "performer": "Performer FAVOR+ attention: positive orthogonal random features, m = d ln d",
    "linformer": "Linformer attention: keys and values projected along the sequence to k = 64",
    "nystrom": "Nystromformer attention: 64 landmarks, 6-step pseudo-inverse, residual depthwise conv (kernel 33) on V",
}
_VIX_OURS = ("patch 2 (256 tokens) by default, the authors use patch 1; embed=linear|conv|conv_bn, "
             "pos=learned|rope1d|rope2d (rope2d axial is ours)")


def _build_catalog() -> dict[str, VariantInfo]:
    cat = {}
    for qkv, (differs, ours) in _XCIT_QKV.items():
        extra = "; class-attention blocks keep Linear q/k/v" if qkv != "linear" else ""
        cat[f"vitviz_xcit_n12_p16_224_{qkv}"] = VariantInfo(
            f"vitviz_xcit_n12_p16_224_{qkv}", "XCiT", QKV_PAPER, "timm xcit_nano_12_p16_224", differs, 224, 1000,
            (ours + extra).strip("; "))
        cat[f"vitviz_xcit_n12_p4_32_{qkv}"] = VariantInfo(
            f"vitviz_xcit_n12_p4_32_{qkv}", "XCiT", QKV_PAPER, "XCiT-N12, CIFAR-native", differs, 32, 10,
            ("32 px config: 2-conv stride-2 stem, 64 tokens; " + ours + extra).strip("; "))
    for kind, differs in _VIX_ATTN.items():
        cat[f"vitviz_vit_{kind}_32"] = VariantInfo(
            f"vitviz_vit_{kind}_32", "ViT", VIX_PAPER, "ViT dim 128, depth 4, 4 heads, MLP 256", differs, 32, 10,
            _VIX_OURS)
    cat["vitviz_fnet_32"] = VariantInfo(
        "vitviz_fnet_32", "FNet", VIX_PAPER, "ViX ViT", "token mixing by Re(FFT(FFT(x))) instead of attention",
        32, 10, "pre-norm blocks, average pooling, patch 2")
    cat["vitviz_mixer_32"] = VariantInfo(
        "vitviz_mixer_32", "MLP-Mixer", VIX_PAPER, "ViX ViT", "token-mixing and channel-mixing MLPs (timm MlpMixer)",
        32, 10, "depth 4, patch 2, timm's MLP ratios (0.5, 4)")
    cat["vitviz_cvt_32"] = VariantInfo(
        "vitviz_cvt_32", "CvT", CVT_PAPER, "CvT-13", "conv token embedding + conv (squeezed K/V) projection",
        32, 10, "CIFAR config: kernels/strides 3/1, 3/2, 3/2 (paddings 1); dims 64/128/256; depths 1/2/4; "
        "K/V strides 2, 2, 1; attention scale head_dim^-0.5 (CvT-13's official code uses dim^-0.5)")
    cat["vitviz_cvt_13_224"] = VariantInfo(
        "vitviz_cvt_13_224", "CvT", CVT_PAPER, "CvT-13 (official code, microsoft/CvT)",
        "CvT-13 as in the official code: token-embedding paddings 2/1/1, attention logits scaled by the stage "
        "width dim^-0.5 (not head_dim^-0.5)", 224, 1000, "")
    for kind in ("nystrom", "performer"):
        cat[f"vitviz_cvt_{kind}_32"] = VariantInfo(
            f"vitviz_cvt_{kind}_32", "CvT", f"{CVT_PAPER} + {VIX_PAPER}", "vitviz_cvt_32",
            f"CvT with its attention swapped for {_VIX_ATTN[kind].split(':')[0]}", 32, 10,
            "Nystromformer's residual conv dropped (strided K/V)" if kind == "nystrom" else "")
    return cat


CATALOG = _build_catalog()


def list_variants() -> list[str]:
    """All registered vitviz variant names."""
    return timm.list_models("vitviz_*")


def variant_info(name: str) -> dict:
    """Family, paper, baseline, what differs, default input size, choices of ours and parameter count."""
    if name not in CATALOG:
        raise KeyError(f"unknown vitviz variant {name!r}; known: {', '.join(sorted(CATALOG))}")
    return CATALOG[name].as_dict()


@lru_cache(maxsize=None)
def param_count(name: str, num_classes: int | None = None) -> int:
    """Parameters of `name` with its default head (1,000 classes at 224 px, 10 at 32 px)."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = timm.create_model(name, num_classes=num_classes or CATALOG[name].default_classes)
    return sum(p.numel() for p in model.parameters())
