"""STL-10 reader for its binary layout (Coates, Lee & Ng, AISTATS 2011).

    <root>/stl10_binary/{train_X.bin, train_y.bin, test_X.bin, test_y.bin, class_names.txt}

``*_X.bin`` is raw uint8, one image per 27648 bytes = 3 channels x 96 x 96, each channel
stored column-major (MATLAB order), so an image is read as (3, W, H) and transposed to
(H, W, 3). ``*_y.bin`` is one uint8 label per image, 1..10 in the file, 0..9 here.
The unlabeled split (100k images, 2.7 GB) is not loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import ImageDataset
from .errors import DatasetFormatError, dataset_not_found
from .paths import dataset_folder, missing_files, resolve_root

STL10_FOLDER = "stl10_binary"
STL10_IMAGE_SIZE = 96
STL10_IMAGE_BYTES = 3 * STL10_IMAGE_SIZE * STL10_IMAGE_SIZE  # 27648
STL10_SPLITS = ("train", "test")
STL10_DEFAULT_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def read_stl10_images(path: Path) -> np.ndarray:
    """``*_X.bin`` → uint8 (N, 96, 96, 3)."""
    size = path.stat().st_size
    if size % STL10_IMAGE_BYTES:
        raise DatasetFormatError(
            f"{path}: size {size} bytes is not a multiple of {STL10_IMAGE_BYTES} (one 3x96x96 image)"
        )
    raw = np.fromfile(path, dtype=np.uint8)
    # (N, channel, column, row) on disk → (N, row, column, channel)
    return np.ascontiguousarray(raw.reshape(-1, 3, STL10_IMAGE_SIZE, STL10_IMAGE_SIZE).transpose(0, 3, 2, 1))


def read_stl10_labels(path: Path, num_images: int, num_classes: int) -> np.ndarray:
    """``*_y.bin`` (1-based uint8) → int64 labels 0..num_classes-1."""
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(labels) != num_images:
        raise DatasetFormatError(f"{path}: {len(labels)} labels for {num_images} images")
    if num_images and (labels.min() < 1 or labels.max() > num_classes):
        raise DatasetFormatError(
            f"{path}: labels must be 1..{num_classes}, got {labels.min()}..{labels.max()}"
        )
    return labels - 1


def read_class_names(folder: Path) -> list[str]:
    """Names from ``class_names.txt`` (one per line), or the published ten when absent."""
    path = folder / "class_names.txt"
    if not path.is_file():
        return list(STL10_DEFAULT_CLASSES)
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise DatasetFormatError(f"{path}: no class names")
    return names


def load_stl10(root: str | os.PathLike | None = None, split: str = "train") -> ImageDataset:
    """STL-10 labelled split from ``<root>/stl10_binary`` (root defaults to the data directory)."""
    if split not in STL10_SPLITS:
        raise ValueError(f"split must be one of {list(STL10_SPLITS)}, got {split!r}")
    folder = dataset_folder(root, STL10_FOLDER)
    image_file, label_file = f"{split}_X.bin", f"{split}_y.bin"
    missing = missing_files(folder, [image_file, label_file])
    if missing:
        raise dataset_not_found("stl10", folder, missing, resolve_root(root))
    classes = read_class_names(folder)
    images = read_stl10_images(folder / image_file)
    labels = read_stl10_labels(folder / label_file, len(images), len(classes))
    return ImageDataset(name="stl10", images=images, labels=labels, classes=classes, split=split)
