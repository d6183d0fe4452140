"""Training, fine-tuning and evaluation, separate from the models (see engine.py).

From the command line (`vitviz.LIGHT`) nothing is imported up front, so `vitviz.train.jobs` and
`vitviz.train.config` stay light (no torch); the names below are then imported on first use.
"""
from importlib import import_module

from .. import LIGHT

_NAMES = {
    "TRAINABLE_SCOPES": "config", "TrainConfig": "config", "resolve_device": "device",
    "TrainingCancelled": "engine", "TrainResult": "engine", "apply_trainable": "engine", "train": "engine",
    "EvalResult": "evaluate", "evaluate": "evaluate",
    "FinetuneResult": "finetune", "finetune": "finetune", "save_run": "finetune", "train_from_scratch": "finetune",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_NAMES[name]}", __name__), name)


if not LIGHT:
    from .config import TRAINABLE_SCOPES, TrainConfig  # noqa: E402, F401
    from ..device import resolve_device  # noqa: E402, F401
    from .engine import TrainingCancelled, TrainResult, apply_trainable, train  # noqa: E402, F401
    from .evaluate import EvalResult, evaluate  # noqa: E402, F401
    from .finetune import FinetuneResult, finetune, save_run, train_from_scratch  # noqa: E402, F401
