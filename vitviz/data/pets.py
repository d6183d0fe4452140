"""Oxford-IIIT Pet reader for the layout torchvision extracts (Parkhi et al., CVPR 2012).

    <root>/oxford-iiit-pet/images/<Breed_name>_<n>.jpg        (7,349 photos of any size)
    <root>/oxford-iiit-pet/annotations/trainval.txt           (3,680 lines)
    <root>/oxford-iiit-pet/annotations/test.txt               (3,669 lines)

Each split line is ``<image id> <class id 1..37> <species 1 cat | 2 dog> <breed id>``, e.g.
``american_bulldog_100 2 2 1``; lines starting with '#' are comments. The 37 breed names come
from the image ids (cats are capitalised, dogs are not), written as "American Bulldog" as
torchvision does, and are read from both split files so train and test share one class list.
Split "train" is the published trainval list (the standard fine-tuning set), "test" the test list.
Images are resized to ``img_size`` by ``photos.load_photos`` (shorter side, centre crop, cached).
"""

from __future__ import annotations

import os
from pathlib import Path

from .dataset import ImageDataset
from .download import RemoteFile
from .errors import DatasetFormatError, dataset_not_found
from .paths import dataset_folder, missing_files, resolve_root
from .photos import load_photos, missing_photos

PETS_FOLDER = "oxford-iiit-pet"
PETS_SPLIT_FILES = {"train": "annotations/trainval.txt", "test": "annotations/test.txt"}
PETS_SPLIT_ALIASES = {"trainval": "train"}
PETS_REQUIRED_FILES = tuple(PETS_SPLIT_FILES.values())
PETS_IMAGE_FOLDER = "images"
PETS_DOWNLOADS = (
    RemoteFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
               "5c4f3ee8e5d25df40f4fd59a7f44e54c", 791_918_971, extract=True),
    RemoteFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
               "95a8c909bbe2e81eed6a22bccdf3f68f", 19_173_078, extract=True),
)


def missing_pets_files(folder: Path) -> list[str]:
    """What the Pet folder lacks for either split (the split lists and the images folder)."""
    missing = missing_files(folder, list(PETS_REQUIRED_FILES))
    if not (folder / PETS_IMAGE_FOLDER).is_dir():
        missing.append(f"{PETS_IMAGE_FOLDER}/")
    return missing


def breed_name(image_id: str) -> str:
    """"american_bulldog_100" → "American Bulldog"; "Abyssinian_5" → "Abyssinian"."""
    return " ".join(part.title() for part in image_id.rsplit("_", 1)[0].split("_"))


def read_split_list(path: Path) -> list[tuple[str, int]]:
    """(image id, class id 1..37) per line of trainval.txt / test.txt."""
    entries = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or not fields[1].isdigit() or "_" not in fields[0]:
            raise DatasetFormatError(
                f"{path}, line {line_number}: expected '<image id> <class id> <species> <breed id>', got {line!r}"
            )
        entries.append((fields[0], int(fields[1])))
    return entries


def class_names(lists: list[tuple[Path, list[tuple[str, int]]]]) -> list[str]:
    """Breed names by class id, checked: ids 1..K with one name each."""
    names: dict[int, str] = {}
    for path, entries in lists:
        for image_id, class_id in entries:
            name = breed_name(image_id)
            if names.setdefault(class_id, name) != name:
                raise DatasetFormatError(
                    f"{path}: class {class_id} is both {names[class_id]!r} and {name!r} ({image_id})"
                )
    if names and sorted(names) != list(range(1, len(names) + 1)):
        raise DatasetFormatError(f"{lists[0][0].parent}: class ids must be 1..{len(names)}, got {sorted(names)}")
    return [names[class_id] for class_id in sorted(names)]


def load_oxford_pets(
    root: str | os.PathLike | None = None,
    split: str = "train",
    img_size: int = 224,
    fit: str = "crop",
    cache: bool = True,
) -> ImageDataset:
    """Oxford-IIIT Pet (37 breeds) from ``<root>/oxford-iiit-pet``, images resized to ``img_size``."""
    split = PETS_SPLIT_ALIASES.get(split, split)
    if split not in PETS_SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(PETS_SPLIT_FILES)} (or 'trainval'), got {split!r}")
    folder = dataset_folder(root, PETS_FOLDER)
    missing = missing_pets_files(folder)
    if missing:
        raise dataset_not_found("oxford_pets", folder, missing, resolve_root(root))
    split_lists = {name: read_split_list(folder / relative) for name, relative in PETS_SPLIT_FILES.items()}
    classes = class_names([(folder / PETS_SPLIT_FILES[name], listed) for name, listed in split_lists.items()])
    entries = split_lists[split]
    image_paths = [f"{PETS_IMAGE_FOLDER}/{image_id}.jpg" for image_id, _ in entries]
    missing = missing_photos(folder, image_paths)
    if missing:
        raise dataset_not_found("oxford_pets", folder, missing, resolve_root(root))
    images = load_photos(folder, image_paths, img_size, fit=fit, cache=cache, cache_name=f"oxford-pets-{split}")
    labels = [class_id - 1 for _, class_id in entries]
    return ImageDataset(name="oxford_pets", images=images, labels=labels, classes=classes, split=split)
