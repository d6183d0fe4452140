"""Cached per-checkpoint analyses for the pages (weight statistics, spectra inputs, F-SNE codes, saliency).

Each result is cached with `st.cache_data`, keyed by checkpoint path and file modification time (and the
image content where there is one); the model itself is passed as an unhashed `_model` argument.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from .. import checkpoints
from ..data.images import to_input
from ..inspect import attribute, code_similarity, pathway_similarity, qkv_codes, qkv_pathways, to_heatmap, weight_stats
from .state import _mtime, checkpoint_dir, device, image_key, load_model


@st.cache_data(max_entries=32, show_spinner=False)
def _weight_stats(path: str, mtime: float, _model):
    return weight_stats(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _pathways(path: str, mtime: float, _model):
    return qkv_pathways(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _similarity(path: str, mtime: float, _model):
    return pathway_similarity(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _codes(path: str, mtime: float, _model):
    return qkv_codes(_model).numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def _saliency(path: str, mtime: float, key: str, _model, _image: np.ndarray, mean: tuple, std: tuple):
    x = to_input(_image, mean, std, device())
    return to_heatmap(attribute(_model, x, method="saliency"))[0].cpu().numpy()


def weight_table(path):
    """`weight_stats` of a checkpoint's model."""
    return _weight_stats(str(path), _mtime(path), load_model(path)[0])


def pathways(path):
    """`qkv_pathways` of a checkpoint's model (CPU float copies of the Q/K/V weights)."""
    return _pathways(str(path), _mtime(path), load_model(path)[0])


def similarity_table(path):
    """`pathway_similarity` of a checkpoint's model (weights only: no CKA)."""
    return _similarity(str(path), _mtime(path), load_model(path)[0])


def fsne_codes(path) -> np.ndarray:
    """F-SNE codes (blocks, 3, code_length); ValueError if the model has none."""
    return _codes(str(path), _mtime(path), load_model(path)[0])


def fsne_code_similarity(path) -> np.ndarray:
    return code_similarity(fsne_codes(path)).numpy()


def saliency_heat(path, image: np.ndarray) -> np.ndarray:
    """Saliency of the predicted class for one prepared image, (H, W) in [0, 1]."""
    model, meta = load_model(path)
    return _saliency(str(path), _mtime(path), image_key(image), model, image, tuple(meta["mean"]),
                     tuple(meta["std"]))


def parent_checkpoint(meta: dict, path) -> str | None:
    """The readable checkpoint named by meta["parent"], looked up as given, then beside this checkpoint,
    then in the checkpoint directory; None if there is no parent or it cannot be found."""
    parent = meta.get("parent")
    if not parent:
        return None
    name = Path(parent).name
    for candidate in (Path(parent), Path(path).parent / parent, Path(path).parent / name, checkpoint_dir() / name):
        try:
            return checkpoints.read_meta(candidate)["path"]
        except (checkpoints.CheckpointError, OSError):
            continue
    return None
