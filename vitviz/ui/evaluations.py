"""Cached computations on checkpoints for the pages: paired test-set predictions of two checkpoints,
input attributions of one image, and model / attention costs.

Results are cached with `st.cache_data`, keyed by checkpoint path and file modification time (so a
re-saved checkpoint is recomputed) plus whatever else the result depends on.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from .. import metrics
from ..checkpoints import CheckpointError, read_meta
from ..data import ImageDataset
from ..data.images import prepare, to_input
from ..explain import attributions as attr_lib
from ..inspect import efficiency
from ..train.evaluate import evaluate, samples_fingerprint
from .state import _mtime, device, image_key, load_model, test_set, test_set_missing_note

EVAL_BATCH = 256


# --------------------------------------------------------------------------- paired predictions

@dataclass
class Paired:
    """Predictions of checkpoints A and B on the same test samples (same order)."""
    labels: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray
    classes: list
    source: str                          # how the predictions were obtained (shown to the user)
    images: np.ndarray | None = None     # (N, H, W, 3) test images aligned with labels, if on disk
    notes: list = field(default_factory=list)


def stored_predictions(meta: dict):
    """(labels, predictions, test_set_sha256) stored in a checkpoint's metrics, or None."""
    m = meta.get("metrics") or {}
    labels, preds, sha = m.get("test_labels"), m.get("test_predictions"), m.get("test_set_sha256")
    if labels is None or preds is None or not sha or len(labels) != len(preds):
        return None
    return np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64), sha


def _root(meta: dict):
    return (meta.get("train_config") or {}).get("data_root")


@st.cache_data(max_entries=8, show_spinner=False)
def _fingerprint(dataset: str, img_size: int, classes: tuple, root, mtime_key: str) -> str | None:
    data = test_set({"dataset": dataset, "img_size": img_size, "classes": list(classes),
                     "train_config": {"data_root": root}})
    if data is None:
        return None
    images, labels, _ = data
    return samples_fingerprint(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous(),
                               torch.from_numpy(np.asarray(labels, dtype=np.int64)))


def test_set_fingerprint(meta: dict) -> str | None:
    """The fingerprint (as stored in checkpoint metrics) of the checkpoint's test set on disk, or None."""
    return _fingerprint(meta["dataset"], meta["img_size"], tuple(meta["classes"]), _root(meta),
                        str(_mtime(_root(meta) or ".")))


@st.cache_data(max_entries=16, show_spinner="Evaluating on the test set ...")
def _evaluate(path: str, mtime: float, device_key: str):
    model, meta = load_model(path)
    images, labels, classes = test_set(meta)
    dataset = ImageDataset(meta["dataset"], images, labels, list(classes), "test")
    result = evaluate(model, dataset, mean=meta["mean"], std=meta["std"], img_size=meta["img_size"],
                      batch_size=EVAL_BATCH, device=device())
    return result.labels, result.predictions, result.samples_sha256


def test_set_predictions(path, meta: dict):
    """(labels, predictions) of a checkpoint on its test set on disk: the stored per-sample predictions
    when they were made on exactly these samples, else a (cached) evaluation. None without a test set."""
    fingerprint = test_set_fingerprint(meta)
    if fingerprint is None:
        return None
    stored = stored_predictions(meta)
    if stored is not None and stored[2] == fingerprint:
        return stored[0], stored[1]
    labels, preds, _ = _evaluate(str(path), _mtime(path), str(device()))
    return labels, preds


def _name(meta: dict) -> str:
    return Path(meta.get("path", "?")).stem


