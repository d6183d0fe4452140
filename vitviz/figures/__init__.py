"""Plotly figures for the analyses: pure functions from arrays / tensors / DataFrames to
`plotly.graph_objects.Figure`.

Nothing here touches files, models or Streamlit; the app passes the returned figures to
`st.plotly_chart`. Array inputs may be numpy arrays or torch tensors (see `as_numpy`); inputs
are never modified. Malformed shapes raise ValueError saying what was expected.

Modules: `attention` (attention maps), `explorers` (every layer in one figure, switched
in the browser by a slider), `images` (overlays, attributions, thumbnails),
`matrices` (per-head matrices, similarity, codes, confusion), `stats` (spectra, per-block
statistics, histograms, per-class comparisons, projections), `pathways` (Q/K/V pathway CKA),
`representations` (layer x layer CKA between two models), `efficiency` (cost curves).
"""
from ._common import as_numpy, normalize01, upsample_heat
from .attention import attention_grid, query_maps
from .efficiency import efficiency_curves
from .explorers import attention_explorer, matrix_explorer
from .images import attention_overlay, attribution_grid, image_grid, overlay_heat, overlay_row
from .matrices import (code_similarity_grid, codes_heatmap, confusion_heatmap, matrix_grid, matrix_mosaic,
                       mosaic_tiles, similarity_heatmap)
from .pathways import cka_by_depth, cka_grid
from .representations import layer_cka_heatmap
from .stats import (PER_CLASS_COLUMNS, accuracy_vs_params, difference_bars, histogram_overlay, per_class_bars,
                    projection_scatter, spectrum_plot, stat_by_block)

__all__ = [
    "as_numpy", "normalize01", "upsample_heat",
    "attention_grid", "query_maps", "attention_explorer", "matrix_explorer",
    "attention_overlay", "overlay_row", "overlay_heat", "attribution_grid", "image_grid",
    "matrix_grid", "matrix_mosaic", "mosaic_tiles", "similarity_heatmap", "code_similarity_grid", "codes_heatmap",
    "confusion_heatmap",
    "spectrum_plot", "stat_by_block", "histogram_overlay", "per_class_bars",
    "difference_bars", "projection_scatter", "accuracy_vs_params", "PER_CLASS_COLUMNS",
    "efficiency_curves", "cka_by_depth", "cka_grid", "layer_cka_heatmap",
]
