"""vitviz: train, inspect and compare compact vision transformers.

`import vitviz` registers every variant with timm, so `timm.create_model(name, num_classes=K)`
builds it; `vitviz.list_variants()` lists them and `vitviz.variant_info(name)` describes one.
"""
__version__ = "0.1.0"

from .models import list_variants, param_count, variant_info  # noqa: E402

__all__ = ["list_variants", "variant_info", "param_count", "__version__"]
