"""A study's figure: every seed's accuracy per arm as dots, each arm's mean with its interval, and the paired
differences (candidate - baseline, seed by seed) with their mean and interval against zero."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._common import class_colors, finish


def study_figure(result: dict, *, title: str | None = None, height: int = 420) -> go.Figure:
    """From a study result (`vitviz.studies.study.study_result`): left, accuracy per arm (seeds as dots, the mean
    as a diamond with its t interval); right, when there is a verdict, the paired differences per seed with
    their mean and interval, and the zero line the verdict is decided against."""
    arms = result.get("arms") or {}
    if not arms:
        raise ValueError("the study has no finished run yet: nothing to draw")
    verdict = result.get("verdict")
    fig = make_subplots(rows=1, cols=2 if verdict else 1, column_widths=[0.6, 0.4] if verdict else None,
                        subplot_titles=["test accuracy per arm (dots: seeds)"]
                        + ([f"{verdict['candidate']} − {verdict['baseline']}, paired by seed"] if verdict else []),
                        horizontal_spacing=0.12)
    colors = class_colors(max(len(arms), 2))
    for i, (arm, a) in enumerate(arms.items()):
        fig.add_trace(go.Scatter(x=[arm] * len(a["accuracies"]), y=[100 * v for v in a["accuracies"]],
                                 mode="markers", marker=dict(size=9, color=colors[i], opacity=0.7),
                                 name=f"{arm}: seeds", customdata=a["seeds"],
                                 hovertemplate=f"{arm}, seed %{{customdata}}: %{{y:.2f}}%<extra></extra>"), 1, 1)
        low, high = a["ci_low"], a["ci_high"]
        bars = dict(type="data", symmetric=False, array=[100 * (high - a["mean"])],
                    arrayminus=[100 * (a["mean"] - low)]) if low == low and high == high else None
        fig.add_trace(go.Scatter(x=[arm], y=[100 * a["mean"]], mode="markers", error_y=bars,
                                 marker=dict(size=14, symbol="diamond", color=colors[i], line=dict(width=1)),
                                 name=f"{arm}: mean", hovertemplate=f"{arm}: mean %{{y:.2f}}%<extra></extra>"), 1, 1)
    fig.update_yaxes(title_text="test accuracy (%)", row=1, col=1)
    if verdict:
        label = "difference"
        diffs = [100 * d for d in verdict["differences"]]
        fig.add_trace(go.Scatter(x=[label] * len(diffs), y=diffs, mode="markers", customdata=verdict["seeds"],
                                 marker=dict(size=9, color="#555", opacity=0.7), name="seeds: difference",
                                 hovertemplate="seed %{customdata}: %{y:+.2f} points<extra></extra>"), 1, 2)
        mean = 100 * verdict["mean_difference"]
        fig.add_trace(go.Scatter(x=[label], y=[mean], mode="markers",
                                 error_y=dict(type="data", symmetric=False,
                                              array=[100 * verdict["ci_high"] - mean],
                                              arrayminus=[mean - 100 * verdict["ci_low"]]),
                                 marker=dict(size=14, symbol="diamond", color="#222"),
                                 name=f"mean difference, {verdict['level']:.0%} {verdict['interval'].split(' (')[0]}",
                                 hovertemplate="mean %{y:+.2f} points<extra></extra>"), 1, 2)
        fig.add_hline(y=0, line=dict(color="#999", dash="dash"), row=1, col=2)
        fig.update_yaxes(title_text="points", row=1, col=2)
    return finish(fig, title, height, showlegend=True)
