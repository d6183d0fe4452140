"""Faithfulness: which explanation can be trusted, per checkpoint: perturbation test and RISE deletion/insertion."""
from pathlib import Path

import streamlit as st

from vitviz.explain.faithfulness import METHODS, Settings, load_cached
from vitviz.ui import choose_checkpoints
from vitviz.ui.explain_views import progress_panel, results_view
from vitviz.ui.export_buttons import report_download, start_report
from vitviz.ui.navigation import ensure_app_navigation

ensure_app_navigation()
st.title("Faithfulness")
start_report()
st.caption("For each explanation method: does removing the pixels it calls relevant change the model's decision "
           "(and removing the others not)? Computed on test images of each checkpoint's own data set (the digits "
           "when it is not on disk), cached on disk per checkpoint and settings.")
chosen = choose_checkpoints("Checkpoints", key="faith_checkpoints", min_count=1, max_count=6)
cols = st.columns(3)
images = cols[0].number_input("Test images", min_value=2, max_value=2000, value=100, step=10, key="faith_images")
seed = cols[1].number_input("Seed", min_value=0, value=0, step=1, key="faith_seed")
methods = cols[2].multiselect("Methods", list(METHODS), default=list(METHODS), key="faith_methods",
                              help="\n".join(f"- {k}: {v}" for k, v in METHODS.items()))
if not methods:
    st.info("Choose at least one method.")
    st.stop()
settings = Settings(images=int(images), seed=int(seed), methods=tuple(methods))
paths = [path for path, _, _ in chosen]
progress_panel(paths, settings)
results = [r for r in (load_cached(p, settings) for p in paths) if r is not None]
if not results:
    st.info("No cached results for these settings yet: start a computation above, or run "
            f"`python -m vitviz faithfulness --checkpoint PATH --images {settings.images}`.")
    st.stop()
names = [Path(path).stem for path in paths]
report_download("Faithfulness: " + ", ".join(names), "faithfulness_report",
                {Path(path).stem: meta for path, _, meta in chosen}, "faith_", key="faith_report")
results_view(results)
