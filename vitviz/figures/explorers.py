"""Explorer figures: every layer (and head, and query token) of one image in ONE figure, switched
in the browser by a layer slider, so that changing the layer needs no round trip to the server.

Heads and query tokens are side-by-side panels (columns and rows) of the same figure; the slider
shows one layer's traces (by opacity and hover, a style-only change: see `layer_slider`).
Each heat keeps its raw values at token resolution: a heatmap placed over the image with one cell
per patch (`x0`, `dx`), so what the figure holds is exactly the map it was given (hover shows the
value); the browser does the upscaling.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ._common import (DIVERGING, HEAT, SEQUENTIAL, PanelGrid, as_float, as_image, colorbar, finish,
                      finite_range, symmetric_range)

__all__ = ["attention_explorer", "matrix_explorer", "layer_slider", "layer_menu"]


def layer_slider(layer_of_trace: list[int | None], opacity_of_trace: list[float], n_layers: int,
                 active: int, labels: list[str] | None = None, prefix: str = "layer ") -> dict:
    """A plotly slider with one step per layer: step L shows exactly the traces of layer L.

    Showing and hiding is done by opacity (0 = hidden) with hover turned off ("skip") on hidden traces:
    a style-only restyle, which the browser applies without recomputing any trace (restyling `visible`
    makes plotly recalculate and redraw every trace: it made the Cross-covariance figure's first render
    faster but a layer switch in the app 2-3x slower, over the 100 ms target). Traces whose layer is None
    (the image) stay as they are. `opacity_of_trace` is each trace's opacity when shown."""
    return dict(active=active, steps=_layer_steps(layer_of_trace, opacity_of_trace, n_layers, labels),
                currentvalue=dict(prefix=prefix, font=dict(size=13)),
                transition=dict(duration=0), pad=dict(t=30, b=10), len=1.0, x=0.0)


def layer_menu(layer_of_trace: list[int | None], opacity_of_trace: list[float], n_layers: int,
               active: int, labels: list[str] | None = None) -> dict:
    """The same switch as `layer_slider` as a dropdown menu (plotly updatemenu) at the figure's top right:
    for many steps with long labels (e.g. the classes a relevance map can explain)."""
    buttons = _layer_steps(layer_of_trace, opacity_of_trace, n_layers, labels)
    return dict(type="dropdown", buttons=buttons, active=active, showactive=True, direction="down",
                x=1.0, xanchor="right", y=1.0, yanchor="bottom", pad=dict(b=24))


def _layer_steps(layer_of_trace, opacity_of_trace, n_layers, labels) -> list[dict]:
    steps = []
    for layer in range(n_layers):
        shown = [owner is None or owner == layer for owner in layer_of_trace]
        steps.append(dict(method="restyle", label=labels[layer] if labels else str(layer), args=[{
            "opacity": [op if on else 0.0 for op, on in zip(opacity_of_trace, shown)],
            "hoverinfo": [hover_state(owner, on) for owner, on in zip(layer_of_trace, shown)]}]))
    return steps


def hover_state(owner: int | None, shown: bool) -> str:
    """hoverinfo of a trace: "skip" for the fixed traces (image, labels) and hidden layers."""
    return "all" if owner is not None and shown else "skip"


def _active(active: int, n: int) -> int:
    active = int(active)
    if active < 0:
        active += n
    if not 0 <= active < n:
        raise ValueError(f"active layer must be in [0, {n}), got {active}")
    return active


