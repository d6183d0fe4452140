"""The checkpoint format's metadata side: what a checkpoint's JSON must hold, reading and validating it, the
copy of it in a weights file's safetensors header, and listing the checkpoints of a directory.

Standard library and `safetensors` only (no torch): the model registry (`vitviz.models`, whose timm hook
reads a checkpoint's metadata) and the app's tables (the Zoo) use it without loading the checkpoint module
or torch; `vitviz.checkpoints` (save / load, which builds models) builds on it. See `vitviz.checkpoints` for
the format itself.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import safetensors

FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
META_SUFFIX = ".json"

#: Keys the caller of :func:`save` must provide.
CALLER_KEYS = ("variant", "variant_kwargs", "classes", "img_size", "mean", "std", "dataset")
#: Keys the header of the weights file repeats (JSON string under ``vitviz_meta``).
ESSENTIAL_KEYS = CALLER_KEYS[:3] + ("num_classes",) + CALLER_KEYS[3:]


class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable, corrupt or inconsistent."""


# --------------------------------------------------------------------------- validation


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_triple(x: Any) -> bool:
    return isinstance(x, list) and len(x) == 3 and all(_is_num(v) for v in x)


def _is_sha(x: Any) -> bool:
    return isinstance(x, str) and len(x) == 64 and all(c in "0123456789abcdef" for c in x)


# key -> (check, description of the expected type)
_CHECKS: dict[str, tuple[Any, str]] = {
    "variant": (lambda x: isinstance(x, str) and bool(x), "a non-empty string"),
    "variant_kwargs": (lambda x: isinstance(x, dict), "an object"),
    "classes": (lambda x: isinstance(x, list) and all(isinstance(c, str) for c in x), "a list of strings"),
    "num_classes": (lambda x: _is_int(x) and x > 0, "a positive integer"),
    "img_size": (lambda x: _is_int(x) and x > 0, "a positive integer"),
    "mean": (_is_triple, "a list of 3 numbers"),
    "std": (_is_triple, "a list of 3 numbers"),
    "dataset": (lambda x: isinstance(x, str), "a string"),
    "metrics": (lambda x: isinstance(x, dict), "an object"),
    "train_config": (lambda x: isinstance(x, dict), "an object"),
    "parent": (lambda x: x is None or isinstance(x, str), "a string or null"),
    "created": (lambda x: isinstance(x, str), "a string"),
    "versions": (lambda x: isinstance(x, dict), "an object"),
    "format_version": (_is_int, "an integer"),
    "weights_sha256": (_is_sha, "a 64-digit lowercase hex string"),
    "param_count": (lambda x: _is_int(x) and x >= 0, "a non-negative integer"),
    "weights_dtype": (lambda x: isinstance(x, str), "a string"),
}
#: Keys every checkpoint JSON has.
REQUIRED_KEYS = tuple(_CHECKS)


def _meta_problems(meta: Any, keys: Iterable[str] = REQUIRED_KEYS) -> list[str]:
    """Return human-readable problems with ``meta`` (empty list when valid)."""
    if not isinstance(meta, dict):
        return [f"metadata must be a JSON object, got {type(meta).__name__}"]
    keys = list(keys)
    missing = [k for k in keys if k not in meta]
    problems = [f"missing keys: {', '.join(missing)}"] if missing else []
    for key in keys:
        if key in meta and not _CHECKS[key][0](meta[key]):
            problems.append(f"{key!r} must be {_CHECKS[key][1]}, got {meta[key]!r:.80}")
    if problems:
        return problems
    if "num_classes" in meta and meta["num_classes"] != len(meta["classes"]):
        problems.append(f"num_classes={meta['num_classes']} but {len(meta['classes'])} class names given")
    if "num_classes" in meta["variant_kwargs"]:
        problems.append("variant_kwargs must not contain 'num_classes' (use the num_classes key)")
    if meta.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        problems.append(f"format_version {meta['format_version']} is newer than supported ({FORMAT_VERSION})")
    return problems


def _few(items: list[str], n: int = 5) -> str:
    """Join the first ``n`` items, noting how many were left out."""
    more = f" ... (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


# --------------------------------------------------------------------------- paths & io


def _pair(path: str | os.PathLike) -> tuple[Path, Path]:
    """Map ``foo`` / ``foo.safetensors`` / ``foo.json`` to (weights, json) paths."""
    p = Path(path).expanduser()
    if p.suffix in (WEIGHTS_SUFFIX, META_SUFFIX):
        p = p.with_suffix("")
    return p.with_name(p.name + WEIGHTS_SUFFIX), p.with_name(p.name + META_SUFFIX)



def _read_json(json_path: Path) -> Any:
    try:
        text = json_path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CheckpointError(f"{json_path}: metadata file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{json_path}: cannot read metadata file: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{json_path}: metadata is not valid JSON: {exc}") from exc


