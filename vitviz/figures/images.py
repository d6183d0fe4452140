"""Image-space figures: heat overlays, attribution panels and thumbnail grids."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ._common import (DIVERGING, HEAT, MARGIN, as_float, as_image, as_images, check_mapping, check_titles,
                      colorbar, finish, finite_range, grid_shape, matrix_axes, normalize01, subplots,
                      symmetric_range, upsample_heat)

__all__ = ["attention_overlay", "overlay_row", "attribution_grid", "image_grid",
           "overlay_heat", "png_data_uri"]


def _check_opacity(opacity) -> float:
    opacity = float(opacity)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    return opacity


def overlay_heat(heat, size: tuple[int, int], name: str = "heat") -> np.ndarray:
    """A token-resolution map (h, w) upsampled bilinearly to `size` = (H, W), scaled to [0, 1]."""
    return normalize01(_upsampled(heat, size, name))


def _upsampled(heat, size: tuple[int, int], name: str) -> np.ndarray:
    arr = as_float(heat, name, 2, "(h, w)")
    if min(arr.shape) < 1:
        raise ValueError(f"{name} must have shape (h, w) with h, w >= 1, got {arr.shape}")
    return upsample_heat(arr, size)


def _overlay_traces(img: np.ndarray, heat01: np.ndarray, opacity: float, name: str,
                    showscale: bool) -> list:
    return [
        go.Image(z=img, name=name, hovertemplate="x %{x}, y %{y}<extra></extra>"),
        go.Heatmap(z=heat01, zmin=0.0, zmax=1.0, zauto=False, colorscale=HEAT,
                   opacity=opacity, showscale=showscale,
                   colorbar=colorbar("relative") if showscale else None, name=name,
                   hovertemplate="x %{x}, y %{y}<br>heat %{z:.2f}<extra></extra>"),
    ]


def _signed_overlay_traces(img: np.ndarray, heat: np.ndarray, opacity: float, name: str) -> list:
    lo, hi = symmetric_range(0.0, heat)
    return [
        go.Image(z=img, name=name, hovertemplate="x %{x}, y %{y}<extra></extra>"),
        go.Heatmap(z=heat, zmin=lo, zmax=hi, zmid=0.0, zauto=False, colorscale=DIVERGING,
                   opacity=opacity, colorbar=colorbar("value (signed)"), name=name,
                   hovertemplate="x %{x}, y %{y}<br>value %{z:.3g}<extra></extra>"),
    ]


def attention_overlay(image, heat, title: str | None = None, opacity: float = 0.5,
                      *, height: int = 420, signed: bool | None = None) -> go.Figure:
    """The image with a semi-transparent heatmap on top.

    image:  uint8 (H, W, 3) (channel-first or [0, 1] floats are converted).
    heat:   2-D (h, w) map at token resolution; it is upsampled bilinearly to (H, W).
    signed: False draws the heat min-max normalised to [0, 1] on a sequential scale; True keeps
            its values on a diverging scale centred at 0 (so the sign stays visible); None (the
            default) is True exactly when the heat has a negative value.
    """
    img = as_image(image)
    opacity = _check_opacity(opacity)
    up = _upsampled(heat, img.shape[:2], "heat")
    if signed is None:
        signed = bool(np.nanmin(as_float(heat, "heat")) < 0)
    traces = (_signed_overlay_traces(img, up, opacity, title or "heat") if signed
              else _overlay_traces(img, normalize01(up), opacity, title or "heat", True))
    fig = go.Figure(traces)
    matrix_axes(fig)
    return finish(fig, title, height)


def overlay_row(image, heats, *, opacity: float = 0.5, title: str | None = None,
                panel_px: int = 220) -> go.Figure:
    """Several overlays of the same image side by side, one per entry of `heats`
    (dict name -> (h, w) map; maps may differ in resolution). Two traces per panel:
    the image and its normalised heat."""
    img = as_image(image)
    opacity = _check_opacity(opacity)
    items = check_mapping(heats, "heats")
    maps = [overlay_heat(h, img.shape[:2], f"heats[{name!r}]") for name, h in items]
    names = [name for name, _ in items]
    fig, height = subplots(1, len(items), names, panel_px)
    for j, (name, heat01) in enumerate(zip(names, maps)):
        for tr in _overlay_traces(img, heat01, opacity, name, j == 0):
            fig.add_trace(tr, row=1, col=j + 1)
    matrix_axes(fig)
    return finish(fig, title, height)


def _attribution_map(a, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = as_float(a, name, (2, 3), "(H, W) or (C, H, W)")
    if arr.ndim == 3:
        arr = np.abs(arr).sum(axis=0)
    if arr.shape != shape:
        raise ValueError(f"{name} must match the image size {shape} (as (H, W) or (C, H, W)), "
                         f"got spatial shape {arr.shape}; resize it first (e.g. "
                         f"vitviz.figures.upsample_heat)")
    return arr


def _scale(maps: list[np.ndarray]) -> tuple[str, float, float]:
    """Colour scale and range: diverging around 0 when any value is negative."""
    signed = any(np.nanmin(m) < 0 for m in maps if np.isfinite(m).any())
    if signed:
        return (DIVERGING,) + symmetric_range(0.0, *maps)
    return (HEAT,) + finite_range(*maps)


def attribution_grid(image, attributions, *, shared_scale: bool = False,
                     cols: int | None = None, title: str | None = None,
                     panel_px: int = 220) -> go.Figure:
    """The image, then one heatmap per attribution method.

    attributions: dict method -> (H, W) or (C, H, W) array at image resolution; 3-D maps are
    reduced by summing absolute values over channels. Maps with negative values are drawn on
    a diverging scale centred on 0. With `shared_scale` all maps use one range and a single
    colour bar; otherwise each panel is scaled to its own range.
    """
    img = as_image(image)
    items = check_mapping(attributions, "attributions")
    shape = img.shape[:2]
    maps = [_attribution_map(a, shape, f"attributions[{name!r}]") for name, a in items]
    names = ["image"] + [name for name, _ in items]
    rows, ncols = grid_shape(len(names), cols, max_cols=5)
    fig, height = subplots(rows, ncols, names, panel_px)
    fig.add_trace(go.Image(z=img, name="image"), row=1, col=1)
    shared = _scale(maps) if shared_scale else None
    for k, (name, m) in enumerate(zip(names[1:], maps), start=1):
        cs, lo, hi = shared if shared else _scale([m])
        show = bool(shared) and k == 1
        fig.add_trace(go.Heatmap(z=m, zmin=lo, zmax=hi, zauto=False, colorscale=cs,
                                 showscale=show, colorbar=colorbar("attribution") if show
                                 else None, name=name,
                                 hovertemplate=f"{name}<br>x %{{x}}, y %{{y}}<br>"
                                               "%{z:.3g}<extra></extra>"),
                      row=k // ncols + 1, col=k % ncols + 1)
    matrix_axes(fig)
    return finish(fig, title, height)


def png_data_uri(image) -> str:
    """An RGB uint8 image (H, W, 3) as a PNG data URI (for `go.Image(source=...)`: the browser shows it as
    it is, instead of drawing every pixel of a `z` array)."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(as_image(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_grid(images, titles=None, *, cols: int = 8, title: str | None = None,
               panel_px: int = 110) -> go.Figure:
    """Thumbnails (N, H, W, 3) uint8 in a grid, optionally with one title each.

    Drawn as ONE image: the thumbnails tiled row by row with white gaps (room for the titles above each row),
    sent as a PNG, with the titles as annotations and an invisible marker on each thumbnail whose hover
    shows its title (trace "titles", one point per thumbnail, in order). One image instead of a subplot per
    thumbnail: the browser draws 32 thumbnails in about a third of the time (issue 12: the Per-class page's
    first view). An empty batch gives an empty figure that says so.
    """
    imgs = as_images(images)
    n = len(imgs)
    if n == 0:
        if titles:
            raise ValueError(f"titles must have 0 entries for 0 images, got {len(titles)}")
        fig = go.Figure()
        fig.add_annotation(text="no images", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return finish(fig, title, 150)
    titles = check_titles(titles, n)
    labels = titles or [f"#{k}" for k in range(n)]
    rows, ncols = grid_shape(n, cols, max_cols=cols)
    h, w = imgs.shape[1:3]
    scale = panel_px / max(h, w)                      # screen pixels per image pixel
    gap_x = max(1, int(np.ceil(6 / scale)))
    gap_y = max(1, int(np.ceil((18 if titles else 6) / scale)))
    canvas = np.full((rows * (h + gap_y), ncols * (w + gap_x) - gap_x, 3), 255, np.uint8)
    tops = [(k // ncols) * (h + gap_y) + gap_y for k in range(n)]
    lefts = [(k % ncols) * (w + gap_x) for k in range(n)]
    for im, top, left in zip(imgs, tops, lefts):
        canvas[top:top + h, left:left + w] = im
    centres_x = [left + (w - 1) / 2 for left in lefts]
    centres_y = [top + (h - 1) / 2 for top in tops]
    fig = go.Figure(data=[
        dict(type="image", source=png_data_uri(canvas), x0=0, y0=0, dx=1, dy=1, name="thumbnails",
             hoverinfo="skip"),
        dict(type="scatter", x=centres_x, y=centres_y, text=labels, mode="markers", name="titles",
             marker=dict(opacity=0, size=max(6, panel_px * 0.6)), showlegend=False,
             hovertemplate="%{text}<extra></extra>")],
        layout=dict(annotations=[dict(text=text, x=x, y=top - 0.5, xref="x", yref="y", showarrow=False,
                                      xanchor="center", yanchor="bottom", font=dict(size=10))
                                 for text, x, top in zip(titles, centres_x, tops)] if titles else []))
    matrix_axes(fig)
    fig.update_xaxes(range=[-0.5, canvas.shape[1] - 0.5])
    fig.update_yaxes(range=[canvas.shape[0] - 0.5, -0.5], autorange=False)
    height = MARGIN["t"] + MARGIN["b"] + rows * (panel_px + (18 if titles else 6))
    return finish(fig, title, height)
