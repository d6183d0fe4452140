"""Inspection: one capture API for everything the app shows, and the analyses built on it.

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
from .rollout import attention_rollout, cls_rollout_map, upsample_map
from .pathways import linear_cka, pathway_cka, pathway_drift
from .weights import qkv_pathways, weight_histograms, weight_overlap, weight_stats

_LAZY = {"attribute": ("attributions", "attribute"), "to_heatmap": ("attributions", "to_heatmap"),
         "ATTRIBUTION_METHODS": ("attributions", "METHODS"), "features": ("projections", "features"),
         "project": ("projections", "project"), "Projection": ("projections", "Projection"),
         "model_cost": ("efficiency", "model_cost"), "time_forward": ("efficiency", "time_forward"),
         "attention_scaling": ("efficiency", "attention_scaling")}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["capture", "Artifacts", "ARTIFACTS", "attention_rollout", "cls_rollout_map", "upsample_map",
           "qkv_codes", "code_contributions", "code_similarity", "code_drift", "qkv_pathways", "weight_stats",
           "weight_overlap", "weight_histograms", "linear_cka", "pathway_cka", "pathway_drift", *_LAZY]
