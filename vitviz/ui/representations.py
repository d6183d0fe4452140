"""Cached layer x layer CKA between two checkpoints for the Representations page (in memory and on disk)."""
from __future__ import annotations

import streamlit as st

from ..data import data_dir
from .. import result_cache
from .state import _mtime, resolved


@st.cache_data(max_entries=16, show_spinner=False)
def _layer_cka(path_a: str, mtime_a: float, path_b: str, mtime_b: float, count: int, batch_size: int,
               features: str, data: str, _a, _b):
    return result_cache.representation_cka_result(_a, _b, count, batch_size=batch_size, features=features,
                                                  data_root=data)


def layer_cka(path_a, path_b, count: int = 128, batch_size: int = 64, features: str = "flatten",
              compute: bool = True):
    """(`RepresentationCKA`, where the images come from) of two checkpoints on `count` of a's test images,
    from the disk cache (`result_cache.representation_cka_result`) or computed (cached by both checkpoints, the
    settings and the data directory); with compute=False None when it is not cached (no model is loaded)."""
    a, b = resolved(path_a), resolved(path_b)  # the app's shared checkpoints: a model is loaded at most once
    if not compute:
        return result_cache.representation_cka_result(a, b, count, batch_size=batch_size, features=features,
                                                      data_root=str(data_dir()), compute=False)
    return _layer_cka(str(path_a), _mtime(path_a), str(path_b), _mtime(path_b), int(count), int(batch_size),
                      str(features), str(data_dir()), a, b)
