"""XCiT cross-covariance attention from `capture()` artifacts (one image: batch index 0), as arrays and
tables for the app: the d_h x d_h maps per block and head, and the learned temperatures."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

__all__ = ["xca_matrices", "temperature_table"]


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
    """Temperatures (blocks, heads) as a table: a `layer` column, then one column per head."""
    t = torch.as_tensor(temperatures).detach().float().cpu()
    if t.ndim != 2:
        raise ValueError(f"temperatures must be (blocks, heads), got shape {tuple(t.shape)}")
    table = pd.DataFrame(t.numpy(), columns=[f"head {h}" for h in range(t.shape[1])])
    table.insert(0, "layer", range(t.shape[0]))
    return table
