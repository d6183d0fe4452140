"""Streamlit AppTest: every page renders on tiny checkpoints, and its main widgets change what is shown."""
import pytest

from app_fixtures import APP_VARIANTS, run_page


def test_zoo_lists_checkpoints_and_catalog(app_env):
    at = run_page("Zoo")
    tables = at.dataframe
    assert len(tables) == 2
    shown = tables[0].value
    assert set(shown["checkpoint"]) == set(APP_VARIANTS)
    assert "vitviz_cvt_32" in set(tables[1].value["variant"])
    assert any("Device:" in c.value for c in at.caption)
    at.button_group(key="zoo_family").set_value(["CvT", "XCiT"]).run()
    assert set(at.dataframe[1].value["family"]) == {"CvT", "XCiT"}


def test_zoo_reports_a_corrupt_checkpoint_without_failing(app_env, tmp_path, monkeypatch):
    import shutil
    directory = tmp_path / "ck"
    shutil.copytree(app_env, directory)
    (directory / "tiny_vit_softmax.json").write_text('{"variant": "vitviz_vit_softmax_32", "classes": 3}')
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    at = run_page("Zoo")
    assert len(at.dataframe[0].value) == len(APP_VARIANTS) - 1
    assert any("tiny_vit_softmax" in w.value for w in at.warning)


@pytest.mark.parametrize("stem", list(APP_VARIANTS))
def test_attention_page_every_checkpoint_and_layer_change(app_env, stem):
    at = run_page("attention")
    box = at.selectbox(key="checkpoint")
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith(stem))).run()
    at.radio(key="attn_image_source").set_value("Digits").run()
    assert not at.exception, [e.value for e in at.exception]
    charts = at.get("plotly_chart")
    assert charts, "no figure shown"
    if stem.startswith("tiny_vit"):
        # every layer is in one figure; its slider switches layers in the browser (values: test_map_to_screen.py)
        import json
        explorer = next(f for f in (json.loads(c.proto.spec) for c in charts) if f["layout"].get("sliders"))
        steps = explorer["layout"]["sliders"][0]["steps"]
        assert len(steps) == 2  # the tiny models' layers
        assert steps[0]["args"][0]["opacity"] != steps[1]["args"][0]["opacity"]
    if stem == "tiny_vit_performer":
        assert any("approximation" in i.value for i in [*at.subheader, *at.info])
    if stem.startswith("tiny_xcit"):
        assert any("class attention" in s.value for s in at.subheader)


def test_zoo_draws_each_runs_learning_curve(app_env, tmp_path, monkeypatch):
    import json
    import shutil
    directory = tmp_path / "ck"
    shutil.copytree(app_env, directory)
    meta_path = directory / "tiny_vit_softmax.json"
    meta = json.loads(meta_path.read_text())
    curve = [0.21, 0.35, 0.42]
    meta["train_config"]["history"] = [{"epoch": i + 1, "step": 10 * (i + 1), "train_loss": 2.0 - i / 10,
                                        "test_accuracy": a} for i, a in enumerate(curve)]
    meta_path.write_text(json.dumps(meta))
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    at = run_page("Zoo")
    shown = at.dataframe[0].value.set_index("checkpoint")["learning_curve"]
    assert list(shown["tiny_vit_softmax"]) == curve
    assert shown.drop("tiny_vit_softmax").isna().all()  # runs evaluated only at their end have no curve
