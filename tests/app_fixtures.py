"""Tiny trained checkpoints for the app tests (written once per session into a temp directory)."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

import timm
import torch

from streamlit.testing.v1 import AppTest

from vitviz import checkpoints
from vitviz.data import DATASETS, load_dataset
from vitviz.train import evaluate

from tiny import tiny_kwargs

TIMEOUT = 120
APP = Path(__file__).resolve().parents[1] / "app.py"

APP_VARIANTS = {
    "tiny_xcit_fsne": ("vitviz_xcit_n12_p4_32_fsne", {}),
    "tiny_xcit_linear": ("vitviz_xcit_n12_p4_32_linear", {}),
    "tiny_vit_softmax": ("vitviz_vit_softmax_32", {}),
    "tiny_vit_performer": ("vitviz_vit_performer_32", {}),
}


def write_tiny_checkpoints(directory: Path) -> list[Path]:
    """Untrained tiny models, evaluated on digits, saved with full metadata."""
    directory.mkdir(parents=True, exist_ok=True)
    test_set = load_dataset("digits", "test", img_size=32)
    info = DATASETS["digits"]
    paths = []
    for i, (stem, (variant, extra)) in enumerate(APP_VARIANTS.items()):
        torch.manual_seed(i)
        kwargs = dict(tiny_kwargs(variant), **extra)
        model = timm.create_model(variant, num_classes=10, **kwargs)
        result = evaluate(model, test_set, mean=info.mean, std=info.std, img_size=32)
        meta = dict(variant=variant, variant_kwargs=kwargs, classes=test_set.classes, img_size=32,
                    mean=list(info.mean), std=list(info.std), dataset="digits", metrics=result.as_metrics(),
                    train_config={"epochs_done": 0, "seconds": 0.0, "device": "CPU"}, parent=None)
        paths.append(checkpoints.save(model, directory / stem, meta))
    return paths


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    if page != "Zoo":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def spec_array(value) -> np.ndarray:
    """An array of a plotly spec (what Streamlit sends to the browser) as floats: a plain list, or plotly's typed
    array {"dtype", "bdata"[, "shape"]} (base64)."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
        return flat.reshape(shape).astype(float)
    return np.asarray(value, dtype=float)
