"""Figures assembled in one go (figures._common.PanelGrid) are the figures make_subplots builds; the explorer's
dropdown control; the figure warm-up of `python -m vitviz app`."""
import numpy as np
import plotly.graph_objects as go
import pytest

from vitviz import figures
from vitviz.figures._common import PanelGrid, matrix_axes, subplots


@pytest.mark.parametrize("rows,cols,titles,h_space", [(2, 3, [f"t{i}" for i in range(5)], 0.02),
                                                      (12, 4, None, 0.02), (1, 1, ["only"], 0.05),
                                                      (3, 2, ["a", "", "c", "d", "e", "f"], 0.01)])
def test_panel_grid_builds_what_make_subplots_builds(rows, cols, titles, h_space):
    reference, height = subplots(rows, cols, titles, 100, h_space=h_space)
    grid = PanelGrid(rows, cols, titles, 100, h_space=h_space)
    for k in range(min(rows * cols, 5)):
        trace = dict(type="heatmap", z=np.eye(2) * k, name=f"n{k}")
        reference.add_trace(go.Heatmap(**{key: v for key, v in trace.items() if key != "type"}),
                            row=k // cols + 1, col=k % cols + 1)
        grid.add(trace, k // cols + 1, k % cols + 1)
    matrix_axes(reference)
    built = grid.figure()
    assert grid.height == height
    expected, got = reference.to_plotly_json(), built.to_plotly_json()
    assert got["layout"] == expected["layout"]
    assert [{k: v for k, v in t.items() if k != "z"} for t in got["data"]] == \
        [{k: v for k, v in t.items() if k != "z"} for t in expected["data"]]
    with pytest.raises(ValueError, match="no cell"):
        grid.add(dict(type="heatmap", z=[[1]]), rows + 1, 1)


def test_explorer_dropdown_switches_like_the_slider():
    image = np.zeros((8, 8, 3), np.uint8)
    heats = [[[np.full((2, 2), float(i))]] for i in range(3)]
    slider = figures.attention_explorer(image, heats, row_labels=["r"], col_labels=["c"], layer_name="class",
                                        layer_labels=["a", "b", "c"], active=1)
    menu = figures.attention_explorer(image, heats, row_labels=["r"], col_labels=["c"], layer_name="class",
                                      layer_labels=["a", "b", "c"], active=1, control="dropdown",
                                      value_name="relevance")
    steps = slider.layout.sliders[0].steps
    buttons = menu.layout.updatemenus[0].buttons
    assert menu.layout.updatemenus[0].active == 1 and not menu.layout.sliders
    assert [b.label for b in buttons] == [s.label for s in steps] == ["a", "b", "c"]
    assert [b.args for b in buttons] == [s.args for s in steps]
    assert "relevance %{z" in menu.data[1].hovertemplate and [t.name for t in menu.data][1:] == [
        "r · class a · c", "r · class b · c", "r · class c · c"]
    with pytest.raises(ValueError, match="control"):
        figures.attention_explorer(image, heats, row_labels=["r"], col_labels=["c"], control="buttons")


def test_figure_warm_up_builds_every_kind_without_failing():
    from vitviz.figures.warm import warm_up
    assert warm_up() == []


def test_matrix_mosaic_holds_every_tile_in_one_trace():
    rng = np.random.default_rng(0)
    m = rng.random((3, 2, 4, 5)) - 0.5
    fig = figures.matrix_mosaic(m, zmid=0.0, title="t")
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (3 * 5 - 1, 2 * 6 - 1) and np.isnan(z[4]).all() and np.isnan(z[:, 5]).all()
    np.testing.assert_array_equal(figures.mosaic_tiles(fig), m)
    assert fig.data[0].zmin == -fig.data[0].zmax and fig.data[0].y[5] == "L1 r0" and fig.data[0].x[6] == "h1 c0"
    assert list(fig.layout.yaxis.ticktext) == ["layer 0", "layer 1", "layer 2"]
    mean = figures.matrix_mosaic(m.mean(1, keepdims=True), col_labels=["head mean"])
    assert list(mean.layout.xaxis.ticktext) == ["head mean"]
    with pytest.raises(ValueError, match="col_labels"):
        figures.matrix_mosaic(m, col_labels=["one"])
