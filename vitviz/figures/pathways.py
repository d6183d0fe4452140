"""Q/K/V pathway similarity figures: CKA over depth per pair, and 3 x 3 CKA matrices side by side."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ._common import (SEQUENTIAL, PanelGrid, as_float, check_titles, class_colors, colorbar, finish,
                      grid_shape, names_list, require_columns, subplots)

__all__ = ["cka_by_depth", "cka_grid"]

PAIR_ORDER = ("q-k", "q-v", "k-v")


def cka_by_depth(df, series: str = "checkpoint", *, title: str | None = None, y_title: str = "linear CKA",
                 height: int = 340) -> go.Figure:
    """One panel per pair (q-k, q-v, k-v) of CKA against block, one line per value of `series`.

    `df` is long: columns block, pair, cka and `series` (e.g. `compare_weights.cka_long`). A series keeps
    its colour in every panel and appears once in the legend. The y axis is fixed to [0, 1].
    """
    require_columns(df, ["block", "pair", "cka", series])
    pairs = [p for p in PAIR_ORDER if p in set(df["pair"])] + sorted(set(df["pair"]) - set(PAIR_ORDER))
    if not pairs:
        raise ValueError("df has no rows")
    names = list(dict.fromkeys(str(s) for s in df[series]))
    colors = dict(zip(names, class_colors(len(names))))
    fig, _ = subplots(1, len(pairs), pairs, height, h_space=0.06)
    for col, pair in enumerate(pairs, start=1):
        part = df[df["pair"] == pair]
        for name in names:
            rows = part[part[series].astype(str) == name].sort_values("block", kind="stable")
            if rows.empty:
                continue
            fig.add_trace(go.Scatter(
                x=rows["block"].to_numpy(), y=rows["cka"].to_numpy(dtype=float), mode="lines+markers", name=name,
                legendgroup=name, showlegend=col == 1, line_color=colors[name],
                hovertemplate=f"{name}<br>{pair}, block %{{x}}: %{{y:.3f}}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="block", dtick=1)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    return finish(fig, title if title is not None else "linear CKA between pathways over depth", height,
                  legend_title_text=series)


def cka_grid(matrices, titles=None, labels=("q", "k", "v"), *, cols: int = 4, title: str | None = None,
             panel_px: int = 190) -> go.Figure:
    """Annotated similarity matrices side by side: matrices (n, 3, 3) (e.g. one block of several checkpoints,
    or every block of one), on one sequential [0, 1] scale with a single colour bar."""
    labels = names_list(labels, "labels")
    k = len(labels)
    arr = as_float(matrices, "matrices", 3, f"(n, {k}, {k})")
    if arr.shape[1:] != (k, k) or arr.shape[0] < 1:
        raise ValueError(f"matrices must have shape (n, {k}, {k}) for labels {labels}, got {arr.shape}")
    n = arr.shape[0]
    titles = check_titles(titles, n) or [str(i) for i in range(n)]
    rows, ncols = grid_shape(n, cols, max_cols=cols)
    grid = PanelGrid(rows, ncols, titles, panel_px, h_space=0.05)
    for i in range(n):
        text = [[f"{v:.2f}" if np.isfinite(v) else "" for v in row] for row in arr[i]]
        grid.add(dict(type="heatmap", z=arr[i], x=labels, y=labels, zmin=0.0, zmax=1.0, zauto=False,
                      colorscale=SEQUENTIAL, text=text, texttemplate="%{text}", name=titles[i],
                      showscale=i == 0, colorbar=colorbar("CKA") if i == 0 else None,
                      hovertemplate=f"{titles[i]}<br>%{{y}} · %{{x}}: %{{z:.3f}}<extra></extra>"),
                 i // ncols + 1, i % ncols + 1)
    fig = grid.figure(show_ticks=True, xaxis=dict(type="category"), yaxis=dict(type="category"))
    return finish(fig, title if title is not None else "linear CKA between q, k and v", grid.height)
