"""The app's pages and navigation, shared by app.py and the pages' guard.

A fresh server would first show Streamlit's own listing of the `pages/` folder (file names: "app, attention,
attributions, codes weights, ...") until app.py's first run reaches `st.navigation`, and a first request for a
page path ("/zoo") then ended in a "Page not found" dialog. So `.streamlit/config.toml` hides Streamlit's
sidebar navigation (`client.showSidebarNavigation = false`, which hides that listing), `st.navigation` is the
first thing app.py runs (before any heavy import), and the sidebar's links are the app's own (`st.page_link`,
titles and icons), drawn before the page. The device caption, the plotly preload and the background warm-up of
the heavy imports come after the page, so the first page is served without waiting for torch.
"""
from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st

from .imports import import_heavy

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
    ("studies.py", "Studies", ":material/science:"),
]
LIGHT_PATHS = ("", "home", "zoo")  # pages drawn without torch (the Zoo at / and at /zoo)


def app_pages() -> list:
    """The app's pages; each answers at its own path, the file's name (/zoo, /attention, ...: the paths
    Streamlit's pages/ listing once linked, so bookmarks keep working)."""
    return [st.Page(PAGES / f, title=t, icon=i, url_path=Path(f).stem) for f, t, i in PAGE_LIST
            if (PAGES / f).exists()]


def _home() -> None:
    """The app's root, /: the Zoo, run in place (a default page answers only at /, so the Zoo's own page is
    not the default: it keeps /zoo)."""
    runpy.run_path(str(PAGES / "zoo.py"), run_name="__main__")


def run_app() -> None:
    """Page config, navigation over pages/, the sidebar's links, the chosen page, then what can wait."""
    st.set_page_config(page_title="vitviz", layout="wide")
    pages = app_pages()
    home = st.Page(_home, title="Zoo", icon=":material/apps:", url_path="home", default=True)
    page = st.navigation([home, *pages], position="hidden")  # our own links below: titles and icons
    with st.sidebar:
        for p in pages:
            st.page_link(p)
    if page.url_path not in LIGHT_PATHS:
        import_heavy()  # before the page's own imports: never two threads importing the library at once
    page.run()
    import_heavy()  # what follows (the device caption) needs torch
    from .preload import preload_plotly
    from .state import device_label
    from .warm import warm_in_background
    st.sidebar.caption(f"Device: {device_label()}")
    preload_plotly(st.sidebar)  # plotly.js evaluated while the browser is idle, not on the first figure's page
    warm_in_background()  # heavy imports and the first model, once per process, after the first page is served


def ensure_app_navigation() -> None:
    """Run every page inside the app's navigation.

    When a page script is started on its own (Streamlit's legacy multipage mode, which it uses for the first
    request of a fresh server if that request is a page URL such as /zoo), leave that mode for good. A fresh
    session (nothing in its state, so no click to lose) reruns: the rerun goes through app.py's navigation,
    where the same URL names the same page (running the app's navigation inside this run instead made the
    browser report "Page not found"). A session with state runs the app's navigation here, then stops this copy.
    """
    from streamlit.runtime.pages_manager import PagesManager
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        if not st.session_state:
            st.rerun()
        run_app()
        st.stop()
