"""The variant catalog: what each registered vitviz model is, where it comes from, and its size.

Plain data (no torch, no timm): the app's Zoo lists checkpoints with their family and paper before torch is
imported. What needs the models themselves (`list_variants`, `variant_info` with the parameter count,
`param_count`) is the registry's: `vitviz.models`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

QKV_PAPER = "Q/K/V embedding for XCiT (arXiv 2111.10017; Mathematics 11(8):1933, 2023)"
VIX_PAPER = "Vision X-formers (arXiv 2107.02239; WACV 2022)"
CVT_PAPER = "CvT (arXiv 2103.15808; ICCV 2021)"
CCT_PAPER = "CCT (arXiv 2104.05704; Hassani et al., Escaping the Big Data Paradigm with Compact Transformers)"
LEVIT_PAPER = "LeViT (arXiv 2104.01136; ICCV 2021)"
PIT_PAPER = "PiT (arXiv 2103.16302; ICCV 2021)"


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

    def as_dict(self) -> dict:
        """The catalog entry as a dict (the parameter count, which needs the registry: `vitviz.models.variant_info`)."""
        return asdict(self)


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
    _add_cct(cat)
    _add_levit_pit(cat)
    return cat


def _add_cct(cat: dict) -> None:
    """CCT-7/3x1 (3.76M parameters in the paper) with softmax, Nystromformer and Performer attention."""
    base = ("CCT-7/3x1: conv tokenizer (one 3x3 conv + ReLU + max-pool, 256 tokens), learned position "
            "embedding, 7 layers, dim 256, 4 heads, MLP ratio 2; no class token: sequence pooling")
    ours = ("blocks as the authors' code (the stream is normalised before the MLP; mlp_norm='branch' gives "
            "standard pre-norm)")
    for kind in ("softmax", "nystrom", "performer"):
        name = f"vitviz_cct_7_3x1_32_{kind}"
        if kind == "softmax":
            paper, differs = CCT_PAPER, (f"{base} (softmax attention) instead of ViT's patch embedding and class "
                                         "token")
        else:
            paper = f"{CCT_PAPER} + {VIX_PAPER}"
            differs = f"CCT-7/3x1 with its attention swapped for {_VIX_ATTN[kind].split(':')[0]}"
        cat[name] = VariantInfo(name, "CCT", paper, "CCT-7/3x1 (paper: 3.76M params)" if kind == "softmax"
                                else "vitviz_cct_7_3x1_32_softmax", differs, 32, 10, ours)


_LEVIT_BASE = ("timm's LeViT-128S (conv stem, attention with a learned bias per head and relative offset, "
               "subsampling attention opening stages 2 and 3, BatchNorm, mean pooling), its attention run by a vitviz "
               "kernel")
_LEVIT_KIND = {
    "softmax": "softmax attention; the attention biases are in the maps",
    "nystrom": "attention swapped for Nystromformer attention; the attention biases enter its three softmax factors "
               "averaged over the landmark segments, as the logits are",
    "performer": "attention swapped for Performer FAVOR+ attention, without attention biases",
}
_LEVIT_OURS = {
    "softmax": "",
    "nystrom": "the bias averaged over landmark segments (with every token a landmark it is softmax with the bias); "
               "residual conv (kernel 33) in the square blocks only (the subsampling attention has fewer queries "
               "than keys)",
    "performer": "no attention biases: FAVOR+ factorises exp(q k^T) as phi(q) phi(k)^T, and the bias' factor exp(B) "
                 "(N_q x N_k) cannot enter that linear-time product, so the biases are dropped",
}
_PIT_BASE = ("timm's PiT-Ti (overlapping conv patch embedding, class token, depthwise-conv pooling between stages "
             "halves the grid and doubles the width), its attention run by a vitviz kernel")


def _add_levit_pit(cat: dict) -> None:
    """LeViT-128S and PiT-Ti from timm, at 224 px (timm's configs) and CIFAR-native, with softmax, Nystromformer and
    Performer attention."""
    for kind in ("softmax", "nystrom", "performer"):
        swapped = kind != "softmax"
        levit_paper = f"{LEVIT_PAPER} + {VIX_PAPER}" if swapped else LEVIT_PAPER
        pit_paper = f"{PIT_PAPER} + {VIX_PAPER}" if swapped else PIT_PAPER
        levit_differs = f"{_LEVIT_BASE}: {_LEVIT_KIND[kind]}"
        landmarks = {"nystrom": "64 landmarks, "}.get(kind, "")
        name = f"vitviz_levit_128s_224_{kind}"
        cat[name] = VariantInfo(
            name, "LeViT", levit_paper,
            "vitviz_levit_128s_224_softmax" if swapped else
            "timm levit_128s without its distillation head (paper: 7.8M params, counting that head)",
            levit_differs, 224, 1000,
            "; ".join(filter(None, ["one classifier (BatchNorm + Linear), no distillation head",
                                    f"{landmarks}14x14 / 7x7 / 4x4 tokens" if landmarks else "",
                                    _LEVIT_OURS[kind]])))
        name = f"vitviz_levit_{kind}_32"
        cat[name] = VariantInfo(
            name, "LeViT", levit_paper, "vitviz_levit_softmax_32" if swapped else "LeViT-128S, CIFAR-native",
            levit_differs, 32, 10,
            "; ".join(filter(None, [
                "32 px config: stride-4 stem (two 3x3 stride-2 ConvNorm + Hardswish, 3 -> 64 -> 128) instead of "
                "stride 16, so 32 px give 8x8 -> 4x4 -> 2x2 tokens; LeViT-128S widths (128/256/384, key_dim 16, "
                "heads 4/6/8, depths 2/3/4); no distillation head",
                "64 landmarks cover all 64 / 16 / 4 tokens, so only the 6-step pseudo-inverse approximates"
                if kind == "nystrom" else "", _LEVIT_OURS[kind]])))
        pit_differs = f"{_PIT_BASE}: " + ("softmax attention" if not swapped else
                                         f"attention swapped for {_VIX_ATTN[kind].split(':')[0]}")
        name = f"vitviz_pit_ti_224_{kind}"
        cat[name] = VariantInfo(
            name, "PiT", pit_paper, "vitviz_pit_ti_224_softmax" if swapped else "timm pit_ti_224 (paper: 4.9M params)",
            pit_differs, 224, 1000, f"{landmarks}27x27 / 14x14 / 7x7 tokens + class token" if landmarks else "")
        name = f"vitviz_pit_{kind}_32"
        cat[name] = VariantInfo(
            name, "PiT", pit_paper, "vitviz_pit_softmax_32" if swapped else "PiT-Ti, CIFAR-native", pit_differs, 32,
            10, "32 px config: patch 4, stride 2, padding 1 (kernel = 2 x stride, as PiT's 16/8) for 16x16 -> 8x8 -> "
                "4x4 tokens + class token; PiT-Ti widths and depths (64/128/256, heads 2/4/8, depths 2/6/4)"
                + ("; 64 landmarks over 257 / 65 / 17 tokens, residual conv kernel 33" if kind == "nystrom" else ""))


CATALOG = _build_catalog()
