"""The in-memory image dataset every loader returns, and uint8 → uint8 resizing.

Images stay uint8 ``(N, H, W, 3)`` end to end: the training engine keeps them on the GPU
as uint8 and batches by index, converting to float only per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

RESIZE_CHUNK = 1024  # images resized per interpolate call, to bound float32 memory


@dataclass
class ImageDataset:
    """A labelled image set held in memory.

    images: uint8 array (N, H, W, 3), RGB.
    labels: int64 array (N,), values in ``range(len(classes))``.
    classes: class names, index = label.
    split: "train" or "test".
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    split: str

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(
                f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}"
            )
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must have shape ({len(self.images)},), got {self.labels.shape}")
        self.classes = [str(class_name) for class_name in self.classes]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of every image."""
        return self.images.shape[1], self.images.shape[2]

    def to_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 tensor (N, 3, H, W), int64 tensor (N,)), ready to move to a device."""
        images = torch.from_numpy(np.ascontiguousarray(self.images)).permute(0, 3, 1, 2).contiguous()
        return images, torch.from_numpy(self.labels.copy())

    def resized(self, size: int) -> "ImageDataset":
        """A copy with images resized to (size, size); self when already that size."""
        if self.image_size == (size, size):
            return self
        return replace(self, images=resize_images(self.images, size))


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 (N, H, W, C) images to (N, size, size, C), still uint8.

    Downsampling uses antialiasing so e.g. STL-10 96 px → 32 px does not alias.
    """
    if images.shape[1:3] == (size, size):
        return images
    antialias = size < max(images.shape[1:3])
    resized_chunks = []
    for start in range(0, len(images), RESIZE_CHUNK):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + RESIZE_CHUNK]))
        chunk = chunk.permute(0, 3, 1, 2).float()
        chunk = F.interpolate(
            chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias
        )
        resized_chunks.append(chunk.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    if not resized_chunks:
        return np.zeros((0, size, size, images.shape[-1]), dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate(resized_chunks))
