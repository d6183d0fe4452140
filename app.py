"""vitviz: streamlit run app.py — browse, inspect and compare compact vision transformers."""
import streamlit as st

st.set_page_config(page_title="vitviz", layout="wide")

from vitviz.ui.navigation import run_app  # noqa: E402  (after set_page_config)

run_app()
