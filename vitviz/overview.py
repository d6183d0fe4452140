"""Tables of what is available: the variant catalog and the checkpoints in a directory.

Plain pandas DataFrames, so the app, the CLI and notebooks show the same thing.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .checkpoint_meta import CheckpointError, check_weights_size, checkpoint_candidates, read_meta
from .locations import CHECKPOINT_DIR_ENV, default_checkpoint_dir, default_runs_dir  # noqa: F401  (re-exported)
from .catalog import CATALOG

PREFERRED_FAMILIES = ("XCiT", "ViT")  # what the pickers open on: the papers' main models


def variant_table() -> pd.DataFrame:
    """Every registered variant with its family, paper, what differs and parameter count (imports the registry)."""
    from .models import list_variants, variant_info
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
    check_weights_size(path)
    entry = CATALOG.get(meta["variant"])
    if entry is None and not _is_timm_model(meta["variant"]):
        raise CheckpointError(f"{Path(path).with_suffix('.json')}: unknown variant {meta['variant']!r} "
                              "(not registered with timm)")
    info = entry.as_dict() if entry else {}
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
        "learning_curve": learning_curve(tc.get("history") or []),
        "train_seconds": tc.get("seconds"),
        "device": tc.get("device"),
        "parent": Path(meta["parent"]).stem if meta.get("parent") else None,
        "path": meta["path"],
    }


def learning_curve(history: list[dict]) -> list[float] | None:
    """The per-epoch test accuracy of a run's history (None when the run evaluated only at its end)."""
    points = [h["test_accuracy"] for h in history if h.get("test_accuracy") is not None]
    return points if len(points) >= 2 else None


def _is_timm_model(name: str) -> bool:
    import timm
    return timm.is_model(name)


def checkpoint_table(directory: str | os.PathLike | None = None,
                     recursive: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """All checkpoints under `directory` as a table, plus one message per file that cannot be used.

    A message names the file and the reason: invalid JSON, not a JSON object, invalid metadata, weights
    file missing or truncated, unknown variant. Such a checkpoint is not in the table (so no picker offers it).
    """
    directory = default_checkpoint_dir() if directory is None else Path(directory)
    rows, problems = [], []
    for path in checkpoint_candidates(directory, recursive=recursive):
        try:
            rows.append(checkpoint_row(path))
        except CheckpointError as exc:
            problems.append(str(exc))
    return pd.DataFrame(rows, columns=None if rows else ["checkpoint", "variant", "dataset", "test_accuracy"]), problems


def preferred_checkpoint(table: pd.DataFrame) -> str | None:
    """The path a single-checkpoint picker opens on: the first XCiT, else the first ViT, else the first row."""
    if table.empty:
        return None
    for family in PREFERRED_FAMILIES:
        match = table[table["family"] == family]
        if len(match):
            return match["path"].iloc[0]
    return table["path"].iloc[0]


def default_pair(table: pd.DataFrame) -> tuple[str | None, str | None]:
    """(A, B) a two-checkpoint comparison opens on: XCiT linear vs XCiT F-SNE (the Q/K/V paper's
    comparison) when both are listed, else the first two checkpoints."""
    if table.empty:
        return None, None
    xcit = table[table["family"] == "XCiT"]
    linear = xcit[xcit["variant"].str.endswith("_linear")]["path"].tolist()
    fsne = xcit[xcit["variant"].str.endswith("_fsne")]["path"].tolist()
    if linear and fsne:
        return linear[0], fsne[0]
    paths = table["path"].tolist()
    return paths[0], paths[min(1, len(paths) - 1)]


def __getattr__(name):  # moved to vitviz.data.testsets; importable from here for one release, without torch up front
    if name in ("find_test_set", "test_set_roots"):
        from .data import testsets
        return getattr(testsets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def finetune_datasets(meta: dict | None = None, data_root=None) -> list[dict]:
    """Datasets a fine-tune can use: each with its data directory, whether it is on disk, and its download size.

    The data directory comes first; a checkpoint's own training directory (e.g. cifar10-mini) is offered too.
    """
    from .data import DATASETS, data_dir, is_available
    from .data.testsets import test_set_roots
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
