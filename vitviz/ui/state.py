"""Cached, read-only resources for the pages (device, checkpoint directory)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ..overview import default_checkpoint_dir
from ..train.device import device_name, resolve_device


@st.cache_resource
def device_label() -> str:
    dev = resolve_device()
    return f"{device_name(dev)} ({dev.type})"


def checkpoint_dir() -> Path:
    return default_checkpoint_dir()
