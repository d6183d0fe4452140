"""Faithfulness tests (perturbation test, RISE deletion/insertion): a planted case, bookkeeping, cache, CLI."""
import json

import numpy as np
import pytest
import timm
import torch
from torch import nn

from vitviz import checkpoints
from vitviz.cli import main
from vitviz.data import DATASETS
from vitviz.inspect import faithfulness as fa
from vitviz.metrics import bootstrap_mean_ci, paired_bootstrap_mean_diff_ci

from tiny import tiny_kwargs

SIZE = 8
REGION = (slice(0, 2), slice(0, 4))  # 8 of 64 pixels decide the output


class Planted(nn.Module):
    """Logit 0 = 3 x the mean of the deciding pixels (channel 0); logit 1 = 1.5. Removing (zeroing) more than half
    of the deciding pixels flips the prediction; no other pixel matters."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        s = 3 * x[:, 0, REGION[0], REGION[1]].mean((1, 2))
        return torch.stack([s, torch.full_like(s, 1.5)], 1) + self.dummy


def planted_batch(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, SIZE, SIZE, generator=g) * 0.1
    x[:, 0, REGION[0], REGION[1]] = 1.0
    heat = torch.zeros(n, SIZE, SIZE)
    heat[:, REGION[0], REGION[1]] = 1.0
    return x, heat, torch.zeros(n, dtype=torch.long)


def test_planted_map_beats_a_random_map():
    model = Planted()
    x, planted, labels = planted_batch()
    target = labels
    random = torch.rand(planted.shape, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    good = fa.perturbation_curves(model, x, planted, target, labels, generator=g)
    bad = fa.perturbation_curves(model, x, random, target, labels, generator=g)
    a = {k: fa.auc(v, fa.FRACTIONS) for k, v in good.items()}
    b = {k: fa.auc(v, fa.FRACTIONS) for k, v in bad.items()}
    # most relevant first: the planted map breaks the model at the first step (10% of pixels > half the region)
    assert np.allclose(good["positive_accuracy"][:, 0], 1) and np.allclose(good["positive_accuracy"][:, 1:], 0)
    assert a["positive_accuracy"].mean() < b["positive_accuracy"].mean()
    assert a["positive_probability"].mean() < b["positive_probability"].mean()
    # least relevant first: the deciding pixels survive every step up to 90%
    assert np.allclose(good["negative_accuracy"], 1)
    assert a["negative_accuracy"].mean() > b["negative_accuracy"].mean()
    rise_good = fa.deletion_insertion_curves(model, x, planted, target, steps=8, generator=g)
    rise_bad = fa.deletion_insertion_curves(model, x, random, target, steps=8, generator=g)
    xs = np.linspace(0, 1, 9)
    assert fa.auc(rise_good["deletion"], xs).mean() < fa.auc(rise_bad["deletion"], xs).mean()
    assert fa.auc(rise_good["insertion"], xs).mean() > fa.auc(rise_bad["insertion"], xs).mean()
    assert rise_good["deletion"].shape == (12, 9)


def test_auc_is_normalised_trapezoid():
    assert np.allclose(fa.auc(np.array([[1.0, 1.0, 1.0]]), [0, 0.45, 0.9]), 1.0)
    assert np.allclose(fa.auc(np.array([[1.0, 0.0]]), [0, 1]), 0.5)


def test_blur_keeps_a_constant_image():
    x = torch.full((1, 3, 8, 8), 0.7)
    assert torch.allclose(fa.gaussian_blur(x, 1.0), x, atol=1e-6)


def test_mean_bootstraps():
    low, high = bootstrap_mean_ci([0.1, 0.2, 0.3, 0.4], n_boot=500)
    assert 0.1 <= low < 0.25 < high <= 0.4
    diff, low, high = paired_bootstrap_mean_diff_ci([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], n_boot=200)
    assert diff == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)


def test_evaluate_table_and_verdict_on_a_tiny_vit():
    torch.manual_seed(0)
    name = "vitviz_vit_softmax_32"
    model = timm.create_model(name, num_classes=10, **tiny_kwargs(name))
    x, labels = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    settings = fa.Settings(images=6, methods=("raw_attention", "rollout", "chefer", "saliency", "random"),
                           rise_steps=4, batch_size=4, n_boot=100)
    seen = []
    result = fa.evaluate_faithfulness(model, x, labels, settings, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    for method in settings.methods:
        body = result["methods"][method]
        assert len(body["auc"]["positive_accuracy"]) == 6 and len(body["curves"]["deletion"]) == 5
    table = fa.faithfulness_table([dict(result, checkpoint="tiny")])
    assert set(table["metric"]) == set(fa.METRICS) and (table["ci_low"] <= table["auc"] + 1e-12).all()
    sentence = fa.verdict(dict(result, checkpoint="tiny"))
    assert sentence.startswith("tiny: most faithful") and ("not significant" in sentence or "significant" in sentence)


def test_methods_without_maps_are_reported_unavailable():
    name = "vitviz_fnet_32"
    model = timm.create_model(name, num_classes=10, **tiny_kwargs(name))
    settings = fa.Settings(images=2, methods=("raw_attention", "rollout", "chefer", "random"), rise_steps=2, n_boot=50)
    result = fa.evaluate_faithfulness(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 1]), settings)
    for method in ("raw_attention", "rollout", "chefer"):
        assert "unavailable" in result["methods"][method]
    assert "auc" in result["methods"]["random"]
    assert "random" in fa.faithfulness_table([result]).query("metric != 'unavailable'")["method"].tolist()


@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("VITVIZ_DATA_DIR", str(tmp_path / "data"))
    name = "vitviz_xcit_n12_p4_32_linear"
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, **tiny_kwargs(name))
    info = DATASETS["digits"]
    meta = dict(variant=name, variant_kwargs=tiny_kwargs(name), classes=[str(i) for i in range(10)], img_size=32,
                mean=list(info.mean), std=list(info.std), dataset="digits", metrics={}, train_config={}, parent=None)
    return checkpoints.save(model, tmp_path / "ckpt" / "tiny_xcit", meta)


def test_cli_writes_the_cache_and_reuses_it(tiny_checkpoint, capsys):
    args = ["faithfulness", "--checkpoint", str(tiny_checkpoint), "--images", "3", "--methods", "raw_attention",
            "rollout", "chefer", "--rise-steps", "2", "--n-boot", "50", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    settings = fa.Settings(images=3, methods=("raw_attention", "rollout", "chefer"), rise_steps=2, n_boot=50)
    cache = fa.cache_path(tiny_checkpoint, settings)
    assert out["cache"] == str(cache) and cache.exists() and "runs/faithfulness" in str(cache)
    assert checkpoints.checkpoint_candidates(tiny_checkpoint.parent, recursive=True) == [tiny_checkpoint]
    assert "digits" in out["image_source"] and "most faithful" in out["verdict"]
    methods = {row["method"]: row for row in out["table"]}
    assert methods["rollout"]["metric"] == "unavailable"           # XCiT: no token-to-token maps
    cached = fa.load_cached(tiny_checkpoint, settings)
    assert cached["weights_sha256"] and cached["settings"]["images"] == 3
    stamp = cache.stat().st_mtime_ns
    assert main(args) == 0                                          # second run: read from the cache
    assert cache.stat().st_mtime_ns == stamp
    assert fa.progress_of(tiny_checkpoint, settings) is None


# ------------------------------------------------------------------------------------------ app views

def _no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def test_app_faithfulness_page_shows_cached_results(app_env):
    from app_fixtures import run_page
    at = run_page("faithfulness")
    assert any("No cached results" in i.value for i in at.info)
    assert any(b.label.startswith("Compute ") for b in at.button)
    at.number_input(key="faith_images").set_value(3).run()
    at.multiselect(key="faith_methods").set_value(["chefer", "saliency", "random"]).run()
    _no_exception(at)
    path = at.session_state["faith_checkpoints__paths"][0]
    settings = fa.Settings(images=3, methods=("chefer", "saliency", "random"))
    fa.run_faithfulness(path, settings, device="cpu")
    at.run()
    _no_exception(at)
    assert len(at.dataframe) >= 1
    table = at.dataframe[0].value
    assert set(table["method"]) == {"chefer", "saliency", "random"}
    assert any("most faithful" in m.value for m in at.markdown)
    at.selectbox(key="faith_metric").set_value("insertion").run()
    _no_exception(at)
    assert any("insertion" in m.value for m in at.markdown)
    # the offline HTML report collects the faithfulness table and curves with the page's settings
    report = at.session_state["_vitviz_report"]
    kinds = [item.kind for item in report["items"]]
    assert "table" in kinds and "figure" in kinds and report["settings"]["faith_images"] == 3
    assert any(b.proto.id.endswith("faith_report") for b in at.get("download_button"))


def test_app_attention_and_compare_show_relevance_for_a_chosen_class(app_env):
    from app_fixtures import run_page
    at = run_page("attention")
    assert any("Gradient-weighted relevance" in s.value for s in at.subheader)
    charts = len(at.get("plotly_chart"))
    at.toggle(key="attn_relevance_on").set_value(True).run()
    _no_exception(at)
    assert len(at.get("plotly_chart")) == charts + 1
    # every class is in the one figure; its menu switches the explained class in the browser (no rerun)
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith("attn_relevance_fig"))
    menu = spec["layout"]["updatemenus"][0]
    labels = [b["label"] for b in menu["buttons"]]
    assert len(labels) == 10 and labels[menu["active"]].endswith(" (predicted)")
    three = next(b for b in menu["buttons"] if b["label"].split(" ")[0] == "3")
    shown = [t["name"] for t, op in zip(spec["data"], three["args"][0]["opacity"]) if op > 0 and t["type"] == "heatmap"]
    assert shown == ["relevance · class " + three["label"] + " · explained class"]
    assert any("Built on" in c.value for c in at.caption)
    at = run_page("compare")
    assert any("Gradient-weighted relevance" in s.value for s in at.subheader)
    charts = len(at.get("plotly_chart"))
    at.toggle(key="cmp_relevance_on").set_value(True).run()
    _no_exception(at)
    assert len(at.get("plotly_chart")) == charts + len(at.multiselect(key="cmp_checkpoints").value)
    at.selectbox(key="cmp_relevance_target").set_value("5").run()
    _no_exception(at)
    assert any("relevance for" in str(c.proto.spec) or ": 5" in str(c.proto.spec) for c in at.get("plotly_chart"))


def test_progress_states(tiny_checkpoint):
    import os
    import time
    settings = fa.Settings(images=2)
    assert fa.progress_of(tiny_checkpoint, settings) is None
    fa.write_progress(tiny_checkpoint, settings)(0.5, "chefer: images 1-2 of 2")
    state = fa.progress_of(tiny_checkpoint, settings)
    assert state["running"] and state["fraction"] == 0.5 and state["pid"] == os.getpid()
    target = fa.cache_path(tiny_checkpoint, settings).with_suffix(".progress")
    target.write_text(json.dumps({"fraction": 0.5, "message": "x", "pid": os.getpid(), "time": time.time() - 3600}))
    assert not fa.progress_of(tiny_checkpoint, settings)["running"]          # stale: taken as dead
    fa.clear_progress(tiny_checkpoint, settings, error="RuntimeError: boom")
    state = fa.progress_of(tiny_checkpoint, settings)
    assert not state["running"] and "boom" in state["error"]
    fa.clear_progress(tiny_checkpoint, settings)
    assert fa.progress_of(tiny_checkpoint, settings) is None
