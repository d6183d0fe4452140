"""Shared helpers for the figure builders: input conversion, shape checks, subplot grids,
colour scales and layout defaults.

Nothing here writes into an array it was given: conversions return new arrays (or read-only
views that are never written to).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"
HEAT = "Inferno"
MARGIN = dict(l=50, r=20, t=50, b=45)
TITLE_GAP_PX = 26          # vertical room for a subplot title between two rows


# --------------------------------------------------------------------------- conversion

def as_numpy(x, dtype=None) -> np.ndarray:
    """`x` (torch tensor, numpy array, list, scalar) as a numpy array.

    Torch tensors are detached and moved to the CPU; bfloat16 (which numpy lacks) becomes
    float32. `dtype` optionally casts the result.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):          # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    arr = np.asarray(x)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr


def as_float(x, name: str, ndim: int | Sequence[int] | None = None,
             expected: str | None = None) -> np.ndarray:
    """`x` as a float64 array, checking its number of dimensions."""
    try:
        arr = as_numpy(x)
    except Exception as exc:  # pragma: no cover - defensive: odd objects
        raise ValueError(f"{name}: could not convert to an array ({exc})") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = expected or " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must have shape {want}, got shape {tuple(arr.shape)}")
    return arr.astype(np.float64)            # always a copy


def as_image(image, name: str = "image") -> np.ndarray:
    """An RGB image as a new uint8 array (H, W, 3).

    Accepts (H, W, 3) or channel-first (3, H, W); float images with values in [0, 1] are
    scaled to [0, 255].
    """
    arr = as_numpy(image)
    if arr.ndim != 3 or 3 not in (arr.shape[-1], arr.shape[0]):
        raise ValueError(f"{name} must have shape (H, W, 3) (or channel-first (3, H, W)), "
                         f"got shape {tuple(arr.shape)}")
    if arr.shape[-1] != 3:                                   # channel-first
        arr = np.moveaxis(arr, 0, -1)
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.dtype == np.uint8:
        return np.array(arr, copy=True)
    arr = arr.astype(np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size and finite.max() <= 1.0 and finite.min() >= 0.0:
        arr = arr * 255.0
    return np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)


def as_images(images, name: str = "images") -> np.ndarray:
    """A batch of RGB images as uint8 (N, H, W, 3); accepts an array or a list of images."""
    if isinstance(images, (list, tuple)):
        if not images:
            return np.zeros((0, 1, 1, 3), np.uint8)
        imgs = [as_image(im, f"{name}[{i}]") for i, im in enumerate(images)]
        if len({im.shape for im in imgs}) != 1:
            raise ValueError(f"{name}: all images must have the same (H, W, 3) shape, got "
                             f"{sorted({im.shape for im in imgs})}")
        return np.stack(imgs)
    arr = as_numpy(images)
    if arr.ndim != 4 or 3 not in (arr.shape[-1], arr.shape[1]):
        raise ValueError(f"{name} must have shape (N, H, W, 3), got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        return np.zeros((0,) + tuple(arr.shape[1:3]) + (3,), np.uint8)
    return np.stack([as_image(im, f"{name}[{i}]") for i, im in enumerate(arr)])


def names_list(classes, name: str = "classes") -> list[str]:
    """Class names as strings; an int k means classes '0'..'k-1'."""
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, (bool, np.bool_)):
        if classes < 1:
            raise ValueError(f"{name}: need at least one class, got {classes}")
        return [str(k) for k in range(int(classes))]
    if isinstance(classes, str):
        raise ValueError(f"{name} must be a sequence of names or a class count, got a string")
    out = [str(c) for c in classes]
    if not out:
        raise ValueError(f"{name} must name at least one class")
    return out


