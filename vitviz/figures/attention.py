"""Attention maps of one image: a layers x heads grid of heatmaps."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ._common import DIVERGING, HEAT, PanelGrid, as_float, colorbar, finish, finite_range, symmetric_range

__all__ = ["attention_grid", "query_maps"]


def _layers(maps) -> list[np.ndarray]:
    """`maps` (list over layers of (heads, N_q, N_k), or one 4-D array) as float arrays."""
    if hasattr(maps, "ndim") or hasattr(maps, "shape"):
        arr = as_float(maps, "maps", 4, "(layers, heads, N_q, N_k) or a list of "
                                        "(heads, N_q, N_k)")
        layers = list(arr)
    else:
        try:
            layers = [as_float(m, f"maps[{i}]", 3, "(heads, N_q, N_k)")
                      for i, m in enumerate(maps)]
        except TypeError as exc:
            raise ValueError("maps must be a list over layers of (heads, N_q, N_k) arrays") \
                from exc
    if not layers:
        raise ValueError("maps must contain at least one layer")
    for i, m in enumerate(layers):
        if min(m.shape) < 1:
            raise ValueError(f"maps[{i}] must have shape (heads, N_q, N_k) with every size "
                             f">= 1, got {tuple(m.shape)}")
    return layers


def query_maps(layer: np.ndarray, query: int, grid: tuple[int, int],
               name: str = "maps") -> np.ndarray:
    """The attention row of token `query` for every head, as (heads, h, w).

    `layer` is (heads, N_q, N_k); if N_k == h*w + 1 the first key (class token) is dropped.
    """
    layer = as_float(layer, name, 3, "(heads, N_q, N_k)")
    h, w = int(grid[0]), int(grid[1])
    heads, n_q, n_k = layer.shape
    if not 0 <= query < n_q:
        raise ValueError(f"query must be a token index in [0, {n_q}) for {name} with N_q={n_q},"
                         f" got {query}")
    if n_k == h * w + 1:
        row = layer[:, query, 1:]
    elif n_k == h * w:
        row = layer[:, query, :]
    else:
        raise ValueError(f"{name}: grid {(h, w)} needs N_k = {h * w} (patch tokens) or "
                         f"{h * w + 1} (class token + patches), got N_k={n_k}")
    return row.reshape(heads, h, w)


def _check_grid(grid) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in grid)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"grid must be a token grid (h, w), got {grid!r}") from exc
    if h < 1 or w < 1:
        raise ValueError(f"grid must be positive (h, w), got {grid!r}")
    return h, w


def attention_grid(maps, grid=None, query=None, titles=None, *, panel_px: int = 120,
                   title: str | None = None, signed: bool | None = None) -> go.Figure:
    """Layers x heads grid of attention heatmaps for one image.

    maps:   list over layers of (heads, N_q, N_k) arrays (or one (layers, heads, N_q, N_k)).
    grid:   (h, w) patch-token grid. With `query` (a query-token index) each panel shows that
            query's attention row reshaped to (h, w); if N_k == h*w + 1 the first key (class
            token) is dropped. Without both, each panel is the full N_q x N_k matrix.
    titles: one per layer (used as "<title> · h<j>") or one per panel (layers*heads, row major).

    All panels share one colour scale (zmin/zmax over every panel) and one colour bar.
    signed: True draws a diverging scale centred at 0 (zmid 0, symmetric range), so negative
            entries (Nystromformer's operator) stay visible; None (default) does so exactly when a
            shown value is negative; False uses the sequential scale over the values' range.
    """
    layers = _layers(maps)
    n_layers = len(layers)
    n_heads = max(m.shape[0] for m in layers)
    use_query = query is not None and grid is not None
    if use_query:
        if isinstance(query, bool) or not isinstance(query, (int, np.integer)):
            raise ValueError(f"query must be an integer token index, got {query!r}")
        hw = _check_grid(grid)
        panels = [query_maps(m, int(query), hw, f"maps[{i}]") for i, m in enumerate(layers)]
    else:
        panels = layers

    if titles is None:
        labels = [[f"L{i} h{j}" for j in range(n_heads)] for i in range(n_layers)]
    else:
        if isinstance(titles, str):
            raise ValueError("titles must be a sequence, got a single string")
        titles = [str(t) for t in titles]
        if len(titles) == n_layers:
            labels = [[f"{t} · h{j}" for j in range(n_heads)] for t in titles]
        elif len(titles) == n_layers * n_heads:
            labels = [titles[i * n_heads:(i + 1) * n_heads] for i in range(n_layers)]
        else:
            raise ValueError(f"titles must have {n_layers} (one per layer) or "
                             f"{n_layers * n_heads} (one per panel) entries, got {len(titles)}")
    # blank titles where a layer has fewer heads than the widest layer
    flat_titles = [labels[i][j] if j < panels[i].shape[0] else ""
                   for i in range(n_layers) for j in range(n_heads)]

    if signed is None:
        signed = any(np.nanmin(p) < 0 for p in panels if np.isfinite(p).any())
    zmin, zmax = symmetric_range(0.0, *panels) if signed else finite_range(*panels)
    scale = dict(colorscale=DIVERGING, zmid=0.0) if signed else dict(colorscale=HEAT)
    grid = PanelGrid(n_layers, n_heads, flat_titles, panel_px)
    if use_query:
        hover = "col %{x}, row %{y}<br>attention %{z:.4f}<extra></extra>"
    else:
        hover = "query %{y} → key %{x}<br>attention %{z:.4f}<extra></extra>"
    first = True
    for i, layer in enumerate(panels):
        for j in range(layer.shape[0]):
            grid.add(dict(type="heatmap", z=layer[j], zmin=zmin, zmax=zmax, zauto=False, **scale,
                          showscale=first, colorbar=colorbar("attention") if first else None,
                          hovertemplate=hover, name=labels[i][j]),
                     i + 1, j + 1)
            first = False
    if title is None:
        title = (f"attention of query token {int(query)}" if use_query
                 else "attention maps (rows: queries, cols: keys)")
    return finish(grid.figure(), title, grid.height)
