"""Helpers the Streamlit pages share: cached loading, device label. The only streamlit-aware module."""
from .state import device_label, checkpoint_dir

__all__ = ["device_label", "checkpoint_dir"]
