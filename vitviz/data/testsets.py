"""Where a checkpoint's own test set is: the data directory first, then the directory the checkpoint was trained
from (its metadata's `train_config.data_root`, stored portably: `../shared/data/cifar10-mini`)."""
from __future__ import annotations

import numpy as np

from ..locations import resolve_stored_path
from .registry import DATASETS, is_available, load_dataset


def test_set_roots(meta: dict, data_root=None) -> list:
    """Where a checkpoint's test set may be: the data directory, then the directory it was trained from."""
    roots = [data_root]  # None = $VITVIZ_DATA_DIR or ./data
    trained_from = resolve_stored_path((meta.get("train_config") or {}).get("data_root"))
    if trained_from:
        roots.append(str(trained_from))
    return roots


def test_set_root(meta: dict, data_root=None):
    """The first of `test_set_roots` that holds the checkpoint's dataset, or None (not on disk, or bundled)."""
    name = meta.get("dataset")
    if name not in DATASETS or DATASETS[name].folder is None:
        return None
    return next((root for root in test_set_roots(meta, data_root) if is_available(name, root)), None)


def find_test_set(meta: dict, data_root=None):
    """The checkpoint's own test set at its input size, or None when it is not on disk (never downloads)."""
    name = meta["dataset"]
    if name not in DATASETS:
        return None
    for root in test_set_roots(meta, data_root):
        if is_available(name, root):
            dataset = load_dataset(name, "test", root=root, img_size=meta["img_size"])
            if list(dataset.classes) == list(meta["classes"]):
                return dataset
    return None


def probe_images(meta: dict, count: int = 256, data_root=None) -> tuple[np.ndarray, str]:
    """Images to measure a checkpoint's pathways on: (uint8 (n, S, S, 3), where they come from).

    The checkpoint's own test set when it is on disk (`data.testsets.find_test_set`: the data directory, then
    the directory it was trained from), else scikit-learn's bundled digits at its input size. `count`
    images spread evenly over the set (so every class is present); all of them if the set is smaller.
    """
    if int(count) < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    dataset = find_test_set(meta, data_root)
    if dataset is not None:
        what = f"{meta['dataset']} test images"
    else:
        dataset = load_dataset("digits", "test", img_size=meta["img_size"])
        what = f"digits test images (the {meta['dataset']} test set is not in the data directory)"
    total = len(dataset.images)
    index = np.unique(np.linspace(0, total - 1, min(int(count), total)).round().astype(int))
    return np.ascontiguousarray(dataset.images[index]), f"{len(index)} {what}"


def image_source_key(meta: dict, data_root=None) -> str:
    """Where `probe_images(meta, ..., data_root)` takes its images from, cheaply (no image is read): the first
    directory that holds the checkpoint's test set, or "digits" (scikit-learn's bundled digits). The directory is
    written portably (relative to the repository when inside it or in the shared/ folder beside it), so a result
    keyed by it means the same on another clone."""
    from ..locations import portable_path
    from .paths import resolve_root

    name = meta.get("dataset")
    if name in DATASETS:
        if DATASETS[name].folder is None:
            return f"{name} (bundled)"
        for root in test_set_roots(meta, data_root):
            if is_available(name, root):
                return f"{name} at {portable_path(resolve_root(root))}"
    return "digits (bundled)"
