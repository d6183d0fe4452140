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


def dataset_not_found(name: str, folder: Path, missing: list[str], data_root: Path) -> DatasetNotFoundError:
    """Build the one error a user sees when a dataset is absent, with every way to fix it."""
    missing_text = ", ".join(missing) if missing else "the folder itself"
    return DatasetNotFoundError(
        f"Dataset {name!r} not found: looked in {folder} (missing: {missing_text}). "
        f"Put the files under {data_root}, set the {DATA_DIR_ENV} environment variable "
        f"(or pass root=...) to the directory that contains {folder.name!r}, "
        f"or download it with load_dataset({name!r}, download=True) "
        f"(CLI: python -m vitviz download {name})."
    )
