"""vitviz: train, inspect and compare compact vision transformers.

`import vitviz` registers every variant with timm, so `timm.create_model(name, num_classes=K)`
builds it; `vitviz.list_variants()` lists them and `vitviz.variant_info(name)` describes one.

Started as the command line (`python -m vitviz ...`, the `vitviz` script or a job worker) or as the app
(`streamlit run app.py`), the package imports nothing heavy up front (`LIGHT`): each command imports what it
needs, so `jobs show` is instant and the app's Zoo is drawn before torch is imported.
"""
import sys
from pathlib import Path

__version__ = "0.1.0"
__all__ = ["list_variants", "variant_info", "param_count", "__version__"]



def _in_streamlit_server() -> bool:
    """True inside a running Streamlit server (the app), whatever its command line."""
    runtime = sys.modules.get("streamlit.runtime")
    try:
        return bool(runtime is not None and runtime.exists())
    except Exception:  # noqa: BLE001 - an unexpected Streamlit layout: import as usual
        return False


#: True when this process was started as `python -m vitviz[.module]` or the `vitviz` console script, or is the
#: app's Streamlit server (its first page is served before torch is imported; what builds a model imports the
#: registry itself)
LIGHT = (sys.argv[:1] == ["-m"] or Path(sys.argv[0] if sys.argv else "").name == "vitviz"
         or _in_streamlit_server())


def __getattr__(name: str):
    if name in ("list_variants", "variant_info", "param_count"):
        from . import models
        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not LIGHT:
    from .models import list_variants, param_count, variant_info  # noqa: E402, F401  (registers the variants)
