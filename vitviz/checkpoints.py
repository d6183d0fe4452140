"""Checkpoint format for vitviz models: safetensors weights + JSON metadata.

A checkpoint is two files side by side::

    name.safetensors   the model's state dict (safetensors.torch format)
    name.json          the metadata (a JSON object, see ``REQUIRED_KEYS``)

Nothing is ever unpickled: weights are parsed by the safetensors library and the
metadata by :mod:`json`, so a checkpoint from an untrusted source cannot execute
code when it is read.

Everywhere a checkpoint path is accepted, ``name``, ``name.safetensors`` and
``name.json`` all mean the same pair.  Functions that return checkpoint paths
(:func:`save`, :func:`list_checkpoints`) return the ``.safetensors`` path.

Writing is atomic per file (temp file in the same directory, fsync,
``os.replace``).  The weights are written first and the JSON last (any previous
JSON of the same name is removed before the weights are replaced), so a
checkpoint is *visible* -- listed by :func:`list_checkpoints` -- only once its
JSON exists, and a visible JSON never describes weights other than its own.

Metadata keys (always present in a JSON written by :func:`save`):

``variant``         timm model name (``timm.create_model`` name)
``variant_kwargs``  extra constructor kwargs (dict), e.g. ``{"depth": 2}``
``classes``         class names (list of str); ``num_classes`` == its length
``num_classes``     int
``img_size``        input side in pixels (int)
``mean``, ``std``   normalisation, 3 floats each
``dataset``         dataset name (str)
``metrics``         dict; ``test_accuracy`` / ``per_class_accuracy`` once evaluated
``train_config``    dict (free-form training settings)
``parent``          path of the checkpoint this one was fine-tuned from, or null
``created``         ISO-8601 UTC timestamp of the save
``versions``        dict: python, torch, timm, safetensors, vitviz
``format_version``  int, currently 1
``weights_sha256``  hex sha256 of the .safetensors file as written
``param_count``     number of model parameters (int)
``weights_dtype``   dtype of the stored floating tensors ("float32", "float16",
                    "mixed" or "none")

The safetensors header metadata also holds ``variant`` and ``vitviz_meta`` (a
JSON string with variant, variant_kwargs, num_classes, classes, img_size, mean,
std, dataset), so a lone weights file is self-describing.

Every problem with a checkpoint file raises :class:`CheckpointError`, whose
message names the file and the problem.  Programming errors on the saving side
(bad ``meta`` given to :func:`save`) raise ``ValueError``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from .checkpoint_meta import (  # noqa: F401  (the format's metadata side, re-exported: one checkpoint API)
    FORMAT_VERSION, WEIGHTS_SUFFIX, META_SUFFIX, CALLER_KEYS, ESSENTIAL_KEYS, CheckpointError, REQUIRED_KEYS,
    _is_int, _is_num, _is_triple, _is_sha, _meta_problems, _few, _pair, _read_json, read_meta, timm_cfg_overlay,
    read_weights_meta, _looks_loadable, checkpoint_files_exist, checkpoint_candidates, check_weights_size,
    list_checkpoints, _CHECKS)

__all__ = [
    "CheckpointError",
    "FORMAT_VERSION",
    "REQUIRED_KEYS",
    "save",
    "load",
    "read_meta",
    "list_checkpoints",
    "checkpoint_candidates",
    "checkpoint_files_exist",
    "check_weights_size",
]

def _fsync_dir(directory: Path) -> None:
    """Persist a rename in ``directory`` (best effort; not possible on Windows)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(target: Path, data: bytes) -> Path:
    """Write ``data`` to a fsync'ed hidden temp file next to ``target``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _replace(tmp: Path, target: Path) -> None:
    """Atomically move ``tmp`` onto ``target``; remove ``tmp`` on failure."""
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_pair(weights_path: Path, json_path: Path, blob: bytes, text: str) -> None:
    """Write weights then JSON so that a visible JSON always matches its weights."""
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(weights_path, blob)
    try:
        json_path.unlink(missing_ok=True)  # hide any previous checkpoint of this name
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _replace(tmp, weights_path)
    _replace(_write_temp(json_path, text.encode("utf-8")), json_path)
    _fsync_dir(json_path.parent)


# --------------------------------------------------------------------------- save


def _version_of(dist: str, module: Any = None) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", "unknown"))


def _versions() -> dict[str, str]:
    import timm

    try:
        import vitviz

        vitviz_version = str(getattr(vitviz, "__version__", "0+unknown"))
    except ImportError:
        vitviz_version = "0+unknown"
    return {
        "python": platform.python_version(),
        "torch": _version_of("torch", torch),
        "timm": _version_of("timm", timm),
        "safetensors": _version_of("safetensors", safetensors),
        "vitviz": vitviz_version,
    }


def _prepare_state_dict(model: torch.nn.Module, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """CPU, contiguous, storage-unshared copies of the state dict (floats cast to ``dtype``)."""
    out = {}
    for key, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[key] = t.clone(memory_format=torch.contiguous_format)
    return out


def _weights_dtype(tensors: dict[str, torch.Tensor]) -> str:
    kinds = {str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()}
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none")


def _base_meta(meta: dict, model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict:
    """Caller meta (JSON-normalised) + defaults + computed fields, minus the sha."""
    try:
        meta = json.loads(json.dumps(dict(meta)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint meta is not JSON-serialisable: {exc}") from exc
    meta.pop("path", None)  # added by load(); describes the old location
    kwargs = meta.get("variant_kwargs")
    if isinstance(kwargs, dict) and "num_classes" in kwargs:
        meta.setdefault("num_classes", kwargs.pop("num_classes"))
    if isinstance(meta.get("classes"), list):
        meta.setdefault("num_classes", len(meta["classes"]))
    defaults = {"metrics": {}, "train_config": {}, "parent": None}
    computed = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "format_version": FORMAT_VERSION,
        "param_count": sum(p.numel() for p in model.parameters()),
        "weights_dtype": _weights_dtype(tensors),
    }
    meta = {**defaults, **meta, **computed}
    problems = _meta_problems(meta, [k for k in REQUIRED_KEYS if k != "weights_sha256"])
    model_classes = getattr(model, "num_classes", None)
    if _is_int(model_classes) and model_classes != meta.get("num_classes"):
        problems.append(f"model has num_classes={model_classes} but meta says {meta.get('num_classes')}")
    if problems:
        raise ValueError("invalid checkpoint meta: " + "; ".join(problems))
    order = [k for k in REQUIRED_KEYS if k in meta]
    return {**{k: meta[k] for k in order}, **meta}


def _header_meta(meta: dict) -> dict[str, str]:
    essential = {k: meta[k] for k in ESSENTIAL_KEYS}
    return {
        "format": "pt",
        "format_version": str(FORMAT_VERSION),
        "variant": meta["variant"],
        "vitviz_meta": json.dumps(essential),
    }


def save(model: torch.nn.Module, path: str | os.PathLike, meta: dict, dtype: torch.dtype | None = None) -> Path:
    """Save ``model`` + ``meta`` as ``<path>.safetensors`` + ``<path>.json``.

    ``meta`` must hold at least the keys in ``CALLER_KEYS``; ``metrics``,
    ``train_config`` and ``parent`` default to ``{}``, ``{}``, ``None`` and
    ``num_classes`` to ``len(classes)``; ``created``, ``versions``,
    ``format_version``, ``weights_sha256``, ``param_count`` and
    ``weights_dtype`` are always computed here.  ``dtype`` (e.g.
    ``torch.float16``) casts the floating tensors only.  Returns the
    ``.safetensors`` path.  Raises ``ValueError`` for bad ``meta``/``dtype``.
    """
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch dtype or None, got {dtype!r}")
    weights_path, json_path = _pair(path)
    tensors = _prepare_state_dict(model, dtype)
    base = _base_meta(meta, model, tensors)
    blob = safetensors.torch.save(tensors, metadata=_header_meta(base))
    full = {**base, "weights_sha256": hashlib.sha256(blob).hexdigest()}
    _write_pair(weights_path, json_path, blob, json.dumps(full, indent=2) + "\n")
    return weights_path


def update_metrics(path: str | os.PathLike, metrics: dict) -> dict:
    """Replace the ``metrics`` of an existing checkpoint (atomic JSON rewrite; weights untouched).

    Used after re-evaluating a checkpoint. Returns the new metadata.
    """
    weights_path, json_path = _pair(path)
    meta = read_meta(weights_path)
    meta.pop("path")
    meta["metrics"] = dict(metrics)
    problems = _meta_problems(meta)
    if problems:
        raise CheckpointError(f"{json_path}: invalid metadata: " + "; ".join(problems))
    _replace(_write_temp(json_path, (json.dumps(meta, indent=2) + "\n").encode("utf-8")), json_path)
    _fsync_dir(json_path.parent)
    return meta


# --------------------------------------------------------------------------- load


def _read_weights(weights_path: Path, expected_sha: str) -> dict[str, torch.Tensor]:
    """Read, hash-check and parse a safetensors file (never unpickles)."""
    try:
        blob = weights_path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{weights_path}: cannot read weights file: {exc}") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != expected_sha:
        raise CheckpointError(
            f"{weights_path}: sha256 mismatch (metadata says {expected_sha[:12]}..., file is {digest[:12]}...);"
            " the weights file is corrupt, truncated or was replaced"
        )
    try:
        return safetensors.torch.load(blob)
    except Exception as exc:  # SafetensorError, plus anything else the parser throws
        raise CheckpointError(f"{weights_path}: not a valid safetensors file: {exc}") from exc


def _build_model(meta: dict, json_path: Path) -> torch.nn.Module:
    try:
        import vitviz.models  # noqa: F401  (registers vitviz's own timm variants)
    except ImportError:
        pass
    import timm

    variant, kwargs = meta["variant"], meta["variant_kwargs"]
    try:
        return timm.create_model(variant, pretrained=False, num_classes=meta["num_classes"],
                                 pretrained_cfg_overlay=timm_cfg_overlay(meta), **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise CheckpointError(f"{json_path}: unknown variant {variant!r} (not registered with timm)") from exc
        raise CheckpointError(f"{json_path}: cannot build variant {variant!r} with {kwargs}: {exc}") from exc
    except Exception as exc:
        raise CheckpointError(f"{json_path}: cannot build variant {variant!r} with {kwargs}: {exc}") from exc


def _fit_problems(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], strict: bool) -> list[str]:
    """Describe how the file's tensors fail to fit the model's state dict."""
    shape = lambda t: tuple(t.shape)  # noqa: E731
    common = [k for k in expected if k in tensors]
    bad_shape = [f"{k} file{shape(tensors[k])} vs model{shape(expected[k])}"
                 for k in common if tensors[k].shape != expected[k].shape]
    bad_kind = [f"{k} file {tensors[k].dtype} vs model {expected[k].dtype}" for k in common
                if tensors[k].is_floating_point() != expected[k].is_floating_point()]
    problems = []
    if bad_shape:
        problems.append(f"shape mismatch: {_few(bad_shape)}")
    if bad_kind:
        problems.append(f"dtype mismatch: {_few(bad_kind)}")
    if strict:
        missing = [f"{k}{shape(expected[k])}" for k in expected if k not in tensors]
        unexpected = [f"{k}{shape(tensors[k])}" for k in tensors if k not in expected]
        if missing:
            problems.append(f"{len(missing)} missing keys: {_few(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys: {_few(unexpected)}")
    return problems


def _load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], meta: dict,
                weights_path: Path, strict: bool) -> None:
    expected = model.state_dict()
    problems = _fit_problems(expected, tensors, strict)
    if problems:
        raise CheckpointError(
            f"{weights_path}: weights do not fit variant {meta['variant']!r} "
            f"(variant_kwargs={meta['variant_kwargs']}, num_classes={meta['num_classes']}): " + "; ".join(problems)
        )
    state = {k: t.to(expected[k].dtype) if t.is_floating_point() else t
             for k, t in tensors.items() if k in expected}
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path}: cannot load weights into {meta['variant']!r}: {exc}") from exc


def load(path: str | os.PathLike, device: str | torch.device | None = None,
         strict: bool = True) -> tuple[torch.nn.Module, dict]:
    """Load a checkpoint; return ``(model, meta)`` with the model in eval mode on ``device``.

    ``device`` defaults to ``"cuda"`` when available, else ``"cpu"``.  Floating
    tensors are cast to the model's dtype (an fp16 file gives an fp32 model).
    With ``strict=False`` missing/unexpected keys are tolerated (shape
    mismatches never are).  ``meta`` gets an extra key ``path`` (the
    ``.safetensors`` path).  Raises :class:`CheckpointError` for any bad file.
    """
    weights_path, json_path = _pair(path)
    meta = read_meta(path)
    tensors = _read_weights(weights_path, meta["weights_sha256"])
    model = _build_model(meta, json_path)
    _load_state(model, tensors, meta, weights_path, strict)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.eval().to(torch.device(device))
    return model, meta

