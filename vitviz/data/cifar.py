"""CIFAR-10 and CIFAR-100 readers for the python-pickle layout torchvision downloads.

Krizhevsky, "Learning Multiple Layers of Features from Tiny Images" (2009).

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}   ('label_names')
    <root>/cifar-100-python/{train, test, meta}   ('fine_labels' / 'fine_label_names',
                                                    'coarse_labels' / 'coarse_label_names')

Each row of 'data' is 3072 uint8 values: 1024 red, then green, then blue, each a
row-major 32x32 plane. Files are unpickled with ``encoding="latin1"`` (Python 2 pickles)
through an unpickler that only rebuilds numpy arrays, so a planted pickle cannot run code.
Checksums are not verified here: subsets such as cifar10-mini are valid but differ from
the published files (downloads are verified in ``download.py``).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from .dataset import ImageDataset
from .errors import DatasetFormatError, dataset_not_found
from .paths import dataset_folder, missing_files, resolve_root

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR10_SPLIT_FILES = {
    "train": [f"data_batch_{index}" for index in range(1, 6)],
    "test": ["test_batch"],
}
CIFAR100_SPLIT_FILES = {"train": ["train"], "test": ["test"]}
CIFAR_IMAGE_SIZE = 32
CIFAR_ROW_BYTES = 3 * CIFAR_IMAGE_SIZE * CIFAR_IMAGE_SIZE

# Globals a CIFAR pickle may reference: numpy's array reconstruction, nothing else.
ALLOWED_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except numpy array reconstruction."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        return super().find_class(module, name)


def read_cifar_pickle(path: Path) -> dict[str, object]:
    """Unpickle one CIFAR file into a dict with str keys (bytes keys are decoded)."""
    try:
        with open(path, "rb") as file:
            content = NumpyOnlyUnpickler(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise DatasetFormatError(f"{path}: not a readable CIFAR pickle ({error})") from error
    if not isinstance(content, dict):
        raise DatasetFormatError(f"{path}: expected a dict, got {type(content).__name__}")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def require_key(content: dict[str, object], key: str, path: Path) -> object:
    if key not in content:
        raise DatasetFormatError(f"{path}: missing key {key!r} (has {sorted(content)})")
    return content[key]


def decode_names(names: object, path: Path) -> list[str]:
    """Class names as str (Python 2 pickles may hold bytes)."""
    if not isinstance(names, (list, tuple)):
        raise DatasetFormatError(f"{path}: class names must be a list, got {type(names).__name__}")
    return [name.decode("latin1") if isinstance(name, bytes) else str(name) for name in names]


def rows_to_images(data: object, path: Path) -> np.ndarray:
    """(N, 3072) R-plane/G-plane/B-plane rows → uint8 (N, 32, 32, 3)."""
    rows = np.asarray(data)
    if rows.dtype != np.uint8:
        raise DatasetFormatError(f"{path}: 'data' must be uint8, got {rows.dtype}")
    if rows.ndim != 2 or rows.shape[1] != CIFAR_ROW_BYTES:
        raise DatasetFormatError(f"{path}: 'data' must have shape (N, {CIFAR_ROW_BYTES}), got {rows.shape}")
    planes = rows.reshape(-1, 3, CIFAR_IMAGE_SIZE, CIFAR_IMAGE_SIZE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1))


def read_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One data file → (images uint8 (N, 32, 32, 3), labels int64 (N,))."""
    content = read_cifar_pickle(path)
    images = rows_to_images(require_key(content, "data", path), path)
    labels = np.asarray(require_key(content, label_key, path))
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(
            f"{path}: {label_key!r} must be {len(images)} integers, got {labels.dtype} {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetFormatError(f"{path}: labels outside 0..{num_classes - 1}")
    return images, labels.astype(np.int64)


def check_split(split: str, split_files: dict[str, list[str]]) -> list[str]:
    if split not in split_files:
        raise ValueError(f"split must be one of {sorted(split_files)}, got {split!r}")
    return split_files[split]


def read_split(
    name: str,
    root: str | os.PathLike | None,
    folder_name: str,
    data_files: list[str],
    meta_file: str,
    names_key: str,
    label_key: str,
    split: str,
) -> ImageDataset:
    """Shared CIFAR-10/100 reading: check files, read meta for class names, stack batches."""
    folder = dataset_folder(root, folder_name)
    missing = missing_files(folder, [*data_files, meta_file])
    if missing:
        raise dataset_not_found(name, folder, missing, resolve_root(root))
    meta_path = folder / meta_file
    classes = decode_names(require_key(read_cifar_pickle(meta_path), names_key, meta_path), meta_path)
    batches = [read_batch(folder / file_name, label_key, len(classes)) for file_name in data_files]
    images = np.concatenate([batch_images for batch_images, _ in batches])
    labels = np.concatenate([batch_labels for _, batch_labels in batches])
    return ImageDataset(name=name, images=images, labels=labels, classes=classes, split=split)


def load_cifar10(root: str | os.PathLike | None = None, split: str = "train") -> ImageDataset:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (root defaults to the data directory)."""
    data_files = check_split(split, CIFAR10_SPLIT_FILES)
    return read_split(
        "cifar10", root, CIFAR10_FOLDER, data_files, "batches.meta", "label_names", "labels", split
    )


def load_cifar100(
    root: str | os.PathLike | None = None, split: str = "train", label_type: str = "fine"
) -> ImageDataset:
    """CIFAR-100 from ``<root>/cifar-100-python``; ``label_type`` "fine" (100) or "coarse" (20)."""
    if label_type not in ("fine", "coarse"):
        raise ValueError(f"label_type must be 'fine' or 'coarse', got {label_type!r}")
    data_files = check_split(split, CIFAR100_SPLIT_FILES)
    name = "cifar100" if label_type == "fine" else "cifar100-coarse"
    return read_split(
        name,
        root,
        CIFAR100_FOLDER,
        data_files,
        "meta",
        names_key=f"{label_type}_label_names",
        label_key=f"{label_type}_labels",
        split=split,
    )
