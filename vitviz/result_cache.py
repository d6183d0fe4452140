"""Slow analyses cached on disk: a page shows a result computed earlier (in another session, by another user,
before a restart) at once, and computes only when asked.

Cached here: the Q/K/V pathway CKA of a checkpoint (`pathway_cka_result`), the function drift of a fine-tune from
its parent (`pathway_drift_result`), the layer x layer CKA between two checkpoints (`representation_cka_result`)
and the Q/K/V weight statistics (`weight_stats_result`). A change to how one of them is computed must bump
`FORMAT_VERSION`. Each of them returns the cached result when there is one; otherwise it computes,
stores and returns it, or with ``compute=False`` returns None (what a page asks before it offers a button).

A result is one JSON file under ``<directory of the first checkpoint>/runs/analyses/<kind>/`` (``runs/`` is
git-ignored), named by the checkpoints' stems, the first 12 hex digits of their weights' sha256 (a checkpoint
retrained under the same name misses) and a hash of the settings: the analysis' own settings, where its images
come from (`image_source_key`: the test set's directory, or the digits when it is not on disk) and
`FORMAT_VERSION`. The suffix is ``.analysis``, not ``.json``: checkpoint listings read every ``*.json`` under the
directory. Writes are atomic (temp file + rename); a directory that cannot be written only means no caching.
Only JSON is read back: nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .data.testsets import image_source_key  # noqa: F401  (re-exported: part of the cache's keys)
from .resolve import Resolved, resolve
from .compare.pathways import PathwayCKA, pathway_cka, pathway_drift
from .compare.representations import RepresentationCKA, checkpoint_cka

__all__ = ["FORMAT_VERSION", "SUFFIX", "weights_sha", "image_source_key", "cache_path", "load", "store",
           "pathway_cka_result", "pathway_drift_result", "representation_cka_result", "weight_stats_result"]

FORMAT_VERSION = 1
SUFFIX = ".analysis"
FOLDER = ("runs", "analyses")
#: results shipped with the checkpoints (tracked in git, beside them): read when the runs/ cache has none
SHIPPED_FOLDER = ("analyses",)
#: What each kind's result depends on besides the checkpoints' weights (their sha256 is in the file name):
#: the settings its key holds. "images" is where the images come from (`image_source_key` of `data_root`).
KEYS = {"pathway_cka": ("count", "images"), "pathway_drift": ("count", "images"),
        "representation_cka": ("count", "batch_size", "features", "images"), "weight_stats": ()}


# --------------------------------------------------------------------------- keys and files

def _meta(path, meta: dict | None) -> dict:
    if meta is not None and meta.get("weights_sha256"):
        return meta
    from . import checkpoints
    return checkpoints.read_meta(path)


def weights_sha(path, meta: dict | None = None) -> str:
    """The sha256 of a checkpoint's weights, as its metadata records it (`checkpoints.read_meta` requires it)."""
    return str(_meta(path, meta)["weights_sha256"])


def settings_for(kind: str, **values) -> dict:
    """The cache settings of `kind`: exactly the values `KEYS[kind]` names (ValueError for a missing or extra one,
    so a setting cannot be left out of the key)."""
    if set(values) != set(KEYS[kind]):
        raise ValueError(f"{kind} is keyed by {KEYS[kind]}, got {sorted(values)}")
    return {k: values[k] for k in KEYS[kind]}


