"""Model zoo: every variant is a timm-registered function (importing this module registers them)."""
from . import cct, cvt, fnet, levit, mixer, pit, vit, xcit  # noqa: F401  (registration side effects)
from .catalog import CATALOG, list_variants, param_count, variant_info
