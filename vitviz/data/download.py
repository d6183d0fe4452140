"""Explicit, verified, atomic dataset downloads (only ever called on request).

``download_and_extract`` streams the archive with urllib into a temporary folder inside the
data directory, checks its md5 against the published one, extracts it there (rejecting
absolute paths, '..', links and device files), and only then renames the dataset folder
into place. Any failure removes the temporary folder and any data directory it created, so a
failed or interrupted download leaves nothing behind. Nothing here runs at import time.

``download_files`` does the same for datasets published as several files (archives and
plain files, e.g. Oxford-IIIT Pet, Flowers-102): all are verified and assembled in the
temporary folder before the dataset folder appears.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

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
    created = _missing_parents(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder_name}.download-", dir=root))
    done = False
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
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            _remove_empty(created)
    return target


def _missing_parents(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, innermost first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed download created (innermost first), as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@dataclass(frozen=True)
class RemoteFile:
    """One published file of a dataset that comes in several pieces (Oxford-IIIT Pet, Flowers-102).

    extract: a .tar(.gz) whose content is unpacked into the dataset folder; otherwise the file
    is placed in the dataset folder as is, under the last part of its URL.
    """

    url: str
    md5: str
    size_bytes: int
    extract: bool

    @property
    def file_name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def download_files(
    files: Sequence[RemoteFile],
    root: Path,
    folder_name: str,
    required: Callable[[Path], list[str]] | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Download every file of a multi-file dataset, verify each md5, assemble ``root / folder_name``.

    Everything is fetched, checked and unpacked inside a temporary folder in ``root``; the dataset
    folder is renamed into place only when all of it is there (``required(folder)`` returns the
    paths still missing, if given). Any failure removes the temporary folder and any data
    directory it created, as ``download_and_extract`` does. Progress counts bytes over all files.
    """
    root = Path(root)
    target = root / folder_name
    if target.exists():
        raise DownloadError(f"{target} already exists but is incomplete; remove it and download again")
    created = _missing_parents(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder_name}.download-", dir=root))
    sizes = [remote.size_bytes for remote in files]
    total = sum(sizes) if all(sizes) else None
    done = False
    try:
        assembled = staging / folder_name
        assembled.mkdir()
        fetched_before = 0
        for index, remote in enumerate(files):
            part = staging / f"part-{index}"

            def part_progress(received: int, _total: int | None, offset: int = fetched_before) -> None:
                if progress is not None:
                    progress(offset + received, total)

            try:
                fetch_url(remote.url, part, part_progress)
            except OSError as error:
                raise DownloadError(f"could not download {remote.url}: {error}") from error
            actual_md5 = file_md5(part)
            if actual_md5 != remote.md5:
                raise ChecksumMismatchError(
                    f"{remote.url}: md5 {actual_md5} does not match the published {remote.md5}"
                )
            fetched_before += part.stat().st_size
            if remote.extract:
                try:
                    safe_extract(part, assembled)
                except (tarfile.TarError, OSError) as error:
                    raise DownloadError(f"could not extract {remote.url}: {error}") from error
                part.unlink()
            else:
                os.replace(part, assembled / remote.file_name)
        still_missing = required(assembled) if required is not None else []
        if still_missing:
            raise DownloadError(
                f"the downloaded files lack {', '.join(still_missing[:5])} "
                f"(from {', '.join(remote.url for remote in files)})"
            )
        os.replace(assembled, target)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            _remove_empty(created)
    return target
