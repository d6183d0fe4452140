"""AppTests for the Per-class, Attributions and Efficiency pages on the tiny checkpoints."""
import json
import shutil

import pytest
import torch
from streamlit.testing.v1 import AppTest

from vitviz import checkpoints
from vitviz.data import DATASETS, load_dataset
from vitviz.train import evaluate

from app_fixtures import APP, TIMEOUT, run_page, spec_array


def charts(at, key_part: str = "") -> dict:
    """{element id: parsed plotly spec} of the charts whose id (which ends with the widget key) has `key_part`."""
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart") if key_part in c.proto.id}


def figure_titles(at) -> list[str]:
    titles = []
    for chart in at.get("plotly_chart"):
        title = json.loads(chart.proto.spec)["layout"].get("title", {})
        titles.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return titles


def cell_count(at) -> int:
    return int(next(m.value for m in at.markdown if "test samples of class" in m.value).split()[0])


def select(at, key: str, stem: str):
    box = at.selectbox(key=key)
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith(stem + " "))).run()
    assert not at.exception, [e.value for e in at.exception]


def copy_checkpoints(source, tmp_path, monkeypatch):
    directory = tmp_path / "ck"
    shutil.copytree(source, directory)
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    return directory


# --------------------------------------------------------------------------- per-class

def test_per_class_opens_on_xcit_linear_vs_fsne_with_columns_in_words(app_env):
    at = run_page("per_class")
    assert at.selectbox(key="pc_a").value.startswith("tiny_xcit_linear ")
    assert at.selectbox(key="pc_b").value.startswith("tiny_xcit_fsne ")
    columns = list(at.dataframe[0].value.columns)
    assert "only A right" in columns and "only B right" in columns and not any("_" in c for c in columns)


