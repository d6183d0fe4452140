"""One self-contained HTML report of a view: its figures, tables, the checkpoints' metadata and the exact settings.

The file opens offline: plotly.js is inlined once in the head, every figure is a `<div>` plus a small inline
script that draws it, tables are plain HTML tables, metadata and settings are pretty-printed JSON. No external
script, stylesheet or font is referenced.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

__all__ = ["ReportItem", "html_report"]

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.caption { color: #555; font-size: 0.9em; } .figure { margin: 1em 0; }
"""


@dataclass
class ReportItem:
    """One entry of a report: kind "figure" (value: plotly Figure), "table" (DataFrame) or "text" (str)."""
    kind: str
    value: object
    name: str = ""
    caption: str = ""
    extra: dict = field(default_factory=dict)


def _json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _figure_html(fig: go.Figure, index: int) -> str:
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"figure-{index}",
                       config={"displaylogo": False, "responsive": True})


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, border=0, float_format=lambda v: f"{v:.4g}", na_rep="")


def html_report(title: str, items: list[ReportItem], *, metadata: dict | None = None, settings: dict | None = None,
                created: str | None = None) -> str:
    """The report as one HTML document (str).

    items: figures, tables and text in page order. metadata: {checkpoint name: its metadata dict}. settings:
    the view's exact settings ({name: value}). created: a timestamp to print (default now, UTC)."""
    created = created or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [f"<h1>{html.escape(title)}</h1>", f'<p class="caption">vitviz report, created {html.escape(created)}. '
             "Self-contained: opens offline; every figure is interactive (hover, zoom, save as PNG).</p>"]
    if settings:
        parts += ["<h2>Settings</h2>", f"<pre>{html.escape(_json(settings))}</pre>"]
    figure_count = 0
    for item in items:
        if item.name:
            parts.append(f"<h2>{html.escape(item.name)}</h2>")
        if item.kind == "figure":
            parts.append(f'<div class="figure">{_figure_html(item.value, figure_count)}</div>')
            figure_count += 1
        elif item.kind == "table":
            parts.append(_table_html(item.value))
        elif item.kind == "text":
            parts.append(f"<p>{html.escape(str(item.value))}</p>")
        else:
            raise ValueError(f"unknown report item kind {item.kind!r}")
        if item.caption:
            parts.append(f'<p class="caption">{html.escape(item.caption)}</p>')
    if metadata:
        parts.append("<h2>Checkpoints</h2>")
        for name, meta in metadata.items():
            parts += [f"<h3>{html.escape(str(name))}</h3>", f"<pre>{html.escape(_json(meta))}</pre>"]
    plotly_js = get_plotlyjs().replace("</script", "<\\/script") if figure_count else ""
    head = (f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style>'
            + (f'<script type="text/javascript">{plotly_js}</script>' if plotly_js else ""))
    return f"<!DOCTYPE html>\n<html><head>{head}</head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