def paired_predictions(path_a, meta_a: dict, path_b, meta_b: dict) -> Paired | str:
    """Predictions of A and B on the same samples, or a message saying why they cannot be compared.

    1. both checkpoints store per-sample predictions with the same test-set fingerprint: used as
       they are (no model run); the images are shown when the test set on disk has that fingerprint;
    2. else, when both test sets are on disk: each model's stored predictions if they were made on
       exactly those samples, otherwise the model is evaluated (cached);
    3. else: a message (different test sets, or the data is missing and how to get it).
    """
    a, b = _name(meta_a), _name(meta_b)
    classes = list(meta_a["classes"])
    if classes != list(meta_b["classes"]):
        return (f"**{a}** and **{b}** have different classes ({len(meta_a['classes'])} vs "
                f"{len(meta_b['classes'])}: {meta_a['dataset']} vs {meta_b['dataset']}), so there is nothing to "
                "compare class by class.")
    sa, sb = stored_predictions(meta_a), stored_predictions(meta_b)
    if sa is not None and sb is not None and sa[2] == sb[2] and np.array_equal(sa[0], sb[0]):
        data = test_set(meta_a)
        notes, images = [], None
        if data is not None and test_set_fingerprint(meta_a) == sa[2]:
            images = data[0]
        elif data is not None:
            notes.append("The test set on disk is not the one these predictions were made on, so no images "
                         "are shown.")
        else:
            notes.append(test_set_missing_note(meta_a) + " Without it, no images are shown.")
        return Paired(sa[0], sa[1], sb[1], classes, "stored per-sample test predictions (same test set "
                      f"fingerprint {sa[2][:12]})", images, notes)
    if meta_a["dataset"] != meta_b["dataset"]:
        return (f"**{a}** was tested on {meta_a['dataset']} and **{b}** on {meta_b['dataset']}: different test "
                "sets, so their predictions cannot be paired sample by sample.")
    pa, pb = test_set_predictions(path_a, meta_a), test_set_predictions(path_b, meta_b)
    if pa is not None and pb is not None:
        if not np.array_equal(pa[0], pb[0]):
            return (f"The test sets of **{a}** and **{b}** on disk hold different samples "
                    f"({len(pa[0])} vs {len(pb[0])}), so their predictions cannot be paired.")
        return Paired(pa[0], pa[1], pb[1], classes, "predictions on the test set on disk", test_set(meta_a)[0])
    why = []
    for name, stored in ((a, sa), (b, sb)):
        if stored is None:
            why.append(f"**{name}** has no stored per-sample test predictions "
                       f"(`python -m vitviz eval --update {name}` adds them once the test set is on disk)")
    if sa is not None and sb is not None:
        why.append(f"their stored predictions were made on different test sets (fingerprints "
                   f"{sa[2][:12]} vs {sb[2][:12]}, e.g. another input size or another copy of the data)")
    missing = meta_a if pa is None else meta_b
    return ("Cannot compare these checkpoints sample by sample: " + "; ".join(why) + ". " +
            test_set_missing_note(missing) + " With the test set on disk, both models are evaluated on it here.")


@st.cache_data(max_entries=32, show_spinner="Comparing ...")
def comparison(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, classes: tuple, level: float = 0.95):
    """(overall dict, per-class DataFrame, confusion A, confusion B), cached by content."""
    k = len(classes)
    overall = metrics.overall_comparison(labels, pred_a, pred_b, num_classes=k, level=level)
    table = metrics.compare_per_class(labels, pred_a, pred_b, list(classes), level=level)
    return (overall, table, metrics.confusion_matrix(labels, pred_a, k), metrics.confusion_matrix(labels, pred_b, k))


#: per-class comparison columns (vitviz.metrics.compare_per_class) as a reader sees them
WORD_COLUMNS = {"class": "class", "n": "samples", "accuracy_a": "accuracy A", "accuracy_b": "accuracy B",
                "ci_a_low": "A CI low", "ci_a_high": "A CI high", "ci_b_low": "B CI low", "ci_b_high": "B CI high",
                "difference": "difference B − A", "diff_ci_low": "difference CI low",
                "diff_ci_high": "difference CI high", "b_only_a_right": "only A right",
                "c_only_b_right": "only B right", "mcnemar_p": "McNemar p", "holm_p": "Holm-adjusted p",
                "significant": "significant"}


def in_words(table: pd.DataFrame) -> pd.DataFrame:
    """The per-class comparison table with its columns named in words (McNemar's b and c: only A / only B right)."""
    return table.rename(columns=WORD_COLUMNS)


# --------------------------------------------------------------------------- fine-tune / parent pairs

