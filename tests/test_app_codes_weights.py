"""AppTests for the Q/K/V codes & weights page: three tabs of which only the open one runs: pathway CKA (first),
Q/K/V weights (overlap, statistics, drift) and F-SNE codes."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vitviz import checkpoints
from vitviz.inspect.pathways import DEFAULT_PROBE_IMAGES as DEFAULT_IMAGES
from vitviz.layers.qkv_embedding import FullySharedQKV

from app_fixtures import run_page, spec_array

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"


def chart(at, key) -> dict:
    """The plotly spec of the chart with widget key `key`."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, f"no single chart {key!r}"
    return json.loads(found[0].proto.spec)


def text(spec: dict) -> str:
    return json.dumps(spec, ensure_ascii=False)




def trace_names(spec: dict) -> list:
    return [t.get("name") for t in spec["data"]]


def table(at, first_columns) -> "pd.DataFrame":  # noqa: F821
    found = [d.value for d in at.dataframe if list(d.value.columns[:len(first_columns)]) == list(first_columns)]
    assert found, f"no table starting with {first_columns}"
    return found[0]


def ok(at):
    assert not at.exception, [e.value for e in at.exception]


def compute(at, key="cw_cka_compute"):
    """Press the page's on-demand button `key` when it offers one (the result may already be on disk from an
    earlier test on the same checkpoints: then the page shows it at once)."""
    found = [b for b in at.button if b.key == key]
    if found:
        found[0].click().run()
        ok(at)
    assert not [b for b in at.button if b.key == key], f"{key} still offered after computing"


def open_tab(at, label):
    """Choose a tab of the page (its tabs rerun the page and run only the open one's content)."""
    at.session_state["cw_tab"] = label
    at.run()
    ok(at)


def chart_keys(at) -> set:
    return {c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")}


def select(at, key, stem):
    box = at.selectbox(key=key)
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith(stem))).run()
    ok(at)


def only_checkpoint(source, directory, stem, monkeypatch):
    directory.mkdir()
    for f in source.glob(f"{stem}.*"):
        shutil.copy(f, directory / f.name)
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))


def assert_cka_view_complete(at):
    """Every XCiT checkpoint the page offers is measured: finite CKA for every block and pair, images stated."""
    offered = at.multiselect(key="cw_checkpoints").options
    stems = {o.split(" ")[0] for o in offered}
    summary = table(at, ["checkpoint", "variant", "blocks", "images"])
    assert set(summary["checkpoint"]) == stems
    means = summary[["mean q-k", "mean q-v", "mean k-v"]].to_numpy()
    assert (means == means).all() and ((means >= 0) & (means <= 1)).all()  # no NaN, in [0, 1]
    assert (summary["images"] > 0).all() and summary["images from"].str.contains("test images").all()
    depth = chart(at, "cw_cka_depth")
    assert {t["name"] for t in depth["data"]} == stems
    assert all(np.isfinite(spec_array(t["y"])).all() and len(spec_array(t["y"])) for t in depth["data"])
    grid = chart(at, "cw_cka_grid")
    assert len(grid["data"]) == len(stems)
    assert all(spec_array(t["z"]).shape == (3, 3) and np.isfinite(spec_array(t["z"])).all() for t in grid["data"])
    return summary


# --------------------------------------------------------------------------- pathway similarity

def test_cka_view_leads_with_non_nan_values_for_every_xcit_checkpoint(app_env):
    at = run_page("codes_weights")
    assert at.header[0].value.startswith("How alike are q, k and v")
    compute(at)
    summary = assert_cka_view_complete(at)
    assert (summary["images"] == DEFAULT_IMAGES).all() and summary["images from"].str.contains("digits").all()
    assert any(f"{DEFAULT_IMAGES} digits test images" in c.value for c in at.caption)

    at.select_slider(key="cw_images").set_value(32).run()
    ok(at)
    compute(at)
    assert (table(at, ["checkpoint", "variant", "blocks", "images"])["images"] == 32).all()
    before = chart(at, "cw_cka_grid")
    at.selectbox(key="cw_cka_block").select(1).run()
    ok(at)
    assert chart(at, "cw_cka_grid") != before and "block 1" in text(chart(at, "cw_cka_grid"))

    open_tab(at, "Q/K/V weights")
    assert "cw_cka_grid" not in chart_keys(at)  # only the open tab runs
    overlap = table(at, ["checkpoint", "variant", "kind", "block", "pair", "shared_fraction"])
    assert set(overlap.query("kind == 'fsne'")["shared_fraction"]) == {1.0}
    assert set(overlap.query("kind == 'linear'")["shared_fraction"]) == {0.0}
    assert any("not invariant to hidden-unit permutations or channel rescaling" in c.value for c in at.caption)


