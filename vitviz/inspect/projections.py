"""2-D maps of what a model sees: pooled pre-logit features projected with PCA or t-SNE.

`features(model, images)` runs timm's `forward_features` then `forward_head(x, pre_logits=True)`
(every vitviz variant implements both: timm's VisionTransformer, Xcit and MlpMixer, and our
FNet and CvT), i.e. the vector the classifier reads, after pooling / class-token selection.
`project(features, "pca" | "tsne")` maps it to 2-D with scikit-learn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .exclusive import eval_mode

PROJECTION_METHODS = ("pca", "tsne")


@dataclass
class Projection:
    """points: (N, 2); explained_variance: PCA's explained-variance ratio of the two components
    (each in [0, 1]), None for t-SNE."""
    points: np.ndarray
    method: str
    explained_variance: np.ndarray | None = None


@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, D) float32 pre-logit features on the CPU for normalised images (N, 3, H, W), computed in
    eval mode in batches of `batch_size` on the model's device; every module's mode is restored."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = images.device
    out = []
    with eval_mode(model):
        for i in range(0, images.shape[0], batch_size):
            x = images[i:i + batch_size].to(device)
            f = model.forward_head(model.forward_features(x), pre_logits=True)
            out.append(f.reshape(f.shape[0], -1).float().cpu())
    if not out:
        raise ValueError("no images given")
    return torch.cat(out)


def _as_array(feats) -> np.ndarray:
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().float().cpu().numpy()
    arr = np.asarray(feats, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {arr.shape}")
    return arr


def project(feats, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> Projection:
    """2-D projection of (N, D) features (tensor or array).

    pca: scikit-learn PCA (centred, not whitened). tsne: scikit-learn TSNE with PCA
    initialisation and `random_state=seed`; the perplexity is clipped to at most (N - 1) / 3
    (below N / 3) so small sets such as N = 20 still work.
    """
    if method not in PROJECTION_METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose from {', '.join(PROJECTION_METHODS)}")
    x = _as_array(feats)
    n, d = x.shape
    if n < 3 or d < 2:
        raise ValueError(f"need at least 3 samples and 2 feature dimensions for a 2-D projection, got {x.shape}")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        points = pca.fit_transform(x)
        ratio = np.nan_to_num(pca.explained_variance_ratio_, nan=0.0)  # constant features: no variance
        return Projection(points.astype(np.float32), "pca", np.clip(ratio, 0.0, 1.0))
    from sklearn.manifold import TSNE

    perplexity = float(min(perplexity, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return Projection(tsne.fit_transform(x).astype(np.float32), "tsne", None)