def attention_explorer(image, heats, *, row_labels, col_labels, layer_labels=None,
                       active: int = -1, signed: bool | None = None, title: str | None = None,
                       panel_px: int = 190, opacity: float = 0.55, layer_name: str = "layer",
                       value_name: str = "attention", control: str = "slider") -> go.Figure:
    """Attention heat over the image for every layer, head and query token, in one figure.

    image:      uint8 (H, W, 3).
    heats:      list over layers of rows (one per query token, `row_labels`) of columns (one per
                head or head mean, `col_labels`): each entry an (h, w) map on the key grid, or None
                where it does not exist (a layer with fewer heads, or without a class token).
                Grids may differ between layers (CvT stages); each cell covers H/h x W/w pixels.
    active:     the layer shown first (negative counts from the end).
    signed:     True (or None with a negative value anywhere) draws every heat with its raw
                values on one diverging scale centred at 0, shared by all panels and layers, with
                a colour bar; otherwise each heat uses a sequential scale over its own range.

    Trace names are "<row label> · <layer_name> <L> · <col label>"; a slider step per layer
    toggles trace visibility in the browser. control="dropdown" puts the steps in a dropdown menu
    instead (`layer_menu`: many steps, long labels); value_name names the values in the hover.
    """
    if control not in ("slider", "dropdown"):
        raise ValueError(f"control must be 'slider' or 'dropdown', got {control!r}")
    img = as_image(image)
    H, W = img.shape[:2]
    if not heats:
        raise ValueError("heats must hold at least one layer")
    row_labels, col_labels = [str(r) for r in row_labels], [str(c) for c in col_labels]
    n_layers, n_rows, n_cols = len(heats), len(row_labels), len(col_labels)
    arrays: list[list[list[np.ndarray | None]]] = []
    for i, layer in enumerate(heats):
        if len(layer) != n_rows or any(len(row) != n_cols for row in layer):
            raise ValueError(f"heats[{i}] must have {n_rows} rows of {n_cols} maps (or None)")
        arrays.append([[None if m is None else as_float(m, f"heats[{i}][{r}][{c}]", 2, "(h, w)")
                        for c, m in enumerate(row)] for r, row in enumerate(layer)])
    present = [m for layer in arrays for row in layer for m in row if m is not None]
    if not present:
        raise ValueError("heats holds no map")
    if signed is None:
        signed = any(np.nanmin(m) < 0 for m in present if np.isfinite(m).any())
    shared = symmetric_range(0.0, *present) if signed else None
    layer_labels = [str(v) for v in (layer_labels or range(n_layers))]
    if len(layer_labels) != n_layers:
        raise ValueError(f"layer_labels must have {n_layers} entries, got {len(layer_labels)}")
    active = _active(active, n_layers)

    panel_titles = [f"{r} · {c}" for r in row_labels for c in col_labels]
    grid = PanelGrid(n_rows, n_cols, panel_titles, panel_px, extra_top=10)
    owners: list[int | None] = []
    opacities: list[float] = []
    for r in range(n_rows):
        for c in range(n_cols):
            grid.add(dict(type="image", z=img, name="image", hoverinfo="skip"), r + 1, c + 1)
            owners.append(None)
            opacities.append(1.0)
    bar_shown = False
    for layer, rows in enumerate(arrays):
        for r, row in enumerate(rows):
            for c, m in enumerate(row):
                if m is None:
                    continue
                h, w = m.shape
                lo, hi = shared if signed else finite_range(m)
                scale = dict(colorscale=DIVERGING, zmid=0.0) if signed else dict(colorscale=HEAT)
                bar = signed and not bar_shown  # one colour bar: the signed scale is shared by every map
                bar_shown = bar_shown or bar
                on = layer == active
                grid.add(dict(
                    type="heatmap", z=m, x0=(W / w - 1) / 2, dx=W / w, y0=(H / h - 1) / 2, dy=H / h,
                    zmin=lo, zmax=hi, zauto=False, opacity=opacity if on else 0.0, **scale,
                    showscale=bar, colorbar=colorbar("value (signed)") if bar else None,
                    hoverinfo=hover_state(layer, on),
                    name=f"{row_labels[r]} · {layer_name} {layer_labels[layer]} · {col_labels[c]}",
                    hovertemplate=f"{layer_name} {layer_labels[layer]} · {col_labels[c]}<br>"
                                  f"x %{{x}}, y %{{y}} px<br>{value_name} %{{z:.4g}}<extra></extra>"),
                    r + 1, c + 1)
                owners.append(layer)
                opacities.append(opacity)
    if control == "slider":
        switch = dict(sliders=[layer_slider(owners, opacities, n_layers, active, layer_labels,
                                            prefix=f"{layer_name} ")])
    else:
        switch = dict(updatemenus=[layer_menu(owners, opacities, n_layers, active, layer_labels)])
    fig = grid.figure(xaxis=dict(range=[-0.5, W - 0.5]), yaxis=dict(range=[H - 0.5, -0.5], autorange=False),
                      **switch)
    return finish(fig, title, grid.height + (90 if control == "slider" else 30))


