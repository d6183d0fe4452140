"""The plotly preload (vitviz/ui/preload.py): it finds the installed Streamlit's plotly chunk, and does nothing
where there is none. (In a browser: tests/test_browser.py::test_plotly_is_preloaded_once_while_the_zoo_is_idle.)"""
from pathlib import Path

import streamlit as st

from vitviz.ui import preload


def test_the_installed_streamlit_has_exactly_one_plotly_chunk():
    # if a Streamlit upgrade renames or splits the chunk, this fails (the app would then simply not preload)
    chunk = preload.plotly_chunk()
    assert chunk is not None and chunk.startswith("PlotlyChart.") and chunk.endswith(".js")
    assert (Path(st.__file__).parent / "static" / "static" / "js" / chunk).stat().st_size > 1_000_000


def test_script_imports_that_chunk_once_per_tab():
    script = preload.preload_script("PlotlyChart.abc.js")
    assert '"PlotlyChart.abc.js"' in script and "import(url)" in script
    assert "if (window.__vitvizPlotlyPreload) return;" in script  # reruns do not import again


def test_no_chunk_no_preload(monkeypatch):
    monkeypatch.setattr(preload, "plotly_chunk", lambda: None)
    added = []

    class Sidebar:
        def html(self, *a, **k):
            added.append(a)
    assert preload.preload_plotly(Sidebar()) is False and added == []
