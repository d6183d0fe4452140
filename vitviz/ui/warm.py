"""Warm the app up after its first page is served: the heavy imports (torch, timm, captum, plotly's figure
classes), the variant and checkpoint tables, one small figure of each kind and the models of the first
`PRELOAD_MODELS` listed checkpoints, in one background thread per server process at a lower CPU priority.

Streamlit runs every session's scripts in the server's process, so a page opened later finds all of it imported
and cached. Nothing here runs before the first page: `streamlit run app.py` shows the Zoo without waiting.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

PRELOAD_MODELS = 16  # the app's model cache (`ui.state._load`) holds 16
NICE = 10            # the warm-up yields to the sessions' own work
_started = threading.Event()
_done = threading.Event()
_lock = threading.Lock()
seconds: dict = {}


def warm_up(log=print) -> dict:
    """Import what the pages import and fill the process-wide caches; returns seconds per step."""
    seconds = {}

    def step(name, fn):
        start = time.perf_counter()
        fn()
        seconds[name] = time.perf_counter() - start
        log(f"warm-up: {name} {seconds[name]:.1f} s")

    def imports():
        from .imports import import_heavy
        import_heavy()  # torch, timm, captum (about 2 s, else paid by the Attributions page's first view), ...
        import vitviz.ui.evaluations  # noqa: F401
        import vitviz.ui.jobs_view  # noqa: F401

    def tables():
        from vitviz.overview import variant_table
        from vitviz.ui.state import checkpoints_table, device
        device()
        variant_table()  # builds every variant on the meta device once (cached) for its parameter count
        checkpoints_table()

    def figures():
        from ..figures.warm import warm_up as warm_figures
        for failure in warm_figures():
            log(f"warm-up: a figure failed to build ({failure})")

    def models():
        from .state import checkpoints_table, load_model
        table, _ = checkpoints_table()
        for path in list(table["path"])[:PRELOAD_MODELS] if not table.empty else []:
            try:
                load_model(path)
            except Exception as exc:  # noqa: BLE001 - the page that opens it says why
                log(f"warm-up: cannot load {Path(path).name}: {exc}")

    step("imports", imports)
    step("variant and checkpoint tables", tables)
    step("figure classes", figures)
    step("models of the listed checkpoints", models)
    return seconds


def warm_in_background() -> None:
    """Start the warm-up once per process (later calls return at once)."""
    with _lock:
        if _started.is_set() or os.environ.get("VITVIZ_NO_WARM"):
            return
        _started.set()
    threading.Thread(target=_run, name="vitviz-warm-up", daemon=True).start()


def _run() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)  # this thread only (Linux)
    except (AttributeError, OSError):
        pass
    start = time.perf_counter()
    try:
        seconds.update(warm_up(log=lambda text: None))
    except Exception:  # noqa: BLE001 - a failed warm-up only means a slower first view of some page
        pass
    finally:
        seconds["total"] = time.perf_counter() - start
        _done.set()
