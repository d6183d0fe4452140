"""Cached per-checkpoint analyses for the pages (weight statistics, spectra inputs, pathway CKA, F-SNE codes,
saliency).

Each result is cached with `st.cache_data`, keyed by checkpoint path and file modification time (and the
image content, or the image count and data directory, where images are involved); the model itself is
passed as an unhashed `_model` argument. The CKA analyses, which run many test images through the model, are
also kept on disk (`vitviz.inspect.result_cache`), so another session or a restarted app shows them at once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from .. import checkpoints
from ..data import data_dir
from ..data.images import to_input
from ..inspect import (attribute, code_contributions, code_similarity, qkv_codes, qkv_pathways, result_cache,
                       to_heatmap, weight_overlap)
from ..inspect.codes import code_contribution_label
from ..inspect.compare_weights import drift_table as side_by_side, weight_drift
from ..inspect.pathways import DEFAULT_PROBE_IMAGES
from .state import _mtime, checkpoint_dir, checkpoint_meta, device, image_key, load_model


@st.cache_data(max_entries=32, show_spinner=False)
def _weight_stats(path: str, mtime: float, _model, _meta):
    return result_cache.weight_stats_result(path, model=_model, meta=_meta)  # also kept on disk


@st.cache_data(max_entries=32, show_spinner=False)
def _pathways(path: str, mtime: float, _model):
    return qkv_pathways(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _overlap(path: str, mtime: float, _model):
    return weight_overlap(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _pathway_cka(path: str, mtime: float, count: int, data: str, _model, _meta):
    return result_cache.pathway_cka_result(path, count, data_root=data, model=_model, meta=_meta)


@st.cache_data(max_entries=16, show_spinner=False)
def _drift(path: str, mtime: float, parent: str, parent_mtime: float, count: int, data: str, _model, _meta,
           _parent_model, _parent_meta):
    function, source = result_cache.pathway_drift_result(path, parent, count, data_root=data, model=_model,
                                                         meta=_meta, parent_model=_parent_model,
                                                         parent_meta=_parent_meta)
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
    return _weight_stats(str(path), _mtime(path), *load_model(path))


def pathways(path):
    """`qkv_pathways` of a checkpoint's model (CPU float copies of the Q/K/V weights)."""
    return _pathways(str(path), _mtime(path), load_model(path)[0])


def overlap_table(path):
    """`weight_overlap` of a checkpoint's model: shared fraction and cosines of the Q/K/V weights."""
    return _overlap(str(path), _mtime(path), load_model(path)[0])


def pathway_similarity(path, count: int = DEFAULT_PROBE_IMAGES, compute: bool = True):
    """(`PathwayCKA`, where the images come from) of a checkpoint on `count` of its test images
    (`probe_images`: the digits when its test set is not on disk), from the disk cache
    (`result_cache.pathway_cka_result`) or computed; with compute=False None when it is not cached."""
    if not compute:
        return result_cache.pathway_cka_result(path, count, data_root=str(data_dir()), meta=checkpoint_meta(path),
                                               compute=False)
    model, meta = load_model(path)
    return _pathway_cka(str(path), _mtime(path), int(count), str(data_dir()), model, meta)


def drift_table(path, parent, count: int = DEFAULT_PROBE_IMAGES, compute: bool = True):
    """(table, image source) of the drift of each pathway from `parent` to `path` on the child's test images:
    block, pathway, function_cka (parent vs child outputs, `pathway_drift`, disk-cached), weight_relative_change
    and weight_cosine (`weight_drift`), images. With compute=False None when the function drift is not cached."""
    if not compute:
        if result_cache.pathway_drift_result(path, parent, count, data_root=str(data_dir()),
                                             meta=checkpoint_meta(path), parent_meta=checkpoint_meta(parent),
                                             compute=False) is None:
            return None
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
