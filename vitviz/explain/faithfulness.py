"""Which explanation can be trusted: faithfulness of explanation maps, measured on test images.

Two tests, both batched on the model's device:

- **Perturbation test** (Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention
  Visualization", CVPR 2021): remove 0%, 10%, ..., 90% of the pixels, most relevant first
  ("positive": a faithful map makes the model fail fast, lower AUC is better) or least relevant
  first ("negative": higher AUC is better). Removed pixels (all three channels) are set to 0 in
  normalised space, i.e. the dataset's mean colour. Reported: the AUC of accuracy (the perturbed
  prediction equals the true label) and of the explained class's probability.
- **Deletion / insertion** (Petsiuk, Das & Saenko, "RISE", BMVC 2018): the explained class's
  probability while the most relevant pixels are deleted (set to the mean colour; lower AUC is
  better), or inserted into a blurred copy of the image (higher AUC is better), in `rise_steps`
  equal steps from 0 to all pixels. The blur is a Gaussian of sigma = image size / 16 ([ours]:
  RISE's sigma 5 on 224 px images scales to under one pixel at 32 px, which removes nothing).

The explained class is the model's prediction on the clean image. Pixel ranks come from each
method's map upsampled bilinearly to the image (patch-level maps) or from captum's per-pixel
attributions (|attribution| summed over channels); ties are broken by a seeded random jitter.
AUCs are trapezoids over the fraction removed, divided by the fraction range, so they lie in
[0, 1]. Every AUC is kept per image, so the table gives bootstrap intervals over images and the
verdict a paired bootstrap between the best two methods.

Methods: `METHODS`. A method that is not defined for a model (no token maps, signed maps for
rollout, Linformer's N x k map on the image) is reported as unavailable with the reason.

Results are cached as JSON per checkpoint (its weights' sha256) and settings under
``<checkpoint dir>/runs/faithfulness/`` (suffix ``.faithfulness``, so checkpoint listings, which read every
``*.json``, do not mistake them for checkpoints); `python -m vitviz faithfulness` computes and writes them, and
`start_background` runs that command in its own process while the app polls `progress_of`.

Written here rather than with Quantus (0.6.0 is pip-installable, and would add opencv-python and
scikit-image): its PixelFlipping / RegionPerturbation take numpy arrays and call the model once per
perturbation step, copying each step to the device; the perturbation test's accuracy AUC and RISE's
insertion into a blurred copy would need custom functions around it anyway. Here every step of a batch is
built as one tensor on the model's device (`_apply`) and scored in large chunks: about 100 lines of torch,
tested on a planted case (tests/test_faithfulness.py).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import bootstrap_mean_ci, paired_bootstrap_mean_diff_ci
from ..inspect.attention_views import attention_source
from ..inspect.capture import capture
from ..inspect.exclusive import eval_mode
from .relevance import chefer_relevance, relevance_problem
from .rollout import attention_rollout, cls_rollout_map

__all__ = ["METHODS", "METRICS", "Settings", "MethodUnavailable", "explanation_maps", "perturbation_curves",
           "deletion_insertion_curves", "evaluate_faithfulness", "run_faithfulness", "cache_path", "load_cached",
           "faithfulness_table", "wide_table", "curves_frame", "verdict", "start_background", "progress_of"]

METHODS = {
    "raw_attention": "raw attention: the class token's attention in the last token-attention layer (head mean); "
                     "XCiT: the last class-attention block; CCT (no class token): its sequence-pooling weights",
    "rollout": "attention rollout (Abnar & Zuidema 2020), read at the class token (CCT: at its sequence pooling)",
    "chefer": "gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021)",
    "saliency": "saliency: |gradient| of the explained logit (captum)",
    "integrated_gradients": "integrated gradients from the mean image (captum), |attribution|",
    "random": "a random pixel ranking: the floor every method should beat",
}
# metric -> (label, better)
METRICS = {
    "positive_accuracy": ("positive perturbation, AUC of accuracy", "lower"),
    "positive_probability": ("positive perturbation, AUC of the explained class's probability", "lower"),
    "negative_accuracy": ("negative perturbation, AUC of accuracy", "higher"),
    "negative_probability": ("negative perturbation, AUC of the explained class's probability", "higher"),
    "deletion": ("RISE deletion, AUC of the explained class's probability", "lower"),
    "insertion": ("RISE insertion, AUC of the explained class's probability", "higher"),
}
FRACTIONS = tuple(i / 10 for i in range(10))   # 0%, 10%, ..., 90% removed
FORMAT_VERSION = 1
# JSON content, but not a .json name: checkpoint listings take every *.json under the checkpoint directory for a
# checkpoint's metadata
CACHE_SUFFIX = ".faithfulness"
STALE_SECONDS = 600   # a background run that has not reported for this long is taken as dead


class MethodUnavailable(ValueError):
    """The method is not defined for this model (the message says why)."""


@dataclass(frozen=True)
class Settings:
    images: int = 100
    seed: int = 0
    methods: tuple = tuple(METHODS)
    rise_steps: int = 16
    ig_steps: int = 16
    batch_size: int = 50
    n_boot: int = 1000

    def __post_init__(self):
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
        if self.images < 1 or self.rise_steps < 1 or self.batch_size < 1 or self.ig_steps < 1:
            raise ValueError("images, rise_steps, ig_steps and batch_size must be at least 1")
        object.__setattr__(self, "methods", tuple(self.methods))

    def key(self) -> str:
        """Hash of everything that changes the numbers (batch size does not)."""
        d = {k: v for k, v in asdict(self).items() if k != "batch_size"}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


# ------------------------------------------------------------------------------------------ maps

def _to_pixels(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(maps.float()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def _attention_maps(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor | str]:
    """{"raw_attention": (B, h, w) or why not, "rollout": (B, h, w) or why not} from one capture."""
    art = capture(model, x, want=("attention", "implied_attention", "projected_attention", "class_attention",
                                  "grids", "seq_pool"))
    source = attention_source(art)
    if source is not None and source[0] == "projected_attention":
        why = ("Linformer's map is N x k over projected keys, which have no place on the image")
        return {"raw_attention": why, "rollout": why}
    if source is not None:
        _, maps, grids, _ = source
        last, g = maps[-1].mean(1), grids[-1]
        pool = None if g["cls"] else art.get("seq_pool")  # CCT: the head reads the sequence pooling, w
        if g["cls"]:
            raw = last[:, 0, 1:]
        else:
            raw = last.mean(1) if pool is None else pool
        out: dict = {"raw_attention": raw.reshape(-1, *g["k"])}
        same = all(gr == grids[0] for gr in grids) and grids[0]["q"] == grids[0]["k"]
        if not same:
            out["rollout"] = ("rollout needs square maps over the same tokens in every layer (here: stages on "
                              "different grids or strided keys)")
        else:
            try:
                tokens = g["q"][0] * g["q"][1] + int(g["cls"])
                rollout = attention_rollout(maps, tokens=tokens)
                out["rollout"] = cls_rollout_map(rollout, g["q"], has_cls=g["cls"], pool=pool)
            except ValueError as exc:
                out["rollout"] = f"no rollout: {exc}"
        return out
    if "class_attention" in art and len(art["class_attention"]):
        cls_map = art["class_attention"][-1].mean(1)[:, 1:]
        side = int(round(cls_map.shape[-1] ** 0.5))
        return {"raw_attention": cls_map.reshape(-1, side, side),
                "rollout": "XCiT has no token-to-token maps to roll out (XCA maps are channel x channel)"}
    why = "this model has no attention maps (it mixes tokens another way)"
    return {"raw_attention": why, "rollout": why}


def explanation_maps(model: nn.Module, x: torch.Tensor, method: str, target: torch.Tensor, *,
                     ig_steps: int = 16, batch_size: int = 50, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """(B, H, W) pixel relevance of `target` for normalised images `x` on the model's device, by `method`;
    MethodUnavailable when the method is not defined for the model. Only the ranking of pixels matters."""
    from .attributions import attribute

    size = tuple(x.shape[-2:])
    if method == "random":
        return torch.rand(x.shape[0], *size, generator=generator)
    if method in ("raw_attention", "rollout"):
        found = _attention_maps(model, x)[method]
        if isinstance(found, str):
            raise MethodUnavailable(found)
        return _to_pixels(found, size)
    if method == "chefer":
        problem = relevance_problem(model)
        if problem is not None:
            raise MethodUnavailable(problem)
        return _to_pixels(chefer_relevance(model, x, target).relevance, size)
    if method in ("saliency", "integrated_gradients"):
        attr = attribute(model, x, target, method=method, n_steps=ig_steps, internal_batch_size=batch_size)
        return attr.detach().abs().sum(1).float().cpu()
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


# ------------------------------------------------------------------------------------------ curves

def _ranks(heat: torch.Tensor, descending: bool, generator: torch.Generator | None) -> torch.Tensor:
    """(B, P) rank of each pixel in removal order (0 = removed first); ties broken by seeded jitter."""
    flat = heat.flatten(1).double()
    span = (flat.amax(1, keepdim=True) - flat.amin(1, keepdim=True)).clamp_min(1e-30)
    jitter = torch.rand(flat.shape, generator=generator, dtype=torch.float64) * span * 1e-9
    order = (flat + jitter).argsort(dim=1, descending=descending)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order).contiguous())
    return ranks


@torch.no_grad()
def _scores(model: nn.Module, images: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None,
            chunk: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Probability of `target` and (labels given) correctness, for (S, B, 3, H, W) images -> (B, S) each."""
    S, B = images.shape[:2]
    flat = images.reshape(S * B, *images.shape[2:])
    logits = torch.cat([model(flat[i:i + chunk]).float() for i in range(0, S * B, chunk)]).reshape(S, B, -1)
    prob = logits.softmax(-1).gather(2, target[None, :, None].expand(S, B, 1))[..., 0].t()
    correct = None if labels is None else (logits.argmax(-1) == labels[None]).t()
    return prob.cpu(), (None if correct is None else correct.cpu())


