"""Tables of what is available: the variant catalog and the checkpoints in a directory.

Plain pandas DataFrames, so the app, the CLI and notebooks show the same thing.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .checkpoints import CheckpointError, list_checkpoints, read_meta
from .models import list_variants, variant_info
from .models.catalog import CATALOG

CHECKPOINT_DIR_ENV = "VITVIZ_CHECKPOINT_DIR"


def default_checkpoint_dir() -> Path:
    """`$VITVIZ_CHECKPOINT_DIR`, else `checkpoints/` beside the package (the shipped set)."""
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parent.parent / "checkpoints"


def variant_table() -> pd.DataFrame:
    rows = []
    for name in list_variants():
        info = variant_info(name)
        rows.append({"variant": name, "family": info["family"], "paper": info["paper"],
                     "differs from baseline": info["differs"], "img_size": info["img_size"],
                     "params": info["param_count"]})
    return pd.DataFrame(rows)


def checkpoint_row(path: str | os.PathLike) -> dict:
    """One row describing a checkpoint from its metadata (weights are not read)."""
    meta = read_meta(path)
    entry = CATALOG.get(meta["variant"])
    info = entry.as_dict(with_params=False) if entry else {}
    tc = meta.get("train_config") or {}
    metrics = meta.get("metrics") or {}
    return {
        "checkpoint": Path(path).stem,
        "variant": meta["variant"],
        "options": ", ".join(f"{k}={v}" for k, v in meta["variant_kwargs"].items()),
        "family": info.get("family", "?"),
        "paper": info.get("paper", "?"),
        "params": meta.get("param_count"),
        "dataset": meta["dataset"],
        "classes": len(meta["classes"]),
        "test_accuracy": metrics.get("test_accuracy"),
        "epochs": tc.get("epochs_done"),
        "train_seconds": tc.get("seconds"),
        "device": tc.get("device"),
        "parent": Path(meta["parent"]).stem if meta.get("parent") else None,
        "path": meta["path"],
    }


def checkpoint_table(directory: str | os.PathLike | None = None, recursive: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """All checkpoints under `directory` as a table, plus one message per file that could not be read."""
    directory = default_checkpoint_dir() if directory is None else Path(directory)
    rows, problems = [], []
    for path in list_checkpoints(directory, recursive=recursive):
        try:
            rows.append(checkpoint_row(path))
        except CheckpointError as exc:
            problems.append(str(exc))
    return pd.DataFrame(rows, columns=None if rows else ["checkpoint", "variant", "dataset", "test_accuracy"]), problems


def test_set_roots(meta: dict, data_root=None) -> list:
    """Where a checkpoint's test set may be: the data directory, then the directory it was trained from."""
    roots = [data_root]  # None = $VITVIZ_DATA_DIR or ./data
    trained_from = (meta.get("train_config") or {}).get("data_root")
    if trained_from:
        roots.append(trained_from)
    return roots


def find_test_set(meta: dict, data_root=None):
    """The checkpoint's own test set at its input size, or None when it is not on disk (never downloads)."""
    from .data import DATASETS, is_available, load_dataset
    name = meta["dataset"]
    if name not in DATASETS:
        return None
    for root in test_set_roots(meta, data_root):
        if is_available(name, root):
            dataset = load_dataset(name, "test", root=root, img_size=meta["img_size"])
            if list(dataset.classes) == list(meta["classes"]):
                return dataset
    return None


def finetune_datasets(meta: dict | None = None, data_root=None) -> list[dict]:
    """Datasets a fine-tune can use: each with its data directory, whether it is on disk, and its download size.

    The data directory comes first; a checkpoint's own training directory (e.g. cifar10-mini) is offered too.
    """
    from .data import DATASETS, data_dir, is_available
    roots = [None] + [r for r in test_set_roots(meta or {}, data_root)[1:] if r]
    choices = []
    for name, info in DATASETS.items():
        for root in ([None] if info.folder is None else roots):
            where = "bundled" if info.folder is None else str(data_dir() if root is None else root)
            available = is_available(name, root)
            if root is not None and not available:
                continue
            choices.append({"label": f"{info.title} ({where})", "dataset": name, "root": root,
                            "available": available, "download_mb": info.download_megabytes})
    return choices
