"""The transfer datasets (Oxford-IIIT Pet, Flowers-102, Stanford Cars) on tiny fixtures in their real layouts.

Fixtures are written the way the published files are: JPEG photos of different sizes (PIL), the Pet
split lists as text, the Flowers-102 and Stanford Cars annotations as MATLAB files (scipy.io.savemat,
structs for the car annotations, a cell array for the car names). Each photo is two solid colours
(left/right or top/bottom halves), so a swapped axis, a wrong channel order or a wrong file/label
pairing shows. No test touches the network: downloads go through a monkeypatched fetch function.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

import vitviz.data.download as download_module
import vitviz.data.photos as photos_module
from vitviz.data import (
    DATA_DIR_ENV,
    DATASETS,
    ChecksumMismatchError,
    DatasetFormatError,
    DatasetNotFoundError,
    DownloadError,
    RemoteFile,
    download_dataset,
    is_available,
    load_dataset,
)
from vitviz.data.flowers import FLOWERS102_CLASSES

RED, BLUE, GREEN, WHITE = (220, 30, 30), (30, 30, 220), (30, 200, 30), (250, 250, 250)
YELLOW, GREY = (230, 220, 20), (128, 128, 128)
SIZE = 16  # the side the tests resize to
TOLERANCE = 40  # JPEG + resizing blur the colours a little; the pairs used differ by far more


# ---------------------------------------------------------------- fixture writers


def two_colour_photo(width: int, height: int, first: tuple, second: tuple, split: str = "left-right") -> Image.Image:
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    if split == "left-right":
        pixels[:, : width // 2], pixels[:, width // 2 :] = first, second
    else:
        pixels[: height // 2], pixels[height // 2 :] = first, second
    return Image.fromarray(pixels)


def save_jpeg(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=95)


def assert_colour(pixel, expected) -> None:
    assert np.abs(np.asarray(pixel, dtype=int) - np.asarray(expected)).max() < TOLERANCE, (pixel, expected)


def assert_left_right(image: np.ndarray, left, right) -> None:
    """Left columns one colour, right columns the other (away from the blurred middle)."""
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert_colour(image[SIZE // 2, 1], left)
    assert_colour(image[SIZE // 2, -2], right)


def assert_top_bottom(image: np.ndarray, top, bottom) -> None:
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert_colour(image[1, SIZE // 2], top)
    assert_colour(image[-2, SIZE // 2], bottom)


PETS_TRAINVAL = [("Abyssinian_1", 1, 1, 1), ("american_bulldog_10", 2, 2, 1), ("Bengal_3", 3, 1, 2)]
PETS_TEST = [("Abyssinian_2", 1, 1, 1), ("Bengal_4", 3, 1, 2)]
PETS_COLOURS = {"Abyssinian_1": (RED, BLUE), "american_bulldog_10": (GREEN, WHITE), "Bengal_3": (BLUE, RED),
                "Abyssinian_2": (WHITE, GREEN)}


def write_pets(root: Path) -> Path:
    """oxford-iiit-pet/{images/*.jpg, annotations/{trainval,test}.txt}, as torchvision extracts it."""
    folder = root / "oxford-iiit-pet"
    for image_id, (first, second) in PETS_COLOURS.items():
        save_jpeg(folder / "images" / f"{image_id}.jpg", two_colour_photo(60, 40, first, second))  # wide
    # Bengal_4: a greyscale JPEG, as some of the real photos are
    save_jpeg(folder / "images" / "Bengal_4.jpg", Image.new("L", (30, 50), 128))
    (folder / "annotations").mkdir(parents=True)
    for name, rows in (("trainval", PETS_TRAINVAL), ("test", PETS_TEST)):
        text = "".join(" ".join(map(str, row)) + "\n" for row in rows)
        (folder / "annotations" / f"{name}.txt").write_text(text)
    return folder


FLOWERS_LABELS = [1, 102, 5, 1, 77, 102]  # imagelabels.mat: class of image i (1-based) at column i
FLOWERS_SETS = {"trnid": [2, 1], "valid": [3], "tstid": [6, 4, 5]}
FLOWERS_COLOURS = [(RED, BLUE), (BLUE, RED), (GREEN, WHITE), (WHITE, GREEN), (YELLOW, BLUE), (BLUE, YELLOW)]


def write_flowers(root: Path) -> Path:
    """flowers-102/{jpg/image_%05d.jpg, imagelabels.mat, setid.mat}."""
    folder = root / "flowers-102"
    for index, (first, second) in enumerate(FLOWERS_COLOURS, 1):
        # tall photos, split top/bottom, so a transposed image fails
        save_jpeg(folder / "jpg" / f"image_{index:05d}.jpg", two_colour_photo(40, 56, first, second, "top-bottom"))
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": np.array([FLOWERS_LABELS], dtype=np.uint8)})
    scipy.io.savemat(folder / "setid.mat", {key: np.array([ids], dtype=np.uint16) for key, ids in FLOWERS_SETS.items()})
    return folder


CARS_CLASSES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]
CARS_TRAIN = [("00001.jpg", 3, (RED, BLUE)), ("00002.jpg", 1, (GREEN, WHITE)), ("00003.jpg", 2, (YELLOW, BLUE))]
CARS_TEST = [("00001.jpg", 2, (WHITE, RED)), ("00002.jpg", 3, (BLUE, GREEN))]


def car_annotations(rows) -> np.ndarray:
    """A 1 x N MATLAB struct array with the devkit's fields."""
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    annotations = np.zeros((1, len(rows)), dtype=[(field, "O") for field in fields])
    for index, (file_name, class_id, _) in enumerate(rows):
        annotations[0, index] = (np.uint8(2), np.uint8(3), np.uint16(50), np.uint16(30), np.uint8(class_id), file_name)
    return annotations


def write_cars(root: Path, test_annotations_in_devkit: bool = False) -> Path:
    """stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat,
    cars_train/*.jpg, cars_test/*.jpg}, as torchvision expects it."""
    folder = root / "stanford_cars"
    (folder / "devkit").mkdir(parents=True)
    scipy.io.savemat(folder / "devkit" / "cars_meta.mat",
                     {"class_names": np.array([CARS_CLASSES], dtype=object)})  # a 1 x 3 cell array
    scipy.io.savemat(folder / "devkit" / "cars_train_annos.mat", {"annotations": car_annotations(CARS_TRAIN)})
    test_place = folder / "devkit" if test_annotations_in_devkit else folder
    scipy.io.savemat(test_place / "cars_test_annos_withlabels.mat", {"annotations": car_annotations(CARS_TEST)})
    for split, rows in (("train", CARS_TRAIN), ("test", CARS_TEST)):
        for file_name, _, (first, second) in rows:
            save_jpeg(folder / f"cars_{split}" / file_name, two_colour_photo(72, 40, first, second))
    return folder


# ---------------------------------------------------------------- readers


def test_oxford_pets_images_labels_classes_and_splits(tmp_path):
    write_pets(tmp_path)
    train = load_dataset("oxford_pets", "train", root=tmp_path, img_size=SIZE)
    assert train.name == "oxford_pets" and train.split == "train" and len(train) == 3
    assert train.classes == ["Abyssinian", "American Bulldog", "Bengal"]  # from both split lists
    assert train.labels.tolist() == [0, 1, 2] and train.labels.dtype == np.int64
    for image, (image_id, *_) in zip(train.images, PETS_TRAINVAL):
        assert_left_right(image, *PETS_COLOURS[image_id])
    test = load_dataset("oxford_pets", "test", root=tmp_path, img_size=SIZE)
    assert test.classes == train.classes and test.labels.tolist() == [0, 2]
    assert_left_right(test.images[0], WHITE, GREEN)
    grey = test.images[1].astype(int)  # the greyscale JPEG comes back as RGB with equal channels
    assert (grey[..., 0] == grey[..., 1]).all() and abs(grey.mean() - 128) < 3
    trainval = load_dataset("oxford_pets", "trainval", root=tmp_path, img_size=SIZE)
    np.testing.assert_array_equal(trainval.images, train.images)


def test_flowers102_images_labels_and_splits(tmp_path):
    write_flowers(tmp_path)
    train = load_dataset("flowers102", "train", root=tmp_path, img_size=SIZE)
    assert train.classes == FLOWERS102_CLASSES and len(train.classes) == 102 == DATASETS["flowers102"].num_classes
    assert train.classes[0] == "pink primrose" and train.classes[101] == "blackberry lily"
    # "train" is trnid + valid (the fine-tuning protocol), in the order of setid.mat
    assert train.labels.tolist() == [101, 0, 4] and len(train) == 3
    for image, image_id in zip(train.images, [2, 1, 3]):
        assert_top_bottom(image, *FLOWERS_COLOURS[image_id - 1])
    test = load_dataset("flowers102", "test", root=tmp_path, img_size=SIZE)
    assert test.labels.tolist() == [101, 0, 76]
    assert_top_bottom(test.images[0], *FLOWERS_COLOURS[5])
    from vitviz.data import load_flowers102
    assert load_flowers102(tmp_path, "val", img_size=SIZE).labels.tolist() == [4]  # a one-element split
    assert load_flowers102(tmp_path, "train_only", img_size=SIZE).labels.tolist() == [101, 0]


@pytest.mark.parametrize("test_annotations_in_devkit", [False, True])
def test_stanford_cars_images_labels_and_classes(tmp_path, test_annotations_in_devkit):
    write_cars(tmp_path, test_annotations_in_devkit)
    assert is_available("stanford_cars", root=tmp_path)
    train = load_dataset("stanford_cars", "train", root=tmp_path, img_size=SIZE)
    assert train.classes == CARS_CLASSES and train.labels.tolist() == [2, 0, 1]
    for image, (_, _, colours) in zip(train.images, CARS_TRAIN):
        assert_left_right(image, *colours)
    test = load_dataset("stanford_cars", "test", root=tmp_path / "stanford_cars", img_size=SIZE)  # root = the folder
    assert test.labels.tolist() == [1, 2] and test.classes == CARS_CLASSES
    assert_left_right(test.images[1], BLUE, GREEN)


def test_crop_keeps_the_centre_and_squash_keeps_everything(tmp_path):
    """A wide photo, thirds red | green | blue: centre crop drops the outer thirds' outer parts, squash keeps them."""
    from vitviz.data.photos import decode_photo
    pixels = np.empty((30, 90, 3), dtype=np.uint8)
    pixels[:, :30], pixels[:, 30:60], pixels[:, 60:] = RED, GREEN, BLUE
    path = tmp_path / "wide.jpg"
    save_jpeg(path, Image.fromarray(pixels))
    crop = decode_photo(path, 15, "crop")
    squash = decode_photo(path, 15, "squash")
    assert crop.shape == squash.shape == (15, 15, 3)
    assert_colour(crop[7, 1], GREEN) and assert_colour(crop[7, -2], GREEN)  # the middle 30 columns only
    assert_colour(squash[7, 1], RED) and assert_colour(squash[7, -2], BLUE)


def test_default_size_and_model_size(tmp_path):
    write_flowers(tmp_path)
    assert load_dataset("flowers102", "test", root=tmp_path).images.shape == (3, 224, 224, 3)
    assert load_dataset("flowers102", "test", root=tmp_path, img_size=32).images.shape == (3, 32, 32, 3)


def test_decoded_images_are_cached_and_the_cache_follows_the_files(tmp_path, monkeypatch):
    folder = write_flowers(tmp_path)
    first = load_dataset("flowers102", "test", root=tmp_path, img_size=SIZE)
    caches = list((folder / ".vitviz-cache").glob("*.npy"))
    assert len(caches) == 1 and f"{SIZE}px" in caches[0].name

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    with monkeypatch.context() as patch:
        patch.setattr(photos_module, "decode_photo", no_decoding)
        again = load_dataset("flowers102", "test", root=tmp_path, img_size=SIZE)
    np.testing.assert_array_equal(again.images, first.images)
    # a photo replaced on disk: the cache is rebuilt and the old one removed
    save_jpeg(folder / "jpg" / "image_00006.jpg", two_colour_photo(80, 60, GREY, GREY, "top-bottom"))
    changed = load_dataset("flowers102", "test", root=tmp_path, img_size=SIZE)
    assert_top_bottom(changed.images[0], GREY, GREY)
    assert [path.name for path in (folder / ".vitviz-cache").glob("*.npy")] != [caches[0].name]
    assert len(list((folder / ".vitviz-cache").glob("*.npy"))) == 1
    uncached = photos_module.load_photos(folder, ["jpg/image_00001.jpg"], SIZE, cache=False)
    assert_top_bottom(uncached[0], *FLOWERS_COLOURS[0])


# ---------------------------------------------------------------- missing and broken files


@pytest.mark.parametrize("name,folder", [("oxford_pets", "oxford-iiit-pet"), ("flowers102", "flowers-102"),
                                         ("stanford_cars", "stanford_cars")])
def test_missing_dataset_says_what_to_do_next(tmp_path, name, folder):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset(name, root=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / folder) in message and DATA_DIR_ENV in message and "--data-dir" in message
    assert not is_available(name, root=tmp_path)
    if name == "stanford_cars":
        assert "no longer online" in message and "cars_train" in message and "cars_meta.mat" in message
        assert "download=True" not in message
    else:
        assert f"python -m vitviz download {name}" in message


def test_missing_photo_is_named(tmp_path):
    folder = write_pets(tmp_path)
    (folder / "images" / "Bengal_3.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match="images/Bengal_3.jpg"):
        load_dataset("oxford_pets", "train", root=tmp_path, img_size=SIZE)
    assert len(load_dataset("oxford_pets", "test", root=tmp_path, img_size=SIZE)) == 2  # the other split is whole


def test_broken_files_are_format_errors(tmp_path):
    folder = write_flowers(tmp_path)
    (folder / "jpg" / "image_00004.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetFormatError, match="image_00004.jpg"):
        load_dataset("flowers102", "test", root=tmp_path, img_size=SIZE)
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": np.array([[1, 2, 103, 1, 1, 1]], dtype=np.uint8)})
    with pytest.raises(DatasetFormatError, match="imagelabels.mat"):
        load_dataset("flowers102", "train", root=tmp_path, img_size=SIZE)
    pets = write_pets(tmp_path)
    (pets / "annotations" / "test.txt").write_text("Abyssinian_2 3 1 1\n")  # class 3 is Bengal in trainval
    with pytest.raises(DatasetFormatError, match="class 3"):
        load_dataset("oxford_pets", "train", root=tmp_path, img_size=SIZE)
    cars = write_cars(tmp_path)
    scipy.io.savemat(cars / "cars_test_annos_withlabels.mat", {"annotations": np.zeros((1, 2))})
    with pytest.raises(DatasetFormatError, match="cars_test_annos_withlabels"):
        load_dataset("stanford_cars", "test", root=tmp_path, img_size=SIZE)


# ---------------------------------------------------------------- downloads (network never used)


def tar_gz(path: Path, source: Path, arcname: str) -> None:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname=arcname)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Serve files by URL in place of the network; record every fetch."""
    files: dict[str, Path] = {}
    fetched: list[str] = []

    def fake_fetch(url, destination, progress=None):
        fetched.append(url)
        shutil.copyfile(files[url], destination)
        if progress is not None:
            progress(files[url].stat().st_size, None)

    monkeypatch.setattr(download_module, "fetch_url", fake_fetch)
    return files, fetched


def published(files: dict, original: RemoteFile, path: Path, extract: bool) -> RemoteFile:
    files[original.url] = path
    return RemoteFile(original.url, md5(path), path.stat().st_size, extract)


def test_pets_download_assembles_both_archives(tmp_path, monkeypatch, served):
    files, fetched = served
    source = write_pets(tmp_path / "source")
    tar_gz(tmp_path / "images.tar.gz", source / "images", "images")
    tar_gz(tmp_path / "annotations.tar.gz", source / "annotations", "annotations")
    images_file, annotations_file = DATASETS["oxford_pets"].downloads
    assert images_file.url == "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz"
    downloads = (published(files, images_file, tmp_path / "images.tar.gz", True),
                 published(files, annotations_file, tmp_path / "annotations.tar.gz", True))
    monkeypatch.setitem(DATASETS, "oxford_pets", replace(DATASETS["oxford_pets"], downloads=downloads))
    root = tmp_path / "data"
    seen = []
    folder = download_dataset("oxford_pets", root, progress=lambda received, total: seen.append((received, total)))
    assert folder == root / "oxford-iiit-pet" and sorted(p.name for p in root.iterdir()) == ["oxford-iiit-pet"]
    assert seen[-1] == (sum(d.size_bytes for d in downloads),) * 2  # progress over both archives
    dataset = load_dataset("oxford_pets", "test", root=root, img_size=SIZE, download=True)
    assert dataset.labels.tolist() == [0, 2] and len(fetched) == 2  # already there: no second download


def test_flowers_download_places_archive_and_mat_files(tmp_path, monkeypatch, served):
    files, fetched = served
    source = write_flowers(tmp_path / "source")
    tar_gz(tmp_path / "102flowers.tgz", source / "jpg", "jpg")
    archive, labels_file, setid_file = DATASETS["flowers102"].downloads
    downloads = (published(files, archive, tmp_path / "102flowers.tgz", True),
                 published(files, labels_file, source / "imagelabels.mat", False),
                 published(files, setid_file, source / "setid.mat", False))
    monkeypatch.setitem(DATASETS, "flowers102", replace(DATASETS["flowers102"], downloads=downloads))
    root = tmp_path / "data"
    dataset = load_dataset("flowers102", "train", root=root, img_size=SIZE, download=True)
    assert dataset.labels.tolist() == [101, 0, 4] and len(fetched) == 3
    placed = {path.name for path in (root / "flowers-102").iterdir()} - {".vitviz-cache"}
    assert placed == {"imagelabels.mat", "jpg", "setid.mat"} and [p.name for p in root.iterdir()] == ["flowers-102"]


def test_bad_checksum_or_failed_download_leaves_nothing(tmp_path, served):
    files, fetched = served
    for remote in DATASETS["flowers102"].downloads:  # the real md5s, so these stand-ins mismatch
        files[remote.url] = tmp_path / "stand-in"
    (tmp_path / "stand-in").write_bytes(b"x" * 100)
    root = tmp_path / "data"
    with pytest.raises(ChecksumMismatchError) as caught:
        load_dataset("flowers102", root=root, download=True)
    message = str(caught.value)
    assert "102flowers.tgz" in message and "setid.mat" in message and "--data-dir" in message  # the hand-placing hint
    assert fetched and not root.exists()


def test_stanford_cars_has_no_download_and_says_so(tmp_path, served):
    _, fetched = served
    info = DATASETS["stanford_cars"]
    assert not info.downloadable and info.download_megabytes is None
    with pytest.raises(DownloadError, match="no longer online") as caught:
        load_dataset("stanford_cars", root=tmp_path / "data", download=True)
    assert str(tmp_path / "data" / "stanford_cars") in str(caught.value) and "cars_test/" in str(caught.value)
    assert fetched == [] and not (tmp_path / "data").exists()
    write_cars(tmp_path / "data")
    assert download_dataset("stanford_cars", tmp_path / "data") == tmp_path / "data" / "stanford_cars"


def test_catalog_download_facts():
    pets, flowers = DATASETS["oxford_pets"], DATASETS["flowers102"]
    assert pets.downloadable and flowers.downloadable
    assert [d.md5 for d in pets.downloads] == ["5c4f3ee8e5d25df40f4fd59a7f44e54c", "95a8c909bbe2e81eed6a22bccdf3f68f"]
    assert flowers.downloads[0].url == "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz"
    assert pets.download_megabytes == 774 and flowers.download_megabytes == 329
    assert (pets.num_classes, flowers.num_classes, DATASETS["stanford_cars"].num_classes) == (37, 102, 196)


# ---------------------------------------------------------------- the CLI and the Fine-tune page list them


def test_cli_and_finetune_page_list_the_transfer_datasets(tmp_path, monkeypatch):
    from vitviz import cli
    from vitviz.overview import finetune_datasets
    assert set(cli.DATASET_NAMES) == set(DATASETS)
    assert set(cli.DOWNLOAD_NAMES) == {name for name, info in DATASETS.items() if info.folder is not None}
    assert cli.build_parser().parse_args(["download", "flowers102"]).name == "flowers102"
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    write_pets(tmp_path)
    offered = {option["dataset"]: option for option in finetune_datasets({})}
    assert {"oxford_pets", "flowers102", "stanford_cars"} <= set(offered)
    assert offered["oxford_pets"]["available"] and not offered["stanford_cars"]["available"]
    assert offered["flowers102"]["download_mb"] == 329
    from vitviz.ui import state  # the note pages show when a checkpoint's test set is absent
    assert "no longer online" in state.test_set_missing_note({"dataset": "stanford_cars"})
    assert "python -m vitviz download flowers102" in state.test_set_missing_note({"dataset": "flowers102"})


def test_train_command_on_flowers(tmp_path, capsys):
    """`python -m vitviz train --dataset flowers102` reads the photos at the model's size and records the classes."""
    from vitviz import checkpoints
    from vitviz.cli import main as cli_main
    write_flowers(tmp_path)
    out = tmp_path / "run"
    kwargs = json.dumps(dict(depth=1, embed_dim=16, num_heads=2, patch_size=8))
    assert cli_main(["train", "--variant", "vitviz_vit_softmax_32", "--variant-kwargs", kwargs, "--dataset",
                     "flowers102", "--data-dir", str(tmp_path), "--steps", "1", "--batch-size", "2", "--out", str(out),
                     "--quiet"]) == 0
    meta = checkpoints.read_meta(out)
    assert meta["dataset"] == "flowers102" and meta["num_classes"] == 102 and meta["classes"][0] == "pink primrose"
    assert meta["metrics"]["num_test_samples"] == 3