def _apply(x: torch.Tensor, ranks: torch.Tensor, counts, fill: torch.Tensor, keep_removed_from_x: bool = False
           ) -> torch.Tensor:
    """(S, B, 3, H, W): for each count c, pixels of rank < c taken from `fill` (or, with keep_removed_from_x,
    from x over a `fill` background)."""
    B, _, H, W = x.shape
    c = torch.as_tensor(list(counts), device=x.device)
    mask = (ranks.to(x.device)[None] < c[:, None, None]).reshape(len(c), B, 1, H, W)
    if keep_removed_from_x:
        return torch.where(mask, x[None], fill[None])
    return torch.where(mask, fill[None], x[None])


def perturbation_curves(model: nn.Module, x: torch.Tensor, heat: torch.Tensor, target: torch.Tensor,
                        labels: torch.Tensor, *, fractions=FRACTIONS, chunk: int = 256,
                        generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
    """Chefer et al. (2021) perturbation test: {"positive_accuracy", "positive_probability",
    "negative_accuracy", "negative_probability"} each (B, len(fractions)); removed pixels = 0 (mean colour)."""
    P = x.shape[-1] * x.shape[-2]
    counts = [int(round(f * P)) for f in fractions]
    out = {}
    for name, descending in (("positive", True), ("negative", False)):
        ranks = _ranks(heat, descending, generator)
        images = _apply(x, ranks, counts, torch.zeros_like(x))
        prob, correct = _scores(model, images, target, labels, chunk)
        out[f"{name}_accuracy"] = correct.float().numpy()
        out[f"{name}_probability"] = prob.numpy()
    return out


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Depthwise Gaussian blur with reflect padding (kernel 2 * ceil(3 sigma) + 1)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.dtype)
    C = x.shape[1]
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    y = x
    for shape in ((1, 1, 1, -1), (1, 1, -1, 1)):
        kernel = k.reshape(shape).repeat(C, 1, 1, 1)
        if shape[-1] == -1:
            y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect" if pad == radius else "replicate"),
                         kernel, groups=C)
        else:
            y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect" if pad == radius else "replicate"),
                         kernel, groups=C)
    return y