def test_per_class_table_confusions_and_cells(app_env):
    from vitviz.ui.widgets import checkpoint_options
    label = {path.rsplit("/", 1)[-1].removesuffix(".safetensors"): text for text, path in checkpoint_options().items()}
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["pc_a"], at.session_state["pc_b"] = label["tiny_vit_performer"], label["tiny_vit_softmax"]
    at.switch_page("pages/per_class.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]
    table = at.dataframe[0].value
    assert len(table) == 10 and list(table["class"]) == [str(i) for i in range(10)]
    titles = figure_titles(at)
    assert sum(t.startswith(("A: ", "B: ")) for t in titles) == 2, titles
    assert any("stored per-sample" in c.value for c in at.caption)
    # digits are on disk, so a confusion cell shows its images (default: A's most confused cell)
    count = cell_count(at)
    grid = charts(at, "pc_cell_grid")
    # one tiled image with a title (and a hover marker) per thumbnail
    assert count > 0 and len(grid) == 1 and len(next(iter(grid.values()))["layout"]["annotations"]) == min(count, 32)
    never_right = table.loc[table["accuracy A"] == 0, "class"].iloc[0]
    at.selectbox(key="pc_true").set_value(never_right)
    at.selectbox(key="pc_pred").set_value(never_right).run()
    assert cell_count(at) == 0 and not charts(at, "pc_cell_grid")

    before = table.copy()
    select(at, "pc_b", "tiny_xcit_fsne")
    after = at.dataframe[0].value
    assert len(after) == 10
    assert not after["accuracy B"].equals(before["accuracy B"])
    assert after["accuracy A"].equals(before["accuracy A"])
    # a class A always gets right and B does not: its samples appear in "A right, B wrong"
    cls = after.loc[(after["accuracy A"] == 1) & (after["accuracy B"] < 1), "class"].iloc[0]
    at.selectbox(key="pc_dis_class").set_value(cls).run()
    grid = charts(at, "pc_a_right_b_wrong")
    assert len(grid) == 1 and len(next(iter(grid.values()))["layout"]["annotations"]) > 0


def write_child(directory, parent_stem: str, child_stem: str):
    """A 'fine-tuned' tiny checkpoint: the parent with a perturbed head, re-evaluated, parent recorded."""
    parent_path = directory / f"{parent_stem}.safetensors"
    model, meta = checkpoints.load(parent_path, device="cpu")
    torch.manual_seed(123)
    with torch.no_grad():
        model.head.weight.add_(torch.randn_like(model.head.weight))
    test_set = load_dataset("digits", "test", img_size=32)
    info = DATASETS["digits"]
    result = evaluate(model, test_set, mean=info.mean, std=info.std, img_size=32)
    meta = {k: v for k, v in meta.items() if k != "path"}
    meta.update(metrics=result.as_metrics(), parent=str(parent_path))
    checkpoints.save(model, directory / child_stem, meta)


def test_per_class_parent_preset(app_env, tmp_path, monkeypatch):
    directory = copy_checkpoints(app_env, tmp_path, monkeypatch)
    write_child(directory, "tiny_vit_softmax", "tiny_vit_softmax_ft")
    at = run_page("per_class")
    presets = [b for b in at.button if b.key and b.key.startswith("pc_preset_")]
    assert len(presets) == 1 and "tiny_vit_softmax_ft" in presets[0].label
    assert not at.selectbox(key="pc_b").value.startswith("tiny_vit_softmax_ft ")
    presets[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="pc_a").value.startswith("tiny_vit_softmax ")
    assert at.selectbox(key="pc_b").value.startswith("tiny_vit_softmax_ft ")
    table = at.dataframe[0].value
    assert len(table) == 10 and table["difference B − A"].abs().sum() > 0

    # the same preset from the URL: ?checkpoint=<fine-tuned> selects it as B and its parent as A
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["checkpoint"] = "tiny_vit_softmax_ft"
    at.run()
    at.switch_page("pages/per_class.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="pc_a").value.startswith("tiny_vit_softmax ")
    assert at.selectbox(key="pc_b").value.startswith("tiny_vit_softmax_ft ")


def test_per_class_evaluates_on_the_test_set_when_predictions_are_not_stored(app_env, tmp_path, monkeypatch):
    directory = copy_checkpoints(app_env, tmp_path, monkeypatch)
    for json_path in directory.glob("*.json"):
        meta = json.loads(json_path.read_text())
        for key in ("test_predictions", "test_labels", "test_set_sha256"):
            meta["metrics"].pop(key)
        json_path.write_text(json.dumps(meta))
    at = run_page("per_class")
    assert any("test set on disk" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert len(table) == 10
    accuracy_a = float(at.metric[0].value.rstrip("%")) / 100
    label_a = at.selectbox(key="pc_a").value
    stored = json.loads((directory / (label_a.split()[0] + ".json")).read_text())["metrics"]["test_accuracy"]
    assert abs(accuracy_a - stored) < 1e-4


def test_per_class_different_test_sets_without_data_explains(app_env, tmp_path, monkeypatch):
    directory = copy_checkpoints(app_env, tmp_path, monkeypatch)
    for i, json_path in enumerate(sorted(directory.glob("*.json"))):
        meta = json.loads(json_path.read_text())
        meta["dataset"] = "cifar10"  # not in the (empty) data directory
        meta["metrics"]["test_set_sha256"] = f"{i:064x}"
        json_path.write_text(json.dumps(meta))
    at = run_page("per_class")
    text = " ".join(w.value for w in at.warning)
    assert "different test sets" in text and "python -m vitviz download cifar10" in text, text
    assert not at.dataframe


# --------------------------------------------------------------------------- attributions

def attribution_figures(at) -> dict:
    return charts(at, "attr_fig_")


def test_attributions_one_figure_per_checkpoint_and_methods(app_env):
    at = run_page("attributions")
    figs = attribution_figures(at)
    assert len(figs) == 1
    (spec,) = figs.values()
    assert len(spec["data"]) == 2  # image + saliency (the many-pass methods on request)
    at.multiselect(key="attr_methods").set_value(["saliency", "integrated_gradients"]).run()
    assert not at.exception, [e.value for e in at.exception]
    (spec,) = attribution_figures(at).values()
    assert len(spec["data"]) == 3  # image + saliency + integrated gradients
    box = at.multiselect(key="attr_checkpoints")
    box.select(next(o for o in box.options if o.startswith("tiny_xcit_linear "))).run()
    assert not at.exception, [e.value for e in at.exception]
    figs = attribution_figures(at)
    assert len(figs) == 2
    before = {k: v["data"] for k, v in figs.items()}
    at.multiselect(key="attr_methods").set_value(["occlusion"]).run()
    assert not at.exception, [e.value for e in at.exception]
    after = attribution_figures(at)
    assert len(after) == 2
    assert all(len(v["data"]) == 2 for v in after.values())
    assert {k: v["data"] for k, v in after.items()} != before


# --------------------------------------------------------------------------- efficiency

def test_efficiency_cost_table_and_scaling(app_env):
    at = run_page("efficiency")
    assert not at.dataframe
    # accuracy against parameters: one point per checkpoint, at the parameter count of its model and its stored
    # test accuracy
    (spec,) = charts(at, "eff_accuracy_params").values()
    points = {name: (x, y) for trace in spec["data"]
              for name, x, y in zip(trace["text"], spec_array(trace["x"]), spec_array(trace["y"]))}
    assert sorted(points) == sorted(p.stem for p in app_env.glob("*.json"))
    for name, (params, accuracy) in points.items():
        model, meta = checkpoints.load(app_env / name)
        assert params == sum(p.numel() for p in model.parameters())
        assert accuracy == pytest.approx(100 * meta["metrics"]["test_accuracy"], abs=1e-9)
    at.slider(key="eff_repeats").set_value(1).run()
    at.select_slider(key="eff_batch").set_value(16).run()
    at.button(key="eff_measure").click().run()
    assert not at.exception, [e.value for e in at.exception]
    costs = at.dataframe[0].value
    n_checkpoints = len(list(app_env.glob("*.json")))
    assert len(costs) == n_checkpoints
    assert (costs["params"] > 0).all() and (costs["flops_per_image"] > 0).all()
    assert (costs["latency_ms_batch1"] > 0).all()

    at.multiselect(key="eff_kinds").set_value(["softmax_explicit", "performer"])
    at.select_slider(key="eff_max_tokens").set_value(128)
    next(b for b in at.button if b.label == "Run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    time_fig = charts(at, "eff_time")
    assert len(time_fig) == 1
    traces = next(iter(time_fig.values()))["data"]
    assert sorted(t["name"] for t in traces) == ["performer", "softmax_explicit"]
    scaling = at.dataframe[-1].value
    assert set(scaling["kind"]) == {"softmax_explicit", "performer"} and set(scaling["tokens"]) == {64, 128}
    assert any("not measured" in c.value for c in at.caption)


def test_pages_without_checkpoints_explain(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(tmp_path / "empty"))
    for page in ("per_class", "attributions", "efficiency"):
        at = run_page(page)
        assert at.info and not at.get("plotly_chart"), page
