"""vitviz: train, inspect and compare compact vision transformers.

`import vitviz` registers every variant with timm, so `timm.create_model(name, num_classes=K)`
builds it; `vitviz.list_variants()` lists them and `vitviz.variant_info(name)` describes one.

Started as the command line (`python -m vitviz ...`, the `vitviz` script or a job worker), the package
imports nothing heavy up front (`LIGHT`): each command imports what it needs, so `jobs show` is instant.
"""
import sys
from pathlib import Path

__version__ = "0.1.0"
__all__ = ["list_variants", "variant_info", "param_count", "__version__"]

#: True when this process was started as `python -m vitviz[.module]` or the `vitviz` console script
LIGHT = sys.argv[:1] == ["-m"] or Path(sys.argv[0] if sys.argv else "").name == "vitviz"


def __getattr__(name: str):
    if name in ("list_variants", "variant_info", "param_count"):
        from . import models
        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not LIGHT:
    from .models import list_variants, param_count, variant_info  # noqa: E402, F401  (registers the variants)
