"""Layer x layer representation similarity (CKA between the block outputs of two models)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ._common import SEQUENTIAL, as_float, colorbar, finish, names_list


def _short(name: str) -> str:
    """'blocks.3' -> 'b3', 'cls_attn_blocks.0' -> 'cls0', 'stages.1.blocks.2' -> 's1.b2'."""
    return (name.replace("cls_attn_blocks.", "cls").replace("stages.", "s").replace("blocks.", "b"))


def layer_cka_heatmap(matrix, rows, cols, *, row_title: str = "model A", col_title: str = "model B",
                      title: str | None = None, annotate: bool | None = None, fit_scale: bool = False
                      ) -> go.Figure:
    """CKA between every block of one model (rows, y) and of another (columns, x), on [0, 1].

    `rows` / `cols`: block names (shortened for the axes: b3 = blocks.3, cls0 = cls_attn_blocks.0,
    s1.b2 = stages.1.blocks.2). Cells are annotated to 2 decimals when the matrix is small (<= 16 x 16).
    `fit_scale`: the colour scale spans the values' own range instead of [0, 1] (to see small differences)."""
    rows, cols = names_list(rows, "rows"), names_list(cols, "cols")
    z = as_float(matrix, "matrix", 2, "(rows, cols)")
    if z.shape != (len(rows), len(cols)):
        raise ValueError(f"matrix must have shape ({len(rows)}, {len(cols)}) to match the labels, got {z.shape}")
    x, y = [_short(c) for c in cols], [_short(r) for r in rows]
    annotate = max(z.shape) <= 16 if annotate is None else annotate
    finite = z[np.isfinite(z)]
    low, high = (float(finite.min()), float(finite.max())) if fit_scale and finite.size else (0.0, 1.0)
    trace = go.Heatmap(z=z, x=x, y=y, zmin=low, zmax=max(high, low + 1e-6), zauto=False, colorscale=SEQUENTIAL,
                       colorbar=colorbar("linear CKA"), customdata=np.array([[f"{r} · {c}" for c in cols]
                                                                              for r in rows]),
                       hovertemplate="%{customdata}: %{z:.3f}<extra></extra>",
                       **(dict(text=np.vectorize(lambda v: f"{v:.2f}")(z), texttemplate="%{text}",
                               textfont=dict(size=9)) if annotate else {}))
    fig = go.Figure(trace)
    fig.update_xaxes(type="category", title=col_title, constrain="domain")
    fig.update_yaxes(type="category", title=row_title, autorange="reversed", scaleanchor="x",
                     constrain="domain")
    return finish(fig, title, max(320, 140 + 30 * len(rows)))
