"""A checkpoint whose files vanish after it was selected: every picker says so and substitutes nothing."""
import shutil

from vitviz.train.jobs import JobStore

from app_fixtures import run_page


def own_copy(app_env, tmp_path, monkeypatch):
    directory = tmp_path / "ck"
    shutil.copytree(app_env, directory)
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    return directory


def select(at, key, stem):
    box = at.selectbox(key=key)
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith(stem + " "))).run()
    assert not at.exception, [e.value for e in at.exception]


def vanish(directory, stem, rename=False):
    for f in directory.glob(f"{stem}.*"):
        if rename:
            f.rename(f.with_name("renamed_" + f.name))
        else:
            f.unlink()


def says_vanished(at, stem):
    return any(stem in e.value and "no longer available" in e.value for e in at.error)


def test_finetune_does_not_queue_another_checkpoint_when_the_selection_vanished(app_env, tmp_path, monkeypatch):
    directory = own_copy(app_env, tmp_path, monkeypatch)
    at = run_page("finetune")
    select(at, "ft_checkpoint", "tiny_vit_performer")
    vanish(directory, "tiny_vit_performer", rename=True)
    submit = [b for b in at.button if b.label.startswith("Start fine-tune")]
    if submit:  # the old page queued the first listed checkpoint here
        submit[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert says_vanished(at, "tiny_vit_performer")
    assert at.selectbox(key="ft_checkpoint").value.startswith("tiny_vit_performer (missing")
    assert JobStore(directory / "runs").list() == []
    # choosing another checkpoint works again, and the missing one leaves the list
    select(at, "ft_checkpoint", "tiny_vit_softmax")
    assert not at.error and not any("missing" in o for o in at.selectbox(key="ft_checkpoint").options)


def test_single_picker_says_the_selection_vanished(app_env, tmp_path, monkeypatch):
    directory = own_copy(app_env, tmp_path, monkeypatch)
    at = run_page("cross_covariance")
    select(at, "xcc_checkpoint", "tiny_xcit_linear")
    vanish(directory, "tiny_xcit_linear")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert says_vanished(at, "tiny_xcit_linear")
    assert not at.get("plotly_chart")  # nothing shown for another checkpoint


def test_multi_picker_says_the_selection_vanished(app_env, tmp_path, monkeypatch):
    directory = own_copy(app_env, tmp_path, monkeypatch)
    at = run_page("attributions")
    chosen = at.multiselect(key="attr_checkpoints")
    at.multiselect(key="attr_checkpoints").set_value([o for o in chosen.options if o.startswith("tiny_vit_softmax ")])
    at.radio(key="attr_image_source").set_value("Digits")
    at.multiselect(key="attr_methods").set_value(["saliency"]).run()
    assert not at.exception and len(at.get("plotly_chart")) == 1
    vanish(directory, "tiny_vit_softmax")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert says_vanished(at, "tiny_vit_softmax")
    assert not at.get("plotly_chart")


def test_zoo_lists_every_unreadable_checkpoint_with_its_reason(app_env, tmp_path, monkeypatch):
    directory = own_copy(app_env, tmp_path, monkeypatch)
    (directory / "bad_json.json").write_text("{not json")
    (directory / "bad_json.safetensors").write_bytes(b"")
    (directory / "not_object.json").write_text("[1, 2]")
    (directory / "not_object.safetensors").write_bytes(b"")
    shutil.copy(directory / "tiny_vit_softmax.json", directory / "no_weights.json")
    for stem in ("truncated", "unknown_variant"):
        shutil.copy(directory / "tiny_vit_softmax.json", directory / f"{stem}.json")
        shutil.copy(directory / "tiny_vit_softmax.safetensors", directory / f"{stem}.safetensors")
    data = (directory / "truncated.safetensors").read_bytes()
    (directory / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    text = (directory / "unknown_variant.json").read_text()
    (directory / "unknown_variant.json").write_text(text.replace('"vitviz_vit_softmax_32"', '"no_such_variant"', 1))
    at = run_page("zoo")
    warnings = " | ".join(w.value for w in at.warning)
    for stem, reason in (("bad_json", "not valid JSON"), ("not_object", "must be a JSON object"),
                         ("no_weights", "weights file not found"), ("truncated", "truncated"),
                         ("unknown_variant", "unknown variant")):
        assert any(stem in w.value and reason in w.value for w in at.warning), (stem, warnings)
    listed = set(at.dataframe[0].value["checkpoint"])
    assert listed == {"tiny_xcit_fsne", "tiny_xcit_linear", "tiny_vit_softmax", "tiny_vit_performer"}


def test_upload_accepts_any_file_so_a_rejection_is_shown_as_an_error(app_env):
    at = run_page("attention")
    at.radio(key="attn_image_source").set_value("Upload").run()
    assert not at.exception, [e.value for e in at.exception]
    uploader = at.get("file_uploader")[0]
    assert list(uploader.proto.type) == []  # the browser's filter showed its rejection only on hover


def test_finetune_learning_rate_in_scientific_format(app_env):
    at = run_page("finetune")
    at.radio(key="ft_preset").set_value("Custom").run()  # the presets set the rate themselves
    lr = at.number_input(key="ft_lr")
    assert lr.proto.format == "%.1e" and lr.value == 5e-4
    assert "1e-6" in lr.help and "1e-1" in lr.help


def test_attention_opens_on_an_xcit_or_vit_model(app_env):
    at = run_page("attention")
    assert at.selectbox(key="checkpoint").value.startswith("tiny_xcit_")
