"""vitviz: streamlit run app.py — browse, inspect and compare compact vision transformers."""
from vitviz.ui.navigation import run_app

run_app()
