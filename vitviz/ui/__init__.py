"""The Streamlit side of vitviz: cached resources and shared widgets. The only streamlit-aware package;
pages import from here and from the library, never from torch directly.

Names load on first use, so a page that needs no model (the Zoo) imports neither torch nor timm.
"""
import importlib

_NAMES = {"ensure_app_navigation": "navigation", "checkpoint_dir": "tables", "checkpoints_table": "tables",
          "show_table": "tables", "captured": "state", "device": "state", "device_label": "state",
          "load_model": "state", "test_set": "state", "test_set_missing_note": "state",
          "choose_checkpoint": "widgets", "choose_checkpoints": "widgets", "choose_image": "widgets",
          "pick_checkpoint": "widgets", "show_figure": "widgets"}


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_NAMES)
