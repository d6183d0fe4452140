"""Model zoo: every variant is a timm-registered function (importing this module registers them), and what
needs the registered models: the list of variants and their parameter counts (the catalog's descriptions are
plain data in `vitviz.catalog`)."""
from functools import lru_cache

import timm
import torch

from ..catalog import CATALOG
from . import cct, cvt, fnet, levit, mixer, pit, vit, xcit  # noqa: F401  (registration side effects)

__all__ = ["CATALOG", "list_variants", "param_count", "variant_info"]


def list_variants() -> list[str]:
    """All registered vitviz variant names."""
    return timm.list_models("vitviz_*")


def variant_info(name: str) -> dict:
    """Family, paper, baseline, what differs, default input size, choices of ours and parameter count."""
    if name not in CATALOG:
        raise KeyError(f"unknown vitviz variant {name!r}; known: {', '.join(sorted(CATALOG))}")
    return {**CATALOG[name].as_dict(), "param_count": param_count(name)}


@lru_cache(maxsize=None)
def param_count(name: str, num_classes: int | None = None) -> int:
    """Parameters of `name` with its default head (1,000 classes at 224 px, 10 at 32 px)."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = timm.create_model(name, num_classes=num_classes or CATALOG[name].default_classes)
    return sum(p.numel() for p in model.parameters())
