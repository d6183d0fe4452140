"""Where datasets live on disk: the data directory and each dataset's folder in it.

The data directory is ``$VITVIZ_DATA_DIR`` when set, else ``./data`` (relative to the
current working directory). Every loader also takes ``root=`` to override it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DATA_DIR_ENV


def data_dir() -> Path:
    """The data directory: ``$VITVIZ_DATA_DIR`` or ``./data``, as an absolute path."""
    configured = os.environ.get(DATA_DIR_ENV) or "data"
    return Path(configured).expanduser().absolute()


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The directory to look in: ``root`` when given, else :func:`data_dir`."""
    return data_dir() if root is None else Path(root).expanduser().absolute()


def dataset_folder(root: str | os.PathLike | None, folder_name: str) -> Path:
    """The dataset's own folder (e.g. ``<root>/cifar-10-batches-py``).

    ``root`` may also point at that folder itself, which is what people often pass.
    """
    base = resolve_root(root)
    if base.name == folder_name and not (base / folder_name).exists():
        return base
    return base / folder_name


def missing_files(folder: Path, file_names: list[str]) -> list[str]:
    """The names in ``file_names`` that are not regular files in ``folder``."""
    return [file_name for file_name in file_names if not (folder / file_name).is_file()]
