"""XCiT cross-covariance attention from `capture()` artifacts (one image: batch index 0), as arrays and
tables for the app: the d_h x d_h maps per block and head, and the learned temperatures.

Temperature conventions: the XCiT paper writes A = softmax(K^T Q / tau) (divides by tau); timm's XCA,
which vitviz runs, learns a multiplier t and computes softmax(t * q^ k^T). The app shows the paper's
tau = 1 / t (`paper_tau`), so the numbers read as in the paper: smaller tau, sharper map."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

__all__ = ["xca_matrices", "temperature_table", "paper_tau", "TAU_NOTE"]

TAU_NOTE = ("τ as in the XCiT paper, A = softmax(q̂ k̂ᵀ / τ); timm (which runs the model) learns the multiplier "
            "t = 1/τ and computes softmax(t · q̂ k̂ᵀ). Smaller τ, sharper map.")


def paper_tau(temperatures) -> np.ndarray:
    """The paper's tau = 1 / t from timm's learned multipliers t (blocks, heads); inf where t == 0."""
    t = torch.as_tensor(temperatures).detach().double().cpu().numpy()
    with np.errstate(divide="ignore"):
        return 1.0 / t


def xca_matrices(art, average_heads: bool = False) -> np.ndarray:
    """(blocks, heads, d_h, d_h) float array of the first image's XCA maps; with `average_heads`,
    (blocks, 1, d_h, d_h), the mean over heads. Raises ValueError if there are no XCA maps."""
    maps = art["xca"] if "xca" in art else None
    if not maps:
        raise ValueError("no cross-covariance maps captured (not an XCiT model, or 'xca' not requested)")
    stacked = torch.stack([m[0].detach().float().cpu() for m in maps])
    if average_heads:
        stacked = stacked.mean(1, keepdim=True)
    return stacked.numpy()


def temperature_table(temperatures) -> pd.DataFrame:
    """Temperatures (blocks, heads) as a table: a `layer` column, then one column per head (values as given:
    pass `paper_tau(t)` to show the paper's convention)."""
    t = torch.as_tensor(temperatures).detach().float().cpu()
    if t.ndim != 2:
        raise ValueError(f"temperatures must be (blocks, heads), got shape {tuple(t.shape)}")
    table = pd.DataFrame(t.numpy(), columns=[f"head {h}" for h in range(t.shape[1])])
    table.insert(0, "layer", range(t.shape[0]))
    return table
