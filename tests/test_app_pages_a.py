"""AppTests for the Cross-covariance and Compare pages on the tiny checkpoints (Q/K/V codes & weights:
test_app_codes_weights.py)."""
import json
import shutil

import pytest
import timm

from vitviz import checkpoints

from app_fixtures import run_page


def specs(at):
    """The plotly specs shown, as JSON text with non-ASCII characters (τ, σ) left readable."""
    return [json.dumps(json.loads(c.proto.spec), ensure_ascii=False) for c in at.get("plotly_chart")]


def trace_names(spec: str) -> list[str]:
    return [t.get("name") for t in json.loads(spec)["data"]]


def trace_data(spec: str, field: str = "z") -> list:
    return [t.get(field) for t in json.loads(spec)["data"]]


def select(at, key, stem):
    box = at.selectbox(key=key)
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith(stem))).run()
    assert not at.exception, [e.value for e in at.exception]


def use_digits(at, key):
    at.radio(key=f"{key}_source").set_value("Digits").run()
    assert not at.exception, [e.value for e in at.exception]


def ok(at):
    assert not at.exception, [e.value for e in at.exception]


# --------------------------------------------------------------------------- cross-covariance


def only_checkpoint(source, directory, stem, monkeypatch):
    """A checkpoint directory holding just `stem`, made the app's checkpoint directory."""
    directory.mkdir()
    for f in source.glob(f"{stem}.*"):
        shutil.copy(f, directory / f.name)
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))

def test_cross_covariance_only_xcit_and_widgets_change_the_figures(app_env):
    at = run_page("cross_covariance")
    box = at.selectbox(key="xcc_checkpoint")
    assert len(box.options) == 2 and all(o.startswith("tiny_xcit") for o in box.options)
    use_digits(at, "xcc_image")
    assert len(at.get("plotly_chart")) == 2  # one layer + overview
    assert "τ=" in specs(at)[0]  # the one-layer figure's titles (the overview's τ: the table)
    temps = at.dataframe[0].value
    assert list(temps.columns) == ["layer", "head 0", "head 1"] and len(temps) == 2

    # the layer figure holds every layer; its slider switches layers in the browser (no rerun, no widget);
    # the plotted values per layer and head are checked against a recomputation in test_map_to_screen.py
    after = specs(at)
    layer_fig = json.loads(after[0])
    steps = layer_fig["layout"]["sliders"][0]["steps"]
    heat = [t["type"] == "heatmap" for t in layer_fig["data"]]
    assert len(steps) == 2 and sum(heat) == 2 * 2
    shown = [[t["name"] for t, op in zip(layer_fig["data"], s["args"][0]["opacity"]) if op > 0] for s in steps]
    assert [[n for n in names if n.startswith("layer")] for names in shown] == [
        ["layer 0 · head 0", "layer 0 · head 1"], ["layer 1 · head 0", "layer 1 · head 1"]]

    at.checkbox(key="xcc_shared").uncheck().run()
    ok(at)
    assert specs(at)[0] != after[0]
    d = layer_fig["data"][0]["z"]["shape"].split(",")[0] if isinstance(layer_fig["data"][0]["z"], dict) \
        else len(layer_fig["data"][0]["z"])
    d = int(d)
    tiles = json.loads(after[1])["data"]  # one heatmap: layers x heads tiles with one empty row/column between
    assert len(tiles) == 1 and len(tiles[0]["y"]) == 2 * (d + 1) - 1 and len(tiles[0]["x"]) == 2 * (d + 1) - 1
    at.checkbox(key="xcc_average").check().run()
    ok(at)
    mean = json.loads(specs(at)[1])["data"][0]
    assert len(mean["y"]) == 2 * (d + 1) - 1 and len(mean["x"]) == d  # layers x head mean

    shown = specs(at)
    at.slider(key="xcc_image_digit").set_value(5).run()
    ok(at)
    assert specs(at)[1] != shown[1]
    shown = specs(at)
    select(at, "xcc_checkpoint", "tiny_xcit_linear")
    assert specs(at)[1] != shown[1]


def test_cross_covariance_without_xcit_says_so(app_env, tmp_path, monkeypatch):
    only_checkpoint(app_env, tmp_path / "no_xcit", "tiny_vit_softmax", monkeypatch)
    at = run_page("cross_covariance")
    assert any("No XCiT checkpoint" in i.value for i in at.info)
    assert not at.get("plotly_chart")


# --------------------------------------------------------------------------- compare

def test_compare_columns_views_and_third_checkpoint(app_env):
    at = run_page("compare")
    use_digits(at, "cmp_image")
    ms = at.multiselect(key="cmp_checkpoints")
    assert len(ms.value) == 2
    assert len(at.get("plotly_chart")) == 2
    assert sum("%" in m.value for m in at.markdown) == 2  # a top-3 line per column
    before = specs(at)

    others = [o for o in ms.options if o not in ms.value]
    at.multiselect(key="cmp_checkpoints").select(others[0]).run()
    ok(at)
    assert len(at.get("plotly_chart")) == 3
    at.multiselect(key="cmp_checkpoints").select(others[1]).run()
    ok(at)
    assert len(at.get("plotly_chart")) == 4
    attention = specs(at)

    at.radio(key="cmp_view").set_value("saliency").run()
    ok(at)
    saliency = specs(at)
    assert len(saliency) == 4 and all(trace_data(a)[1] != trace_data(b)[1] for a, b in zip(saliency, attention))
    assert sum("saliency" in c.value for c in at.caption) == 4

    at.radio(key="cmp_view").set_value("last-layer attention (class token)").run()
    ok(at)
    assert specs(at) != attention
    assert any("approximation" in c.value for c in at.caption)  # the performer's implied maps
    at.slider(key="cmp_image_digit").set_value(3).run()
    ok(at)
    assert specs(at)[:2] != before


def test_compare_needs_two(app_env):
    at = run_page("compare")
    at.multiselect(key="cmp_checkpoints").set_value([]).run()
    ok(at)
    assert any("at least 2" in i.value for i in at.info)


@pytest.fixture
def with_48px(app_env, tmp_path, monkeypatch):
    """The tiny checkpoints plus a ViT at 48 px input."""
    directory = tmp_path / "ck48"
    shutil.copytree(app_env, directory)
    meta = checkpoints.read_meta(directory / "tiny_vit_softmax.safetensors")
    kwargs = dict(meta["variant_kwargs"], img_size=48)
    model = timm.create_model(meta["variant"], num_classes=meta["num_classes"], **kwargs)
    keep = ("variant", "classes", "mean", "std", "dataset", "train_config")
    checkpoints.save(model, directory / "tiny_vit_48",
                     dict({k: meta[k] for k in keep}, img_size=48, metrics={}, variant_kwargs=kwargs))
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    return directory


def test_compare_prepares_the_image_at_each_input_size(with_48px):
    at = run_page("compare")
    use_digits(at, "cmp_image")
    ms = at.multiselect(key="cmp_checkpoints")
    labels = [next(o for o in ms.options if o.startswith(stem)) for stem in ("tiny_vit_softmax", "tiny_vit_48")]
    at.multiselect(key="cmp_checkpoints").set_value(labels).run()
    ok(at)
    shapes = [trace_data(spec)[0]["shape"].replace(" ", "") for spec in specs(at)]
    assert shapes == ["32,32,3", "48,48,3"]
