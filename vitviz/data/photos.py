"""Photo files of any size (the transfer datasets' JPEGs) → one uint8 array at the model's input size.

Used by the Oxford-IIIT Pet, Flowers-102 and Stanford Cars readers, whose images vary in size.

Resizing (``fit``):

* ``"crop"`` (default): the shorter side is resized to ``size`` and the centre ``size x size``
  square is kept — ``vitviz.data.images.prepare``, the same as for uploaded images, and the usual
  evaluation transform. The aspect ratio is kept; the ends of a wide image are cut off.
* ``"squash"``: the whole image is resized to ``size x size``; nothing is cut off, the aspect
  ratio is not kept (sometimes preferred for Stanford Cars, whose cars fill wide frames).

Resizing is bilinear with antialiasing. JPEGs are decoded at a reduced scale (PIL's draft mode:
1/2, 1/4 or 1/8) when both sides stay at least ``size``, which makes decoding several times faster.
Images are decoded in a few threads (PIL releases the GIL while decoding).

Decoding thousands of photos takes tens of seconds, so the decoded array of a split is cached as a
plain ``.npy`` file in ``<dataset folder>/.vitviz-cache/``, named by a hash of the split's files
(paths, byte sizes, modification times), ``size`` and ``fit``: change any of them and it is rebuilt.
A data directory that cannot be written just means no cache; ``cache=False`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DatasetFormatError

FITS = ("crop", "squash")
CACHE_FOLDER = ".vitviz-cache"
CACHE_VERSION = 1  # bump when decoding or resizing changes, so old caches are not reused
MAX_DECODE_THREADS = 8


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise ValueError(f"fit must be one of {list(FITS)}, got {fit!r}")
    return fit


def missing_photos(folder: Path, relative_paths: Sequence[str]) -> list[str]:
    """The paths in ``relative_paths`` that are not files under ``folder``."""
    return [relative for relative in relative_paths if not (folder / relative).is_file()]


def decode_photo(path: Path, size: int, fit: str = "crop") -> np.ndarray:
    """One image file → uint8 (size, size, 3) RGB; DatasetFormatError when it cannot be decoded."""
    import torch
    from PIL import Image, UnidentifiedImageError

    from .images import prepare

    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG only: decode at 1/2..1/8 scale, both sides still >= size
            pixels = np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy, for torch
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetFormatError(f"{path}: not a readable image ({error})") from error
    if fit == "crop":
        return prepare(pixels, size)
    if pixels.shape[:2] == (size, size):
        return np.ascontiguousarray(pixels)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float()
    resized = torch.nn.functional.interpolate(
        tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=max(pixels.shape[:2]) > size
    )
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def cache_key(folder: Path, relative_paths: Sequence[str], size: int, fit: str) -> str:
    """Hash of what the decoded array depends on: the files (path, bytes, mtime), size, fit, version."""
    digest = hashlib.sha1(f"v{CACHE_VERSION}|{size}|{fit}".encode())
    for relative in relative_paths:
        stat = (folder / relative).stat()
        digest.update(f"|{relative}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def load_photos(
    folder: Path,
    relative_paths: Sequence[str],
    size: int,
    fit: str = "crop",
    cache: bool = True,
    cache_name: str = "photos",
) -> np.ndarray:
    """Decode ``folder / path`` for every path into uint8 (N, size, size, 3), in order (cached, see above)."""
    check_fit(fit)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    cache_path = None
    if cache and relative_paths:
        key = cache_key(folder, relative_paths, size, fit)
        cache_path = folder / CACHE_FOLDER / f"{cache_name}-{size}px-{fit}-{key}.npy"
        cached = read_cache(cache_path, (len(relative_paths), size, size, 3))
        if cached is not None:
            return cached
    images = np.empty((len(relative_paths), size, size, 3), dtype=np.uint8)

    def decode_into(index: int) -> None:
        images[index] = decode_photo(folder / relative_paths[index], size, fit)

    workers = max(1, min(MAX_DECODE_THREADS, os.cpu_count() or 1, len(relative_paths)))
    if workers == 1:
        for index in range(len(relative_paths)):
            decode_into(index)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(decode_into, range(len(relative_paths))))  # list(): re-raises the first error
    if cache_path is not None:
        write_cache(cache_path, images)
        remove_stale(cache_path, prefix=f"{cache_name}-{size}px-{fit}-")
    return images


def read_cache(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array when it is there and has the expected shape and dtype, else None."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return array if array.dtype == np.uint8 and array.shape == shape else None


def remove_stale(current: Path, prefix: str) -> None:
    """Remove older caches of the same split, size and fit (their files have changed since)."""
    for stale in current.parent.glob(f"{prefix}*.npy"):
        if stale != current:
            try:
                stale.unlink(missing_ok=True)
            except OSError:
                pass


def write_cache(path: Path, images: np.ndarray) -> None:
    """Write atomically (temp file + rename); silently skip when the folder is not writable."""
    try:
        path.parent.mkdir(exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                np.save(file, images, allow_pickle=False)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        return