def deletion_insertion_curves(model: nn.Module, x: torch.Tensor, heat: torch.Tensor, target: torch.Tensor, *,
                              steps: int = 16, chunk: int = 256, generator: torch.Generator | None = None
                              ) -> dict[str, np.ndarray]:
    """RISE (Petsiuk et al. 2018): {"deletion", "insertion"} each (B, steps + 1), the explained class's
    probability as the most relevant pixels are deleted (to the mean colour) or inserted into a blurred copy."""
    P = x.shape[-1] * x.shape[-2]
    counts = [int(round(i * P / steps)) for i in range(steps + 1)]
    ranks = _ranks(heat, True, generator)
    deletion, _ = _scores(model, _apply(x, ranks, counts, torch.zeros_like(x)), target, None, chunk)
    blurred = gaussian_blur(x, x.shape[-1] / 16)
    insertion, _ = _scores(model, _apply(x, ranks, counts, blurred, keep_removed_from_x=True), target, None, chunk)
    return {"deletion": deletion.numpy(), "insertion": insertion.numpy()}


def auc(curves: np.ndarray, xs) -> np.ndarray:
    """Per-row trapezoid AUC over `xs`, divided by the range of `xs` (in [0, 1] for curves in [0, 1])."""
    xs = np.asarray(xs, dtype=float)
    y = np.asarray(curves, dtype=float)
    return ((y[:, 1:] + y[:, :-1]) / 2 * np.diff(xs)).sum(1) / (xs[-1] - xs[0])


