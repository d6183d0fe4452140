"""Statistics figures: spectra, per-block statistics, weight histograms, per-class
comparisons of two models and 2-D projections of features."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ._common import (as_float, as_numpy, check_mapping, class_colors, finish, long_lines,
                      names_list, require_columns)

__all__ = ["spectrum_plot", "stat_by_block", "histogram_overlay", "per_class_bars",
           "difference_bars", "projection_scatter", "accuracy_vs_params", "PER_CLASS_COLUMNS"]

PER_CLASS_COLUMNS = ("class", "accuracy_a", "accuracy_b", "ci_a_low", "ci_a_high", "ci_b_low",
                     "ci_b_high", "difference", "diff_ci_low", "diff_ci_high", "holm_p",
                     "significant")
MODEL_COLORS = ("#1f77b4", "#ff7f0e")
SIGNIFICANT_COLOR = "#d62728"
NOT_SIGNIFICANT_COLOR = "#9e9e9e"


def spectrum_plot(spectra, log_y: bool = True, *, normalize: bool = False,
                  title: str | None = None, height: int = 380) -> go.Figure:
    """Singular-value spectra, one line per name (dict name -> 1-D array of singular values,
    plotted against their rank 1..n). `normalize` divides each spectrum by its largest value."""
    items = check_mapping(spectra, "spectra")
    fig = go.Figure()
    for name, s in items:
        arr = as_float(s, f"spectra[{name!r}]", 1, "(n,) singular values")
        if arr.size == 0:
            raise ValueError(f"spectra[{name!r}] must contain at least one value")
        if normalize:
            top = np.nanmax(np.abs(arr))
            arr = arr / top if top > 0 else arr
        fig.add_trace(go.Scatter(x=np.arange(1, arr.size + 1), y=arr, mode="lines", name=name,
                                 hovertemplate=f"{name}<br>σ%{{x}} = %{{y:.4g}}<extra></extra>"))
    fig.update_xaxes(title_text="index")
    fig.update_yaxes(title_text="singular value" + (" / σ₁" if normalize else ""),
                     type="log" if log_y else "linear")
    return finish(fig, title if title is not None else "singular-value spectra", height,
                  hovermode="x unified")


def stat_by_block(df, x: str = "block", y: str | None = None, color: str | None = None, *,
                  error: str | None = None, title: str | None = None,
                  y_title: str | None = None, height: int = 380) -> go.Figure:
    """A per-block statistic (norm, effective rank, CKA, ...) as lines with markers from a
    long-format DataFrame: one line per value of `color` (or one line if None)."""
    if y is None:
        raise ValueError("y must name the statistic column to plot")
    fig = go.Figure(long_lines(df, x, y, color, error))
    fig.update_xaxes(title_text=x)
    if np.issubdtype(np.asarray(df[x]).dtype, np.integer):
        fig.update_xaxes(dtick=1)
    fig.update_yaxes(title_text=y_title or y)
    return finish(fig, title if title is not None else f"{y} by {x}", height,
                  legend_title_text=color or "")


def histogram_overlay(values, nbins: int = 60, *, density: bool = False,
                      title: str | None = None, x_title: str = "value",
                      height: int = 380) -> go.Figure:
    """Overlaid histograms of (flattened) values, e.g. weights of several models.

    All histograms use the same `nbins` bins spanning the common finite range, so they are
    directly comparable; `density` normalises each to a probability density. Binned with numpy and
    drawn as overlaid bars (one per bin, `width` the bin size; hover: the bin and its count).
    """
    items = check_mapping(values, "values")
    if isinstance(nbins, bool) or not isinstance(nbins, (int, np.integer)) or nbins < 1:
        raise ValueError(f"nbins must be a positive integer, got {nbins!r}")
    data = []
    for name, v in items:
        arr = as_float(v, f"values[{name!r}]").ravel()
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            raise ValueError(f"values[{name!r}] must contain at least one finite value")
        data.append((name, arr))
    lo = min(float(a.min()) for _, a in data)
    hi = max(float(a.max()) for _, a in data)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    size = (hi - lo) / int(nbins)
    edges = lo + size * np.arange(int(nbins) + 1)
    edges[-1] = hi
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for name, arr in data:
        # binned here, drawn as bars: the browser gets nbins numbers per series instead of every value
        # (the weights of one block of four checkpoints were about 0.9 MB of JSON)
        counts, _ = np.histogram(arr, bins=edges)
        heights = counts / (arr.size * size) if density else counts.astype(float)
        fig.add_trace(go.Bar(x=centres, y=heights, width=size, name=name, opacity=0.55,
                             customdata=np.stack([edges[:-1], edges[1:], counts], axis=-1),
                             hovertemplate=f"{name}<br>[%{{customdata[0]:.4g}}, %{{customdata[1]:.4g}}): "
                                           "%{customdata[2]:d} values<br>%{y:.4g}<extra></extra>"))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text="density" if density else "count")
    return finish(fig, title if title is not None else "value distribution", height,
                  barmode="overlay")


def _check_names(names) -> tuple[str, str]:
    if isinstance(names, str) or len(names) != 2:
        raise ValueError(f"names must be two model names (A, B), got {names!r}")
    return str(names[0]), str(names[1])


def _col(df, name: str) -> np.ndarray:
    return np.asarray(df[name].to_numpy(), dtype=float)


def _significant(df) -> np.ndarray:
    return np.array([bool(v) if v is not None and v == v else False
                     for v in df["significant"].tolist()])


def per_class_bars(df, names: Sequence[str] = ("A", "B"), *, title: str | None = None,
                   height: int = 400) -> go.Figure:
    """Grouped bars of per-class accuracy of models A and B with asymmetric CI error bars.

    `df` is the per-class comparison table (columns class, accuracy_a, accuracy_b, ci_a_low,
    ci_a_high, ci_b_low, ci_b_high, difference, diff_ci_low, diff_ci_high, holm_p,
    significant), e.g. from `vitviz.metrics.compare_per_class`.
    """
    require_columns(df, PER_CLASS_COLUMNS)
    na, nb = _check_names(names)
    classes = [str(c) for c in df["class"].tolist()]
    fig = go.Figure()
    for tag, name, color in (("a", na, MODEL_COLORS[0]), ("b", nb, MODEL_COLORS[1])):
        acc = _col(df, f"accuracy_{tag}")
        low, high = _col(df, f"ci_{tag}_low"), _col(df, f"ci_{tag}_high")
        custom = np.stack([low, high], axis=-1)
        fig.add_trace(go.Bar(
            x=classes, y=acc, name=name, marker_color=color, customdata=custom,
            error_y=dict(type="data", symmetric=False, array=np.clip(high - acc, 0, None),
                         arrayminus=np.clip(acc - low, 0, None), visible=True),
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.1%}}<br>CI [%{{customdata[0]:.1%}}, "
                          "%{customdata[1]:.1%}]<extra></extra>"))
    fig.update_xaxes(title_text="class", type="category", categoryorder="array",
                     categoryarray=classes)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.05], tickformat=".0%")
    return finish(fig, title if title is not None else f"per-class accuracy: {na} vs {nb}",
                  height, barmode="group", bargap=0.2, legend_orientation="h",
                  legend_y=1.02, legend_yanchor="bottom", legend_x=1, legend_xanchor="right")


def difference_bars(df, names: Sequence[str] = ("A", "B"), *, title: str | None = None,
                    height: int = 400) -> go.Figure:
    """Per-class accuracy difference (B − A) with its CI, significant classes highlighted.

    Two traces: the bars (significant ones in red, others grey) and a text trace that puts a
    "*" just beyond the interval of every significant class; plus a line at zero.
    """
    require_columns(df, PER_CLASS_COLUMNS)
    na, nb = _check_names(names)
    classes = [str(c) for c in df["class"].tolist()]
    diff, low, high = _col(df, "difference"), _col(df, "diff_ci_low"), _col(df, "diff_ci_high")
    holm_p = _col(df, "holm_p")
    sig = _significant(df)
    colors = [SIGNIFICANT_COLOR if s else NOT_SIGNIFICANT_COLOR for s in sig]
    custom = np.stack([low, high, holm_p], axis=-1)
    fig = go.Figure(go.Bar(
        x=classes, y=diff, marker_color=colors, name=f"{nb} − {na}", customdata=custom,
        error_y=dict(type="data", symmetric=False, array=np.clip(high - diff, 0, None),
                     arrayminus=np.clip(diff - low, 0, None), visible=True),
        hovertemplate="%{x}: %{y:+.1%}<br>CI [%{customdata[0]:+.1%}, %{customdata[1]:+.1%}]"
                      "<br>Holm p = %{customdata[2]:.3g}<extra></extra>",
        showlegend=False))
    finite = np.concatenate([a[np.isfinite(a)] for a in (diff, low, high)] + [np.zeros(1)])
    pad = 0.06 * max(float(np.ptp(finite)), 1e-3)
    idx = np.flatnonzero(sig)
    up = np.nan_to_num(diff[idx]) >= 0
    star_y = np.where(up, np.fmax(high[idx], diff[idx]) + pad, np.fmin(low[idx], diff[idx]) - pad)
    fig.add_trace(go.Scatter(
        x=[classes[i] for i in idx], y=star_y, mode="text", text=["*"] * len(idx),
        textfont=dict(size=18, color=SIGNIFICANT_COLOR), name="significant (Holm)",
        hoverinfo="skip", showlegend=False))
    fig.add_hline(y=0, line_width=1, line_color="black")
    fig.update_xaxes(title_text="class", type="category", categoryorder="array",
                     categoryarray=classes)
    fig.update_yaxes(title_text=f"accuracy difference ({nb} − {na})", tickformat="+.0%")
    return finish(fig, title if title is not None
                  else f"{nb} − {na} per class (* significant after Holm correction)", height)


def projection_scatter(points, labels, classes, title: str | None = None, *,
                       marker_size: int = 5, height: int = 480) -> go.Figure:
    """2-D scatter of projected features (PCA / t-SNE), one trace per class that occurs.

    points (N, 2); labels (N,) integer class indices into `classes` (names, or a class
    count). Each point's customdata is its sample index, so a selection identifies samples.
    """
    pts = as_float(points, "points", 2, "(N, 2)")
    if pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}")
    lab = as_numpy(labels)
    if lab.ndim != 1 or lab.shape[0] != pts.shape[0]:
        raise ValueError(f"labels must have shape (N,) = ({pts.shape[0]},) to match points, "
                         f"got {tuple(lab.shape)}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        if not (np.issubdtype(lab.dtype, np.floating) and np.all(lab == np.round(lab))):
            raise ValueError(f"labels must be integer class indices, got dtype {lab.dtype}")
    lab = lab.astype(np.int64)
    names = names_list(classes)
    if lab.size and (lab.min() < 0 or lab.max() >= len(names)):
        raise ValueError(f"labels must be class indices in [0, {len(names)}), got values in "
                         f"[{lab.min()}, {lab.max()}]")
    colors = class_colors(len(names))
    scatter = go.Scattergl if pts.shape[0] > 2000 else go.Scatter
    fig = go.Figure()
    for k, name in enumerate(names):
        idx = np.flatnonzero(lab == k)
        if idx.size == 0:
            continue
        fig.add_trace(scatter(x=pts[idx, 0], y=pts[idx, 1], mode="markers", name=name,
                              customdata=idx, marker=dict(size=marker_size, color=colors[k],
                                                          opacity=0.8),
                              hovertemplate=f"{name}<br>sample %{{customdata}}<extra></extra>"))
    fig.update_xaxes(title_text="component 1", zeroline=False)
    fig.update_yaxes(title_text="component 2", zeroline=False)
    return finish(fig, title if title is not None else "feature projection", height,
                  legend_title_text="class", legend_itemsizing="constant")


def accuracy_vs_params(df, *, title: str | None = None, height: int = 420) -> go.Figure:
    """Test accuracy against parameter count (log axis), one marker per checkpoint, one trace (colour) per
    family and one marker symbol per dataset: accuracies on different test sets are not comparable, so
    the dataset is part of every point's legend entry and hover.

    df: a checkpoint table with columns checkpoint, family, dataset, params, test_accuracy (rows without an
    accuracy or a parameter count are left out). Points carry their exact values; the hover names the checkpoint.
    """
    require_columns(df, ["checkpoint", "family", "dataset", "params", "test_accuracy"])
    rows = df[np.isfinite(df["test_accuracy"].astype(float)) & (df["params"].astype(float) > 0)]
    datasets = list(dict.fromkeys(rows["dataset"].astype(str)))
    symbols = ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon"]
    fig = go.Figure()
    for (family, dataset), part in rows.groupby(["family", "dataset"], sort=True):
        fig.add_trace(go.Scatter(
            x=part["params"].astype(float), y=100 * part["test_accuracy"].astype(float), mode="markers",
            text=part["checkpoint"].astype(str),  # in the hover: printed names overlap in a crowded family
            marker=dict(size=10, symbol=symbols[datasets.index(str(dataset)) % len(symbols)]),
            name=f"{family} · {dataset}" if len(datasets) > 1 else str(family),
            hovertemplate="%{text}<br>" + f"{family} · {dataset}" +
                          "<br>%{x:,.0f} parameters<br>test accuracy %{y:.1f}%<extra></extra>"))
    fig.update_xaxes(title_text="parameters", type="log")
    fig.update_yaxes(title_text="test accuracy (%)")
    return finish(fig, title if title is not None else "test accuracy vs parameters", height,
                  legend_title_text="family" + (" · dataset" if len(datasets) > 1 else ""))