def check_mapping(values, name: str) -> list[tuple[str, object]]:
    """A non-empty mapping name -> array as a list of (str(name), array) pairs."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{name} must be a dict name -> array, got {type(values).__name__}")
    if not values:
        raise ValueError(f"{name} must not be empty")
    return [(str(k), v) for k, v in values.items()]


def check_titles(titles, n: int, name: str = "titles") -> list[str] | None:
    if titles is None:
        return None
    if isinstance(titles, str):
        raise ValueError(f"{name} must be a sequence of {n} strings, got a single string")
    titles = [str(t) for t in titles]
    if len(titles) != n:
        raise ValueError(f"{name} must have {n} entries, got {len(titles)}")
    return titles


def require_columns(df, columns: Sequence[str], name: str = "df") -> None:
    if not hasattr(df, "columns"):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{name} has no rows")


# --------------------------------------------------------------------------- colour ranges

def finite_range(*arrays) -> tuple[float, float]:
    """(min, max) over the finite values of all arrays; (0, 1) if there are none."""
    vals = [a[np.isfinite(a)] for a in arrays]
    vals = [v for v in vals if v.size]
    if not vals:
        return 0.0, 1.0
    lo = float(min(v.min() for v in vals))
    hi = float(max(v.max() for v in vals))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def symmetric_range(mid: float, *arrays) -> tuple[float, float]:
    """A range centred on `mid` that covers every finite value."""
    lo, hi = finite_range(*arrays)
    half = max(abs(hi - mid), abs(mid - lo))
    if half == 0:
        half = 1.0
    return mid - half, mid + half


def normalize01(x) -> np.ndarray:
    """A new float array linearly mapped to [0, 1] (a constant array becomes zeros)."""
    arr = as_float(x, "x")
    finite = arr[np.isfinite(arr)]
    if not finite.size:
        return np.zeros_like(arr)
    lo, hi = float(finite.min()), float(finite.max())
    out = np.zeros_like(arr) if hi == lo else (arr - lo) / (hi - lo)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)


def upsample_heat(heat, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to `size` = (H, W) (torch interpolate, align_corners=False)."""
    import torch
    import torch.nn.functional as F

    arr = as_float(heat, "heat", 2, "(h, w)")
    H, W = int(size[0]), int(size[1])
    if H < 1 or W < 1:
        raise ValueError(f"size must be positive (H, W), got {size}")
    if arr.shape == (H, W):
        return arr
    t = torch.from_numpy(np.nan_to_num(arr))[None, None]
    return F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()


def class_colors(n: int) -> list[str]:
    """`n` distinguishable colours: qualitative palettes for few classes, Turbo for many."""
    if n <= 10:
        return list(qualitative.Plotly[:n])
    if n <= 24:
        return list(qualitative.Light24[:n])
    return sample_colorscale("Turbo", [i / max(n - 1, 1) for i in range(n)])


# --------------------------------------------------------------------------- layout