# ------------------------------------------------------------------------------------------ evaluation

def evaluate_faithfulness(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, settings: Settings = Settings(),
                          progress: Callable[[float, str], None] | None = None) -> dict:
    """Both tests for every method in `settings` on normalised images `x` (N, 3, H, W) with true `labels`.

    Returns a JSON-able dict: "fractions", "rise_fractions", "clean_accuracy", and per method either
    {"unavailable": why} or {"auc": {metric: per-image list}, "curves": {metric: mean curve}}."""
    device = next(model.parameters()).device
    x, labels = x.to(device), labels.to(device)
    n, bs = x.shape[0], settings.batch_size
    chunk = max(bs, 256)
    rise_fractions = [i / settings.rise_steps for i in range(settings.rise_steps + 1)]
    with eval_mode(model), torch.no_grad():
        target = torch.cat([model(x[i:i + bs]).argmax(-1) for i in range(0, n, bs)])
    result = {"fractions": list(FRACTIONS), "rise_fractions": rise_fractions,
              "clean_accuracy": float((target == labels).float().mean()), "methods": {}}
    batches = math.ceil(n / bs)
    total = len(settings.methods) * batches
    for m_index, method in enumerate(settings.methods):
        generator = torch.Generator().manual_seed(settings.seed + 1)
        curves: dict[str, list] = {}
        try:
            for b_index, i in enumerate(range(0, n, bs)):
                xb, tb, lb = x[i:i + bs], target[i:i + bs], labels[i:i + bs]
                if progress:
                    progress((m_index * batches + b_index) / total,
                             f"{method}: images {i + 1}-{min(i + bs, n)} of {n}")
                heat = explanation_maps(model, xb, method, tb, ig_steps=settings.ig_steps, batch_size=bs,
                                        generator=generator)
                with eval_mode(model):
                    parts = {**perturbation_curves(model, xb, heat, tb, lb, chunk=chunk, generator=generator),
                             **deletion_insertion_curves(model, xb, heat, tb, steps=settings.rise_steps, chunk=chunk,
                                                         generator=generator)}
                for k, v in parts.items():
                    curves.setdefault(k, []).append(v)
        except MethodUnavailable as exc:
            result["methods"][method] = {"unavailable": str(exc)}
            continue
        stacked = {k: np.concatenate(v) for k, v in curves.items()}
        result["methods"][method] = {
            "description": METHODS[method],
            "auc": {m: auc(stacked[m], rise_fractions if m in ("deletion", "insertion") else FRACTIONS).tolist()
                    for m in METRICS},
            "curves": {m: stacked[m].mean(0).tolist() for m in METRICS},
        }
    if progress:
        progress(1.0, "done")
    return result


