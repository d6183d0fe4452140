"""Cached `vitviz.inspect.approximation.fidelity` of one checkpoint on one prepared image."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ..data.images import to_input
from ..inspect.approximation import BUDGETS, Fidelity, fidelity, has_efficient_attention
from .state import _mtime, device, image_key, load_model

__all__ = ["BUDGETS", "fidelity_of", "has_efficient_attention"]


@st.cache_data(max_entries=16, show_spinner=False)
def _fidelity(path: str, mtime: float, key: str, _image: np.ndarray, budgets: tuple) -> Fidelity:
    model, meta = load_model(path)
    return fidelity(model, to_input(_image, meta["mean"], meta["std"], device()), budgets=budgets)


def fidelity_of(path, image: np.ndarray, budgets: tuple = BUDGETS) -> Fidelity:
    """How far each efficient-attention layer is from softmax on this image (see `fidelity`), cached."""
    return _fidelity(str(path), _mtime(path), image_key(image), image, tuple(budgets))
