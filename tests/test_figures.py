"""Tests for vitviz.figures: pure array/DataFrame -> plotly Figure builders (tiny inputs)."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from vitviz import figures as F


def n_subplots(fig: go.Figure) -> int:
    return sum(1 for k in fig.layout.to_plotly_json() if k.startswith("xaxis"))


def heatmaps(fig: go.Figure) -> list:
    return [t for t in fig.data if t.type == "heatmap"]


def z(trace) -> np.ndarray:
    return np.asarray(trace.z, dtype=float)


def assert_serialises(fig: go.Figure) -> None:
    assert isinstance(fig, go.Figure)
    assert fig.to_json()
    html = fig.to_html(include_plotlyjs=False, full_html=False)
    assert "Plotly.newPlot" in html


def assert_shared_scale(fig: go.Figure) -> None:
    hs = heatmaps(fig)
    assert len({(t.zmin, t.zmax) for t in hs}) == 1
    lo, hi = hs[0].zmin, hs[0].zmax
    allz = np.concatenate([z(t).ravel() for t in hs])
    assert lo <= np.nanmin(allz) and hi >= np.nanmax(allz)
    assert sum(bool(t.showscale) for t in hs) == 1


def per_class_df() -> pd.DataFrame:
    return pd.DataFrame({
        "class": ["cat", "dog", "frog", "ship"],
        "accuracy_a": [0.5, 0.6, 0.9, np.nan], "accuracy_b": [0.8, 0.55, 0.6, np.nan],
        "ci_a_low": [0.4, 0.5, 0.85, np.nan], "ci_a_high": [0.6, 0.7, 0.95, np.nan],
        "ci_b_low": [0.7, 0.45, 0.5, np.nan], "ci_b_high": [0.9, 0.65, 0.7, np.nan],
        "difference": [0.3, -0.05, -0.3, np.nan],
        "diff_ci_low": [0.2, -0.15, -0.4, np.nan], "diff_ci_high": [0.4, 0.05, -0.2, np.nan],
        "holm_p": [0.001, 0.8, 0.01, np.nan], "significant": [True, False, True, False],
    })


# --------------------------------------------------------------------------- helpers

def test_as_numpy_accepts_tensors_including_bfloat16_and_grad():
    t = torch.ones(2, 3, requires_grad=True)
    assert isinstance(F.as_numpy(t), np.ndarray) and F.as_numpy(t).shape == (2, 3)
    assert F.as_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32
    assert F.as_numpy([1, 2]).tolist() == [1, 2]


# --------------------------------------------------------------------------- attention

def test_attention_grid_full_matrices_layers_by_heads_shared_scale():
    rng = np.random.default_rng(0)
    maps = [torch.rand(3, 5, 5), rng.random((3, 5, 5)) * 4]       # torch and numpy mixed
    before = [m.clone() if torch.is_tensor(m) else m.copy() for m in maps]
    fig = F.attention_grid(maps)
    assert len(heatmaps(fig)) == 6 and n_subplots(fig) == 6
    assert z(fig.data[0]).shape == (5, 5)
    np.testing.assert_allclose(z(fig.data[4]), maps[1][1])
    assert_shared_scale(fig)
    assert fig.data[0].zmax == pytest.approx(maps[1].max())
    assert all(ax.autorange == "reversed" for ax in fig.select_yaxes())
    assert torch.equal(maps[0], before[0]) and np.array_equal(maps[1], before[1])
    assert_serialises(fig)


def test_attention_grid_query_reshapes_to_grid_and_drops_class_token():
    h, w = 2, 3
    n = h * w + 1
    layer = np.zeros((2, n, n))
    layer[1, 4, :] = np.arange(n) + 100.0          # head 1, query 4: key 0 = class token = 100
    fig = F.attention_grid([layer, layer], grid=(h, w), query=4)
    assert len(fig.data) == 4
    panel = z(fig.data[1])
    assert panel.shape == (h, w)
    np.testing.assert_array_equal(panel, (np.arange(1, n) + 100.0).reshape(h, w))
    assert 100.0 not in panel
    assert_shared_scale(fig)
    # patch tokens only: nothing dropped
    no_cls = np.arange(2 * 6 * 6, dtype=float).reshape(2, 6, 6)
    fig2 = F.attention_grid(torch.tensor(no_cls)[None], grid=(2, 3), query=1)
    np.testing.assert_array_equal(z(fig2.data[0]), no_cls[0, 1].reshape(2, 3))
    # query without grid: full matrices
    assert z(F.attention_grid([layer], query=4).data[0]).shape == (n, n)


def test_attention_grid_titles_and_bad_shapes():
    maps = [np.ones((2, 4, 4))]
    fig = F.attention_grid(maps, titles=["block 0"])
    assert [a.text for a in fig.layout.annotations] == ["block 0 · h0", "block 0 · h1"]
    with pytest.raises(ValueError, match="heads, N_q, N_k"):
        F.attention_grid([np.ones((4, 4))])
    with pytest.raises(ValueError, match="N_k"):
        F.attention_grid(maps, grid=(3, 3), query=0)
    with pytest.raises(ValueError, match="query"):
        F.attention_grid(maps, grid=(2, 2), query=9)
    with pytest.raises(ValueError, match="titles"):
        F.attention_grid(maps, titles=["a", "b", "c"])
    with pytest.raises(ValueError):
        F.attention_grid([])


# --------------------------------------------------------------------------- images

def test_signed_maps_get_a_diverging_scale_centred_at_zero():
    layer = np.full((2, 5, 5), 0.2)
    layer[0, 0, 1] = -0.3
    fig = F.attention_grid([layer])
    assert all(t.zmid == 0 and t.zmin == pytest.approx(-t.zmax) for t in heatmaps(fig))
    assert fig.data[0].colorscale == go.Heatmap(colorscale="RdBu_r").colorscale
    assert F.attention_grid([np.abs(layer)]).data[0].zmid is None       # probabilities: sequential scale
    img = np.zeros((8, 8, 3), np.uint8)
    heat = np.array([[-1.0, 0.5], [0.25, 1.0]])
    signed = F.attention_overlay(img, heat)
    hz = z(signed.data[1])
    assert signed.data[1].zmid == 0 and hz.min() < 0 < hz.max()          # values kept, not min-max scaled
    assert signed.data[1].zmin == pytest.approx(-signed.data[1].zmax)
    assert F.attention_overlay(img, np.abs(heat)).data[1].zmid is None
    assert z(F.attention_overlay(img, heat, signed=False).data[1]).min() == pytest.approx(0.0)


def test_attention_overlay_upsamples_heat_to_image_and_normalises():
    img = np.random.default_rng(1).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    heat = torch.tensor([[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]])
    img0, heat0 = img.copy(), heat.clone()
    fig = F.attention_overlay(img, heat, title="t", opacity=0.4)
    assert [t.type for t in fig.data] == ["image", "heatmap"]
    hz = z(fig.data[1])
    assert hz.shape == (16, 24)
    assert hz.min() == pytest.approx(0.0) and hz.max() == pytest.approx(1.0)
    assert fig.data[1].opacity == pytest.approx(0.4)
    assert np.asarray(fig.data[0].z).shape == (16, 24, 3)
    assert hz[0, 0] < hz[-1, -1]                   # orientation kept
    assert np.array_equal(img, img0) and torch.equal(heat, heat0)
    assert fig.layout.yaxis.autorange == "reversed"
    assert_serialises(fig)
    with pytest.raises(ValueError, match="H, W, 3"):
        F.attention_overlay(np.zeros((16, 24)), heat)
    with pytest.raises(ValueError, match=r"\(h, w\)"):
        F.attention_overlay(img, np.zeros(6))


def test_overlay_row_one_panel_per_heat_with_titles():
    img = np.zeros((8, 8, 3), np.uint8)
    fig = F.overlay_row(img, {"rollout": np.ones((2, 2)), "last layer": np.eye(4)})
    assert len(fig.data) == 4 and n_subplots(fig) == 2
    assert [a.text for a in fig.layout.annotations] == ["rollout", "last layer"]
    assert all(z(t).shape == (8, 8) for t in heatmaps(fig))
    assert_serialises(fig)
    with pytest.raises(ValueError):
        F.overlay_row(img, {})


def test_attribution_grid_abs_sums_channels_and_scales():
    img = np.zeros((4, 5, 3), np.uint8)
    signed = -np.ones((3, 4, 5))
    plain = np.arange(20.0).reshape(4, 5)
    fig = F.attribution_grid(img, {"ig": signed, "saliency": plain})
    assert [t.type for t in fig.data] == ["image", "heatmap", "heatmap"]
    assert n_subplots(fig) == 3
    np.testing.assert_array_equal(z(fig.data[1]), np.full((4, 5), 3.0))
    assert (fig.data[1].zmin, fig.data[1].zmax) != (fig.data[2].zmin, fig.data[2].zmax)
    assert signed.min() == -1                     # input untouched
    shared = F.attribution_grid(img, {"ig": signed, "saliency": plain}, shared_scale=True)
    assert_shared_scale(shared)
    assert_serialises(shared)
    with pytest.raises(ValueError, match="image size"):
        F.attribution_grid(img, {"ig": np.zeros((3, 3))})


def test_image_grid_panels_titles_and_empty():
    imgs = np.zeros((5, 6, 6, 3), np.uint8)
    imgs[:, 1:3, 2:5] = np.arange(1, 6, dtype=np.uint8)[:, None, None, None] * 40   # tell them apart
    fig = F.image_grid(imgs, titles=[f"s{i}" for i in range(5)], cols=3)
    # one image of the tiled thumbnails (a PNG), the titles above them, a hover marker on each thumbnail
    assert [t.type for t in fig.data] == ["image", "scatter"] and n_subplots(fig) == 1
    assert [a.text for a in fig.layout.annotations] == [f"s{i}" for i in range(5)]
    assert list(fig.data[1].text) == [f"s{i}" for i in range(5)]
    import base64
    import io
    from PIL import Image
    canvas = np.asarray(Image.open(io.BytesIO(base64.b64decode(fig.data[0].source.split(",", 1)[1]))))
    for k, (x, y) in enumerate(zip(fig.data[1].x, fig.data[1].y)):   # each marker sits on its own thumbnail
        top, left = int(round(y - 2.5)), int(round(x - 2.5))
        np.testing.assert_array_equal(canvas[top:top + 6, left:left + 6], imgs[k])
    assert_serialises(fig)
    assert len(F.image_grid(np.zeros((0, 6, 6, 3), np.uint8)).data) == 0
    with pytest.raises(ValueError, match="titles"):
        F.image_grid(imgs, titles=["a"])
    with pytest.raises(ValueError, match="N, H, W, 3"):
        F.image_grid(np.zeros((6, 6, 3), np.uint8))


# --------------------------------------------------------------------------- matrices

def test_matrix_grid_shared_and_per_panel_scale_with_temperatures():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(2, 3, 4, 4))
    m[1, 2] *= 10
    fig = F.matrix_grid(m, temperatures=np.full((2, 3), 0.83), zmid=0.0)
    assert len(heatmaps(fig)) == 6 and n_subplots(fig) == 6
    assert_shared_scale(fig)
    assert fig.data[0].zmin == pytest.approx(-fig.data[0].zmax)
    assert all("τ=0.83" in a.text for a in fig.layout.annotations)
    per = F.matrix_grid(list(torch.tensor(m)), shared_scale=False)
    assert len({(t.zmin, t.zmax) for t in per.data}) == 6
    assert not any(t.showscale for t in per.data)
    assert_serialises(per)
    with pytest.raises(ValueError, match="layers, heads, rows, cols"):
        F.matrix_grid(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="non-empty"):
        F.matrix_grid(np.zeros((1, 1, 0, 4)))
    with pytest.raises(ValueError, match="temperatures"):
        F.matrix_grid(m, temperatures=np.ones(6))
    assert all(t.zmid == 0 for t in fig.data) and per.data[0].zmid is None


def test_matrix_grid_rectangular_blocks_and_temperature_label():
    weights = [np.random.default_rng(0).normal(size=(1, 3, 8)) for _ in range(2)]  # Mixer W1: hidden x tokens
    fig = F.matrix_grid(weights, zmid=0.0, titles=["block 0", "block 1"])
    assert len(heatmaps(fig)) == 2 and z(fig.data[0]).shape == (3, 8)
    taus = F.matrix_grid(np.ones((1, 2, 4, 4)), temperatures=np.full((1, 2), 2.0), temperature_label="t")
    assert all("t=2.00" in a.text for a in taus.layout.annotations)


def test_similarity_heatmap_and_code_grid():
    sim = np.array([[1.0, 0.123, -0.5], [0.123, 1.0, 0.2], [-0.5, 0.2, 1.0]])
    fig = F.similarity_heatmap(sim, ["c_q", "c_k", "c_v"], title="codes")
    t = fig.data[0]
    assert (t.zmin, t.zmax) == (-1.0, 1.0)
    assert t.text[0][1] == "0.12" and t.text[0][2] == "-0.50"
    assert_serialises(fig)
    grid = F.code_similarity_grid(np.stack([sim, sim * 0.5]))
    assert len(grid.data) == 2 and n_subplots(grid) == 2
    assert list(grid.data[0].x) == ["q", "k", "v"]
    assert_shared_scale(grid)
    assert_serialises(grid)
    with pytest.raises(ValueError, match="3, 3"):
        F.similarity_heatmap(np.eye(2), ["q", "k", "v"])
    with pytest.raises(ValueError, match=r"blocks, 3, 3"):
        F.code_similarity_grid(np.zeros((2, 4, 4)))


def test_codes_heatmap_rows():
    codes = torch.randn(2, 3, 5)
    fig = F.codes_heatmap(codes)
    assert len(fig.data) == 1
    assert z(fig.data[0]).shape == (6, 5)
    assert list(fig.data[0].y)[:4] == ["block 0 · q", "block 0 · k", "block 0 · v",
                                      "block 1 · q"]
    np.testing.assert_allclose(z(fig.data[0])[4], codes[1, 1].numpy(), rtol=1e-6)
    assert_serialises(fig)
    with pytest.raises(ValueError, match="blocks, 3, code_length"):
        F.codes_heatmap(np.zeros((2, 4, 5)))


def test_confusion_heatmap_rows_normalised_customdata_and_counts():
    cm = np.array([[5, 1, 0], [2, 2, 0], [0, 0, 0]])
    fig = F.confusion_heatmap(cm, ["a", "b", "c"])
    t = fig.data[0]
    zz = z(t)
    np.testing.assert_allclose(zz[:2].sum(axis=1), 1.0)
    assert zz[2].sum() == 0                                   # empty row stays 0
    cd = np.asarray(t.customdata, dtype=float)
    assert cd.shape == (3, 3, 4)
    assert cd[1, 0].tolist() == [2, 0.5, 1, 0]                # count, fraction, true, pred
    assert t.text[0][0] == "5"
    assert "count" in t.hovertemplate and "fraction" in t.hovertemplate
    assert fig.layout.yaxis.autorange == "reversed"
    np.testing.assert_array_equal(z(F.confusion_heatmap(cm, 3, normalize=False).data[0]), cm)
    assert_serialises(fig)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        F.confusion_heatmap(np.ones((2, 2)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="non-negative"):
        F.confusion_heatmap(-np.ones((2, 2)), 2)


# --------------------------------------------------------------------------- stats

def test_spectrum_histogram_and_stat_by_block():
    fig = F.spectrum_plot({"vit": np.array([3.0, 2.0, 1.0]), "xcit": torch.tensor([2.0, 1.0])})
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log"
    assert list(fig.data[1].x) == [1, 2]
    assert F.spectrum_plot({"a": [1.0, 2.0]}, log_y=False).layout.yaxis.type == "linear"
    with pytest.raises(ValueError, match=r"\(n,\)"):
        F.spectrum_plot({"a": np.ones((2, 2))})

    b = torch.randn(3, 4)
    hist = F.histogram_overlay({"a": np.linspace(-1, 1, 50), "b": b}, nbins=10)
    assert len(hist.data) == 2 and hist.layout.barmode == "overlay"
    assert hist.data[0].width == hist.data[1].width and len(hist.data[0].x) == 10   # the same 10 bins
    lo, hi = min(-1.0, float(b.min())), max(1.0, float(b.max()))
    np.testing.assert_array_equal(hist.data[0].y, np.histogram(np.linspace(-1, 1, 50), bins=10, range=(lo, hi))[0])
    dens = F.histogram_overlay({"a": np.linspace(-1, 1, 50)}, nbins=10, density=True).data[0]
    assert abs(float(np.sum(dens.y)) * dens.width - 1) < 1e-9
    with pytest.raises(ValueError, match="nbins"):
        F.histogram_overlay({"a": [1.0]}, nbins=0)

    df = pd.DataFrame({"block": [1, 0, 0, 1], "rank": [2.0, 1.0, 3.0, 4.0],
                       "variant": ["v", "v", "x", "x"]})
    fig = F.stat_by_block(df, y="rank", color="variant")
    assert [t.name for t in fig.data] == ["v", "x"]
    assert list(fig.data[0].x) == [0, 1] and list(fig.data[0].y) == [1.0, 2.0]   # sorted by x
    with pytest.raises(ValueError, match="missing column"):
        F.stat_by_block(df, y="cka")
    for f in (fig, hist, F.spectrum_plot({"a": [1.0]})):
        assert_serialises(f)


def test_per_class_bars_asymmetric_errors():
    df = per_class_df()
    df0 = df.copy()
    fig = F.per_class_bars(df, names=("ViT", "XCiT"))
    assert [t.name for t in fig.data] == ["ViT", "XCiT"] and fig.layout.barmode == "group"
    err = fig.data[1].error_y
    assert err.symmetric is False
    np.testing.assert_allclose(err.array[:3], [0.1, 0.1, 0.1])
    np.testing.assert_allclose(err.arrayminus[:3], [0.1, 0.1, 0.1])
    np.testing.assert_allclose(fig.data[0].error_y.array[:3], [0.1, 0.1, 0.05])
    pd.testing.assert_frame_equal(df, df0)
    assert_serialises(fig)
    with pytest.raises(ValueError, match="holm_p"):
        F.per_class_bars(df.drop(columns="holm_p"))


def test_difference_bars_mark_exactly_the_significant_classes():
    df = per_class_df()
    fig = F.difference_bars(df, names=("ViT", "XCiT"))
    bars, stars = fig.data
    assert bars.type == "bar" and stars.type == "scatter"
    assert list(stars.x) == ["cat", "frog"] and list(stars.text) == ["*", "*"]
    colors = list(bars.marker.color)
    assert colors[0] == colors[2] != colors[1] == colors[3]
    assert stars.y[0] > 0.4 and stars.y[1] < -0.4           # beyond the intervals
    assert any(s.type == "line" and s.y0 == 0 and s.y1 == 0 for s in fig.layout.shapes)
    assert "XCiT − ViT" in fig.layout.yaxis.title.text
    assert_serialises(fig)
    none = F.difference_bars(df.assign(significant=False))
    assert len(none.data[1].x) == 0
    with pytest.raises(ValueError, match="names"):
        F.difference_bars(df, names=("A",))


def test_projection_scatter_one_trace_per_present_class():
    pts = np.random.default_rng(3).normal(size=(7, 2))
    labels = torch.tensor([0, 2, 2, 0, 2, 0, 0])
    fig = F.projection_scatter(pts, labels, ["airplane", "bird", "cat"])
    assert [t.name for t in fig.data] == ["airplane", "cat"]
    assert list(fig.data[1].customdata) == [1, 2, 4]
    np.testing.assert_allclose(fig.data[1].x, pts[[1, 2, 4], 0])
    assert_serialises(fig)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        F.projection_scatter(np.zeros((7, 3)), labels, 3)
    with pytest.raises(ValueError, match="labels"):
        F.projection_scatter(pts, labels[:3], 3)
    with pytest.raises(ValueError, match="class indices"):
        F.projection_scatter(pts, labels, 2)


# --------------------------------------------------------------------------- efficiency

def test_efficiency_curves_log_axes_and_groups():
    df = pd.DataFrame({"tokens": [64, 16, 64, 16, 256], "ms": [4.0, 1.0, 2.0, 1.5, np.nan],
                       "kind": ["softmax", "softmax", "xca", "xca", "xca"]})
    fig = F.efficiency_curves(df)
    assert [t.name for t in fig.data] == ["softmax", "xca"]
    assert all(t.mode == "lines+markers" for t in fig.data)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert list(fig.data[0].x) == [16, 64]
    lin = F.efficiency_curves(df, log_x=False, log_y=False, color=None)
    assert len(lin.data) == 1 and lin.layout.xaxis.type == "linear"
    assert_serialises(fig)
    with pytest.raises(ValueError, match="missing column"):
        F.efficiency_curves(df, y="mb")


def test_accuracy_vs_params_one_point_per_checkpoint_and_datasets_kept_apart():
    df = pd.DataFrame({"checkpoint": ["a", "b", "c", "d"], "family": ["ViT", "ViT", "XCiT", "XCiT"],
                       "dataset": ["cifar10", "cifar10", "cifar10", "stl10"], "params": [5e5, 6e5, 3e6, 3e6],
                       "test_accuracy": [0.41, np.nan, 0.52, 0.6]})
    fig = F.accuracy_vs_params(df)
    points = {t: (x, y, trace.name, trace.marker.symbol) for trace in fig.data
              for t, x, y in zip(trace.text, trace.x, trace.y)}
    assert sorted(points) == ["a", "c", "d"]                       # no accuracy, no point
    assert points["a"][:2] == (5e5, 41.0) and points["c"][:2] == (3e6, 52.0)
    assert points["c"][2] == "XCiT · cifar10" and points["d"][2] == "XCiT · stl10"
    assert points["c"][3] != points["d"][3]                         # one symbol per dataset
    assert fig.layout.xaxis.type == "log"
    with pytest.raises(ValueError, match="params"):
        F.accuracy_vs_params(df.drop(columns=["params"]))
