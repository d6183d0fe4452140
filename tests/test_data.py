"""Tests for vitviz.data: real loaders run on small fixture files written in the real formats.

Fixtures place known pixel values at known byte offsets (computed from each format's
specification, not from the loader's reshape), so a wrong transpose or channel order fails.
No test touches the network: downloads go through a monkeypatched fetch function.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import vitviz.data.download as download_module
from vitviz.data import (
    DATA_DIR_ENV,
    DATASETS,
    ChecksumMismatchError,
    DatasetFormatError,
    DatasetNotFoundError,
    DownloadError,
    ImageDataset,
    data_dir,
    fetch_url,
    is_available,
    load_cifar100,
    load_dataset,
    resize_images,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CIFAR10_MINI = REPO_ROOT.parent / "shared" / "data" / "cifar10-mini"

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IMAGES_PER_BATCH = 4
KNOWN_ROW, KNOWN_COL = 3, 17  # distinct, so a swapped H/W is caught
KNOWN_RGB = (200, 100, 50)


# ---------------------------------------------------------------- fixture writers


def cifar_rows(num_images: int, seed: int) -> np.ndarray:
    """Random CIFAR rows (N, 3072): R plane, G plane, B plane, each row-major 32x32."""
    return np.random.default_rng(seed).integers(0, 256, size=(num_images, 3072), dtype=np.uint8)


def put_cifar_pixel(rows: np.ndarray, image: int, row: int, col: int, rgb: tuple[int, int, int]) -> None:
    for channel, value in enumerate(rgb):
        rows[image, channel * 1024 + row * 32 + col] = value


def write_pickle(path: Path, content: dict, protocol: int = 4) -> None:
    with open(path, "wb") as file:
        pickle.dump(content, file, protocol=protocol)


def write_cifar10(root: Path, bytes_keys_file: str | None = "data_batch_2") -> dict[str, np.ndarray]:
    """A CIFAR-10 folder with 4 images per batch; returns the rows and labels written."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    meta = {"label_names": CIFAR10_NAMES, "num_cases_per_batch": IMAGES_PER_BATCH, "num_vis": 3072}
    write_pickle(folder / "batches.meta", meta)
    written = {}
    for index, file_name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        rows = cifar_rows(IMAGES_PER_BATCH, seed=index)
        labels = [(index + image) % 10 for image in range(IMAGES_PER_BATCH)]
        if file_name == "data_batch_3":
            put_cifar_pixel(rows, 1, KNOWN_ROW, KNOWN_COL, KNOWN_RGB)
        content = {"batch_label": f"batch {index}", "labels": labels, "data": rows}
        if file_name == bytes_keys_file:  # the original Python 2 files have bytes keys
            content = {key.encode(): value for key, value in content.items()}
            write_pickle(folder / file_name, content, protocol=2)
        else:
            write_pickle(folder / file_name, content)
        written[file_name] = (rows, np.array(labels))
    return written


def write_cifar100(root: Path) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine_names = [f"fine_{index:02d}" for index in range(100)]
    coarse_names = [f"coarse_{index:02d}" for index in range(20)]
    write_pickle(folder / "meta", {"fine_label_names": fine_names, "coarse_label_names": coarse_names})
    for seed, split in enumerate(["train", "test"]):
        rows = cifar_rows(6, seed=10 + seed)
        put_cifar_pixel(rows, 5, KNOWN_ROW, KNOWN_COL, KNOWN_RGB)
        write_pickle(
            folder / split,
            {
                b"data": rows,
                b"fine_labels": [99, 0, 42, 7, 13, 64],
                b"coarse_labels": [19, 0, 5, 3, 1, 12],
                b"filenames": [b"x.png"] * 6,
            },
            protocol=2,
        )


STL_IMAGE_BYTES = 3 * 96 * 96


def stl_offset(image: int, channel: int, row: int, col: int) -> int:
    """Byte offset in *_X.bin: each channel is stored column-major (MATLAB order)."""
    return image * STL_IMAGE_BYTES + channel * 96 * 96 + col * 96 + row


def write_stl10(root: Path, num_images: int = 3) -> None:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        raw = np.zeros(num_images * STL_IMAGE_BYTES, dtype=np.uint8)
        for channel, value in enumerate(KNOWN_RGB):
            raw[stl_offset(2, channel, KNOWN_ROW, KNOWN_COL)] = value
        raw.tofile(folder / f"{split}_X.bin")
        np.array([1, 10, 4][:num_images], dtype=np.uint8).tofile(folder / f"{split}_y.bin")
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")


