"""Efficiency figures: cost of attention kinds as the number of tokens grows."""
from __future__ import annotations

import plotly.graph_objects as go

from ._common import finish, long_lines

__all__ = ["efficiency_curves"]


def efficiency_curves(df, x: str = "tokens", y: str = "ms", color: str | None = "kind",
                      log_x: bool = True, log_y: bool = True, *, error: str | None = None,
                      title: str | None = None, x_title: str | None = None,
                      y_title: str | None = None, height: int = 400) -> go.Figure:
    """Lines with markers from a long-format DataFrame, one line per value of `color`
    (e.g. attention kind vs number of tokens -> latency or memory). Missing values (NaN,
    e.g. out of memory) leave gaps. `error` optionally names a symmetric error column."""
    fig = go.Figure(long_lines(df, x, y, color, error))
    fig.update_xaxes(title_text=x_title or x, type="log" if log_x else "linear")
    fig.update_yaxes(title_text=y_title or y, type="log" if log_y else "linear")
    return finish(fig, title if title is not None else f"{y} vs {x}", height,
                  legend_title_text=color or "", hovermode="closest")
