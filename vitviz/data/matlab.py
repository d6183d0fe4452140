"""MATLAB v5 files (the Flowers-102 and Stanford Cars annotations), read with ``scipy.io.loadmat``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DatasetFormatError


def read_mat(path: Path) -> dict:
    """A MATLAB v5 file as a dict (squeezed arrays); DatasetFormatError when unreadable."""
    from scipy.io import loadmat

    try:
        return loadmat(path, squeeze_me=True)
    except (ValueError, TypeError, OSError, NotImplementedError) as error:
        raise DatasetFormatError(f"{path}: not a readable MATLAB file ({error})") from error


def integer_vector(content: dict, key: str, path: Path) -> np.ndarray:
    """``content[key]`` as a 1-D int64 array (a one-element split squeezes to a scalar)."""
    if key not in content:
        variables = sorted(name for name in content if not name.startswith("__"))
        raise DatasetFormatError(f"{path}: missing variable {key!r} (has {variables})")
    values = np.atleast_1d(np.asarray(content[key]))
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
        raise DatasetFormatError(f"{path}: {key!r} must be a vector of integers, got {values.dtype} {values.shape}")
    return values.astype(np.int64)