# ---------------------------------------------------------------- CIFAR


def test_cifar10_pixels_labels_and_classes(tmp_path):
    written = write_cifar10(tmp_path)
    train = load_dataset("cifar10", "train", root=tmp_path)
    assert len(train) == 5 * IMAGES_PER_BATCH
    assert train.images.shape == (20, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64
    assert train.classes == CIFAR10_NAMES and train.split == "train" and train.name == "cifar10"
    # data_batch_3 image 1 is the 2*4 + 1 = 9th image of the training split
    assert tuple(train.images[9, KNOWN_ROW, KNOWN_COL]) == KNOWN_RGB
    # the whole image, from the spec: channel c of pixel (r, k) is row[c*1024 + r*32 + k]
    rows, labels = written["data_batch_3"]
    expected = np.stack([rows[1, c * 1024 : (c + 1) * 1024].reshape(32, 32) for c in range(3)], axis=-1)
    np.testing.assert_array_equal(train.images[9], expected)
    np.testing.assert_array_equal(train.labels[8:12], labels)
    # the bytes-keyed (protocol 2) batch reads the same way
    np.testing.assert_array_equal(train.labels[4:8], written["data_batch_2"][1])

    test = load_dataset("cifar10", "test", root=tmp_path)
    assert len(test) == IMAGES_PER_BATCH and test.split == "test"
    np.testing.assert_array_equal(test.labels, written["test_batch"][1])


def test_cifar100_fine_and_coarse(tmp_path):
    write_cifar100(tmp_path)
    train = load_dataset("cifar100", "train", root=tmp_path)
    assert len(train) == 6 and len(train.classes) == 100 and train.classes[42] == "fine_42"
    assert train.labels.tolist() == [99, 0, 42, 7, 13, 64]
    assert tuple(train.images[5, KNOWN_ROW, KNOWN_COL]) == KNOWN_RGB
    assert tuple(train.images[5, KNOWN_COL, KNOWN_ROW]) != KNOWN_RGB
    coarse = load_cifar100(tmp_path, "test", label_type="coarse")
    assert coarse.labels.tolist() == [19, 0, 5, 3, 1, 12] and len(coarse.classes) == 20


def test_root_may_be_the_dataset_folder_itself(tmp_path):
    write_cifar10(tmp_path)
    dataset = load_dataset("cifar10", "test", root=tmp_path / "cifar-10-batches-py")
    assert len(dataset) == IMAGES_PER_BATCH


def test_to_tensors_layout(tmp_path):
    write_cifar10(tmp_path)
    dataset = load_dataset("cifar10", root=tmp_path)
    images, labels = dataset.to_tensors()
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (20,) and labels.dtype == torch.int64
    assert images[9, :, KNOWN_ROW, KNOWN_COL].tolist() == list(KNOWN_RGB)


# ---------------------------------------------------------------- STL-10


def test_stl10_column_major_pixel_and_labels(tmp_path):
    write_stl10(tmp_path)
    dataset = load_dataset("stl10", "train", root=tmp_path)
    assert dataset.images.shape == (3, 96, 96, 3) and dataset.images.dtype == np.uint8
    assert tuple(dataset.images[2, KNOWN_ROW, KNOWN_COL]) == KNOWN_RGB
    assert dataset.images[2].sum() == sum(KNOWN_RGB)  # nothing else lit up
    assert dataset.labels.tolist() == [0, 9, 3]
    assert dataset.classes[0] == "airplane" and len(dataset.classes) == 10


def test_stl10_resize_to_32(tmp_path):
    write_stl10(tmp_path)
    dataset = load_dataset("stl10", "test", root=tmp_path, img_size=32)
    assert dataset.images.shape == (3, 32, 32, 3) and dataset.images.dtype == np.uint8


# ---------------------------------------------------------------- missing and corrupt files


@pytest.mark.parametrize(
    "name,folder",
    [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"), ("stl10", "stl10_binary")],
)
def test_missing_dataset_message(tmp_path, name, folder):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset(name, root=tmp_path)
    assert isinstance(caught.value, FileNotFoundError)
    message = str(caught.value)
    assert str(tmp_path / folder) in message
    assert name in message and DATA_DIR_ENV in message and "download=True" in message
    assert "--data-dir" in message and "root=..." not in message
    assert not is_available(name, root=tmp_path)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert data_dir() == tmp_path
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)):
        load_dataset("cifar10")
    write_cifar10(tmp_path)
    assert is_available("cifar10") and len(load_dataset("cifar10", "test")) == IMAGES_PER_BATCH
    monkeypatch.delenv(DATA_DIR_ENV)
    monkeypatch.chdir(tmp_path)
    assert data_dir() == tmp_path / "data"


