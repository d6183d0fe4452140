"""AppTest for the Representations page (layer x layer CKA between two checkpoints) on the tiny checkpoints."""
import json

import numpy as np

from app_fixtures import run_page, spec_array




def charts(at) -> dict:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def compute(at, key="rep_compute"):
    """Press the on-demand button when the page offers it (the CKA may already be on disk from an earlier test)."""
    found = [b for b in at.button if b.key == key]
    if found:
        found[0].click().run()
        assert not at.exception, [e.value for e in at.exception]
    assert not [b for b in at.button if b.key == key]


def test_representations_preset_and_custom_pair(app_env):
    at = run_page("representations")
    assert at.radio(key="rep_mode").value.startswith("Baseline vs SNE")
    compute(at)
    specs = charts(at)
    heat = [s for i, s in specs.items() if "rep_heat_0" in i]
    assert len(heat) == 1
    trace = heat[0]["data"][0]
    assert trace["type"] == "heatmap"
    z = spec_array(trace["z"])
    # tiny XCiT: 2 blocks + 2 class-attention blocks on both sides
    assert z.shape == (4, 4) and ((z >= 0) & (z <= 1 + 1e-9)).all()
    assert any("tiny_xcit_linear vs tiny_xcit_fsne (F-SNE)" in m.value for m in at.markdown)
    assert any("128 images per comparison" in c.value and "digits" in c.value for c in at.caption)
    assert any("rep_depth" in i for i in specs)

    at.radio(key="rep_mode").set_value("Any two checkpoints").run()
    assert not at.exception, [e.value for e in at.exception]
    box_a, box_b = at.selectbox(key="rep_a"), at.selectbox(key="rep_b")
    box_a.select_index(next(i for i, o in enumerate(box_a.options) if o.startswith("tiny_vit_softmax "))).run()
    at.select_slider(key="rep_images").set_value(32).run()
    assert not at.exception, [e.value for e in at.exception]
    box_b = at.selectbox(key="rep_b")
    box_b.select_index(next(i for i, o in enumerate(box_b.options) if o.startswith("tiny_vit_softmax "))).run()
    assert not at.exception, [e.value for e in at.exception]
    compute(at)
    heat = [s for i, s in charts(at).items() if "rep_heat_0" in i][0]["data"][0]
    z = spec_array(heat["z"])
    assert z.shape == (2, 2)
    assert np.allclose(np.diag(z), 1.0, atol=1e-6)  # a network with itself
    assert any("32 images per comparison" in c.value for c in at.caption)


def download_ids(at) -> list[str]:
    return [b.proto.id for b in at.get("download_button")]


def test_static_export_unavailable_is_explained_not_failed(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("VITVIZ_CHROMIUM", str(tmp_path / "no-chromium-here"))
    at = run_page("representations")
    compute(at)
    assert any("Static export (SVG/PDF/PNG) is unavailable" in c.value and "VITVIZ_CHROMIUM" in c.value
               for c in at.caption)
    assert not any(i.endswith(("rep_depth_svg", "rep_depth_pdf")) for i in download_ids(at))


def test_static_export_buttons_when_available(app_env):
    from vitviz.figures.export import static_export_status
    if not static_export_status()[0]:
        import pytest
        pytest.skip("no Chromium / kaleido here")
    at = run_page("representations")
    compute(at)
    ids = download_ids(at)
    for fmt in ("html", "svg", "pdf", "png"):
        assert any(i.endswith(f"rep_depth_{fmt}") for i in ids), (fmt, ids)


def test_per_class_html_report_collects_the_view(app_env):
    from vitviz.figures.report import html_report
    at = run_page("per_class")
    assert any(i.endswith("pc_report") for i in download_ids(at))
    report = at.session_state["_vitviz_report"]
    items = report["items"]
    assert report["settings"]["pc_level"] == 0.95 and "pc_a" in report["settings"]  # widgets below the button too
    kinds = [item.kind for item in items]
    assert kinds.count("figure") >= 4 and kinds.count("table") >= 2
    out = html_report("per-class", items, metadata={"a": {"variant": "vitviz_xcit_n12_p4_32_linear"}},
                      settings={"pc_level": 0.95})
    assert "Overall (A vs B)" in out and "<script src=" not in out and "per_class_bars" in out


def test_compare_html_report_button(app_env):
    at = run_page("compare")
    assert any(i.endswith("cmp_report") for i in download_ids(at))
    items = at.session_state["_vitviz_report"]["items"]
    assert any(item.kind == "figure" for item in items)


def test_layer_cka_loads_each_checkpoint_once_through_the_shared_resolver(app_env, tmp_path, monkeypatch):
    """The request goes down the layers: page -> ui cache -> result_cache -> the app's Resolved models. A model
    already loaded for another page is not loaded again, and a result on disk loads no model at all."""
    import shutil

    import streamlit as st

    from vitviz import checkpoints
    directory = tmp_path / "ck"
    shutil.copytree(app_env, directory, ignore=shutil.ignore_patterns("runs"))  # nothing cached on disk yet
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    st.cache_resource.clear()
    st.cache_data.clear()
    loads = []
    real = checkpoints.load
    monkeypatch.setattr(checkpoints, "load", lambda path, *a, **k: loads.append(str(path)) or real(path, *a, **k))
    at = run_page("attention")  # the page's default checkpoint is loaded for the Attention view
    assert not at.exception, [e.value for e in at.exception]
    first = list(loads)
    assert len(first) == len(set(first)) >= 1
    at = run_page("representations")
    compute(at)
    assert len(loads) == len(set(loads)), loads  # no checkpoint was loaded twice
    st.cache_resource.clear()
    st.cache_data.clear()
    loads.clear()
    at = run_page("representations")  # a fresh process's view: the result is on disk
    assert not [b for b in at.button if b.key == "rep_compute"]
    assert loads == []
