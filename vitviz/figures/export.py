"""Paper-ready static export of plotly figures (SVG, PDF, PNG) through kaleido and an installed Chromium.

kaleido >= 1 renders a figure by driving a Chrome/Chromium browser (through `choreographer`), which it looks for
in $BROWSER_PATH, then on the PATH. vitviz looks for the browser itself first, so it can say *why* export is
unavailable instead of failing: `$VITVIZ_CHROMIUM`, then `$BROWSER_PATH`, then `chromium`, `chromium-browser`,
`google-chrome`, `google-chrome-stable`, `chrome` on the PATH. The browser found is handed to kaleido as
$BROWSER_PATH.

- `static_export_status()` -> (available, reason): cheap (no browser started); call it on every rerun.
- `to_static(fig, fmt)` -> bytes of an SVG, PDF or PNG; raises `StaticExportUnavailable` (with the reason) when
  kaleido or the browser is missing. Starting the browser takes a few seconds, so callers generate on demand.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import shutil
import threading

import plotly.graph_objects as go

__all__ = ["STATIC_FORMATS", "MIME", "StaticExportUnavailable", "find_browser", "static_export_status", "to_static"]

STATIC_FORMATS = ("svg", "pdf", "png")
MIME = {"svg": "image/svg+xml", "pdf": "application/pdf", "png": "image/png", "html": "text/html"}
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_env_lock = threading.Lock()


class StaticExportUnavailable(RuntimeError):
    """Static export cannot run here; the message says why and what to install."""


def _executable(path: str | None) -> bool:
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def find_browser() -> tuple[str | None, str]:
    """(path of the Chrome/Chromium that static export uses, or None; why none was found)."""
    for variable in ("VITVIZ_CHROMIUM", "BROWSER_PATH"):
        value = os.environ.get(variable)
        if value:
            if _executable(value):
                return value, ""
            return None, f"${variable} is set to {value!r}, which is not an executable file"
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if _executable(path):
            return path, ""
    return None, ("no Chrome/Chromium browser was found (looked for $VITVIZ_CHROMIUM, $BROWSER_PATH and "
                  f"{', '.join(BROWSER_NAMES)} on the PATH); install one, e.g. `apt-get install chromium`")


@functools.lru_cache(maxsize=1)
def _kaleido_problem() -> str:
    if importlib.util.find_spec("kaleido") is None:
        return "the `kaleido` package is not installed (`pip install kaleido`)"
    try:
        major = int(importlib.metadata.version("kaleido").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return ""
    if major < 1:
        return "kaleido < 1 is installed; vitviz needs kaleido >= 1 (`pip install -U kaleido`)"
    return ""


def static_export_status() -> tuple[bool, str]:
    """(whether SVG / PDF / PNG export can run, why not). Starts no browser."""
    problem = _kaleido_problem()
    if problem:
        return False, f"Static export (SVG/PDF/PNG) is unavailable: {problem}."
    browser, why = find_browser()
    if browser is None:
        return False, f"Static export (SVG/PDF/PNG) is unavailable: kaleido needs Chrome/Chromium, and {why}."
    return True, f"Static export through kaleido with {browser}."


def to_static(fig: go.Figure, fmt: str, *, width: int | None = None, height: int | None = None,
              scale: float = 1.0) -> bytes:
    """`fig` rendered as `fmt` ("svg", "pdf" or "png"), as bytes. Size defaults to the figure's layout
    (width 700 px when the layout leaves it open); `scale` multiplies the pixel size (PNG resolution)."""
    fmt = fmt.lower()
    if fmt not in STATIC_FORMATS:
        raise ValueError(f"fmt must be one of {STATIC_FORMATS}, got {fmt!r}")
    available, reason = static_export_status()
    if not available:
        raise StaticExportUnavailable(reason)
    browser, _ = find_browser()
    with _env_lock:  # kaleido's browser lookup reads $BROWSER_PATH
        if os.environ.get("BROWSER_PATH") != browser:
            os.environ["BROWSER_PATH"] = browser
    width = width or fig.layout.width or 700
    height = height or fig.layout.height or 500
    return fig.to_image(format=fmt, width=int(width), height=int(height), scale=scale)
