"""Explicit, verified, atomic dataset downloads (only ever called on request).

``download_and_extract`` streams the archive with urllib into a temporary folder inside the
data directory, checks its md5 against the published one, extracts it there (rejecting
absolute paths, '..', links and device files), and only then renames the dataset folder
into place. Any failure removes the temporary folder, so a failed or interrupted download
leaves nothing behind. Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Callable

from .errors import ChecksumMismatchError, DownloadError

CHUNK_BYTES = 1 << 20
ProgressCallback = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


def fetch_url(url: str, destination: Path, progress: ProgressCallback | None = None) -> None:
    """Stream ``url`` into the file ``destination`` (http(s) or file:// URLs)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as file:
        length_header = response.headers.get("Content-Length") if response.headers else None
        total = int(length_header) if length_header and length_header.isdigit() else None
        received = 0
        while chunk := response.read(CHUNK_BYTES):
            file.write(chunk)
            received += len(chunk)
            if progress is not None:
                progress(received, total)


def file_md5(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_tar_member(member: tarfile.TarInfo) -> None:
    """Refuse members that could write outside the extraction folder or are not plain files/dirs."""
    member_path = PurePosixPath(member.name)
    if member_path.is_absolute() or member.name.startswith(("/", "\\")) or ".." in member_path.parts:
        raise DownloadError(f"unsafe path in archive: {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise DownloadError(f"archive member {member.name!r} is not a regular file or folder")


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract a .tar(.gz) archive into ``destination`` after checking every member."""
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            check_tar_member(member)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second, stdlib guard
            tar.extractall(destination, members=members, filter="data")
        else:
            tar.extractall(destination, members=members)


def download_and_extract(
    url: str,
    md5: str,
    root: Path,
    folder_name: str,
    progress: ProgressCallback | None = None,
) -> Path:
    """Download ``url``, verify ``md5``, extract, and move ``folder_name`` into ``root``.

    Returns ``root / folder_name``. Raises ``ChecksumMismatchError`` or ``DownloadError``.
    """
    root = Path(root)
    target = root / folder_name
    if target.exists():
        raise DownloadError(
            f"{target} already exists but is incomplete; remove it and download again"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder_name}.download-", dir=root))
    try:
        archive = staging / "archive"
        try:
            fetch_url(url, archive, progress)
        except OSError as error:
            raise DownloadError(f"could not download {url}: {error}") from error
        actual_md5 = file_md5(archive)
        if actual_md5 != md5:
            raise ChecksumMismatchError(f"{url}: md5 {actual_md5} does not match the published {md5}")
        extracted = staging / "extracted"
        extracted.mkdir()
        try:
            safe_extract(archive, extracted)
        except (tarfile.TarError, OSError) as error:
            raise DownloadError(f"could not extract {url}: {error}") from error
        if not (extracted / folder_name).is_dir():
            raise DownloadError(f"{url}: archive has no {folder_name!r} folder")
        os.replace(extracted / folder_name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