def sample_images(meta: dict, count: int, seed: int, data_root=None) -> tuple[np.ndarray, np.ndarray, str]:
    """`count` test images (uint8 (n, S, S, 3)) with labels, drawn without replacement with `seed`: the
    checkpoint's own test set when on disk (`data.testsets.find_test_set`), else the digits."""
    from ..data import load_dataset
    from ..data.testsets import find_test_set

    dataset = find_test_set(meta, data_root)
    what = f"{meta['dataset']} test set"
    if dataset is None:
        dataset = load_dataset("digits", "test", img_size=meta["img_size"])
        what = f"digits test set (the {meta['dataset']} test set is not on disk)"
    total = len(dataset.images)
    index = np.sort(np.random.default_rng(seed).choice(total, size=min(int(count), total), replace=False))
    return np.ascontiguousarray(dataset.images[index]), np.asarray(dataset.labels)[index], \
        f"{len(index)} images of the {what}, seed {seed}"


def _weights_sha(path: Path, meta: dict) -> str:
    sha = meta.get("weights_sha256")
    if sha:
        return sha
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(checkpoint, settings: Settings, meta: dict | None = None, data_root=None) -> Path:
    """Where the results of `checkpoint` under `settings`, on the images `data_root` gives it (its test set
    when on disk there, else the digits: `image_source_key`), are cached."""
    from .. import checkpoints
    from ..data.testsets import image_source_key

    meta = meta or checkpoints.read_meta(checkpoint)
    path = Path(meta.get("path") or checkpoint)
    source = hashlib.sha1(image_source_key(meta, data_root).encode()).hexdigest()[:8]
    name = f"{path.stem}-{_weights_sha(path, meta)[:12]}-{settings.key()}-{source}{CACHE_SUFFIX}"
    return path.parent / "runs" / "faithfulness" / name


def shipped_path(checkpoint, settings: Settings, meta: dict | None = None, data_root=None) -> Path:
    """Where a result shipped with the checkpoints lies: `<checkpoint dir>/analyses/faithfulness/` (tracked), under
    the cache's name (weights sha256 and settings in it)."""
    here = cache_path(checkpoint, settings, meta, data_root)
    return here.parents[2] / "analyses" / "faithfulness" / here.name


