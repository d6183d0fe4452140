"""The dataset catalog and the one entry point, ``load_dataset(name, split, ...)``.

``DATASETS`` maps each name to a ``DatasetInfo``: class count, the image size
``load_dataset`` returns by default, normalisation mean/std, and for downloadable sets the
archive's URL, md5 and size in bytes (so an app can say "download 163 MB" before asking).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .cifar import (
    CIFAR10_FOLDER,
    CIFAR10_SPLIT_FILES,
    CIFAR100_FOLDER,
    CIFAR100_SPLIT_FILES,
    load_cifar10,
    load_cifar100,
)
from .dataset import ImageDataset
from .digits import DIGITS_DEFAULT_SIZE, load_digits_dataset
from .download import ProgressCallback, download_and_extract
from .paths import dataset_folder, missing_files, resolve_root
from .stl10 import STL10_FOLDER, load_stl10


@dataclass(frozen=True)
class DatasetInfo:
    """What the app and trainer need to know about a dataset before loading it."""

    name: str
    title: str
    num_classes: int
    image_size: int  # side of the images load_dataset returns when img_size is None
    mean: tuple[float, float, float]  # per-channel RGB mean of the training images, in 0..1
    std: tuple[float, float, float]
    folder: str | None  # folder inside the data directory; None when bundled with a package
    required_files: tuple[str, ...]  # files inside `folder` that both splits need
    url: str | None = None
    md5: str | None = None  # of the archive at `url`; checked only for downloads
    download_bytes: int | None = None

    @property
    def downloadable(self) -> bool:
        return self.url is not None

    @property
    def download_megabytes(self) -> int | None:
        """Archive size in MiB, rounded, for messages like "download 163 MB"."""
        return None if self.download_bytes is None else round(self.download_bytes / 2**20)


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        num_classes=10,
        image_size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        folder=CIFAR10_FOLDER,
        required_files=(*CIFAR10_SPLIT_FILES["train"], *CIFAR10_SPLIT_FILES["test"], "batches.meta"),
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        download_bytes=170_498_071,
    ),
    "cifar100": DatasetInfo(
        name="cifar100",
        title="CIFAR-100",
        num_classes=100,
        image_size=32,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        folder=CIFAR100_FOLDER,
        required_files=(*CIFAR100_SPLIT_FILES["train"], *CIFAR100_SPLIT_FILES["test"], "meta"),
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        download_bytes=169_001_437,
    ),
    "stl10": DatasetInfo(
        name="stl10",
        title="STL-10",
        num_classes=10,
        image_size=96,
        mean=(0.4467, 0.4398, 0.4066),
        std=(0.2603, 0.2566, 0.2713),
        folder=STL10_FOLDER,
        required_files=("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"),
        url="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
        md5="91f7769df0f17e558f3565bffb0c7dfb",
        download_bytes=2_640_397_119,
    ),
    "digits": DatasetInfo(
        name="digits",
        title="Handwritten digits (scikit-learn, offline)",
        num_classes=10,
        image_size=DIGITS_DEFAULT_SIZE,
        # measured on the 32 px training split (tests/test_data.py re-measures it)
        mean=(0.3054, 0.3054, 0.3054),
        std=(0.3236, 0.3236, 0.3236),
        folder=None,
        required_files=(),
    ),
}

FILE_LOADERS: dict[str, Callable[[str | os.PathLike | None, str], ImageDataset]] = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "stl10": load_stl10,
}


def dataset_info(name: str) -> DatasetInfo:
    """The catalog entry for ``name``; ValueError listing the known names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def is_available(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``name`` can be loaded without downloading (digits: always)."""
    info = dataset_info(name)
    if info.folder is None:
        return True
    return not missing_files(dataset_folder(root, info.folder), list(info.required_files))


def download_dataset(
    name: str, root: str | os.PathLike | None = None, progress: ProgressCallback | None = None
) -> Path:
    """Download and extract ``name`` into ``root`` (default: the data directory), verified by md5.

    Does nothing when the dataset is already there. Returns the dataset folder.
    """
    info = dataset_info(name)
    if not info.downloadable:
        raise ValueError(f"dataset {name!r} is bundled and needs no download")
    if is_available(name, root):
        return dataset_folder(root, info.folder)
    return download_and_extract(info.url, info.md5, resolve_root(root), info.folder, progress)


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = False,
    img_size: int | None = None,
) -> ImageDataset:
    """Load ``name`` ("cifar10", "cifar100", "stl10", "digits") as uint8 images.

    root: data directory (default ``$VITVIZ_DATA_DIR`` or ``./data``).
    download: fetch the archive first if the files are missing (never implicit).
    img_size: square side to resize to (bilinear); None keeps ``DATASETS[name].image_size``.
    """
    info = dataset_info(name)
    if name == "digits":
        return load_digits_dataset(split, img_size or info.image_size)
    if download:
        download_dataset(name, root)
    dataset = FILE_LOADERS[name](root, split)
    return dataset if img_size is None else dataset.resized(img_size)
