"""vitviz.data: datasets as uint8 images in memory.

``load_dataset(name, split, root=None, download=False, img_size=None)`` reads CIFAR-10,
CIFAR-100 (torchvision's pickle layout) and STL-10 (binary layout) from the data directory
(``$VITVIZ_DATA_DIR``, default ``./data``), or serves scikit-learn's bundled digits offline.
``DATASETS`` describes each one (classes, size, normalisation, download url/md5/bytes).
"""

from .cifar import load_cifar10, load_cifar100
from .dataset import ImageDataset, resize_images
from .digits import load_digits_dataset
from .download import download_and_extract, fetch_url
from .errors import (
    DATA_DIR_ENV,
    ChecksumMismatchError,
    DatasetFormatError,
    DatasetNotFoundError,
    DownloadError,
)
from .paths import data_dir
from .registry import DATASETS, DatasetInfo, dataset_info, download_dataset, is_available, load_dataset
from .stl10 import load_stl10

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "ChecksumMismatchError",
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DownloadError",
    "ImageDataset",
    "data_dir",
    "dataset_info",
    "download_and_extract",
    "download_dataset",
    "fetch_url",
    "is_available",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits_dataset",
    "load_stl10",
    "resize_images",
]
