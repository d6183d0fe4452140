"""Exceptions raised by the dataset loaders, and the wording of "dataset not found".

One type per failure a user can act on:

* ``DatasetNotFoundError`` (a ``FileNotFoundError``): the files are not where we looked.
  Its message names the dataset, the exact folder, the env var and how to download.
* ``DatasetFormatError`` (a ``ValueError``): a file is there but is not what the format
  promises (truncated pickle, wrong array size, STL file size not a multiple of an image).
* ``DownloadError`` / ``ChecksumMismatchError``: an explicit download failed.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR_ENV = "VITVIZ_DATA_DIR"


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are missing from the data directory."""


class DatasetFormatError(ValueError):
    """A dataset file exists but its content does not match the expected on-disk format."""


class DownloadError(RuntimeError):
    """An explicitly requested download (or its extraction) failed; nothing was left behind."""


class ChecksumMismatchError(DownloadError):
    """The downloaded archive's md5 differs from the published one."""


MAX_MISSING_LISTED = 5


def dataset_not_found(
    name: str, folder: Path, missing: list[str], data_root: Path, download_hint: str | None = None
) -> DatasetNotFoundError:
    """Build the one error a user sees when a dataset is absent, with every way to fix it.

    download_hint replaces the "download it with ..." sentence, for datasets that cannot be
    downloaded (Stanford Cars: it says where the files come from and how to lay them out).
    """
    missing_text = ", ".join(missing[:MAX_MISSING_LISTED]) if missing else "the folder itself"
    if len(missing) > MAX_MISSING_LISTED:
        missing_text += f" and {len(missing) - MAX_MISSING_LISTED:,} more"
    next_step = download_hint or (
        f"or download it with `python -m vitviz download {name}` "
        f"(Python: load_dataset({name!r}, download=True))."
    )
    return DatasetNotFoundError(
        f"Dataset {name!r} not found: looked in {folder} (missing: {missing_text}). "
        f"Put the files under {data_root}; or point --data-dir (command line), "
        f"${DATA_DIR_ENV} or root= (Python) at the directory that contains {folder.name!r}; "
        f"{next_step}"
    )
