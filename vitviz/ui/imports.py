"""The heavy part of the app's imports, done by one thread at a time.

Streamlit runs every session's script, and the warm-up, in threads of one process. Python's per-module import
locks cannot order two threads of which one imports a package (`vitviz.layers`, whose `__init__` imports
`.token_attention`) while the other imports one of its submodules directly (`vitviz.layers.token_attention`,
which needs the package first): each holds the lock the other waits for, Python breaks the cycle by handing
one of them the half-initialised module, and the page dies with "cannot import name 'TokenAttention' from
partially initialized module" (seen on a fresh server when a page was opened while the Zoo's session was
still importing). So the packages that the pages and the warm-up share are imported here first, in one fixed
order, under one lock; afterwards every import of them is a lookup in `sys.modules`.
"""
from __future__ import annotations

import importlib
import threading

HEAVY = ("torch", "timm", "plotly.graph_objects", "vitviz.layers", "vitviz.models", "vitviz.data",
         "vitviz.inspect", "vitviz.explain", "vitviz.compare", "vitviz.figures", "captum.attr", "vitviz.ui.state",
         "vitviz.ui.widgets")
_lock = threading.Lock()
_done = threading.Event()


def import_heavy() -> None:
    """Import `HEAVY` once per process; a thread that arrives meanwhile waits for the first to finish."""
    if _done.is_set():
        return
    with _lock:
        if not _done.is_set():
            for name in HEAVY:
                importlib.import_module(name)
            _done.set()


def heavy_imported() -> bool:
    return _done.is_set()