def test_truncated_pickle(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetFormatError, match="data_batch_4"):
        load_dataset("cifar10", root=tmp_path)


def test_wrong_row_size(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    write_pickle(path, {"labels": [0, 1], "data": np.zeros((2, 3000), dtype=np.uint8)})
    with pytest.raises(DatasetFormatError, match="test_batch"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_label_count_mismatch(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    write_pickle(path, {"labels": [0, 1, 2], "data": np.zeros((2, 3072), dtype=np.uint8)})
    with pytest.raises(DatasetFormatError, match="test_batch"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_pickle_with_foreign_global_is_refused(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "batches.meta"
    write_pickle(path, {"label_names": CIFAR10_NAMES, "hook": os.getcwd})
    with pytest.raises(DatasetFormatError, match="not allowed"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_stl10_truncated_images(tmp_path):
    write_stl10(tmp_path)
    path = tmp_path / "stl10_binary" / "train_X.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetFormatError, match="train_X.bin"):
        load_dataset("stl10", root=tmp_path)


def test_stl10_labels_out_of_range(tmp_path):
    write_stl10(tmp_path)
    np.array([0, 1, 2], dtype=np.uint8).tofile(tmp_path / "stl10_binary" / "test_y.bin")
    with pytest.raises(DatasetFormatError, match="test_y.bin"):
        load_dataset("stl10", "test", root=tmp_path)


# ---------------------------------------------------------------- digits (offline default)


def test_digits_shapes_classes_and_split():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert train.images.shape == (1437, 32, 32, 3) and test.images.shape == (360, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.classes == [str(digit) for digit in range(10)]
    assert set(test.labels.tolist()) == set(range(10))  # stratified: every class in test
    assert train.images.max() == 255 and train.images.min() == 0
    np.testing.assert_array_equal(train.images[..., 0], train.images[..., 2])  # grey in RGB
    again = load_dataset("digits", "train")
    np.testing.assert_array_equal(train.images, again.images)
    np.testing.assert_array_equal(train.labels, again.labels)


def test_digits_img_size_and_catalog_normalisation():
    small = load_dataset("digits", "test", img_size=16)
    assert small.images.shape == (360, 16, 16, 3)
    train = load_dataset("digits", "train").images.astype(np.float64) / 255
    info = DATASETS["digits"]
    np.testing.assert_allclose(train.mean(axis=(0, 1, 2)), info.mean, atol=2e-3)
    np.testing.assert_allclose(train.std(axis=(0, 1, 2)), info.std, atol=2e-3)


# ---------------------------------------------------------------- resizing and the dataset type


def test_resize_keeps_uint8_and_constant_images():
    images = np.full((2, 96, 96, 3), 77, dtype=np.uint8)
    images[1] = 200
    resized = resize_images(images, 32)
    assert resized.shape == (2, 32, 32, 3) and resized.dtype == np.uint8
    assert (resized[0] == 77).all() and (resized[1] == 200).all()


def test_cifar_img_size(tmp_path):
    write_cifar10(tmp_path)
    assert load_dataset("cifar10", "test", root=tmp_path, img_size=16).images.shape == (4, 16, 16, 3)
    native = load_dataset("cifar10", "test", root=tmp_path, img_size=32)
    assert native.images.shape == (4, 32, 32, 3)


def test_image_dataset_rejects_float_images():
    with pytest.raises(ValueError):
        ImageDataset("x", np.zeros((1, 4, 4, 3), dtype=np.float32), np.zeros(1), ["a"], "train")


def test_catalog_entries():
    assert set(DATASETS) == {"cifar10", "cifar100", "stl10", "digits", "oxford_pets", "flowers102", "stanford_cars"}
    assert DATASETS["cifar10"].download_megabytes == 163
    assert DATASETS["cifar100"].download_megabytes == 161
    assert DATASETS["stl10"].image_size == 96 and DATASETS["cifar100"].num_classes == 100
    assert not DATASETS["digits"].downloadable and is_available("digits")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")


# ---------------------------------------------------------------- downloads (network never used)


def make_cifar10_archive(tmp_path: Path) -> tuple[Path, str]:
    source = tmp_path / "source"
    write_cifar10(source)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.fixture
def served_archive(tmp_path, monkeypatch):
    """Serve a small CIFAR-10 archive in place of the real URL; record every fetch."""
    archive, md5 = make_cifar10_archive(tmp_path)
    fetched = []

    def fake_fetch(url, destination, progress=None):
        fetched.append(url)
        shutil.copyfile(archive, destination)

    monkeypatch.setattr(download_module, "fetch_url", fake_fetch)
    return archive, md5, fetched


def test_download_with_good_checksum(tmp_path, monkeypatch, served_archive):
    _, md5, fetched = served_archive
    monkeypatch.setitem(DATASETS, "cifar10", replace(DATASETS["cifar10"], md5=md5))
    root = tmp_path / "data"
    dataset = load_dataset("cifar10", "test", root=root, download=True)
    assert len(dataset) == IMAGES_PER_BATCH and fetched == [DATASETS["cifar10"].url]
    assert sorted(path.name for path in root.iterdir()) == ["cifar-10-batches-py"]  # no temp leftovers
    load_dataset("cifar10", "train", root=root, download=True)
    assert len(fetched) == 1  # already there: no second download


def test_download_with_bad_checksum_leaves_nothing(tmp_path, served_archive):
    _, _, fetched = served_archive  # the catalog's md5 is the real one, so the fixture mismatches
    root = tmp_path / "data"
    with pytest.raises(ChecksumMismatchError):
        load_dataset("cifar10", root=root, download=True)
    assert fetched and not root.exists()  # no empty data directory left behind


def test_failed_download_says_what_to_do_next(tmp_path, monkeypatch):
    def offline(url, destination, progress=None):
        raise OSError("network is unreachable")

    monkeypatch.setattr(download_module, "fetch_url", offline)
    root = tmp_path / "data"
    with pytest.raises(DownloadError) as caught:
        load_dataset("cifar10", root=root, download=True)
    message = str(caught.value)
    info = DATASETS["cifar10"]
    assert "network is unreachable" in message and info.url in message and info.md5 in message
    assert str(root / "cifar-10-batches-py") in message and "data_batch_1" in message and "--data-dir" in message
    assert not root.exists()


def test_no_download_unless_asked(tmp_path, served_archive):
    _, _, fetched = served_archive
    with pytest.raises(DatasetNotFoundError):
        load_dataset("cifar10", root=tmp_path / "data")
    assert fetched == []


def test_unsafe_archive_member_is_refused(tmp_path, monkeypatch):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = b"gotcha"
        member = tarfile.TarInfo("cifar-10-batches-py/../../escaped.txt")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    def fake_fetch(url, destination, progress=None):
        shutil.copyfile(archive, destination)

    monkeypatch.setattr(download_module, "fetch_url", fake_fetch)
    monkeypatch.setitem(DATASETS, "cifar10", replace(DATASETS["cifar10"], md5=md5))
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="unsafe path in archive"):
        load_dataset("cifar10", root=root, download=True)
    assert not root.exists()
    assert not (tmp_path / "escaped.txt").exists()


def test_fetch_url_streams_a_file_url(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 10)
    destination = tmp_path / "copy.bin"
    seen = []
    fetch_url(source.as_uri(), destination, progress=lambda received, total: seen.append(received))
    assert destination.read_bytes() == source.read_bytes() and seen[-1] == 2560


# ---------------------------------------------------------------- the real cifar10-mini subset


def test_real_cifar10_mini():
    if not (CIFAR10_MINI / "cifar-10-batches-py").is_dir():
        pytest.skip(f"{CIFAR10_MINI} not present")
    train = load_dataset("cifar10", "train", root=CIFAR10_MINI)
    test = load_dataset("cifar10", "test", root=CIFAR10_MINI)
    assert len(train) == 5000 and len(test) == 1000
    assert len(train.classes) == 10 and train.classes[0] == "airplane"
    assert train.images.shape == (5000, 32, 32, 3) and train.images.dtype == np.uint8
    assert set(np.unique(test.labels).tolist()) == set(range(10))
    # real photographs, not noise or zeros: neighbouring pixels are strongly correlated
    pixels = train.images[:200].astype(np.float64)
    correlation = np.corrcoef(pixels[:, :, :-1].ravel(), pixels[:, :, 1:].ravel())[0, 1]
    assert correlation > 0.8
