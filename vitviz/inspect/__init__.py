"""Inspection: one capture API for everything the app shows, and the analyses built on it.

- `capture(model, images, want=...)`: named artifacts (logits, attention maps, implied/projected maps,
  XCA matrices, class attention, Q/K/V, F-SNE codes, token mixing) via hooks.
- rollout: `attention_rollout`, `cls_rollout_map`, `upsample_map`.
- codes: `qkv_codes`, `code_similarity`, `code_drift`.
- weights: `qkv_pathways`, `weight_stats`, `pathway_similarity`, `weight_histograms`, `linear_cka`.
- attributions (captum): `attribute`, `to_heatmap`, `METHODS`.
- projections: `features`, `project`.
- efficiency: `model_cost`, `time_forward`, `attention_scaling`.
"""
from .attributions import METHODS as ATTRIBUTION_METHODS, attribute, to_heatmap
from .capture import ARTIFACTS, Artifacts, capture
from .codes import code_drift, code_similarity, qkv_codes
from .efficiency import attention_scaling, model_cost, time_forward
from .projections import Projection, features, project
from .rollout import attention_rollout, cls_rollout_map, upsample_map
from .weights import linear_cka, pathway_similarity, qkv_pathways, weight_histograms, weight_stats

__all__ = ["capture", "Artifacts", "ARTIFACTS", "attention_rollout", "cls_rollout_map", "upsample_map",
           "qkv_codes", "code_similarity", "code_drift", "qkv_pathways", "weight_stats", "pathway_similarity",
           "weight_histograms", "linear_cka", "attribute", "to_heatmap", "ATTRIBUTION_METHODS", "features",
           "project", "Projection", "model_cost", "time_forward", "attention_scaling"]
