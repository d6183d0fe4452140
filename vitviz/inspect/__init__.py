"""Inspection: one capture API for what each layer computes, and the maps and views built on it.

Explanations (rollout, relevance, attributions, faithfulness) live in `vitviz.explain`, comparisons across
models (representations, pathways, weights) in `vitviz.compare`, the disk cache in `vitviz.result_cache`; their
names below stay importable from here for one release.

- `capture(model, images, want=...)`: named artifacts (logits, attention maps, implied/projected maps,
  XCA matrices, class attention, Q/K/V, F-SNE codes, token mixing) via hooks.
- rollout: `attention_rollout`, `cls_rollout_map`, `upsample_map`.
- codes: `qkv_codes`, `code_contributions`, `code_similarity`, `code_drift`.
- weights: `qkv_pathways`, `weight_stats`, `weight_overlap`, `weight_histograms`.
- pathways: `pathway_cka`, `pathway_drift` (what q, k, v compute, on real images), `linear_cka`.
- attributions (captum): `attribute`, `to_heatmap`, `ATTRIBUTION_METHODS`.
- projections (scikit-learn): `features`, `project`, `Projection`.
- efficiency: `model_cost`, `time_forward`, `attention_scaling`.

Attributions, projections and efficiency load on first use (captum and scikit-learn are slow to import).
"""
import importlib

from .capture import ARTIFACTS, Artifacts, capture
from .codes import code_contributions, code_drift, code_similarity, qkv_codes

_MOVED = {name: ("..compare.pathways", name) for name in ("linear_cka", "pathway_cka", "pathway_drift")}
_MOVED |= {name: ("..compare.weights", name) for name in ("qkv_pathways", "weight_histograms", "weight_overlap",
                                                        "weight_stats")}
_MOVED |= {name: ("..explain.rollout", name) for name in ("attention_rollout", "cls_rollout_map", "upsample_map")}
_LAZY = {"attribute": ("..explain.attributions", "attribute"), "to_heatmap": ("..explain.attributions", "to_heatmap"),
         "ATTRIBUTION_METHODS": ("..explain.attributions", "METHODS"), "features": ("projections", "features"),
         "project": ("projections", "project"), "Projection": ("projections", "Projection"),
         "model_cost": ("efficiency", "model_cost"), "time_forward": ("efficiency", "time_forward"),
         "attention_scaling": ("efficiency", "attention_scaling"), **_MOVED}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module if module.startswith("..") else f".{module}", __name__), attr)
    if name == "result_cache":  # moved to vitviz.result_cache (beside the resolver)
        return importlib.import_module("..result_cache", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["capture", "Artifacts", "ARTIFACTS", "qkv_codes", "code_contributions", "code_similarity", "code_drift",
           *_LAZY]