def _settings_key(settings: dict) -> str:
    text = json.dumps(dict(settings, format_version=FORMAT_VERSION), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cache_path(kind: str, paths: Sequence, settings: dict, metas: Sequence[dict | None] | None = None) -> Path:
    """Where the result of analysis `kind` of the checkpoints `paths` (in order) under `settings` is stored."""
    if not paths:
        raise ValueError("cache_path needs at least one checkpoint")
    metas = list(metas) if metas is not None else [None] * len(paths)
    parts = [f"{Path(p).name.removesuffix('.safetensors').removesuffix('.json')}-{weights_sha(p, m)[:12]}"
             for p, m in zip(paths, metas)]
    first = Path(paths[0])
    return first.parent.joinpath(*FOLDER, kind, "__".join(parts) + f"-{_settings_key(settings)}{SUFFIX}")


def shipped_path(kind: str, paths: Sequence, settings: dict, metas: Sequence[dict | None] | None = None) -> Path:
    """Where a result shipped with the checkpoints lies: `<checkpoint dir>/analyses/<kind>/` (tracked), named as
    in the runs/ cache, so a checkpoint retrained under the same name (another sha256) never finds it."""
    here = cache_path(kind, paths, settings, metas)
    return here.parents[len(FOLDER) + 1].joinpath(*SHIPPED_FOLDER, kind, here.name)


def load(kind: str, paths: Sequence, settings: dict, metas=None) -> dict | None:
    """The stored payload (computed here earlier, else shipped with the checkpoints), or None (not computed yet,
    unreadable or from another format version)."""
    for target in (cache_path(kind, paths, settings, metas), shipped_path(kind, paths, settings, metas)):
        try:
            data = json.loads(target.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("format_version") == FORMAT_VERSION:
            return data.get("payload")
    return None


def ship(kind: str, paths: Sequence, settings: dict, metas=None) -> Path:
    """Copy a computed result into the shipped folder (for the shipped checkpoints: `bench/ship_analyses.py`)."""
    source, target = cache_path(kind, paths, settings, metas), shipped_path(kind, paths, settings, metas)
    if not source.exists() and target.exists():  # shipped already (the result was read from there)
        return target
    record = json.loads(source.read_text())
    record["checkpoints"] = [Path(p).name for p in record.get("checkpoints", [])]  # no machine's paths
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, separators=(",", ":")))
    return target


def store(kind: str, paths: Sequence, settings: dict, payload: dict, metas=None) -> Path | None:
    """Write the payload atomically; returns its path, or None when the directory is not writable."""
    target = cache_path(kind, paths, settings, metas)
    record = {"format_version": FORMAT_VERSION, "kind": kind, "checkpoints": [str(p) for p in paths],
              "settings": settings, "payload": payload}
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{id(payload)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(record, default=_plain))
        os.replace(tmp, target)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return None
    return target


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__}")


# --------------------------------------------------------------------------- the analyses
#
# Each takes checkpoints as `Resolved` (vitviz.resolve: the app passes the ones it caches, so nothing is loaded
# twice) or as paths (resolved here, with `model`/`meta` if the caller has them loaded). A model is loaded only
# when the result is not on disk yet.

def _resolved(checkpoint, model=None, meta=None, device=None) -> Resolved:
    return resolve(checkpoint, device, meta=meta, model=model)


def pathway_cka_result(checkpoint, count: int, *, data_root=None, model=None, meta=None, compute: bool = True,
                       device=None) -> tuple[PathwayCKA, str] | None:
    """(`PathwayCKA` of a checkpoint on `count` of its test images (`probe_images`), where the images come
    from), from the disk cache or computed (and stored); None when it is not cached and `compute` is False."""
    r = _resolved(checkpoint, model, meta, device)
    settings = settings_for("pathway_cka", count=int(count), images=r.image_source(data_root))
    found = load("pathway_cka", [r.path], settings, [r.meta])
    if found is not None:
        return PathwayCKA(np.asarray(found["matrices"], dtype=float), tuple(found["blocks"]), int(found["images"]),
                          int(found["tokens_per_image"]), bool(found["normalized_qk"])), found["source"]
    if not compute:
        return None
    images, source = r.probe_images(count, data_root)
    result = pathway_cka(r.model, r.inputs(images))
    store("pathway_cka", [r.path], settings, {"matrices": result.matrices, "blocks": list(result.blocks),
                                              "images": result.images, "tokens_per_image": result.tokens_per_image,
                                              "normalized_qk": result.normalized_qk, "source": source}, [r.meta])
    return result, source


