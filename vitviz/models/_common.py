"""What every vitviz variant shares as a timm citizen.

- Pretrained configs (timm's `PretrainedCfg` fields): `cifar_cfg` for the 32-px variants (CIFAR-10
  mean/std, 32 px, crop 1.0, bilinear like vitviz's own resize) and `imagenet_cfg` for the 224-px
  ones, each with its classifier, first conv, papers and licence. A model file lists one per
  variant in `default_cfgs = generate_default_cfgs({...})`; `@register_model` picks it up, so
  `timm.models.get_pretrained_cfg(name)`, `model.pretrained_cfg` and
  `timm.data.resolve_data_config({}, model=model)` describe the right input.
- `build_variant`: the one builder behind every entry point; it goes through timm's
  `build_model_with_cfg`, so timm's pretrained loading (file, state dict, local Hub folder, Hub id),
  num_classes / in_chans adaptation and `features_only` work as for timm's own models.
- The checkpoint adapter: `timm.create_model(name, pretrained=True,
  pretrained_cfg_overlay=dict(file="checkpoints/X.safetensors"))` reads the vitviz metadata of that
  file (the JSON beside it, else the copy in the safetensors header) and uses its constructor
  arguments (e.g. embed="conv", pos="rope2d"), class count, class names and normalisation as
  defaults; arguments the caller passes win. A plain safetensors file without vitviz metadata is
  loaded as timm loads any state dict (the caller passes the constructor arguments).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, resolve_pretrained_cfg

from ..data.registry import DATASETS

#: Licence of the vitviz weights and configs. The project has not declared one yet, so the
#: configs say "unknown" (a value the Hugging Face Hub accepts) until the maintainers choose.
VITVIZ_LICENSE = "unknown"

# paper ids / names, cited by the configs and the exported model cards
PAPERS = {
    "qkv": ("arXiv:2111.10017", "Redesigning Embedding Layers for Queries, Keys, and Values in Cross-Covariance "
                                "Image Transformers (Mathematics 11(8):1933, 2023)"),
    "xcit": ("arXiv:2106.09681", "XCiT: Cross-Covariance Image Transformers (NeurIPS 2021)"),
    "vix": ("arXiv:2107.02239", "Vision Xformers: Efficient Attention for Image Classification (WACV 2022: "
                                "Resource-efficient Hybrid X-formers for Vision)"),
    "performer": ("arXiv:2009.14794", "Rethinking Attention with Performers (ICLR 2021)"),
    "linformer": ("arXiv:2006.04768", "Linformer: Self-Attention with Linear Complexity"),
    "nystrom": ("arXiv:2102.03902", "Nystromformer: A Nystrom-Based Algorithm for Approximating Self-Attention "
                                    "(AAAI 2021)"),
    "vit": ("arXiv:2010.11929", "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale "
                                "(ICLR 2021)"),
    "fnet": ("arXiv:2105.03824", "FNet: Mixing Tokens with Fourier Transforms (NAACL 2022)"),
    "mixer": ("arXiv:2105.01601", "MLP-Mixer: An all-MLP Architecture for Vision (NeurIPS 2021)"),
    "cvt": ("arXiv:2103.15808", "CvT: Introducing Convolutions to Vision Transformers (ICCV 2021)"),
    "levit": ("arXiv:2104.01136", "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference "
                                  "(ICCV 2021)"),
    "pit": ("arXiv:2103.16302", "Rethinking Spatial Dimensions of Vision Transformers (PiT, ICCV 2021)"),
    "cct": ("arXiv:2104.05704", "Escaping the Big Data Paradigm with Compact Transformers"),
}


def papers(*keys: str) -> dict:
    """paper_ids / paper_name fields for a config: the first key is the variant's own paper."""
    return dict(paper_ids=tuple(PAPERS[k][0] for k in keys), paper_name=PAPERS[keys[0]][1])


def cifar_cfg(**kwargs) -> dict:
    """Config of a 32-px variant: CIFAR-10 input (32 px, no crop) and 10 classes."""
    cifar10 = DATASETS["cifar10"]
    return {**dict(input_size=(3, 32, 32), fixed_input_size=True, interpolation="bilinear", crop_pct=1.0,
                   mean=cifar10.mean, std=cifar10.std, num_classes=cifar10.num_classes, license=VITVIZ_LICENSE),
            **kwargs}


def imagenet_cfg(**kwargs) -> dict:
    """Config of a 224-px variant: ImageNet input and 1,000 classes (timm's defaults)."""
    return {**dict(input_size=(3, 224, 224), fixed_input_size=True, interpolation="bicubic", crop_pct=0.875,
                   mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, num_classes=1000, license=VITVIZ_LICENSE),
            **kwargs}


def declare_first_conv(model, name: str) -> None:
    """Record the model's actual first conv (it moves when an option swaps the stem) as a timm trait,
    which timm prefers to the config's `first_conv` when it adapts weights to other `in_chans`."""
    model._traits = dict(getattr(model, "_traits", {}), first_conv=name)


def _weights_file(kwargs: dict) -> str | None:
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    cfg = kwargs.get("pretrained_cfg")
    file = overlay.get("file") or (cfg.get("file") if isinstance(cfg, dict) else getattr(cfg, "file", None))
    return str(file) if file and str(file).endswith(".safetensors") and Path(file).is_file() else None


def with_checkpoint_defaults(variant: str, pretrained: bool, kwargs: dict) -> dict:
    """The checkpoint adapter (see the module docstring): kwargs with a vitviz checkpoint's metadata as defaults."""
    file = _weights_file(kwargs) if pretrained else None
    if file is None:
        return kwargs
    from ..checkpoint_meta import read_weights_meta, timm_cfg_overlay
    meta = read_weights_meta(file)
    if meta is None:  # a plain state dict: timm loads it as it is
        return kwargs
    if meta["variant"] != variant:
        raise ValueError(f"{file} holds weights of {meta['variant']!r}, not {variant!r}: "
                         f"timm.create_model({meta['variant']!r}, pretrained=True, ...) loads it")
    kwargs = {**meta["variant_kwargs"], **kwargs}
    kwargs["pretrained_cfg_overlay"] = {**timm_cfg_overlay(meta), **(kwargs.get("pretrained_cfg_overlay") or {})}
    return kwargs


def build_variant(model_fn: Callable, variant: str, pretrained: bool = False, *,
                  pretrained_filter_fn: Callable | None = None, **kwargs):
    """Build `variant` with `model_fn(**kwargs)` through timm's `build_model_with_cfg` (config, pretrained
    weights, features_only). pretrained=True needs a weight source: a registered one, or
    `pretrained_cfg_overlay=dict(file=...)` (a vitviz checkpoint or any state dict file)."""
    kwargs = with_checkpoint_defaults(variant, pretrained, kwargs)
    if pretrained:
        cfg = resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
        if not (cfg.has_weights or cfg.state_dict):
            raise ValueError(
                f"{variant} has no registered weights; load a vitviz checkpoint with timm.create_model("
                f"{variant!r}, pretrained=True, pretrained_cfg_overlay=dict(file='checkpoints/NAME.safetensors')) "
                "or vitviz.checkpoints.load(path)")
    out_indices = kwargs.pop("out_indices", 3)
    return build_model_with_cfg(model_fn, variant, pretrained, pretrained_filter_fn=pretrained_filter_fn,
                                feature_cfg=dict(out_indices=out_indices, feature_cls="getter"), **kwargs)
