"""vitviz: streamlit run app.py — browse, inspect and compare compact vision transformers."""
from pathlib import Path

import streamlit as st

st.set_page_config(page_title="vitviz", layout="wide")

from vitviz.ui import device_label  # noqa: E402  (after set_page_config)

PAGES = Path(__file__).resolve().parent / "pages"
PAGE_LIST = [  # (file, title, icon)
    ("zoo.py", "Zoo", ":material/apps:"),
    ("attention.py", "Attention", ":material/visibility:"),
    ("cross_covariance.py", "Cross-covariance", ":material/grid_on:"),
    ("codes_weights.py", "Q/K/V codes & weights", ":material/key:"),
    ("per_class.py", "Per-class", ":material/bar_chart:"),
    ("compare.py", "Compare", ":material/compare:"),
    ("attributions.py", "Attributions", ":material/my_location:"),
    ("efficiency.py", "Efficiency", ":material/speed:"),
    ("finetune.py", "Fine-tune", ":material/tune:"),
]
page = st.navigation([st.Page(PAGES / f, title=t, icon=i, default=(f == "zoo.py"))
                      for f, t, i in PAGE_LIST if (PAGES / f).exists()])
st.sidebar.caption(f"Device: {device_label()}")
page.run()
