"""AppTests for the Cross-covariance, Q/K/V codes & weights and Compare pages on the tiny checkpoints."""
import json
import shutil

import pytest
import timm
import torch

from vitviz import checkpoints
from vitviz.layers.qkv_embedding import FullySharedQKV

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
    assert all("τ=" in s for s in specs(at))
    temps = at.dataframe[0].value
    assert list(temps.columns) == ["layer", "head 0", "head 1"] and len(temps) == 2

    before = specs(at)
    at.slider(key="xcc_layer").set_value(0).run()
    ok(at)
    after = specs(at)
    assert trace_data(after[0]) != trace_data(before[0]) and "layer 0" in after[0]
    assert after[1] == before[1]  # the overview does not depend on the layer

    at.checkbox(key="xcc_shared").uncheck().run()
    ok(at)
    assert specs(at)[0] != after[0]
    assert len(trace_data(after[1])) == 2 * 2  # layers x heads
    at.checkbox(key="xcc_average").check().run()
    ok(at)
    assert len(trace_data(specs(at)[1])) == 2  # layers x head mean

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


# --------------------------------------------------------------------------- codes & weights

@pytest.fixture
def with_child(app_env, tmp_path, monkeypatch):
    """The tiny checkpoints plus an F-SNE child whose codes moved away from its parent's."""
    directory = tmp_path / "ck"
    shutil.copytree(app_env, directory)
    parent = directory / "tiny_xcit_fsne.safetensors"
    model, meta = checkpoints.load(parent)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, FullySharedQKV):
                m.codes.add_(0.5)
    keep = ("variant", "variant_kwargs", "classes", "img_size", "mean", "std", "dataset", "metrics", "train_config")
    checkpoints.save(model, directory / "tiny_xcit_fsne_child", dict({k: meta[k] for k in keep}, parent=str(parent)))
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    return directory


def test_codes_section_and_drift_from_parent(with_child):
    at = run_page("codes_weights")
    box = at.selectbox(key="cw_fsne")
    assert all("fsne" in o for o in box.options) and len(box.options) == 2
    select(at, "cw_fsne", "tiny_xcit_fsne (")
    assert "codes c_q" in specs(at)[0]
    assert not any("l2_change" in d.value.columns for d in at.dataframe)
    assert any("no parent" in c.value for c in at.caption)
    codes_before = specs(at)[:2]

    select(at, "cw_fsne", "tiny_xcit_fsne_child")
    assert specs(at)[:2] != codes_before
    drift = at.dataframe[0].value
    assert list(drift.columns[:2]) == ["block", "pathway"] and len(drift) == 2 * 3
    assert (drift["l2_change"] > 0).all()
    assert any("Code drift" in s.value for s in at.subheader)


def test_weights_statistic_checkpoints_block_change_the_plots(app_env):
    at = run_page("codes_weights")
    ms = at.multiselect(key="cw_checkpoints")
    assert len(ms.value) == 2 and all("xcit" in o for o in ms.options)  # every XCiT checkpoint preselected
    ms.unselect(ms.value[1]).run()
    ok(at)
    ms = at.multiselect(key="cw_checkpoints")
    assert len(ms.value) == 1
    stat_before = specs(at)[2]
    n_lines = len(trace_names(stat_before))

    at.selectbox(key="cw_stat").select("effective_rank").run()
    ok(at)
    stat_after = specs(at)[2]
    assert stat_after != stat_before and "effective_rank" in stat_after

    other = next(o for o in ms.options if o not in ms.value)
    at.multiselect(key="cw_checkpoints").select(other).run()
    ok(at)
    charts = specs(at)
    assert len(trace_names(charts[2])) > n_lines
    assert "tiny_xcit_fsne" in charts[3] and "tiny_xcit_linear" in charts[3]  # spectra of both
    assert trace_names(charts[4]) == ["tiny_xcit_fsne", "tiny_xcit_linear"]
    sims = at.dataframe[-1].value
    assert set(sims["checkpoint"]) == {"tiny_xcit_fsne", "tiny_xcit_linear"}

    at.selectbox(key="cw_block").select(1).run()
    ok(at)
    block1 = specs(at)
    assert trace_data(block1[3], "y") != trace_data(charts[3], "y")
    at.radio(key="cw_pathway").set_value("v").run()
    ok(at)
    assert "block 1, v" in specs(at)[4]
    assert trace_data(specs(at)[4], "x") != trace_data(block1[4], "x")


def test_codes_weights_without_fsne_says_so(app_env, tmp_path, monkeypatch):
    only_checkpoint(app_env, tmp_path / "no_fsne", "tiny_xcit_linear", monkeypatch)
    at = run_page("codes_weights")
    assert any("No F-SNE checkpoint" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 3  # the weight section still renders


def test_codes_weights_without_xcit_says_so(app_env, tmp_path, monkeypatch):
    directory = tmp_path / "vit_only"
    directory.mkdir()
    for f in app_env.glob("tiny_vit_*"):
        shutil.copy(f, directory / f.name)
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    at = run_page("codes_weights")
    assert any("No F-SNE checkpoint" in i.value for i in at.info)
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
