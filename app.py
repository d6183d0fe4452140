"""vitviz: streamlit run app.py — browse, inspect and compare compact vision transformers."""
import streamlit as st

st.set_page_config(page_title="vitviz", layout="wide")

from vitviz.ui import device_label  # noqa: E402  (after set_page_config)

page = st.navigation([
    st.Page("pages/zoo.py", title="Zoo", icon="🧩", default=True),
])
st.sidebar.caption(f"Device: {device_label()}")
page.run()