@pytest.mark.skipif(not list(SHIPPED.glob("xcit_*.safetensors")), reason="shipped checkpoints absent")
def test_cka_view_on_the_shipped_xcit_checkpoints(monkeypatch, tmp_path):
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(SHIPPED))
    monkeypatch.setenv("VITVIZ_DATA_DIR", str(tmp_path / "data"))  # their test set is found via their metadata
    at = run_page("codes_weights")
    at.select_slider(key="cw_images").set_value(64).run()
    ok(at)
    compute(at)
    summary = assert_cka_view_complete(at)
    assert sorted(v.rsplit("_", 1)[-1] for v in summary["variant"]) == ["fsne", "linear", "psne", "sne"]
    assert (summary["images"] == 64).all()


# --------------------------------------------------------------------------- statistics

def test_tabs_run_only_the_open_one(app_env, monkeypatch):
    """The first view runs the pathway tab alone; another tab shows its own content and not the others'."""
    import vitviz.ui.analysis_cache as cache
    called = []
    for name in ("weight_table", "fsne_code_contributions"):
        original = getattr(cache, name)
        monkeypatch.setattr(cache, name, lambda *a, _f=original, _n=name, **k: called.append(_n) or _f(*a, **k))
    at = run_page("codes_weights")
    assert [t.label for t in at.tabs] == ["Pathway similarity (CKA)", "Q/K/V weights", "F-SNE codes"]
    assert at.header[0].value.startswith("How alike are q, k and v") and called == []
    assert not {"cw_stat_fig", "cw_codes"} & chart_keys(at)
    open_tab(at, "Q/K/V weights")
    assert "cw_stat_fig" in chart_keys(at) and "cw_codes" not in chart_keys(at)
    assert "weight_table" in called and "fsne_code_contributions" not in called
    assert not [b for b in at.button if b.key == "cw_cka_compute"]
    open_tab(at, "F-SNE codes")
    assert "cw_codes" in chart_keys(at) and "cw_stat_fig" not in chart_keys(at)


def test_statistic_picker_defines_each_statistic_and_plots_change(app_env):
    at = run_page("codes_weights")
    open_tab(at, "Q/K/V weights")
    box = at.selectbox(key="cw_stat")
    assert "Roy & Vetterli" in box.help and "‖W‖_F² / ‖W‖_2²" in box.help
    ms = at.multiselect(key="cw_checkpoints")
    assert len(ms.value) == 2 and all("xcit" in o for o in ms.options)  # every XCiT checkpoint preselected
    ms.unselect(ms.value[1]).run()
    ok(at)
    ms = at.multiselect(key="cw_checkpoints")
    assert len(ms.value) == 1
    stat_before = chart(at, "cw_stat_fig")
    n_lines = len(trace_names(stat_before))

    at.selectbox(key="cw_stat").select("effective_rank").run()
    ok(at)
    assert chart(at, "cw_stat_fig") != stat_before and "effective_rank" in text(chart(at, "cw_stat_fig"))
    assert any(c.value.startswith("**effective_rank** — Effective rank") for c in at.caption)

    other = next(o for o in ms.options if o not in ms.value)
    at.multiselect(key="cw_checkpoints").select(other).run()
    ok(at)
    assert len(trace_names(chart(at, "cw_stat_fig"))) > n_lines
    spectra = chart(at, "cw_spectrum")
    assert "tiny_xcit_fsne" in text(spectra) and "tiny_xcit_linear" in text(spectra)
    assert trace_names(chart(at, "cw_histogram")) == ["tiny_xcit_fsne", "tiny_xcit_linear"]

    at.selectbox(key="cw_block").select(1).run()
    ok(at)
    assert [t["y"] for t in chart(at, "cw_spectrum")["data"]] != [t["y"] for t in spectra["data"]]
    histogram = chart(at, "cw_histogram")
    at.radio(key="cw_pathway").set_value("v").run()
    ok(at)
    assert "block 1, v" in text(chart(at, "cw_histogram"))
    bins = [(t["x"], t["y"]) for t in chart(at, "cw_histogram")["data"]]  # binned counts per checkpoint
    assert bins != [(t["x"], t["y"]) for t in histogram["data"]]


