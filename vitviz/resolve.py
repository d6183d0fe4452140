"""One way from a checkpoint path to what an analysis needs: its metadata, its model on a device, and images.

`resolve(path, device)` reads the metadata at once (cheap: no weights) and loads the model on first use of
`.model`, once, under a lock (the app's threads share a `Resolved` through its resource cache). Every caller
goes through it: the app's cached loader (`vitviz.ui.state`), the disk cache of slow analyses
(`vitviz.result_cache`), the CLI and the bench scripts. So an analysis is handed models and images,
never paths, and a result that is already on disk is found without loading any model.

Images come from the data side (`vitviz.data.testsets`): the checkpoint's own test set when it is on disk,
else scikit-learn's bundled digits, always with the source named.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from .checkpoint_meta import read_meta
from .device import resolve_device


class Resolved:
    """A checkpoint with its metadata, device and (loaded on first use) model in eval mode, frozen."""

    def __init__(self, path: str | os.PathLike, device=None, *, meta: dict | None = None,
                 model: torch.nn.Module | None = None):
        self.meta = meta if meta is not None and meta.get("weights_sha256") and meta.get("path") else read_meta(path)
        self.path = str(self.meta.get("path") or path)
        self.device = resolve_device(device) if model is None else _device_of(model)
        self._model = model
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Resolved({Path(self.path).name!r}, device={self.device}, loaded={self.loaded})"

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @property
    def weights_sha256(self) -> str:
        return str(self.meta["weights_sha256"])

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from . import checkpoints
                    model, meta = checkpoints.load(self.path, device=self.device)
                    model.eval()
                    for p in model.parameters():
                        p.requires_grad_(False)
                    self.meta, self._model = meta, model
        return self._model

    def test_set(self, data_root=None):
        """The checkpoint's own test set at its input size, or None when it is not on disk."""
        from .data.testsets import find_test_set
        return find_test_set(self.meta, data_root)

    def probe_images(self, count: int, data_root=None) -> tuple[np.ndarray, str]:
        """`count` images spread over its test set (else the digits): (uint8 (n, S, S, 3), where they come from)."""
        from .data.testsets import probe_images
        return probe_images(self.meta, count, data_root)

    def image_source(self, data_root=None) -> str:
        """Where `probe_images` takes its images from, without reading any (part of the disk cache's keys)."""
        from .data.testsets import image_source_key
        return image_source_key(self.meta, data_root)

    def inputs(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (n, S, S, 3) images normalised for this model, on its device."""
        from .data.images import to_input
        return to_input(images, self.meta["mean"], self.meta["std"], self.device)


def resolve(path, device=None, *, meta: dict | None = None, model: torch.nn.Module | None = None) -> Resolved:
    """`path` (a checkpoint path, or a `Resolved`, returned as it is) as a `Resolved`; CheckpointError when
    its metadata is unreadable. `meta`/`model`: the already loaded checkpoint, when the caller has it."""
    if isinstance(path, Resolved):
        return path
    return Resolved(path, device, meta=meta, model=model)


def _device_of(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")
