"""The offline default: scikit-learn's bundled handwritten digits as an RGB image dataset.

1797 real 8x8 grey images (values 0..16) of the digits 0..9 (UCI "Optical Recognition of
Handwritten Digits", Alpaydin & Kaynak 1998), shipped inside scikit-learn, so this works on
a fresh machine with no network. Pixels are scaled to 0..255, replicated to 3 channels and
bilinearly upsampled to the model's input size. The train/test split is stratified and
seeded, so it is the same on every machine.
"""

from __future__ import annotations

import numpy as np

from .dataset import ImageDataset, resize_images

DIGITS_NATIVE_SIZE = 8
DIGITS_DEFAULT_SIZE = 32  # the input size of the project's CIFAR-sized models
DIGITS_MAX_VALUE = 16
DIGITS_CLASSES = [str(digit) for digit in range(10)]
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def digits_split_indices(
    labels: np.ndarray, test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SPLIT_SEED
) -> dict[str, np.ndarray]:
    """Stratified, seeded train/test indices (each sorted)."""
    from sklearn.model_selection import train_test_split  # scikit-learn loads only when digits are used
    train_indices, test_indices = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed
    )
    return {"train": np.sort(train_indices), "test": np.sort(test_indices)}


def load_digits_dataset(
    split: str = "train",
    img_size: int = DIGITS_DEFAULT_SIZE,
    test_fraction: float = DIGITS_TEST_FRACTION,
    seed: int = DIGITS_SPLIT_SEED,
) -> ImageDataset:
    """The digits as uint8 (N, img_size, img_size, 3) RGB images with classes "0".."9"."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    from sklearn.datasets import load_digits
    digits = load_digits()
    labels = digits.target.astype(np.int64)
    indices = digits_split_indices(labels, test_fraction, seed)[split]
    grey = np.rint(digits.images[indices] * (255.0 / DIGITS_MAX_VALUE)).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    return ImageDataset(
        name="digits",
        images=resize_images(rgb, img_size),
        labels=labels[indices],
        classes=list(DIGITS_CLASSES),
        split=split,
    )