# --------------------------------------------------------------------------- drift and codes

@pytest.fixture
def with_child(app_env, tmp_path, monkeypatch):
    """The tiny checkpoints plus an F-SNE child whose codes and q weights moved away from its parent's."""
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


def test_codes_as_the_network_sees_them_and_drift_from_parent(with_child):
    at = run_page("codes_weights")
    open_tab(at, "F-SNE codes")
    box = at.selectbox(key="cw_fsne")
    assert all("fsne" in o for o in box.options) and len(box.options) == 2
    select(at, "cw_fsne", "tiny_xcit_fsne (")
    assert "W_c c_t" in text(chart(at, "cw_codes")) and "W_c c_t" in text(chart(at, "cw_code_sim"))
    assert "cw_raw_codes" not in str([c.proto.id for c in at.get("plotly_chart")])  # on request only
    at.toggle(key="cw_raw").set_value(True).run()
    ok(at)
    assert "raw codes c_q" in text(chart(at, "cw_raw_codes"))
    assert not any("l2_change" in d.value.columns for d in at.dataframe)
    assert any("no parent" in c.value for c in at.caption)
    seen_before = chart(at, "cw_codes")

    at.checkbox(key="cw_bias").check().run()
    ok(at)
    assert "W_c c_t + b" in text(chart(at, "cw_codes")) and chart(at, "cw_codes") != seen_before

    select(at, "cw_fsne", "tiny_xcit_fsne_child")
    drift = table(at, ["block", "pathway", "norm_parent"])
    assert len(drift) == 2 * 3 and (drift["l2_change"] > 0).all()
    assert any("Code drift" in s.value for s in at.subheader)

    # the weights tab offers the function-level drift of the fine-tune next to the weight drift
    open_tab(at, "Q/K/V weights")
    child = at.selectbox(key="cw_drift_child")
    assert child.options == ["tiny_xcit_fsne_child"]  # the only chosen checkpoint with a parent
    child.select_index(0).run()
    ok(at)
    compute(at, "cw_drift_compute")
    function = table(at, ["block", "pathway", "function_cka"])
    assert len(function) == 2 * 3 and function["function_cka"].between(0, 1 - 1e-6).all()
    assert (function["images"] == DEFAULT_IMAGES).all() and (function["weight_relative_change"] == 0).all()
    assert chart(at, "cw_drift_function")["data"] and chart(at, "cw_drift_weights")["data"]


def test_codes_weights_without_fsne_says_so(app_env, tmp_path, monkeypatch):
    only_checkpoint(app_env, tmp_path / "no_fsne", "tiny_xcit_linear", monkeypatch)
    at = run_page("codes_weights")
    compute(at)
    assert chart(at, "cw_cka_depth")  # the pathway and weight tabs still render
    open_tab(at, "Q/K/V weights")
    assert chart(at, "cw_stat_fig") and any("no drift" in c.value for c in at.caption)
    open_tab(at, "F-SNE codes")
    assert any("No F-SNE checkpoint" in i.value for i in at.info)


def test_codes_weights_without_xcit_says_so(app_env, tmp_path, monkeypatch):
    directory = tmp_path / "vit_only"
    directory.mkdir()
    for f in app_env.glob("tiny_vit_*"):
        shutil.copy(f, directory / f.name)
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    at = run_page("codes_weights")
    (info,) = at.info
    assert "No XCiT checkpoint" in info.value and "F-SNE codes" in info.value
    assert not at.get("plotly_chart") and not at.tabs
