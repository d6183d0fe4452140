"""Single images to look at: uploads (validated), sample photos that installed packages ship, and
preparation for a model (centre crop, resize, normalise).

Everything returns uint8 RGB arrays (H, W, 3); `ImageError` carries a message a user can act on.
"""
from __future__ import annotations

import io

import numpy as np
import torch

MAX_UPLOAD_BYTES = 20 * 2**20
MAX_UPLOAD_PIXELS = 40_000_000
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")


class ImageError(ValueError):
    """An upload that is not a usable image; the message says why and what is accepted."""


def read_image(data: bytes, name: str = "upload", max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Decode an uploaded file to uint8 RGB (H, W, 3); ImageError for anything that is not a usable image.

    Greyscale, palette, 16-bit and CMYK images are converted; transparency is composited on white;
    for animations the first frame is used.
    """
    from PIL import Image, UnidentifiedImageError

    if len(data) == 0:
        raise ImageError(f"{name}: the file is empty")
    if len(data) > max_bytes:
        raise ImageError(f"{name}: {len(data) / 2**20:.1f} MB is too large (limit {max_bytes / 2**20:.0f} MB)")
    if _is_svg(data, name):
        raise ImageError(f"{name}: SVG (vector) images are not supported; export it as PNG or JPEG first "
                         f"(accepted: {', '.join(ACCEPTED_FORMATS)})")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ACCEPTED_FORMATS:
                raise ImageError(f"{name}: {img.format} images are not supported; use {', '.join(ACCEPTED_FORMATS)}")
            if img.width * img.height > MAX_UPLOAD_PIXELS:
                raise ImageError(f"{name}: {img.width}x{img.height} pixels is too large "
                                 f"(limit {MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels)")
            img.seek(0)
            img.load()
            return _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (accepted: {', '.join(ACCEPTED_FORMATS)})") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name}: the image could not be decoded ({exc})") from None


def _is_svg(data: bytes, name: str) -> bool:
    head = data[:1024].lstrip().lower()
    return name.lower().endswith((".svg", ".svgz")) or head.startswith(b"<svg") or (
        head.startswith(b"<?xml") and b"<svg" in head)


def _to_rgb(img) -> np.ndarray:
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = (arr - arr.min()) / max(arr.max() - arr.min(), 1e-12) * 255
        img = Image.fromarray(arr.astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def sample_photos() -> dict[str, np.ndarray]:
    """Photos bundled with scikit-learn (no network): name -> uint8 RGB image."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    names = [name.rsplit("/", 1)[-1].rsplit(".", 1)[0] for name in bunch.filenames]
    return {name: np.asarray(image, dtype=np.uint8) for name, image in zip(names, bunch.images)}


def prepare(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize (bilinear, antialiased) to size x size; uint8 RGB."""
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ImageError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    t = torch.from_numpy(np.ascontiguousarray(square)).permute(2, 0, 1)[None].float()
    out = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                                          antialias=side > size)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def to_input(images: np.ndarray, mean, std, device=None) -> torch.Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) -> normalised float (B, 3, H, W) on `device`."""
    arr = images[None] if images.ndim == 3 else images
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div(255)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - m) / s).to(device or "cpu")
