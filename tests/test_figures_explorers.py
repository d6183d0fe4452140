"""The explorer figures: every layer in one figure, a slider switching layers in the browser, raw values kept."""
import numpy as np
import pytest

from vitviz import figures as F


def rng_maps(seed, *shape):
    return np.random.default_rng(seed).random(shape)


def heat_traces(fig):
    return [t for t in fig.data if t.type == "heatmap"]


def test_attention_explorer_keeps_every_map_and_switches_layers():
    img = np.zeros((32, 32, 3), np.uint8)
    layers, rows, cols = 3, 2, 3
    heats = [[[rng_maps(100 * i + 10 * r + c, 8, 8) for c in range(cols)] for r in range(rows)] for i in range(layers)]
    heats[0][0][2] = None  # a head this layer lacks
    fig = F.attention_explorer(img, heats, row_labels=["class token", "centre token"],
                               col_labels=["head 0", "head 1", "mean"])
    by_name = {t.name: t for t in heat_traces(fig)}
    assert len(by_name) == layers * rows * cols - 1
    for i in range(layers):
        for r, q in enumerate(["class token", "centre token"]):
            for c, h in enumerate(["head 0", "head 1", "mean"]):
                if heats[i][r][c] is None:
                    assert f"{q} · layer {i} · {h}" not in by_name
                    continue
                trace = by_name[f"{q} · layer {i} · {h}"]
                np.testing.assert_array_equal(np.asarray(trace.z), heats[i][r][c])  # exact values, token grid
                assert (trace.x0, trace.dx, trace.y0, trace.dy) == (1.5, 4.0, 1.5, 4.0)
                assert (trace.opacity > 0) == (i == layers - 1)  # the last layer first
                assert (trace.hoverinfo == "skip") == (i != layers - 1)  # hidden layers take no hover
                assert trace.zmin == pytest.approx(heats[i][r][c].min())  # own range, sequential
    slider = fig.layout.sliders[0]
    assert slider.active == layers - 1 and len(slider.steps) == layers
    for i, step in enumerate(slider.steps):
        assert step.method == "restyle" and set(step.args[0]) == {"opacity", "hoverinfo"}  # style only
        opacity, hover = step.args[0]["opacity"], step.args[0]["hoverinfo"]
        shown = {t.name for t, op in zip(fig.data, opacity) if op > 0 and t.type == "heatmap"}
        assert shown == {n for n in by_name if f"layer {i} ·" in n}
        assert {t.name for t, h in zip(fig.data, hover) if h != "skip"} == shown
        assert all(op == 1 for t, op in zip(fig.data, opacity) if t.type == "image")  # the image stays


def test_attention_explorer_signed_maps_keep_a_diverging_scale_centred_at_zero():
    img = np.zeros((16, 16, 3), np.uint8)
    heats = [[[np.array([[-0.5, 0.2], [0.1, 1.5]])]], [[np.array([[0.3, -2.0], [0.0, 0.4]])]]]
    fig = F.attention_explorer(img, heats, row_labels=["centre token"], col_labels=["mean"])
    traces = heat_traces(fig)
    assert all(t.zmid == 0.0 and t.zmin == -2.0 and t.zmax == 2.0 for t in traces)  # one symmetric range
    assert [bool(t.showscale) for t in traces] == [True, False]  # one colour bar: the scale is shared
    np.testing.assert_array_equal(np.asarray(traces[1].z), heats[1][0][0])


def test_attention_explorer_grids_may_differ_between_layers():
    img = np.zeros((32, 32, 3), np.uint8)
    heats = [[[rng_maps(0, 8, 8)]], [[rng_maps(1, 4, 4)]]]
    fig = F.attention_explorer(img, heats, row_labels=["centre token"], col_labels=["mean"], layer_name="stage")
    assert [t.dx for t in heat_traces(fig)] == [4.0, 8.0]
    assert [t.name for t in heat_traces(fig)] == ["centre token · stage 0 · mean", "centre token · stage 1 · mean"]


def test_attention_explorer_rejects_malformed_input():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="rows"):
        F.attention_explorer(img, [[[np.ones((2, 2))]]], row_labels=["a", "b"], col_labels=["m"])
    with pytest.raises(ValueError, match="no map"):
        F.attention_explorer(img, [[[None]]], row_labels=["a"], col_labels=["m"])
    with pytest.raises(ValueError, match="active"):
        F.attention_explorer(img, [[[np.ones((2, 2))]]], row_labels=["a"], col_labels=["m"], active=3)


def test_attention_explorer_of_a_large_model_stays_small():
    """13 layers x (4 heads + mean) x 2 queries of 14 x 14 maps over a 224 px image."""
    img = np.zeros((224, 224, 3), np.uint8)
    heats = [[[rng_maps(i, 14, 14) for _ in range(5)] for _ in range(2)] for i in range(13)]
    fig = F.attention_explorer(img, heats, row_labels=["class token", "centre token"],
                               col_labels=[f"head {h}" for h in range(4)] + ["mean"])
    assert len(fig.to_json()) < 3_000_000


def test_matrix_explorer_values_slider_and_titles():
    m = rng_maps(3, 3, 2, 4, 4)
    t = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    fig = F.matrix_explorer(m, temperatures=t)
    traces = heat_traces(fig)
    assert [tr.name for tr in traces] == [f"layer {i} · head {j}" for i in range(3) for j in range(2)]
    assert [bool(tr.showscale) for tr in traces] == [True] + [False] * 5
    for tr, expected in zip(traces, m.reshape(6, 4, 4)):
        np.testing.assert_array_equal(np.asarray(tr.z), expected)
        assert (tr.zmin, tr.zmax) == (m.min(), m.max())  # shared over all layers and heads
    steps = fig.layout.sliders[0].steps
    layer_of = [int(t.name.split("layer ")[1].split()[0]) for t in fig.data]
    for i, step in enumerate(steps):
        assert [op > 0 for op in step.args[0]["opacity"]] == [owner == i for owner in layer_of]
    titles = [t for t, op in zip(fig.data, steps[1].args[0]["opacity"]) if op > 0 and t.type == "scatter"]
    assert [t.text[0] for t in titles] == ["layer 1 · head 0 · τ=3.00", "layer 1 · head 1 · τ=4.00"]
    own = heat_traces(F.matrix_explorer(m, shared_scale=False))
    assert own[4].zmin == m[2, 0].min() and own[4].zmax == m[2, 0].max()
    with pytest.raises(ValueError, match="temperatures"):
        F.matrix_explorer(m, temperatures=t[:2])