def pathway_drift_result(checkpoint, parent, count: int, *, data_root=None, model=None, meta=None,
                         parent_model=None, parent_meta=None, compute: bool = True,
                         device=None) -> tuple[pd.DataFrame, str] | None:
    """(`pathway_drift` table from `parent` to `checkpoint` on `count` of the child's test images, where they
    come from), cached like `pathway_cka_result`: block, pathway, cka, images, tokens_per_image."""
    r, rp = _resolved(checkpoint, model, meta, device), _resolved(parent, parent_model, parent_meta, device)
    settings = settings_for("pathway_drift", count=int(count), images=r.image_source(data_root))
    found = load("pathway_drift", [r.path, rp.path], settings, [r.meta, rp.meta])
    if found is not None:
        return _frame(found), found["source"]
    if not compute:
        return None
    images, source = r.probe_images(count, data_root)
    table = pathway_drift(rp.model, r.model, rp.inputs(images), r.inputs(images))
    store("pathway_drift", [r.path, rp.path], settings, dict(_frame_payload(table), source=source),
          [r.meta, rp.meta])
    return table, source


def representation_cka_result(checkpoint_a, checkpoint_b, count: int, *, batch_size: int = 64,
                              features: str = "flatten", data_root=None, model_a=None, meta_a=None, model_b=None,
                              meta_b=None, compute: bool = True,
                              device=None) -> tuple[RepresentationCKA, str] | None:
    """(`checkpoint_cka` of two checkpoints on `count` of a's test images, where they come from), cached like
    `pathway_cka_result` (stored beside checkpoint a)."""
    ra, rb = _resolved(checkpoint_a, model_a, meta_a, device), _resolved(checkpoint_b, model_b, meta_b, device)
    settings = settings_for("representation_cka", count=int(count), batch_size=int(batch_size),
                            features=str(features), images=ra.image_source(data_root))
    found = load("representation_cka", [ra.path, rb.path], settings, [ra.meta, rb.meta])
    if found is not None:
        return RepresentationCKA(np.asarray(found["matrix"], dtype=float), tuple(found["blocks_a"]),
                                 tuple(found["blocks_b"]), int(found["images"]), int(found["batch_size"]),
                                 str(found["features"])), found["source"]
    if not compute:
        return None
    result, source = checkpoint_cka(ra.model, ra.meta, rb.model, rb.meta, count, batch_size=batch_size,
                                    features=features, data_root=data_root)
    store("representation_cka", [ra.path, rb.path], settings,
          {"matrix": result.matrix, "blocks_a": list(result.blocks_a), "blocks_b": list(result.blocks_b),
           "images": result.images, "batch_size": result.batch_size, "features": result.features,
           "source": source}, [ra.meta, rb.meta])
    return result, source


def weight_stats_result(checkpoint, *, model=None, meta=None, compute: bool = True,
                        device=None) -> pd.DataFrame | None:
    """`weights.weight_stats` of a checkpoint's model (one SVD per Q/K/V weight matrix: about 0.1 s per XCiT-N12
    checkpoint on a 2-core CPU), cached like `pathway_cka_result` (a pure function of the weights)."""
    from .compare.weights import weight_stats

    r = _resolved(checkpoint, model, meta, device)
    found = load("weight_stats", [r.path], settings_for("weight_stats"), [r.meta])
    if found is not None:
        return _frame(found)
    if not compute:
        return None
    table = weight_stats(r.model)
    store("weight_stats", [r.path], settings_for("weight_stats"), _frame_payload(table), [r.meta])
    return table


def _frame_payload(table: pd.DataFrame) -> dict:
    return {"columns": list(table.columns), "table": table.to_numpy().tolist()}


def _frame(found: dict) -> pd.DataFrame:
    return pd.DataFrame(found["table"], columns=found["columns"])