def read_meta(path: str | os.PathLike) -> dict:
    """Return the validated metadata of a checkpoint without reading its weights.

    Checks that the weights file exists (but neither hashes nor parses it).
    The returned dict has an extra key ``path``: the ``.safetensors`` path (str).
    """
    weights_path, json_path = _pair(path)
    meta = _read_json(json_path)
    problems = _meta_problems(meta)
    if problems:
        raise CheckpointError(f"{json_path}: invalid metadata: " + "; ".join(problems))
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: weights file not found (metadata {json_path.name} exists)")
    meta["path"] = str(weights_path)
    return meta


def timm_cfg_overlay(meta: dict) -> dict:
    """The timm ``PretrainedCfg`` fields a checkpoint fixes (classes and their names, input size,
    normalisation), so ``timm.data.resolve_data_config({}, model=model)`` gives its transform."""
    return dict(num_classes=meta["num_classes"], label_names=tuple(meta["classes"]),
                input_size=(3, meta["img_size"], meta["img_size"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]))


def read_weights_meta(path: str | os.PathLike) -> dict | None:
    """The vitviz metadata of a weights file: its JSON (``read_meta``) when beside it, else the copy of the
    essential keys in its safetensors header; None for a safetensors file that vitviz did not write.
    Reads no tensors. (timm's pretrained loader uses it to build the right variant for a file.)"""
    weights_path, json_path = _pair(path)
    if json_path.is_file():
        return read_meta(weights_path)
    try:
        with safetensors.safe_open(str(weights_path), framework="numpy") as f:
            header = f.metadata() or {}
    except Exception as exc:  # SafetensorError, OSError
        raise CheckpointError(f"{weights_path}: not a readable safetensors file: {exc}") from exc
    if "vitviz_meta" not in header:
        return None
    try:
        meta = json.loads(header["vitviz_meta"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{weights_path}: header vitviz_meta is not valid JSON: {exc}") from exc
    problems = _meta_problems(meta, ESSENTIAL_KEYS)
    if problems:
        raise CheckpointError(f"{weights_path}: invalid header vitviz_meta: " + "; ".join(problems))
    return meta


# --------------------------------------------------------------------------- listing


def _looks_loadable(json_path: Path) -> bool:
    """Cheap check: weights file exists and the JSON parses with a ``variant``."""
    if json_path.name.startswith(".") or not json_path.is_file():
        return False
    if not json_path.with_suffix(WEIGHTS_SUFFIX).is_file():
        return False
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("variant"), str) and bool(meta["variant"])


def checkpoint_files_exist(path: str | os.PathLike) -> bool:
    """Whether both files of a checkpoint are (still) there."""
    weights_path, json_path = _pair(path)
    return weights_path.is_file() and json_path.is_file()


def checkpoint_candidates(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The ``.safetensors`` path of every non-hidden ``.json`` in ``directory``, readable or not.

    Unlike :func:`list_checkpoints` this keeps broken pairs (invalid JSON, weights missing), so
    a listing can name each unreadable file and why.  A weights file without its JSON is not a
    candidate: :func:`save` writes the JSON last, so that is also what a save in progress looks like.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        return []
    found = root.rglob("*" + META_SUFFIX) if recursive else root.glob("*" + META_SUFFIX)
    return sorted(p.with_suffix(WEIGHTS_SUFFIX) for p in found if not p.name.startswith(".") and p.is_file())


def check_weights_size(path: str | os.PathLike) -> None:
    """Cheap truncation check: the file must be as long as its safetensors header says (no hashing)."""
    weights_path, _ = _pair(path)
    try:
        size = weights_path.stat().st_size
        with open(weights_path, "rb") as f:
            prefix = f.read(8)
            header_len = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < header_len <= size - 8:
                raise CheckpointError(f"{weights_path}: truncated or not a safetensors file ({size} bytes)")
            header = json.loads(f.read(header_len))
    except OSError as exc:
        raise CheckpointError(f"{weights_path}: cannot read weights file: {exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{weights_path}: not a valid safetensors header: {exc}") from exc
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and len(v.get("data_offsets", ())) == 2]
    expected = 8 + header_len + max(ends, default=0)
    if size < expected:
        raise CheckpointError(f"{weights_path}: truncated: {size} bytes, its header describes {expected} bytes")


def list_checkpoints(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Return the ``.safetensors`` paths of loadable-looking checkpoints in ``directory``.

    A pair counts when both files exist and the JSON parses with a ``variant``
    key; hidden/temp files are ignored.  Subfolders (e.g. ``runs/``) are only
    searched when ``recursive=True``.  Sorted by path.  Never builds models or
    hashes weights.  A missing directory gives ``[]``.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        return []
    candidates = root.rglob("*" + META_SUFFIX) if recursive else root.glob("*" + META_SUFFIX)
    return sorted(p.with_suffix(WEIGHTS_SUFFIX) for p in candidates if _looks_loadable(p))
