"""Matrix figures: per-head matrix grids (XCiT cross-covariance, token-mixing weights),
similarity matrices, code heatmaps and confusion matrices."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ._common import (DIVERGING, SEQUENTIAL, PanelGrid, as_float, check_titles, colorbar, finish,
                      finite_range, grid_shape, names_list, symmetric_range)

__all__ = ["matrix_grid", "matrix_mosaic", "mosaic_tiles", "similarity_heatmap", "code_similarity_grid",
           "codes_heatmap", "confusion_heatmap"]


def _blocks(matrices) -> np.ndarray:
    """(layers, heads, rows, cols) from an array or a list over layers of (heads, rows, cols)."""
    expected = "(layers, heads, rows, cols) or a list of (heads, rows, cols)"
    if isinstance(matrices, (list, tuple)):
        if not matrices:
            raise ValueError(f"matrices must have shape {expected}, got an empty list")
        layers = [as_float(m, f"matrices[{i}]", 3, "(heads, rows, cols)")
                  for i, m in enumerate(matrices)]
        if len({m.shape for m in layers}) != 1:
            raise ValueError(f"matrices: every layer must have the same (heads, rows, cols) shape, "
                             f"got {[m.shape for m in layers]}")
        arr = np.stack(layers)
    else:
        arr = as_float(matrices, "matrices", 4, expected)
    if min(arr.shape) < 1:
        raise ValueError(f"matrices must have shape {expected} with non-empty blocks, "
                         f"got {tuple(arr.shape)}")
    return arr


def matrix_grid(matrices, shared_scale: bool = True, titles=None, zmid: float | None = None,
                *, temperatures=None, temperature_label: str = "τ", title: str | None = None,
                panel_px: int = 130, colorscale: str | None = None) -> go.Figure:
    """Grid (layers x heads) of matrix heatmaps, e.g. XCiT cross-covariance attention (d x d) or
    Mixer's token-mixing weights (hidden x tokens).

    matrices:     (layers, heads, rows, cols) or a list over layers of (heads, rows, cols).
    shared_scale: one zmin/zmax over all panels and a single colour bar; otherwise each panel
                  uses its own range (no colour bar; hover shows values).
    titles:       one per layer ("<title> · h<j>") or one per panel (layers*heads, row major).
    zmid:         centre of a diverging colour scale (ranges become symmetric around it).
    temperatures: optional (layers, heads) values appended to the titles as
                  "<temperature_label>=0.83" (say which convention the numbers follow).
    """
    arr = _blocks(matrices)
    n_layers, n_heads = arr.shape[:2]
    if titles is None:
        labels = [f"L{i} h{j}" for i in range(n_layers) for j in range(n_heads)]
    else:
        if isinstance(titles, str):
            raise ValueError("titles must be a sequence, got a single string")
        titles = [str(t) for t in titles]
        if len(titles) == n_layers:
            labels = [f"{t} · h{j}" for t in titles for j in range(n_heads)]
        elif len(titles) == n_layers * n_heads:
            labels = titles
        else:
            raise ValueError(f"titles must have {n_layers} (one per layer) or "
                             f"{n_layers * n_heads} (one per panel) entries, got {len(titles)}")
    if temperatures is not None:
        temps = as_float(temperatures, "temperatures", 2, f"(layers, heads) = "
                                                          f"{(n_layers, n_heads)}")
        if temps.shape != (n_layers, n_heads):
            raise ValueError(f"temperatures must have shape (layers, heads) = "
                             f"{(n_layers, n_heads)}, got {temps.shape}")
        labels = [f"{lab} · {temperature_label}={t:.2f}" for lab, t in zip(labels, temps.ravel())]

    cs = colorscale or (DIVERGING if zmid is not None else SEQUENTIAL)

    def limits(*a):
        return symmetric_range(float(zmid), *a) if zmid is not None else finite_range(*a)

    shared = limits(arr) if shared_scale else None
    grid = PanelGrid(n_layers, n_heads, labels, panel_px)
    for i in range(n_layers):
        for j in range(n_heads):
            lo, hi = shared if shared else limits(arr[i, j])
            show = bool(shared) and i == 0 and j == 0
            mid = {} if zmid is None else {"zmid": float(zmid)}
            grid.add(dict(type="heatmap", z=arr[i, j], zmin=lo, zmax=hi, zauto=False, colorscale=cs, **mid,
                          showscale=show, colorbar=colorbar() if show else None,
                          name=labels[i * n_heads + j],
                          hovertemplate="row %{y}, col %{x}<br>%{z:.4g}<extra></extra>"),
                     i + 1, j + 1)
    return finish(grid.figure(), title, grid.height)


def matrix_mosaic(matrices, *, zmid: float | None = None, row_name: str = "layer", col_name: str = "head",
                  col_labels=None, title: str | None = None, panel_px: int = 130,
                  colorscale: str | None = None) -> go.Figure:
    """Every matrix of (layers, heads, rows, cols) as one tile of ONE heatmap: layers down, heads across,
    one empty (NaN) row and column between tiles, one shared colour scale with a colour bar.

    The same overview as `matrix_grid(shared_scale=True)`, drawn as a single trace on a single pair of axes,
    so the browser renders it several times faster (48 tiles: about a fifth of the time; issue 12). Rows and
    columns are categories named "L<layer> r<row>" and "h<head> c<col>" (what the hover shows), with one tick per
    tile ("layer i", "head j" or `col_labels`).
    """
    arr = _blocks(matrices)
    n_layers, n_heads, n_rows, n_cols = arr.shape
    col_labels = [f"{col_name} {j}" for j in range(n_heads)] if col_labels is None else [str(c) for c in col_labels]
    if len(col_labels) != n_heads:
        raise ValueError(f"col_labels must have {n_heads} entries, got {len(col_labels)}")
    z = np.full((n_layers * (n_rows + 1) - 1, n_heads * (n_cols + 1) - 1), np.nan)
    for i in range(n_layers):
        for j in range(n_heads):
            z[i * (n_rows + 1):i * (n_rows + 1) + n_rows, j * (n_cols + 1):j * (n_cols + 1) + n_cols] = arr[i, j]
    y = [f"L{i} r{r}" if r < n_rows else f"L{i} gap" for i in range(n_layers) for r in range(n_rows + 1)][:len(z)]
    x = [f"h{j} c{c}" if c < n_cols else f"h{j} gap" for j in range(n_heads) for c in range(n_cols + 1)][:z.shape[1]]
    lo, hi = symmetric_range(float(zmid), arr) if zmid is not None else finite_range(arr)
    mid = {} if zmid is None else {"zmid": float(zmid)}
    fig = go.Figure(data=[dict(
        type="heatmap", z=z, x=x, y=y, zmin=lo, zmax=hi, zauto=False, hoverongaps=False,
        colorscale=colorscale or (DIVERGING if zmid is not None else SEQUENTIAL), **mid, colorbar=colorbar(),
        name=f"{n_layers} {row_name}s x {n_heads} {col_name}s",
        hovertemplate="%{y} · %{x}<br>%{z:.4g}<extra></extra>")])
    fig.update_xaxes(type="category", tickvals=[f"h{j} c{n_cols // 2}" for j in range(n_heads)],
                     ticktext=col_labels, side="top", showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(type="category", tickvals=[f"L{i} r{n_rows // 2}" for i in range(n_layers)],
                     ticktext=[f"{row_name} {i}" for i in range(n_layers)], autorange="reversed",
                     scaleanchor="x", constrain="domain", showgrid=False, zeroline=False)
    cell = panel_px / max(n_rows, n_cols)
    fig = finish(fig, title, 110 + cell * len(y))
    return fig.update_layout(margin=dict(l=70, r=20, t=80 if title else 40, b=20))


def mosaic_tiles(fig: go.Figure) -> np.ndarray:
    """The (layers, heads, rows, cols) matrices back from a `matrix_mosaic` figure (for tests and exports)."""
    trace = fig.data[0]
    z = np.asarray(trace.z, dtype=float)
    rows = sorted({int(label.split(" r")[1]) for label in trace.y if " r" in label})
    cols = sorted({int(label.split(" c")[1]) for label in trace.x if " c" in label})
    n_rows, n_cols = len(rows), len(cols)
    n_layers, n_heads = (len(z) + 1) // (n_rows + 1), (z.shape[1] + 1) // (n_cols + 1)
    return np.stack([np.stack([z[i * (n_rows + 1):i * (n_rows + 1) + n_rows, j * (n_cols + 1):j * (n_cols + 1) + n_cols]
                               for j in range(n_heads)]) for i in range(n_layers)])


def _fmt(values: np.ndarray, spec: str) -> list[list[str]]:
    return [[format(v, spec) if np.isfinite(v) else "" for v in row] for row in values]


def _square(x, name: str, n: int | None = None) -> np.ndarray:
    arr = as_float(x, name, 2, "(n, n)")
    if arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise ValueError(f"{name} must be a square (n, n) matrix, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, {n}) to match {n} labels, "
                         f"got {arr.shape}")
    return arr


def _similarity_trace(sim: np.ndarray, labels: list[str], showscale: bool,
                      name: str = "") -> dict:
    return dict(type="heatmap", z=sim, x=labels, y=labels, zmin=-1.0, zmax=1.0, zauto=False,
                colorscale=DIVERGING, text=_fmt(sim, ".2f"), texttemplate="%{text}",
                showscale=showscale, colorbar=colorbar("cosine") if showscale else None,
                name=name, hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>")


def similarity_heatmap(sim, labels, title: str | None = None, *, height: int | None = None
                       ) -> go.Figure:
    """Square similarity matrix (e.g. cosine similarity of codes c_q, c_k, c_v) with each
    cell annotated to 2 decimals, on a diverging colour scale fixed to [-1, 1]."""
    labels = names_list(labels, "labels")
    sim = _square(sim, "sim", len(labels))
    fig = go.Figure(data=[_similarity_trace(sim, labels, True)])
    fig.update_xaxes(type="category", side="bottom")
    fig.update_yaxes(type="category", autorange="reversed", scaleanchor="x",
                     constrain="domain")
    fig.update_xaxes(constrain="domain")
    return finish(fig, title, height or max(260, 120 + 45 * len(labels)))


def code_similarity_grid(sims, labels=("q", "k", "v"), *, titles=None, cols: int = 6,
                         title: str | None = None, panel_px: int = 150) -> go.Figure:
    """One annotated similarity matrix per block: sims (blocks, 3, 3) with labels q, k, v.
    Shared [-1, 1] diverging scale and a single colour bar."""
    labels = names_list(labels, "labels")
    n = len(labels)
    arr = as_float(sims, "sims", 3, f"(blocks, {n}, {n})")
    if arr.shape[1:] != (n, n) or arr.shape[0] < 1:
        raise ValueError(f"sims must have shape (blocks, {n}, {n}) for labels {labels}, "
                         f"got {arr.shape}")
    blocks = arr.shape[0]
    titles = check_titles(titles, blocks) or [f"block {b}" for b in range(blocks)]
    rows, ncols = grid_shape(blocks, cols, max_cols=cols)
    grid = PanelGrid(rows, ncols, titles, panel_px, h_space=0.04)
    for b in range(blocks):
        grid.add(_similarity_trace(arr[b], labels, b == 0, titles[b]), b // ncols + 1, b % ncols + 1)
    fig = grid.figure(show_ticks=True, xaxis=dict(type="category"), yaxis=dict(type="category"))
    return finish(fig, title if title is not None else "cosine similarity of codes", grid.height)


def codes_heatmap(codes, labels=("q", "k", "v"), *, title: str | None = None) -> go.Figure:
    """Codes (blocks, 3, code_length) as one heatmap with rows "block i · q/k/v".

    Codes with negative values use a diverging scale centred on 0, others a sequential one.
    """
    labels = names_list(labels, "labels")
    n = len(labels)
    arr = as_float(codes, "codes", 3, f"(blocks, {n}, code_length)")
    if arr.shape[1] != n or arr.shape[0] < 1 or arr.shape[2] < 1:
        raise ValueError(f"codes must have shape (blocks, {n}, code_length) for labels "
                         f"{labels}, got {arr.shape}")
    blocks, _, length = arr.shape
    z = arr.reshape(blocks * n, length)
    rows = [f"block {b} · {lab}" for b in range(blocks) for lab in labels]
    finite = z[np.isfinite(z)]
    if finite.size and finite.min() < 0:
        cs, (lo, hi) = DIVERGING, symmetric_range(0.0, z)
    else:
        cs, (lo, hi) = SEQUENTIAL, finite_range(z)
    fig = go.Figure(go.Heatmap(z=z, x=list(range(length)), y=rows, zmin=lo, zmax=hi,
                               zauto=False, colorscale=cs, colorbar=colorbar("code"),
                               hovertemplate="%{y}<br>entry %{x}: %{z:.4g}<extra></extra>"))
    fig.update_yaxes(type="category", autorange="reversed", tickfont_size=10)
    fig.update_xaxes(title_text="code entry")
    return finish(fig, title if title is not None else "codes", max(240, 90 + 16 * len(rows)))


def confusion_heatmap(confusion, classes, normalize: bool = True, title: str | None = None,
                      *, annotate: bool | None = None) -> go.Figure:
    """Confusion matrix: rows = true class, columns = predicted class.

    Colour is the row-normalised fraction if `normalize` (rows with no samples stay 0), else
    the count. Cells are annotated with counts (by default only up to 20 classes). Hover shows
    count and row fraction; each cell's customdata is [count, fraction, true index, predicted
    index], so a click event identifies (true, pred).
    """
    names = names_list(classes)
    k = len(names)
    cm = _square(confusion, "confusion", k)
    if (cm[np.isfinite(cm)] < 0).any() or not np.isfinite(cm).all():
        raise ValueError("confusion must contain finite, non-negative counts")
    totals = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    ti, pi = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    custom = np.stack([cm, frac, ti, pi], axis=-1)
    z = frac if normalize else cm
    if annotate is None:
        annotate = k <= 20
    counts_txt = [[f"{v:.0f}" if float(v).is_integer() else f"{v:.3g}" for v in row]
                  for row in cm]
    trace = go.Heatmap(
        z=z, x=names, y=names, customdata=custom, colorscale="Blues",
        zmin=0.0, zmax=1.0 if normalize else max(float(cm.max()), 1.0), zauto=False,
        text=counts_txt if annotate else None, texttemplate="%{text}" if annotate else None,
        colorbar=colorbar("row fraction" if normalize else "count"),
        hovertemplate="true %{y}<br>predicted %{x}<br>count %{customdata[0]:.0f}"
                      "<br>row fraction %{customdata[1]:.1%}<extra></extra>")
    fig = go.Figure(trace)
    fig.update_xaxes(title_text="predicted", type="category", constrain="domain")
    fig.update_yaxes(title_text="true", type="category", autorange="reversed",
                     scaleanchor="x", constrain="domain")
    return finish(fig, title if title is not None else "confusion matrix",
                  min(1000, max(320, 140 + 28 * k)))
