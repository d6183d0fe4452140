"""The dataset catalog and the one entry point, ``load_dataset(name, split, ...)``.

``DATASETS`` maps each name to a ``DatasetInfo``: class count, the image size
``load_dataset`` returns by default, normalisation mean/std, and for downloadable sets the
archive's URL, md5 and size in bytes (so an app can say "download 163 MB" before asking).

The transfer datasets (Oxford-IIIT Pet, Flowers-102, Stanford Cars) hold photos of any size:
their readers resize to ``img_size`` themselves (default 224, the usual transfer resolution) and
cache the decoded arrays. Pet and Flowers-102 are published as several files (``downloads``);
Stanford Cars' source is gone, so it has no download and ``no_download`` says how to place it.
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
from .cars import (
    STANFORD_CARS_FOLDER,
    STANFORD_CARS_NO_DOWNLOAD,
    STANFORD_CARS_REQUIRED_FILES,
    load_stanford_cars,
    missing_stanford_cars_files,
)
from .dataset import ImageDataset
from .digits import DIGITS_DEFAULT_SIZE, load_digits_dataset
from .download import ProgressCallback, RemoteFile, download_and_extract, download_files
from .errors import DATA_DIR_ENV, DownloadError
from .flowers import (
    FLOWERS102_DOWNLOADS,
    FLOWERS102_FOLDER,
    FLOWERS102_REQUIRED_FILES,
    load_flowers102,
    missing_flowers102_files,
)
from .paths import dataset_folder, missing_files, resolve_root
from .pets import PETS_DOWNLOADS, PETS_FOLDER, PETS_REQUIRED_FILES, load_oxford_pets, missing_pets_files
from .stl10 import STL10_FOLDER, load_stl10

TRANSFER_IMAGE_SIZE = 224  # default side for the photo datasets (the models' own size is passed in practice)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the transfer sets are normalised with ImageNet statistics, as usual
IMAGENET_STD = (0.229, 0.224, 0.225)


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
    download_bytes: int | None = None  # in all (every file of `downloads`)
    downloads: tuple[RemoteFile, ...] = ()  # for sets published as several files (then url is None)
    no_download: str | None = None  # why it cannot be downloaded, and how to place the files by hand

    @property
    def downloadable(self) -> bool:
        return self.url is not None or bool(self.downloads)

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
    "oxford_pets": DatasetInfo(
        name="oxford_pets",
        title="Oxford-IIIT Pet",
        num_classes=37,
        image_size=TRANSFER_IMAGE_SIZE,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        folder=PETS_FOLDER,
        required_files=PETS_REQUIRED_FILES,
        download_bytes=sum(remote.size_bytes for remote in PETS_DOWNLOADS),
        downloads=PETS_DOWNLOADS,
    ),
    "flowers102": DatasetInfo(
        name="flowers102",
        title="Oxford Flowers-102",
        num_classes=102,
        image_size=TRANSFER_IMAGE_SIZE,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        folder=FLOWERS102_FOLDER,
        required_files=FLOWERS102_REQUIRED_FILES,
        download_bytes=sum(remote.size_bytes for remote in FLOWERS102_DOWNLOADS),
        downloads=FLOWERS102_DOWNLOADS,
    ),
    "stanford_cars": DatasetInfo(
        name="stanford_cars",
        title="Stanford Cars",
        num_classes=196,
        image_size=TRANSFER_IMAGE_SIZE,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        folder=STANFORD_CARS_FOLDER,
        required_files=STANFORD_CARS_REQUIRED_FILES,
        no_download=STANFORD_CARS_NO_DOWNLOAD,
    ),
}

FILE_LOADERS: dict[str, Callable[[str | os.PathLike | None, str], ImageDataset]] = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "stl10": load_stl10,
}

# Photo datasets: the reader decodes and resizes to img_size itself (root, split, img_size).
SIZED_LOADERS: dict[str, Callable[[str | os.PathLike | None, str, int], ImageDataset]] = {
    "oxford_pets": load_oxford_pets,
    "flowers102": load_flowers102,
    "stanford_cars": load_stanford_cars,
}

# Datasets whose layout is more than a list of files (image folders, alternative places): what is missing.
LAYOUT_CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "oxford_pets": missing_pets_files,
    "flowers102": missing_flowers102_files,
    "stanford_cars": missing_stanford_cars_files,
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
    folder = dataset_folder(root, info.folder)
    if name in LAYOUT_CHECKS:
        return not LAYOUT_CHECKS[name](folder)
    return not missing_files(folder, list(info.required_files))


def download_dataset(
    name: str, root: str | os.PathLike | None = None, progress: ProgressCallback | None = None
) -> Path:
    """Download and extract ``name`` into ``root`` (default: the data directory), verified by md5.

    Does nothing when the dataset is already there. Returns the dataset folder.
    """
    info = dataset_info(name)
    if info.no_download is not None:
        if is_available(name, root):
            return dataset_folder(root, info.folder)
        raise DownloadError(f"{info.no_download} Expected in {dataset_folder(root, info.folder)}.")
    if not info.downloadable:
        raise ValueError(f"dataset {name!r} is bundled and needs no download")
    if is_available(name, root):
        return dataset_folder(root, info.folder)
    try:
        if info.downloads:
            return download_files(info.downloads, resolve_root(root), info.folder, LAYOUT_CHECKS.get(name), progress)
        return download_and_extract(info.url, info.md5, resolve_root(root), info.folder, progress)
    except DownloadError as exc:
        raise type(exc)(f"{exc}. {manual_install_hint(info, root)}") from exc


def manual_install_hint(info: DatasetInfo, root: str | os.PathLike | None = None) -> str:
    """What to do when a download fails: place the files by hand (layout and checksum), or use --data-dir."""
    folder = dataset_folder(root, info.folder)
    if info.no_download is not None:
        return info.no_download
    if info.downloads:
        fetched = ", ".join(f"{remote.url} (md5 {remote.md5})" for remote in info.downloads)
        return (f"Nothing was left behind. To place the files by hand: fetch {fetched} on a machine with network "
                f"access; extract the archives into {folder} and put the other files in it as they are, so that "
                f"{folder} holds {', '.join(info.required_files)} and the image folder. Or point --data-dir "
                f"(Python: root=) or ${DATA_DIR_ENV} at a directory that already contains {info.folder}/.")
    return (f"Nothing was left behind. To place the files by hand: fetch {info.url} (md5 {info.md5}) on a machine "
            f"with network access, extract it, and put its {info.folder}/ folder into {folder.parent}, so that "
            f"{folder} holds {', '.join(info.required_files)}. Or point --data-dir (Python: root=) or "
            f"${DATA_DIR_ENV} at a directory that already contains {info.folder}/.")


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = False,
    img_size: int | None = None,
) -> ImageDataset:
    """Load ``name`` (a key of ``DATASETS``: "cifar10", "cifar100", "stl10", "digits", "oxford_pets",
    "flowers102", "stanford_cars") as uint8 images.

    root: data directory (default ``$VITVIZ_DATA_DIR`` or ``./data``).
    download: fetch the archive first if the files are missing (never implicit).
    img_size: square side to resize to (bilinear); None keeps ``DATASETS[name].image_size``.
    The photo datasets are resized shorter side first, then centre-cropped (see ``vitviz.data.photos``).
    """
    info = dataset_info(name)
    if name == "digits":
        return load_digits_dataset(split, img_size or info.image_size)
    if download:
        download_dataset(name, root)
    if name in SIZED_LOADERS:
        return SIZED_LOADERS[name](root, split, img_size or info.image_size)
    dataset = FILE_LOADERS[name](root, split)
    return dataset if img_size is None else dataset.resized(img_size)