def load_cached(checkpoint, settings: Settings, data_root=None) -> dict | None:
    """The cached result of `checkpoint` under `settings` on the images of `data_root` (computed here, else
    shipped with the checkpoints), or None."""
    for target in (cache_path(checkpoint, settings, data_root=data_root),
                   shipped_path(checkpoint, settings, data_root=data_root)):
        try:
            found = json.loads(target.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(found, dict) and found.get("format_version") == FORMAT_VERSION:
            return found
    return None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def run_faithfulness(checkpoint, settings: Settings = Settings(), *, device=None, data_root=None,
                     progress: Callable[[float, str], None] | None = None, write: bool = True) -> dict:
    """Evaluate `checkpoint` (a path or a `vitviz.resolve.Resolved`) on `settings.images` test images and
    (write=True) cache the result."""
    from ..resolve import resolve

    resolved = resolve(checkpoint, device)
    model, meta, dev = resolved.model, resolved.meta, resolved.device
    images, labels, source = sample_images(meta, settings.images, settings.seed, data_root)
    x = resolved.inputs(images)
    started = time.time()
    result = evaluate_faithfulness(model, x, torch.as_tensor(labels, dtype=torch.long), settings, progress)
    path = Path(meta["path"])
    result.update({"format_version": FORMAT_VERSION, "checkpoint": path.stem, "checkpoint_path": str(path),
                   "variant": meta["variant"], "weights_sha256": _weights_sha(path, meta),
                   "settings": asdict(settings), "image_source": source, "device": str(dev),
                   "seconds": round(time.time() - started, 1),
                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    if write:
        _write_json(cache_path(resolved.path, settings, meta, data_root=data_root), result)
    return result


# ------------------------------------------------------------------------------------------ summaries

def faithfulness_table(results: list[dict], *, n_boot: int | None = None, level: float = 0.95):
    """Long table over results (one per checkpoint): checkpoint, method, metric, better, auc, ci_low, ci_high,
    images; unavailable methods get a row with metric "unavailable" and the reason in `note`."""
    import pandas as pd

    rows = []
    for res in results:
        boots = n_boot or res.get("settings", {}).get("n_boot", 1000)
        for method, body in res["methods"].items():
            if "unavailable" in body:
                rows.append(dict(checkpoint=res.get("checkpoint"), method=method, metric="unavailable",
                                 note=body["unavailable"]))
                continue
            for metric, values in body["auc"].items():
                low, high = bootstrap_mean_ci(values, n_boot=boots, level=level, seed=0)
                rows.append(dict(checkpoint=res.get("checkpoint"), method=method, metric=metric,
                                 better=METRICS[metric][1], auc=float(np.mean(values)), ci_low=low, ci_high=high,
                                 images=len(values), note=""))
    return pd.DataFrame(rows)


def wide_table(table):
    """`faithfulness_table` as checkpoint x method rows with one "AUC [low, high]" column per metric (the column
    name says whether lower or higher is better); unavailable methods show the reason."""
    import pandas as pd

    if table.empty:
        return table
    rows = {}
    for r in table.to_dict("records"):
        row = rows.setdefault((r["checkpoint"], r["method"]), {"checkpoint": r["checkpoint"], "method": r["method"]})
        if r["metric"] == "unavailable":
            row["unavailable"] = r["note"]
            continue
        arrow = "↓" if r["better"] == "lower" else "↑"
        row[f"{r['metric']} {arrow}"] = f"{r['auc']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
    return pd.DataFrame(list(rows.values())).fillna("")


def curves_frame(result: dict):
    """Long DataFrame of the mean curves: method, metric, fraction (of pixels removed / inserted), value."""
    import pandas as pd

    rows = []
    for method, body in result["methods"].items():
        for metric, curve in body.get("curves", {}).items():
            xs = result["rise_fractions"] if metric in ("deletion", "insertion") else result["fractions"]
            rows += [dict(method=method, metric=metric, fraction=x, value=v) for x, v in zip(xs, curve)]
    return pd.DataFrame(rows, columns=["method", "metric", "fraction", "value"])


def verdict(result: dict, metric: str = "positive_probability", *, n_boot: int | None = None,
            level: float = 0.95) -> str:
    """One sentence: the most faithful method of this checkpoint by `metric` (random excluded), and whether it
    beats the runner-up significantly (paired bootstrap over images; the interval of the difference excludes 0)."""
    label, better = METRICS[metric]
    scored = {m: np.asarray(b["auc"][metric]) for m, b in result["methods"].items()
              if "auc" in b and m != "random"}
    name = result.get("checkpoint", "this checkpoint")
    if not scored:
        return f"{name}: no explanation method is available."
    sign = 1 if better == "higher" else -1
    ranked = sorted(scored, key=lambda m: -sign * scored[m].mean())
    best = ranked[0]
    boots = n_boot or result.get("settings", {}).get("n_boot", 1000)
    text = f"{name}: most faithful by {label} ({better} is better): **{best}** (AUC {scored[best].mean():.3f})"
    if len(ranked) > 1:
        second = ranked[1]
        diff, low, high = paired_bootstrap_mean_diff_ci(scored[second], scored[best], n_boot=boots, level=level)
        significant = low > 0 or high < 0
        text += (f"; vs {second} ({scored[second].mean():.3f}) the paired difference is {diff:+.3f} "
                 f"[{low:+.3f}, {high:+.3f}], {'significant' if significant else 'not significant'} at "
                 f"{level:.0%} over {len(scored[best])} images")
    if "random" in result["methods"] and "auc" in result["methods"]["random"]:
        rand = np.asarray(result["methods"]["random"]["auc"][metric])
        diff, low, high = paired_bootstrap_mean_diff_ci(rand, scored[best], n_boot=boots, level=level)
        beats = (low > 0) if better == "higher" else (high < 0)
        text += f"; {'it beats' if beats else 'it does not significantly beat'} a random ranking ({rand.mean():.3f})"
    return text + "."


# ------------------------------------------------------------------------------------------ background

def _progress_file(checkpoint, settings: Settings, data_root=None) -> Path:
    return cache_path(checkpoint, settings, data_root=data_root).with_suffix(".progress")


def clear_progress(checkpoint, settings: Settings, error: str | None = None, data_root=None) -> None:
    """Remove the progress file (finished) or replace it by {"error": ...} (failed)."""
    target = _progress_file(checkpoint, settings, data_root)
    if error is None:
        target.unlink(missing_ok=True)
    else:
        _write_json(target, {"error": error, "time": time.time()})


def write_progress(checkpoint, settings: Settings, data_root=None) -> Callable[[float, str], None]:
    """A progress callback writing {"fraction", "message", "pid", "time"} beside the cache file."""
    target = _progress_file(checkpoint, settings, data_root)

    def report(fraction: float, message: str) -> None:
        _write_json(target, {"fraction": float(fraction), "message": message, "pid": os.getpid(),
                             "time": time.time()})
    return report


def progress_of(checkpoint, settings: Settings, data_root=None) -> dict | None:
    """The state of a computation started by `start_background`: {"fraction", "message", "running"} or
    {"error"}; None when none has been started (or it finished and its progress file was removed)."""
    target = _progress_file(checkpoint, settings, data_root)
    try:
        state = json.loads(target.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    alive = False
    if pid:
        try:
            os.kill(int(pid), 0)
            alive = True
        except (OSError, ValueError):
            alive = False
    fresh = time.time() - float(state.get("time", 0)) < STALE_SECONDS
    state["running"] = alive and fresh and "error" not in state
    return state


def start_background(checkpoint, settings: Settings, *, device=None, data_root=None) -> int:
    """Start `python -m vitviz faithfulness` for `checkpoint` in its own process; returns its pid."""
    cmd = [sys.executable, "-m", "vitviz", "faithfulness", "--checkpoint", str(checkpoint),
           "--images", str(settings.images), "--seed", str(settings.seed), "--methods", *settings.methods,
           "--rise-steps", str(settings.rise_steps), "--ig-steps", str(settings.ig_steps),
           "--batch-size", str(settings.batch_size), "--n-boot", str(settings.n_boot), "--progress"]
    if device:
        cmd += ["--device", str(device)]
    if data_root:
        cmd += ["--data-dir", str(data_root)]
    log = cache_path(checkpoint, settings, data_root=data_root).with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=str(Path(__file__).resolve().parents[2]))
    _write_json(_progress_file(checkpoint, settings, data_root), {"fraction": 0.0, "message": "starting",
                                                                  "pid": proc.pid, "time": time.time()})
    return proc.pid
