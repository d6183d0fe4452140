"""vitviz.data: datasets as uint8 images in memory.

``load_dataset(name, split, root=None, download=False, img_size=None)`` reads CIFAR-10,
CIFAR-100 (torchvision's pickle layout), STL-10 (binary layout) and the transfer datasets
Oxford-IIIT Pet, Flowers-102 and Stanford Cars (torchvision's on-disk layouts; JPEGs resized to
the model's input size) from the data directory (``$VITVIZ_DATA_DIR``, default ``./data``), or
serves scikit-learn's bundled digits offline.
``DATASETS`` describes each one (classes, size, normalisation, download url/md5/bytes).
"""

from .cars import load_stanford_cars
from .cifar import load_cifar10, load_cifar100
from .dataset import ImageDataset, resize_images
from .digits import load_digits_dataset
from .download import RemoteFile, download_and_extract, download_files, fetch_url
from .errors import (
    DATA_DIR_ENV,
    ChecksumMismatchError,
    DatasetFormatError,
    DatasetNotFoundError,
    DownloadError,
)
from .flowers import load_flowers102
from .paths import data_dir
from .pets import load_oxford_pets
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
    "RemoteFile",
    "data_dir",
    "dataset_info",
    "download_and_extract",
    "download_dataset",
    "download_files",
    "fetch_url",
    "is_available",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits_dataset",
    "load_flowers102",
    "load_oxford_pets",
    "load_stanford_cars",
    "load_stl10",
    "resize_images",
]