def parent_pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(child path, parent path) for every checkpoint in `table` whose parent is also in it
    (matched by resolved path, else by a unique file stem)."""
    if table.empty or "parent" not in table:
        return []
    paths = [str(p) for p in table["path"]]
    resolved = {str(Path(p).resolve()): p for p in paths}
    by_stem: dict[str, list[str]] = {}
    for p in paths:
        by_stem.setdefault(Path(p).stem, []).append(p)
    pairs = []
    for p, parent_stem in zip(paths, table["parent"]):
        if not parent_stem:
            continue
        try:
            parent = read_meta(p).get("parent")
        except CheckpointError:
            continue
        if not parent:
            continue
        target = Path(parent)
        if target.suffix == ".json":
            target = target.with_suffix(".safetensors")
        elif target.suffix != ".safetensors":
            target = Path(str(target) + ".safetensors")
        found = resolved.get(str(target.resolve()))
        if found is None and len(by_stem.get(target.stem, [])) == 1:
            found = by_stem[target.stem][0]
        if found is not None and found != p:
            pairs.append((p, found))
    return pairs


# --------------------------------------------------------------------------- attributions

@st.cache_data(max_entries=128, show_spinner=False)
def _attribution(path: str, mtime: float, key: str, _image: np.ndarray, method: str, target: int | None,
                 steps: int, device_key: str):
    model, meta = load_model(path)
    x = to_input(_image, meta["mean"], meta["std"], device())
    attr = attr_lib.attribute(model, x, target=target, method=method, internal_batch_size=8, n_steps=max(steps, 1),
                              nt_samples=8, occlusion_window=max(2, meta["img_size"] // 8))
    return attr_lib.to_heatmap(attr)[0].float().cpu().numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def _probabilities(path: str, mtime: float, key: str, _image: np.ndarray, device_key: str) -> np.ndarray:
    model, meta = load_model(path)
    with torch.no_grad():
        return model(to_input(_image, meta["mean"], meta["std"], device())).float().softmax(-1)[0].cpu().numpy()


def attribution_maps(path, image: np.ndarray, methods, target_class: str | None, steps: int = 16) -> dict:
    """Attributions of one image for one checkpoint: {"image" (at the model's size), "predicted",
    "target" (class names), "note", "maps" {method: (H, W) heatmap in [0, 1]}}, each method cached.

    target_class None (or a name the checkpoint does not know) = the predicted class."""
    model, meta = load_model(path)
    size = meta["img_size"]
    img = image if image.shape[:2] == (size, size) else prepare(image, size)
    key, mtime, dev = image_key(img), _mtime(path), str(device())
    probs = _probabilities(str(path), mtime, key, img, dev)
    predicted = int(probs.argmax())
    classes = list(meta["classes"])
    note = None
    if target_class is not None and target_class not in classes:
        note = f"{Path(str(path)).stem} has no class {target_class!r}; using its predicted class."
        target_class = None
    target = None if target_class is None else classes.index(target_class)
    chosen = target if target is not None else predicted
    maps = {m: _attribution(str(path), mtime, key, img, m, chosen,
                            int(steps) if m == "integrated_gradients" else 0, dev) for m in methods}
    return {"image": img, "predicted": classes[predicted], "probability": float(probs[predicted]),
            "target": classes[target if target is not None else predicted], "note": note, "maps": maps}


# --------------------------------------------------------------------------- efficiency

@st.cache_data(max_entries=64, show_spinner=False)
def _cost(path: str, mtime: float, device_key: str, batch: int, repeats: int, on_cpu: bool) -> dict:
    model, meta = load_model(path)
    if on_cpu and next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    dev = next(model.parameters()).device
    size = meta["img_size"]
    cost = efficiency.model_cost(model, size)
    one = efficiency.time_forward(model, torch.randn(1, 3, size, size, device=dev), repeats=repeats)
    many = efficiency.time_forward(model, torch.randn(batch, 3, size, size, device=dev), repeats=repeats)
    return {"params": cost["params"], "flops_per_image": cost["flops_per_image"], "img_size": size,
            "latency_ms_batch1": one["ms_median"], f"images_per_s_batch{batch}": many["images_per_second"],
            "device": str(dev)}


def cost_table(paths, batch: int = 64, repeats: int = 5, also_cpu: bool = False, progress=None) -> pd.DataFrame:
    """One row per checkpoint: params, FLOPs per image, batch-1 latency and batch-`batch` throughput on
    the app's device (and on the CPU too when `also_cpu` and the device is a GPU); cached per checkpoint."""
    rows = []
    for i, path in enumerate(paths):
        row = {"checkpoint": Path(str(path)).stem}
        try:
            row.update(_cost(str(path), _mtime(path), str(device()), batch, repeats, False))
            if also_cpu and device().type != "cpu":
                cpu = _cost(str(path), _mtime(path), str(device()), batch, repeats, True)
                row["cpu_latency_ms_batch1"] = cpu["latency_ms_batch1"]
                row[f"cpu_images_per_s_batch{batch}"] = cpu[f"images_per_s_batch{batch}"]
        except CheckpointError as exc:
            row["error"] = str(exc)
        rows.append(row)
        if progress is not None:
            progress((i + 1) / max(len(paths), 1))
    return pd.DataFrame(rows)


def token_counts(max_tokens: int, start: int = 64) -> tuple[int, ...]:
    """Powers of two from `start` up to `max_tokens` (inclusive; `max_tokens` added if not a power)."""
    counts = []
    n = start
    while n <= max_tokens:
        counts.append(n)
        n *= 2
    if not counts or counts[-1] != max_tokens:
        counts.append(max_tokens)
    return tuple(counts)


@st.cache_data(max_entries=16, show_spinner=False)
def attention_scaling(kinds: tuple, tokens: tuple, dim: int, heads: int, device_key: str) -> pd.DataFrame:
    """`efficiency.attention_scaling` on the app's device, cached by its arguments."""
    return efficiency.attention_scaling(kinds=kinds, tokens=tokens, dim=dim, heads=heads, device=device())
