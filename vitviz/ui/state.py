"""Cached, read-only resources for the pages: device, checkpoints, models, test sets, captures.

Models are cached by checkpoint path and file modification time, so they are loaded once per
process and re-loaded only when the file changes; pages only read them (capture and the analyses
restore whatever they touch).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from .. import checkpoints
from ..data import DATASETS
from ..data.images import to_input
from ..inspect import capture
from ..data.testsets import find_test_set
from .tables import _files_signature, checkpoint_dir, checkpoints_table  # noqa: F401  (re-exported)
from ..device import device_name, resolve_device
from ..resolve import Resolved, resolve


@st.cache_resource
def device() -> torch.device:
    return resolve_device()


def device_label() -> str:
    dev = device()
    return f"{device_name(dev)} ({dev.type})"


def _mtime(path) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(max_entries=16, show_spinner=False)
def _resolved(path: str, mtime: float) -> Resolved:
    return resolve(path, device())


def resolved(path) -> Resolved:
    """The checkpoint as every analysis takes it (`vitviz.resolve`), shared by all sessions and cached by file time;
    its model is loaded on first use, once. CheckpointError for unreadable metadata."""
    return _resolved(str(path), _mtime(path))


@st.cache_resource(max_entries=16, show_spinner="Loading checkpoint ...")
def _load(path: str, mtime: float):
    r = _resolved(path, mtime)
    return r.model, r.meta


def load_model(path) -> tuple[torch.nn.Module, dict]:
    """(model, meta) for a checkpoint, cached; raises CheckpointError for a bad file."""
    return _load(str(path), _mtime(path))


@st.cache_data(max_entries=256, show_spinner=False)
def _meta(path: str, mtime: float) -> dict:
    return checkpoints.read_meta(path)


def checkpoint_meta(path) -> dict:
    """A checkpoint's metadata without loading its weights (cached by file time); CheckpointError if unreadable."""
    return _meta(str(path), _mtime(path))


@st.cache_data(max_entries=8, show_spinner="Loading test set ...")
def _test_set(dataset: str, img_size: int, classes: tuple, data_root: str | None, mtime_key: str):
    meta = {"dataset": dataset, "img_size": img_size, "classes": list(classes),
            "train_config": {"data_root": data_root}}
    found = find_test_set(meta)
    return None if found is None else (found.images, found.labels, found.classes)


def test_set(meta: dict):
    """(images uint8 (N, H, W, 3), labels, classes) of the checkpoint's test set, or None if not on disk."""
    root = (meta.get("train_config") or {}).get("data_root")
    return _test_set(meta["dataset"], meta["img_size"], tuple(meta["classes"]), root, str(_mtime(root or ".")))


def test_set_missing_note(meta: dict) -> str:
    info = DATASETS.get(meta["dataset"])
    size = f" ({info.download_megabytes} MB)" if info and info.download_megabytes else ""
    if info and info.no_download:
        return f"The test set of this checkpoint ({meta['dataset']}) is not in the data directory. {info.no_download}"
    return (f"The test set of this checkpoint ({meta['dataset']}) is not in the data directory; "
            f"`python -m vitviz download {meta['dataset']}` fetches it{size}.")


def image_key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]


@st.cache_data(max_entries=64, show_spinner=False)
def _capture(path: str, mtime: float, key: str, _image: np.ndarray, want: tuple, max_implied_tokens: int):
    model, meta = load_model(path)
    x = to_input(_image, meta["mean"], meta["std"], device())
    art = capture(model, x, want=want, max_implied_tokens=max_implied_tokens)
    return {k: art[k] for k in art}


def captured(path, image: np.ndarray, want, max_implied_tokens: int = 1024) -> dict:
    """capture() of one prepared image (uint8, model size), cached by checkpoint and image content."""
    return _capture(str(path), _mtime(path), image_key(image), image, tuple(sorted(want)), max_implied_tokens)

