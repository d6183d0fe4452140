"""Load plotly's JavaScript in the browser while it is idle, before the first page that draws a figure.

Streamlit loads each element's JavaScript lazily: plotly.js (Streamlit's `PlotlyChart` chunk, about 4.6 MB) is
fetched and evaluated the first time a page shows a plotly chart, which costs that page's first view about half a
second of browser CPU on a 2-core machine (`bench/app_load.py`, RESULTS.md). The Zoo, the first page, has no
figure; so the sidebar asks the browser to import that same chunk when it is idle (`requestIdleCallback`) after
the page is drawn. A module URL is evaluated once per document, so when Streamlit imports it for the first
chart, it is already there.

The chunk's file name is Streamlit's (hashed per release). It is looked up in the installed Streamlit; when it
is absent (another layout of a future release), nothing is preloaded and the app works as before.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import streamlit as st

CHUNK_GLOB = "PlotlyChart.*.js"


@functools.lru_cache(maxsize=1)
def plotly_chunk() -> str | None:
    """The file name of Streamlit's plotly chunk in its static/js folder, or None when there is none."""
    js = Path(st.__file__).resolve().parent / "static" / "static" / "js"
    found = sorted(js.glob(CHUNK_GLOB))
    return found[0].name if len(found) == 1 else None


def preload_script(chunk: str) -> str:
    """The script: once per browser tab, after the page has been drawn and Streamlit is idle for a moment, import
    the chunk from the folder of Streamlit's own bundle (the URL Streamlit's lazy import resolves to, so the
    browser's module map shares it)."""
    return f"""<script>
(() => {{
  if (window.__vitvizPlotlyPreload) return;
  window.__vitvizPlotlyPreload = "scheduled";
  const bundle = Array.from(document.querySelectorAll('script[type="module"][src]'))
    .map(s => s.src).find(src => /\\/static\\/js\\/index\\.[^/]*\\.js$/.test(src));
  if (!bundle) {{ window.__vitvizPlotlyPreload = "no bundle"; return; }}
  const url = new URL({json.dumps(chunk)}, bundle).href;
  const quiet = () => {{
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app && app.getAttribute('data-test-script-state');
    return state && !['running', 'rerunRequested', 'initial'].includes(state)
      && !document.querySelector('[data-testid="stSkeleton"], [data-stale="true"]');
  }};
  let calm = 0;  // consecutive quiet checks: the page is drawn and nothing is running
  const load = () => import(url).then(() => {{ window.__vitvizPlotlyPreload = url; }},
                                      () => {{ window.__vitvizPlotlyPreload = "failed"; }});
  const timer = setInterval(() => {{
    calm = quiet() ? calm + 1 : 0;
    if (calm < 2) return;
    clearInterval(timer);
    (window.requestIdleCallback || (f => setTimeout(f, 0)))(load, {{timeout: 2000}});
  }}, 250);
}})();
</script>"""


def preload_plotly(container=None) -> bool:
    """Add the preload script to `container` (the sidebar by default). Returns whether a chunk was found."""
    chunk = plotly_chunk()
    if chunk is None:
        return False
    (container or st.sidebar).html(preload_script(chunk), unsafe_allow_javascript=True)
    return True
