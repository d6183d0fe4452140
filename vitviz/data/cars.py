"""Stanford Cars reader for the layout torchvision expects (Krause et al., 3dRR 2013).

    <root>/stanford_cars/devkit/cars_meta.mat          'class_names': 1 x 196 cell of strings
    <root>/stanford_cars/devkit/cars_train_annos.mat   'annotations': 1 x 8144 struct
    <root>/stanford_cars/cars_test_annos_withlabels.mat 'annotations': 1 x 8041 struct
    <root>/stanford_cars/cars_train/00001.jpg ...       (photos of any size)
    <root>/stanford_cars/cars_test/00001.jpg ...

Each annotation has bbox_x1, bbox_y1, bbox_x2, bbox_y2, class (1..196) and fname (the file in
cars_train/ or cars_test/). The boxes are not used: the whole photo is the input, as in the
transfer results of the papers. cars_test_annos_withlabels.mat (the test labels, published after
the devkit) is also found in devkit/. The .mat files are read with ``scipy.io.loadmat``.

The official source (https://ai.stanford.edu/~jkrause/cars/car_dataset.html) is no longer online,
so there is no download: ``STANFORD_CARS_NO_DOWNLOAD`` says how to place the files by hand.
Images are resized to ``img_size`` by ``photos.load_photos`` (shorter side, centre crop, cached).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import ImageDataset
from .errors import DatasetFormatError, dataset_not_found
from .matlab import read_mat
from .paths import dataset_folder, resolve_root
from .photos import load_photos, missing_photos

STANFORD_CARS_FOLDER = "stanford_cars"
STANFORD_CARS_META = "devkit/cars_meta.mat"
STANFORD_CARS_ANNOTATIONS = {
    "train": ("devkit/cars_train_annos.mat",),
    "test": ("cars_test_annos_withlabels.mat", "devkit/cars_test_annos_withlabels.mat"),  # first found is used
}
STANFORD_CARS_IMAGE_FOLDERS = {"train": "cars_train", "test": "cars_test"}
STANFORD_CARS_REQUIRED_FILES = (
    STANFORD_CARS_META, STANFORD_CARS_ANNOTATIONS["train"][0], STANFORD_CARS_ANNOTATIONS["test"][0]
)
STANFORD_CARS_LAYOUT = (
    "stanford_cars/devkit/cars_meta.mat, stanford_cars/devkit/cars_train_annos.mat (both from car_devkit.tgz), "
    "stanford_cars/cars_test_annos_withlabels.mat, and the photos in stanford_cars/cars_train/*.jpg "
    "(cars_train.tgz) and stanford_cars/cars_test/*.jpg (cars_test.tgz)"
)
STANFORD_CARS_NO_DOWNLOAD = (
    "Stanford Cars cannot be downloaded: its official source "
    "(https://ai.stanford.edu/~jkrause/cars/car_dataset.html) is no longer online. Get the original files "
    "(car_devkit.tgz, cars_train.tgz, cars_test.tgz and cars_test_annos_withlabels.mat) from a copy you trust "
    f"and place them by hand, extracted, in the data directory as {STANFORD_CARS_LAYOUT} "
    "(torchvision's StanfordCars layout)."
)


def find_annotations(folder: Path, split: str) -> Path | None:
    """The split's annotation file (the test one may sit in devkit/ too), or None."""
    return next((folder / name for name in STANFORD_CARS_ANNOTATIONS[split] if (folder / name).is_file()), None)


def missing_stanford_cars_files(folder: Path) -> list[str]:
    """What the Stanford Cars folder lacks for either split."""
    missing = [] if (folder / STANFORD_CARS_META).is_file() else [STANFORD_CARS_META]
    for split, image_folder in STANFORD_CARS_IMAGE_FOLDERS.items():
        if find_annotations(folder, split) is None:
            missing.append(STANFORD_CARS_ANNOTATIONS[split][0])
        if not (folder / image_folder).is_dir():
            missing.append(f"{image_folder}/")
    return missing


def read_class_names(path: Path) -> list[str]:
    content = read_mat(path)
    if "class_names" not in content:
        raise DatasetFormatError(f"{path}: missing variable 'class_names'")
    names = [str(name).strip() for name in np.atleast_1d(content["class_names"]).tolist()]
    if not names or not all(names):
        raise DatasetFormatError(f"{path}: 'class_names' must be a list of non-empty names")
    return names


def read_annotations(path: Path, num_classes: int) -> tuple[list[str], np.ndarray]:
    """(file names, labels 0..num_classes-1) from a cars_*_annos*.mat 'annotations' struct array."""
    content = read_mat(path)
    annotations = np.atleast_1d(content.get("annotations", np.array([])))
    fields = annotations.dtype.names or ()
    if "annotations" not in content or not {"fname", "class"} <= set(fields):
        raise DatasetFormatError(
            f"{path}: expected an 'annotations' struct with fields 'fname' and 'class' "
            f"(cars_test_annos.mat has no labels: use cars_test_annos_withlabels.mat)"
        )
    file_names = [str(record["fname"]) for record in annotations]
    try:
        labels = np.array([int(record["class"]) for record in annotations], dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise DatasetFormatError(f"{path}: 'class' must be an integer per annotation ({error})") from error
    if len(labels) and (labels.min() < 1 or labels.max() > num_classes):
        raise DatasetFormatError(f"{path}: classes must be 1..{num_classes}, got {labels.min()}..{labels.max()}")
    return file_names, labels - 1


def load_stanford_cars(
    root: str | os.PathLike | None = None,
    split: str = "train",
    img_size: int = 224,
    fit: str = "crop",
    cache: bool = True,
) -> ImageDataset:
    """Stanford Cars (196 classes) from ``<root>/stanford_cars``, images resized to ``img_size``."""
    if split not in STANFORD_CARS_IMAGE_FOLDERS:
        raise ValueError(f"split must be one of {list(STANFORD_CARS_IMAGE_FOLDERS)}, got {split!r}")
    folder = dataset_folder(root, STANFORD_CARS_FOLDER)
    missing = missing_stanford_cars_files(folder)
    if missing:
        raise dataset_not_found("stanford_cars", folder, missing, resolve_root(root), STANFORD_CARS_NO_DOWNLOAD)
    classes = read_class_names(folder / STANFORD_CARS_META)
    file_names, labels = read_annotations(find_annotations(folder, split), len(classes))
    image_paths = [f"{STANFORD_CARS_IMAGE_FOLDERS[split]}/{file_name}" for file_name in file_names]
    missing = missing_photos(folder, image_paths)
    if missing:
        raise dataset_not_found("stanford_cars", folder, missing, resolve_root(root), STANFORD_CARS_NO_DOWNLOAD)
    images = load_photos(folder, image_paths, img_size, fit=fit, cache=cache, cache_name=f"stanford-cars-{split}")
    return ImageDataset(name="stanford_cars", images=images, labels=labels, classes=classes, split=split)