def grid_shape(n: int, cols: int | None, max_cols: int = 6) -> tuple[int, int]:
    if n < 1:
        raise ValueError("need at least one panel")
    if cols is None:
        cols = min(n, max_cols)
    if int(cols) < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    cols = min(int(cols), n)
    return -(-n // cols), cols


def subplots(rows: int, cols: int, titles: Sequence[str] | None, row_height: float,
             h_space: float = 0.02, extra_top: int = 0) -> tuple[go.Figure, int]:
    """make_subplots with spacing chosen so titles fit; returns (figure, total height px)."""
    has_titles = bool(titles) and any(titles)
    top = MARGIN["t"] + extra_top
    height = int(top + MARGIN["b"] + rows * row_height
                 + (rows - 1) * (TITLE_GAP_PX if has_titles else 8))
    v_space = 0.0
    if rows > 1:
        gap = (TITLE_GAP_PX if has_titles else 8) / max(height - top - MARGIN["b"], 1)
        v_space = min(gap, 0.9 / (rows - 1))
    h_space = min(h_space, 0.9 / (cols - 1)) if cols > 1 else 0.0
    fig = make_subplots(rows=rows, cols=cols,
                        subplot_titles=list(titles) if titles is not None else None,
                        horizontal_spacing=h_space, vertical_spacing=v_space)
    fig.update_annotations(font_size=11)
    return fig, height


class PanelGrid:
    """A grid of subplots assembled as plain dicts and validated by plotly once, in `figure()`.

    The figure is the one `subplots` + `add_trace(row=, col=)` (+ `matrix_axes`) builds — the same axes,
    domains, title annotations and trace-to-axis references — but `make_subplots` and per-axis updates
    validate every change one by one, which takes 0.3-0.5 s for a few dozen panels; this takes about a
    quarter of that (issue 12: pages' first views). Traces are dicts with a "type" (or plotly trace
    objects, converted with `to_plotly_json`).
    """

    def __init__(self, rows: int, cols: int, titles: Sequence[str] | None, row_height: float,
                 h_space: float = 0.02, extra_top: int = 0):
        has_titles = bool(titles) and any(titles)
        top = MARGIN["t"] + extra_top
        self.height = int(top + MARGIN["b"] + rows * row_height
                          + (rows - 1) * (TITLE_GAP_PX if has_titles else 8))
        v_space = 0.0
        if rows > 1:
            gap = (TITLE_GAP_PX if has_titles else 8) / max(self.height - top - MARGIN["b"], 1)
            v_space = min(gap, 0.9 / (rows - 1))
        h_space = min(h_space, 0.9 / (cols - 1)) if cols > 1 else 0.0
        self.rows, self.cols = int(rows), int(cols)
        widths = [(1.0 - h_space * (cols - 1)) / cols] * cols
        heights = [(1.0 - v_space * (rows - 1)) / rows] * rows
        # make_subplots' layout, to the last bit: cell k = (row - 1) * cols + col, row 1 at the top
        x_starts = [sum(widths[:c]) + c * h_space for c in range(cols)]
        y_starts = [sum(heights[:rows - 1 - r]) + (rows - 1 - r) * v_space for r in range(rows)]
        self.x_domains = [[max(0.0, x), min(1.0, x + widths[c])] for c, x in enumerate(x_starts)]
        self.y_domains = [[max(0.0, y), min(1.0, y + heights[r])] for r, y in enumerate(y_starts)]
        self.titles = list(titles) if titles is not None else []
        self.traces: list[dict] = []

    def suffix(self, row: int, col: int) -> str:
        k = (int(row) - 1) * self.cols + int(col)
        if not (1 <= row <= self.rows and 1 <= col <= self.cols):
            raise ValueError(f"no cell ({row}, {col}) in a {self.rows} x {self.cols} grid")
        return "" if k == 1 else str(k)

    def add(self, trace, row: int, col: int) -> None:
        """Put `trace` (a dict with "type", or a plotly trace) into cell (row, col), both from 1."""
        d = dict(trace) if isinstance(trace, Mapping) else trace.to_plotly_json()
        s = self.suffix(row, col)
        d.update(xaxis=f"x{s}", yaxis=f"y{s}")
        self.traces.append(d)

    def figure(self, *, matrix: bool = True, show_ticks: bool = False, xaxis: dict | None = None,
               yaxis: dict | None = None, **layout) -> go.Figure:
        """The figure. matrix: the `matrix_axes` convention (y down, square cells, no grid); xaxis / yaxis:
        more settings for every x / y axis; layout: more layout settings."""
        axes = {}
        for r in range(self.rows):
            for c in range(self.cols):
                s = self.suffix(r + 1, c + 1)
                x = dict(domain=self.x_domains[c], anchor=f"y{s}")
                y = dict(domain=self.y_domains[r], anchor=f"x{s}")
                if matrix:
                    x.update(constrain="domain", showgrid=False, zeroline=False, showticklabels=show_ticks)
                    y.update(autorange="reversed", scaleanchor=f"x{s}", constrain="domain", showgrid=False,
                             zeroline=False, showticklabels=show_ticks)
                axes[f"xaxis{s}"] = dict(x, **(xaxis or {}))
                axes[f"yaxis{s}"] = dict(y, **(yaxis or {}))
        notes = [dict(text=text, x=sum(self.x_domains[i % self.cols]) / 2,
                      y=self.y_domains[i // self.cols][1], xref="paper", yref="paper", xanchor="center",
                      yanchor="bottom", showarrow=False, font=dict(size=11))
                 for i, text in enumerate(self.titles[:self.rows * self.cols]) if text]
        return go.Figure(data=self.traces, layout=dict(axes, annotations=notes, **layout))


def matrix_axes(fig: go.Figure, show_ticks: bool = False) -> None:
    """Matrix/image convention on every subplot: y down, square pixels, no padding."""
    def fix(ax):
        ax.update(autorange="reversed", scaleanchor=ax.anchor or "x", constrain="domain",
                  showgrid=False, zeroline=False, showticklabels=show_ticks)
    fig.for_each_yaxis(fix)
    fig.update_xaxes(constrain="domain", showgrid=False, zeroline=False,
                     showticklabels=show_ticks)


def _template():
    """The layout template object (plotly copies a template given by name on every use: twice as slow)."""
    import plotly.io as pio
    return pio.templates[TEMPLATE]


def finish(fig: go.Figure, title: str | None, height: int, **layout) -> go.Figure:
    fig.update_layout(template=_template(), height=int(height),
                      margin=dict(MARGIN, t=MARGIN["t"] if title else 30),
                      title=dict(text=title, x=0.01, xanchor="left") if title else None,
                      **layout)
    return fig


def colorbar(title: str | None = None) -> dict:
    return dict(thickness=12, len=0.9, title=dict(text=title or "", side="right"))


def long_lines(df, x: str, y: str, color: str | None, error: str | None = None,
               mode: str = "lines+markers") -> list[go.Scatter]:
    """One Scatter per value of `color` (in order of first appearance) from a long-format
    DataFrame, each sorted by `x`; `error` optionally names a symmetric error column."""
    require_columns(df, [x, y, color, error])
    if color is None:
        groups = [(y, df)]
    else:
        keys = list(dict.fromkeys(df[color].tolist()))
        groups = [(str(key), df[df[color] == key]) for key in keys]
    traces = []
    for name, part in groups:
        part = part.sort_values(x, kind="stable")
        err = None
        if error is not None:
            err = dict(type="data", array=part[error].to_numpy(dtype=float), visible=True)
        traces.append(go.Scatter(
            x=part[x].to_numpy(), y=part[y].to_numpy(dtype=float), name=name, mode=mode,
            error_y=err, legendgroup=name,
            hovertemplate=f"{name}<br>{x} %{{x}}<br>{y} %{{y:.4g}}<extra></extra>"))
    return traces
