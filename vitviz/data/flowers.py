"""Oxford Flowers-102 reader for the layout torchvision downloads (Nilsback & Zisserman, ICVGIP 2008).

    <root>/flowers-102/jpg/image_00001.jpg ... image_08189.jpg   (photos of any size)
    <root>/flowers-102/imagelabels.mat   'labels': 1 x 8189, the class 1..102 of image i at column i
    <root>/flowers-102/setid.mat         'trnid', 'valid', 'tstid': 1-based image ids of each split

The .mat files (MATLAB v5) are read with ``scipy.io.loadmat``. Splits, by the published ids:
"train" is trnid + valid (2,040 images, 20 per class: the usual fine-tuning protocol, as in the
BiT/ViT/CvT transfer results; "trainval" is the same), "train_only" is trnid (1,020), "val" is
valid (1,020) and "test" is tstid (6,149). The dataset ships no class names; ``FLOWERS102_CLASSES``
are the names in common use (torchvision's list), index = label.
Images are resized to ``img_size`` by ``photos.load_photos`` (shorter side, centre crop, cached).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import ImageDataset
from .download import RemoteFile
from .errors import DatasetFormatError, dataset_not_found
from .matlab import integer_vector, read_mat
from .paths import dataset_folder, missing_files, resolve_root
from .photos import load_photos, missing_photos

FLOWERS102_FOLDER = "flowers-102"
FLOWERS102_IMAGE_FOLDER = "jpg"
FLOWERS102_REQUIRED_FILES = ("imagelabels.mat", "setid.mat")
FLOWERS102_SPLIT_IDS = {
    "train": ("trnid", "valid"),
    "trainval": ("trnid", "valid"),
    "train_only": ("trnid",),
    "val": ("valid",),
    "test": ("tstid",),
}
FLOWERS102_URL_PREFIX = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
FLOWERS102_DOWNLOADS = (
    RemoteFile(FLOWERS102_URL_PREFIX + "102flowers.tgz", "52808999861908f626f3c1f4e79d11fa", 344_862_509,
               extract=True),
    RemoteFile(FLOWERS102_URL_PREFIX + "imagelabels.mat", "e0620be6f572b9609742df49c70aed4d", 502, extract=False),
    RemoteFile(FLOWERS102_URL_PREFIX + "setid.mat", "a5357ecc9cb78c4bef273ce3793fc85c", 14_989, extract=False),
)
FLOWERS102_CLASSES = [
    'pink primrose', 'hard-leaved pocket orchid', 'canterbury bells', 'sweet pea', 'english marigold',
    'tiger lily', 'moon orchid', 'bird of paradise', 'monkshood', 'globe thistle', 'snapdragon',
    "colt's foot", 'king protea', 'spear thistle', 'yellow iris', 'globe-flower', 'purple coneflower',
    'peruvian lily', 'balloon flower', 'giant white arum lily', 'fire lily', 'pincushion flower',
    'fritillary', 'red ginger', 'grape hyacinth', 'corn poppy', 'prince of wales feathers',
    'stemless gentian', 'artichoke', 'sweet william', 'carnation', 'garden phlox', 'love in the mist',
    'mexican aster', 'alpine sea holly', 'ruby-lipped cattleya', 'cape flower', 'great masterwort',
    'siam tulip', 'lenten rose', 'barbeton daisy', 'daffodil', 'sword lily', 'poinsettia',
    'bolero deep blue', 'wallflower', 'marigold', 'buttercup', 'oxeye daisy', 'common dandelion', 'petunia',
    'wild pansy', 'primula', 'sunflower', 'pelargonium', 'bishop of llandaff', 'gaura', 'geranium',
    'orange dahlia', 'pink-yellow dahlia?', 'cautleya spicata', 'japanese anemone', 'black-eyed susan',
    'silverbush', 'californian poppy', 'osteospermum', 'spring crocus', 'bearded iris', 'windflower',
    'tree poppy', 'gazania', 'azalea', 'water lily', 'rose', 'thorn apple', 'morning glory',
    'passion flower', 'lotus', 'toad lily', 'anthurium', 'frangipani', 'clematis', 'hibiscus', 'columbine',
    'desert-rose', 'tree mallow', 'magnolia', 'cyclamen', 'watercress', 'canna lily', 'hippeastrum',
    'bee balm', 'ball moss', 'foxglove', 'bougainvillea', 'camellia', 'mallow', 'mexican petunia',
    'bromelia', 'blanket flower', 'trumpet creeper', 'blackberry lily',
]


def missing_flowers102_files(folder: Path) -> list[str]:
    """What the Flowers-102 folder lacks (the two .mat files and the jpg/ folder)."""
    missing = missing_files(folder, list(FLOWERS102_REQUIRED_FILES))
    if not (folder / FLOWERS102_IMAGE_FOLDER).is_dir():
        missing.append(f"{FLOWERS102_IMAGE_FOLDER}/")
    return missing


def load_flowers102(
    root: str | os.PathLike | None = None,
    split: str = "train",
    img_size: int = 224,
    fit: str = "crop",
    cache: bool = True,
) -> ImageDataset:
    """Flowers-102 (102 classes) from ``<root>/flowers-102``, images resized to ``img_size``."""
    if split not in FLOWERS102_SPLIT_IDS:
        raise ValueError(f"split must be one of {list(FLOWERS102_SPLIT_IDS)}, got {split!r}")
    folder = dataset_folder(root, FLOWERS102_FOLDER)
    missing = missing_flowers102_files(folder)
    if missing:
        raise dataset_not_found("flowers102", folder, missing, resolve_root(root))
    labels_path, setid_path = (folder / name for name in FLOWERS102_REQUIRED_FILES)
    all_labels = integer_vector(read_mat(labels_path), "labels", labels_path)
    set_ids = read_mat(setid_path)
    image_ids = np.concatenate([integer_vector(set_ids, key, setid_path) for key in FLOWERS102_SPLIT_IDS[split]])
    if len(image_ids) and (image_ids.min() < 1 or image_ids.max() > len(all_labels)):
        raise DatasetFormatError(
            f"{setid_path}: image ids must be 1..{len(all_labels)} (the images in {labels_path.name}), "
            f"got {image_ids.min()}..{image_ids.max()}"
        )
    labels = all_labels[image_ids - 1]
    if len(labels) and (labels.min() < 1 or labels.max() > len(FLOWERS102_CLASSES)):
        raise DatasetFormatError(
            f"{labels_path}: labels must be 1..{len(FLOWERS102_CLASSES)}, got {labels.min()}..{labels.max()}"
        )
    image_paths = [f"{FLOWERS102_IMAGE_FOLDER}/image_{image_id:05d}.jpg" for image_id in image_ids.tolist()]
    missing = missing_photos(folder, image_paths)
    if missing:
        raise dataset_not_found("flowers102", folder, missing, resolve_root(root))
    images = load_photos(folder, image_paths, img_size, fit=fit, cache=cache, cache_name=f"flowers102-{split}")
    return ImageDataset(name="flowers102", images=images, labels=labels - 1, classes=list(FLOWERS102_CLASSES),
                        split=split)
