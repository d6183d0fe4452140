"""Cached per-checkpoint analyses for the pages (weight statistics, spectra inputs, pathway CKA, F-SNE codes,
saliency).

Each result is cached with `st.cache_data`, keyed by checkpoint path and file modification time (and the
image content, or the image count and data directory, where images are involved); the model itself is
passed as an unhashed `_model` argument. The CKA analyses, which run many test images through the model, are
also kept on disk (`vitviz.result_cache`), so another session or a restarted app shows them at once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from .. import checkpoints
from ..data import data_dir
from ..data.images import to_input
from .. import result_cache
from ..compare.pathways import DEFAULT_PROBE_IMAGES
from ..compare.side_by_side import drift_table as side_by_side, weight_drift
from ..compare.weights import qkv_pathways, weight_overlap
from ..explain.attributions import attribute, to_heatmap
from ..inspect.codes import code_contribution_label, code_contributions, code_similarity, qkv_codes
from .state import _mtime, checkpoint_dir, device, image_key, load_model, resolved


@st.cache_data(max_entries=32, show_spinner=False)
def _weight_stats(path: str, mtime: float, _checkpoint):
    return result_cache.weight_stats_result(_checkpoint)  # also kept on disk


@st.cache_data(max_entries=32, show_spinner=False)
def _pathways(path: str, mtime: float, _model):
    return qkv_pathways(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _overlap(path: str, mtime: float, _model):
    return weight_overlap(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _pathway_cka(path: str, mtime: float, count: int, data: str, _checkpoint):
    return result_cache.pathway_cka_result(_checkpoint, count, data_root=data)


@st.cache_data(max_entries=16, show_spinner=False)
def _drift(path: str, mtime: float, parent: str, parent_mtime: float, count: int, data: str, _checkpoint,
           _parent):
    function, source = result_cache.pathway_drift_result(_checkpoint, _parent, count, data_root=data)
    return side_by_side(function, weight_drift(qkv_pathways(_parent.model), qkv_pathways(_checkpoint.model))), source


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
    return _weight_stats(str(path), _mtime(path), resolved(path))


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
        return result_cache.pathway_cka_result(resolved(path), count, data_root=str(data_dir()), compute=False)
    return _pathway_cka(str(path), _mtime(path), int(count), str(data_dir()), resolved(path))


def drift_table(path, parent, count: int = DEFAULT_PROBE_IMAGES, compute: bool = True):
    """(table, image source) of the drift of each pathway from `parent` to `path` on the child's test images:
    block, pathway, function_cka (parent vs child outputs, `pathway_drift`, disk-cached), weight_relative_change
    and weight_cosine (`weight_drift`), images. With compute=False None when the function drift is not cached."""
    child, ancestor = resolved(path), resolved(parent)
    if not compute and result_cache.pathway_drift_result(child, ancestor, count, data_root=str(data_dir()),
                                                         compute=False) is None:
        return None
    return _drift(str(path), _mtime(path), str(parent), _mtime(parent), int(count), str(data_dir()), child,
                  ancestor)


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
