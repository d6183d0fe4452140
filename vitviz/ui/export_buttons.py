"""Download buttons for static figure export (SVG, PDF, print-resolution PNG) and for HTML reports.

The static files are rendered only when a button is clicked (Streamlit's deferred download data), so a rerun
costs one cheap availability check per figure and no browser start."""
from __future__ import annotations

import streamlit as st

from ..figures.export import MIME, STATIC_FORMATS, StaticExportUnavailable, static_export_status, to_static

LABELS = {"svg": "SVG", "pdf": "PDF", "png": "PNG (3x)"}
SCALE = {"svg": 1.0, "pdf": 1.0, "png": 3.0}


def _render(fig, fmt: str):
    def data():
        try:
            return to_static(fig, fmt, scale=SCALE[fmt])
        except StaticExportUnavailable as exc:  # the browser vanished since the page ran
            return str(exc).encode()
    return data


def static_downloads(fig, name: str, key: str | None = None) -> None:
    """SVG / PDF / PNG download buttons for `fig`, or a note saying why static export is unavailable."""
    available, reason = static_export_status()
    if not available:
        st.caption(reason)
        return
    row = st.container(horizontal=True)
    for fmt in STATIC_FORMATS:
        row.download_button(LABELS[fmt], _render(fig, fmt), f"{name}.{fmt}", MIME[fmt],
                            key=None if key is None else f"{key}_{fmt}", on_click="ignore",
                            help=f"Render this figure as {fmt.upper()} (kaleido + Chromium; takes a few seconds)")


# --------------------------------------------------------------------------- HTML reports

_REPORT = "_vitviz_report"
MAX_ITEMS = 200


def _page_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    return None if ctx is None else getattr(ctx, "page_script_hash", None)


def start_report() -> None:
    """Collect what this page shows with `show_figure` / `show_table` from here on (this run only)."""
    st.session_state[_REPORT] = {"page": _page_id(), "items": []}


def collect(kind: str, value, name: str) -> None:
    """Called by show_figure / show_table: remember the figure or table if this page collects a report."""
    active = st.session_state.get(_REPORT)
    if active and active["page"] == _page_id() and len(active["items"]) < MAX_ITEMS:
        from ..figures.report import ReportItem
        active["items"].append(ReportItem(kind, value, name))
        if active.get("prefix"):  # widgets created since the report button now have their values
            active["settings"].update(page_settings(active["prefix"]))


def page_settings(prefix: str) -> dict:
    """The page's widget values (session-state keys starting with `prefix`) that are plain values."""
    plain = (str, int, float, bool, type(None))
    out = {}
    for key in sorted(k for k in st.session_state if str(k).startswith(prefix)):
        value = st.session_state[key]
        if isinstance(value, plain) or (isinstance(value, (list, tuple)) and all(isinstance(v, plain)
                                                                                 for v in value)):
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def report_download(title: str, name: str, metadata: dict, prefix: str, key: str) -> None:
    """A button that downloads everything this run of the page shows (collected since `start_report`, including
    what is shown below the button) as one offline HTML report, built when the button is clicked. The settings
    are the page's widget values whose keys start with `prefix`."""
    from ..figures.report import html_report
    active = st.session_state.get(_REPORT)
    if active is None:
        start_report()
        active = st.session_state[_REPORT]
    # live objects, filled by the rest of this run and read when the button is clicked: the figures and tables
    # shown, and the page's widget values (session-state keys starting with `prefix`)
    items, settings = active["items"], page_settings(prefix)
    active.update(prefix=prefix, settings=settings)
    st.download_button("Download this view as an HTML report", lambda: html_report(title, items, metadata=metadata,
                                                                                   settings=settings),
                       f"{name}.html", MIME["html"], key=key, on_click="ignore",
                       help="One self-contained HTML file (plotly.js inlined, opens offline): the figures and "
                            "tables of this view, the checkpoints' metadata and the exact settings.")
