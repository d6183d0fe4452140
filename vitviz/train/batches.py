"""Batches from an in-memory uint8 dataset, augmented and normalised on the device.

Small datasets (CIFAR size) are moved to the device once as uint8 (N, 3, H, W) and batched by
index: no DataLoader, no worker processes, no per-step host-to-device copies. Datasets larger
than `max_resident_bytes` stay in (pinned) host memory and each batch is copied over.
Augmentation (random crop after zero padding, horizontal flip) runs on the device on uint8 batches,
driven by a seeded generator so runs are reproducible.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import ImageDataset


class DeviceImages:
    def __init__(self, dataset: ImageDataset, device: torch.device, img_size: int,
                 max_resident_bytes: int = 2 << 30):
        if dataset.image_size != (img_size, img_size):
            dataset = dataset.resized(img_size)
        images, labels = dataset.to_tensors()
        self.device = device
        self.resident = images.numel() <= max_resident_bytes or device.type == "cpu"
        if self.resident:
            self.images, self.labels = images.to(device), labels.to(device)
        else:
            self.images = images.pin_memory() if torch.cuda.is_available() else images
            self.labels = labels.to(device)
        self.num_classes, self.classes = dataset.num_classes, list(dataset.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (B, 3, H, W) and labels on the device for the given indices."""
        if self.resident:
            return self.images[index.to(self.device)], self.labels[index.to(self.device)]
        images = self.images[index.cpu()].to(self.device, non_blocking=True)
        return images, self.labels[index.to(self.device)]

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(len(self), generator=generator)


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Per-image random crop (after zero padding) and horizontal flip of a uint8 batch, on its device."""
    return apply_crop_flip(images, draw_crop_flip(len(images), padding, flip, generator), padding)


def draw_crop_flip(n: int, padding: int, flip: bool, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The random offsets ("dy", "dx") and flips ("flip") of `n` images, on the CPU; slice them per image
    (a data-parallel rank draws them for the whole global batch and keeps its own part)."""
    params = {}
    if padding > 0:
        params["dy"] = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        params["dx"] = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    if flip:
        params["flip"] = torch.rand(n, generator=generator) < 0.5
    return params


def apply_crop_flip(images: torch.Tensor, params: dict[str, torch.Tensor], padding: int) -> torch.Tensor:
    B, C, H, W = images.shape
    if "dy" in params:
        dy, dx = params["dy"].to(images.device), params["dx"].to(images.device)
        images = _crop(F.pad(images, (padding,) * 4), dy, dx, H, W)
    if "flip" in params:
        mask = params["flip"].to(images.device)
        images = torch.where(mask[:, None, None, None], images.flip(-1), images)
    return images


def _crop(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, H: int, W: int) -> torch.Tensor:
    B, C = padded.shape[:2]
    rows = dy[:, None] + torch.arange(H, device=padded.device)  # (B, H)
    cols = dx[:, None] + torch.arange(W, device=padded.device)  # (B, W)
    batch = torch.arange(B, device=padded.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


class Normalize:
    """uint8 (B, 3, H, W) -> float (B, 3, H, W) with per-channel mean/std given in 0..1 units."""

    def __init__(self, mean, std, device):
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) / self.std
