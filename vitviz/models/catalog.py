"""Moved: the catalog's data to `vitviz.catalog` (no torch: the app's Zoo reads it before torch is imported), what
needs the models (`list_variants`, `variant_info`, `param_count`) to `vitviz.models`. Importable from here for one
release."""
from ..catalog import (CATALOG, CCT_PAPER, CVT_PAPER, LEVIT_PAPER, PIT_PAPER, QKV_PAPER,  # noqa: F401
                       VIX_PAPER, VariantInfo)
from . import list_variants, param_count, variant_info  # noqa: F401
