"""The app's pages and navigation, shared by app.py and the pages' guard."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parents[2] / "pages"
PAGE_LIST = [  # (file, title, icon)
    ("zoo.py", "Zoo", ":material/apps:"),
    ("attention.py", "Attention", ":material/visibility:"),
    ("cross_covariance.py", "Cross-covariance", ":material/grid_on:"),
    ("codes_weights.py", "Q/K/V codes & weights", ":material/key:"),
    ("per_class.py", "Per-class", ":material/bar_chart:"),
    ("compare.py", "Compare", ":material/compare:"),
    ("representations.py", "Representations", ":material/stacked_line_chart:"),
    ("attributions.py", "Attributions", ":material/my_location:"),
    ("faithfulness.py", "Faithfulness", ":material/fact_check:"),
    ("efficiency.py", "Efficiency", ":material/speed:"),
    ("finetune.py", "Fine-tune", ":material/tune:"),
]


def run_app() -> None:
    """Page config, navigation over pages/, the sidebar, and the chosen page."""
    st.set_page_config(page_title="vitviz", layout="wide")
    from .preload import preload_plotly
    from .state import device_label
    page = st.navigation([st.Page(PAGES / f, title=t, icon=i, default=(f == "zoo.py"))
                          for f, t, i in PAGE_LIST if (PAGES / f).exists()])
    st.sidebar.caption(f"Device: {device_label()}")
    preload_plotly(st.sidebar)  # plotly.js evaluated while the browser is idle, not on the first figure's page
    page.run()


def ensure_app_navigation() -> None:
    """Run every page inside the app's navigation.

    When a page script is started on its own (Streamlit's legacy multipage mode, which it uses
    for the first request of a fresh server if that request is a page URL), run the app's
    navigation instead, which runs this page with the app's sidebar, then stop this copy.
    """
    from streamlit.runtime.pages_manager import PagesManager
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        run_app()
        st.stop()