def matrix_explorer(matrices, *, temperatures=None, temperature_label: str = "τ",
                    shared_scale: bool = True, zmid: float | None = None, active: int = -1,
                    title: str | None = None, panel_px: int = 220) -> go.Figure:
    """(layers, heads, rows, cols) matrices (e.g. XCiT's d_h x d_h cross-covariance attention):
    the heads of one layer side by side, a slider over layers switching in the browser.

    shared_scale: one range over every layer and head (so layers compare by colour) with a colour
                  bar; otherwise each matrix has its own range (hover shows the values).
    temperatures: optional (layers, heads), shown in each panel's title (a text trace of its layer).
    Trace names are "layer <L> · head <H>"; the titles' are "title · layer <L> · head <H>".
    """
    arr = as_float(matrices, "matrices", 4, "(layers, heads, rows, cols)")
    n_layers, n_heads, n_rows, n_cols = arr.shape
    if min(arr.shape) < 1:
        raise ValueError(f"matrices must be non-empty, got shape {arr.shape}")
    temps = None
    if temperatures is not None:
        temps = as_float(temperatures, "temperatures", 2, "(layers, heads)")
        if temps.shape != (n_layers, n_heads):
            raise ValueError(f"temperatures must have shape {(n_layers, n_heads)}, got {temps.shape}")
    active = _active(active, n_layers)

    def limits(*a):
        return symmetric_range(float(zmid), *a) if zmid is not None else finite_range(*a)

    grid = PanelGrid(1, n_heads, None, panel_px, extra_top=24)
    cs = DIVERGING if zmid is not None else SEQUENTIAL
    mid = {} if zmid is None else {"zmid": float(zmid)}
    shared = limits(arr) if shared_scale else None
    owners, opacities, heatmap = [], [], []
    for layer in range(n_layers):
        on = layer == active
        for j in range(n_heads):
            lo, hi = shared if shared else limits(arr[layer, j])
            bar = bool(shared) and layer == 0 and j == 0  # the shared scale: one colour bar for all
            grid.add(dict(type="heatmap", z=arr[layer, j], zmin=lo, zmax=hi, zauto=False, colorscale=cs,
                          **mid, showscale=bar, colorbar=colorbar() if bar else None,
                          opacity=1.0 if on else 0.0, hoverinfo=hover_state(layer, on),
                          name=f"layer {layer} · head {j}",
                          hovertemplate=f"layer {layer} · head {j}<br>row %{{y}}, col %{{x}}"
                                        "<br>%{z:.4g}<extra></extra>"),
                     1, j + 1)
            owners.append(layer)
            opacities.append(1.0)
            heatmap.append(True)
            # the panel's title: a text trace of its layer, shown and hidden like the maps (a style-only
            # restyle; rewriting layout annotations per step instead made a step 3x slower in Chromium)
            text = f"layer {layer} · head {j}" + ("" if temps is None else
                                                  f" · {temperature_label}={temps[layer, j]:.2f}")
            grid.add(dict(type="scatter", x=[(n_cols - 1) / 2], y=[-0.5], mode="text", text=[text],
                          textposition="top center", cliponaxis=False, showlegend=False,
                          textfont=dict(size=11), opacity=1.0 if on else 0.0, hoverinfo="skip",
                          name=f"title · layer {layer} · head {j}"),
                     1, j + 1)
            owners.append(layer)
            opacities.append(1.0)
            heatmap.append(False)
    slider = layer_slider(owners, opacities, n_layers, active)
    for step in slider["steps"]:  # the titles never take hover
        step["args"][0]["hoverinfo"] = [h if is_map else "skip"
                                        for h, is_map in zip(step["args"][0]["hoverinfo"], heatmap)]
    fig = grid.figure(xaxis=dict(range=[-0.5, n_cols - 0.5]),
                      yaxis=dict(range=[n_rows - 0.5, -0.5], autorange=False), sliders=[slider])
    height = grid.height
    return finish(fig, title, height + 90)
