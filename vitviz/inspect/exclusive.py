"""One lock per model for everything that hooks or mutates a shared model.

Streamlit serves every browser session from threads that share the cached models. `capture`
installs hooks and flips flags, attributions freeze parameters and switch to eval mode, feature
extraction and timing switch modes: two of those interleaving on one model would record each
other's blocks or restore each other's flags. Every such operation runs inside
`exclusive(model)`, which holds a re-entrant lock owned by that model object for the duration.
Different models run in parallel; calls on one model run one after the other.
"""
from __future__ import annotations

import contextlib
import threading
import weakref

from torch import nn

_locks: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The re-entrant lock owned by `model` (created on first use, dropped with the model)."""
    with _registry_lock:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


@contextlib.contextmanager
def exclusive(model: nn.Module):
    """Hold `model`'s lock inside: no other thread hooks or mutates the model meanwhile."""
    with model_lock(model):
        yield model


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """`exclusive(model)` in eval mode; every module's train/eval flag is restored on exit."""
    with exclusive(model):
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            yield model
        finally:
            for module, training in modes:
                module.training = training
