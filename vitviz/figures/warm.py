"""Build one small figure of every kind the app shows, so that plotly's lazily imported classes and validators
(hundreds of modules, read from disk on first use) are loaded before the first browser session needs them.

`python -m vitviz app` calls `warm_up()` with its other warm-ups; in a fresh process the first Cross-covariance
view spent about 1.8 s importing them (issue 12, `bench/app_profile.py`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["warm_up"]


def _builders():
    from . import (attention_explorer, attention_grid, attention_overlay, attribution_grid, cka_by_depth, cka_grid,
                   code_similarity_grid, codes_heatmap, confusion_heatmap, difference_bars, efficiency_curves,
                   histogram_overlay, image_grid, layer_cka_heatmap, matrix_explorer, matrix_grid, overlay_row,
                   per_class_bars, spectrum_plot, stat_by_block)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    heat = rng.random((2, 2))
    signed = heat - 0.5
    per_class = pd.DataFrame({"class": ["a", "b"], "accuracy_a": [0.5, 0.6], "accuracy_b": [0.7, 0.4],
                              "ci_a_low": [0.4, 0.5], "ci_a_high": [0.6, 0.7], "ci_b_low": [0.6, 0.3],
                              "ci_b_high": [0.8, 0.5], "difference": [0.2, -0.2], "diff_ci_low": [0.1, -0.3],
                              "diff_ci_high": [0.3, -0.1], "holm_p": [0.01, 0.5], "significant": [True, False]})
    lines = pd.DataFrame({"block": [0, 1, 0, 1], "value": [1.0, 2.0, 1.5, 2.5], "series": ["a", "a", "b", "b"]})
    cka = pd.DataFrame({"block": [0, 1], "pair": ["q-k", "q-k"], "cka": [0.5, 0.6], "checkpoint": ["a", "a"]})
    return [
        lambda: attention_explorer(image, [[[heat, None]], [[heat, heat]]], row_labels=["q"], col_labels=["h0", "h1"]),
        lambda: attention_explorer(image, [[[signed]], [[signed]]], row_labels=["q"], col_labels=["c"],
                                   control="dropdown"),
        lambda: matrix_explorer(rng.random((2, 2, 3, 3)), temperatures=np.ones((2, 2))),
        lambda: matrix_grid(rng.random((2, 2, 3, 3)), temperatures=np.ones((2, 2))),
        lambda: attention_grid([rng.random((2, 5, 5))], grid=(2, 2), query=0),
        lambda: attention_overlay(image, heat),
        lambda: attention_overlay(image, signed),
        lambda: overlay_row(image, {"a": heat, "b": heat}),
        lambda: attribution_grid(image, {"a": rng.random((8, 8))}),
        lambda: image_grid(np.stack([image, image]), titles=["a", "b"]),
        lambda: code_similarity_grid(rng.random((2, 3, 3))),
        lambda: codes_heatmap(rng.random((2, 3, 4))),
        lambda: confusion_heatmap(np.array([[2, 1], [0, 3]]), ["a", "b"]),
        lambda: per_class_bars(per_class),
        lambda: difference_bars(per_class),
        lambda: spectrum_plot({"a": np.array([3.0, 2.0, 1.0])}),
        lambda: histogram_overlay({"a": rng.random(20), "b": rng.random(20)}),
        lambda: stat_by_block(lines, "block", "value", "series"),
        lambda: efficiency_curves(lines, "block", "value", "series", log_x=False, log_y=False),
        lambda: cka_by_depth(cka),
        lambda: cka_grid(rng.random((2, 3, 3)), ["a", "b"]),
        lambda: layer_cka_heatmap(rng.random((2, 2)), ["blocks.0", "blocks.1"], ["blocks.0", "blocks.1"]),
    ]


def warm_up() -> list[str]:
    """Build and serialise one small figure of each kind; returns the failures (never raises: a warm-up that
    fails only means the first page view pays for the imports)."""
    failures = []
    try:
        builders = _builders()
    except Exception as exc:  # noqa: BLE001
        return [f"figures: {type(exc).__name__}: {exc}"]
    for build in builders:
        try:
            build().to_json()
        except Exception as exc:  # noqa: BLE001 - a warm-up never stops the app
            failures.append(f"{type(exc).__name__}: {exc}")
    return failures
