"""Cached layer x layer CKA between two checkpoints for the Representations page."""
from __future__ import annotations

import streamlit as st

from ..data import data_dir
from ..inspect.representations import checkpoint_cka
from .state import _mtime, load_model


@st.cache_data(max_entries=16, show_spinner="Running the same test images through both models ...")
def _layer_cka(path_a: str, mtime_a: float, path_b: str, mtime_b: float, count: int, batch_size: int,
               features: str, data: str, _model_a, _meta_a, _model_b, _meta_b):
    return checkpoint_cka(_model_a, _meta_a, _model_b, _meta_b, count, batch_size=batch_size, features=features)


def layer_cka(path_a, path_b, count: int = 128, batch_size: int = 64, features: str = "flatten"):
    """(`RepresentationCKA`, where the images come from) of two checkpoints on `count` of a's test images,
    cached by both checkpoints, the settings and the data directory."""
    model_a, meta_a = load_model(path_a)
    model_b, meta_b = load_model(path_b)
    return _layer_cka(str(path_a), _mtime(path_a), str(path_b), _mtime(path_b), int(count), int(batch_size),
                      str(features), str(data_dir()), model_a, meta_a, model_b, meta_b)
