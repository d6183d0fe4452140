"""Cached per-checkpoint analyses for the pages (weight statistics, spectra inputs, pathway CKA, F-SNE codes,
saliency).

Each result is cached with `st.cache_data`, keyed by checkpoint path and file modification time (and the
image content, or the image count and data directory, where images are involved); the model itself is
passed as an unhashed `_model` argument.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from .. import checkpoints
from ..data import data_dir
from ..data.images import to_input
from ..inspect import (attribute, code_contributions, code_similarity, pathway_cka, pathway_drift, qkv_codes,
                       qkv_pathways, to_heatmap, weight_overlap, weight_stats)
from ..inspect.codes import code_contribution_label
from ..inspect.compare_weights import drift_table as side_by_side, weight_drift
from ..inspect.pathways import probe_images
from .state import _mtime, checkpoint_dir, device, image_key, load_model


@st.cache_data(max_entries=32, show_spinner=False)
def _weight_stats(path: str, mtime: float, _model):
    return weight_stats(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _pathways(path: str, mtime: float, _model):
    return qkv_pathways(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _overlap(path: str, mtime: float, _model):
    return weight_overlap(_model)


@st.cache_data(max_entries=32, show_spinner="Running the test images through the model ...")
def _pathway_cka(path: str, mtime: float, count: int, data: str, _model, _meta):
    images, source = probe_images(_meta, count)
    return pathway_cka(_model, to_input(images, _meta["mean"], _meta["std"])), source


@st.cache_data(max_entries=16, show_spinner="Running the test images through both models ...")
def _drift(path: str, mtime: float, parent: str, parent_mtime: float, count: int, data: str, _model, _meta,
           _parent_model, _parent_meta):
    images, source = probe_images(_meta, count)
    function = pathway_drift(_parent_model, _model, to_input(images, _parent_meta["mean"], _parent_meta["std"]),
                             to_input(images, _meta["mean"], _meta["std"]))
    return side_by_side(function, weight_drift(qkv_pathways(_parent_model), qkv_pathways(_model))), source


@st.cache_data(max_entries=32, show_spinner=False)
def _codes(path: str, mtime: float, _model):
    return qkv_codes(_model).numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def _contributions(path: str, mtime: float, include_bias: bool, _model):
    return code_contributions(_model, include_bias).numpy(), code_contribution_label(_model, include_bias)


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


def overlap_table(path):
    """`weight_overlap` of a checkpoint's model: shared fraction and cosines of the Q/K/V weights."""
    return _overlap(str(path), _mtime(path), load_model(path)[0])


def pathway_similarity(path, count: int = 128):
    """(`PathwayCKA`, where the images come from) of a checkpoint on `count` of its test images
    (`probe_images`: the digits when its test set is not on disk)."""
    model, meta = load_model(path)
    return _pathway_cka(str(path), _mtime(path), int(count), str(data_dir()), model, meta)


def drift_table(path, parent, count: int = 128):
    """(table, image source) of the drift of each pathway from `parent` to `path` on the child's test images:
    block, pathway, function_cka (parent vs child outputs, `pathway_drift`), weight_relative_change and
    weight_cosine (`weight_drift`), images."""
    model, meta = load_model(path)
    parent_model, parent_meta = load_model(parent)
    return _drift(str(path), _mtime(path), str(parent), _mtime(parent), int(count), str(data_dir()), model, meta,
                  parent_model, parent_meta)


def fsne_codes(path) -> np.ndarray:
    """F-SNE codes (blocks, 3, code_length); ValueError if the model has none."""
    return _codes(str(path), _mtime(path), load_model(path)[0])


def fsne_code_similarity(path) -> np.ndarray:
    """Cosine similarity of the raw codes (blocks, 3, 3)."""
    return code_similarity(fsne_codes(path)).numpy()


def fsne_code_contributions(path, include_bias: bool = False) -> tuple[np.ndarray, str]:
    """(`code_contributions` (blocks, 3, hidden), its formula) of an F-SNE checkpoint: the codes as the shared
    MLP's first layer receives them."""
    return _contributions(str(path), _mtime(path), bool(include_bias), load_model(path)[0])


def fsne_contribution_similarity(path, include_bias: bool = False) -> np.ndarray:
    """Cosine similarity of the codes as the network sees them (blocks, 3, 3)."""
    return code_similarity(fsne_code_contributions(path, include_bias)[0]).numpy()


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
