"""Heavy sections on demand (issue 12: every page's first view in <= 2 s). The Q/K/V codes & weights and the
Representations pages render their cheap content without computing any CKA; their button computes it (under a
spinner that names what is computed) and shows the figures; a second session after Streamlit's in-memory caches
are cleared (as after an app restart) shows the result from the disk cache without computing. Computations are
counted with spies, not timed."""
import contextlib
import json
import shutil

import pytest
import streamlit as st

from vitviz import checkpoints
from vitviz.inspect import result_cache

from app_fixtures import run_page


@pytest.fixture
def fresh_env(checkpoint_dir, tmp_path, monkeypatch):
    """The tiny checkpoints in a directory of their own (no cache files of other tests) and empty caches."""
    directory = tmp_path / "ck"
    directory.mkdir()
    for f in checkpoint_dir.glob("tiny_*"):
        shutil.copy(f, directory / f.name)
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(directory))
    monkeypatch.setenv("VITVIZ_DATA_DIR", str(tmp_path / "data"))
    st.cache_data.clear()
    return directory


def spy(monkeypatch, name) -> list:
    calls = []
    real = getattr(result_cache, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(result_cache, name, counted)
    return calls


def spinner_texts(monkeypatch) -> list:
    """The texts of every st.spinner the pages open."""
    texts = []
    real = st.spinner

    @contextlib.contextmanager
    def recorded(text="", *args, **kwargs):
        texts.append(text)
        with real(text, *args, **kwargs):
            yield
    monkeypatch.setattr(st, "spinner", recorded)
    return texts


def ok(at):
    assert not at.exception, [e.value for e in at.exception]


def chart_keys(at) -> list[str]:
    return [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")]


def chart(at, key) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}"))


def buttons(at, key) -> list:
    return [b for b in at.button if b.key == key]


def test_codes_weights_pathway_cka_on_demand_then_from_disk(fresh_env, monkeypatch):
    calls = spy(monkeypatch, "pathway_cka")
    spinners = spinner_texts(monkeypatch)
    at = run_page("codes_weights")
    assert calls == []                                                   # the first view computes no CKA
    assert "cw_cka_depth" not in chart_keys(at)
    (button,) = buttons(at, "cw_cka_compute")
    assert button.label == "Compute the pathway CKA (2 checkpoints, 64 images each)"
    assert any(c.value.startswith("Not computed yet for tiny_xcit_fsne, tiny_xcit_linear") for c in at.caption)

    button.click().run()
    ok(at)
    assert len(calls) == 2 and not buttons(at, "cw_cka_compute")
    assert "cw_cka_depth" in chart_keys(at) and "cw_cka_grid" in chart_keys(at)
    assert [t for t in spinners if t.startswith("Pathway CKA")] == [
        "Pathway CKA 1 of 2: running 64 test images through tiny_xcit_fsne and comparing what its q, k and v "
        "compute in every block ...",
        "Pathway CKA 2 of 2: running 64 test images through tiny_xcit_linear and comparing what its q, k and v "
        "compute in every block ..."]
    stored = sorted(p.name for p in (fresh_env / "runs" / "analyses" / "pathway_cka").iterdir())
    assert len(stored) == 2 and stored[0].startswith("tiny_xcit_fsne-") and stored[1].startswith("tiny_xcit_linear-")
    depth = chart(at, "cw_cka_depth")
    at.selectbox(key="cw_cka_block").select(1).run()                     # another widget: no recomputation
    ok(at)
    assert len(calls) == 2 and "block 1" in json.dumps(chart(at, "cw_cka_grid"))

    st.cache_data.clear()                                                # as after a restart of the app
    second = run_page("codes_weights")
    assert not buttons(second, "cw_cka_compute") and chart(second, "cw_cka_depth") == depth
    assert len(calls) == 2                                               # read from disk, not computed

    # another image count is another result: asked for again
    second.select_slider(key="cw_images").set_value(32).run()
    ok(second)
    assert buttons(second, "cw_cka_compute") and len(calls) == 2


def test_representations_layer_cka_on_demand_then_from_disk(fresh_env, monkeypatch):
    calls = spy(monkeypatch, "checkpoint_cka")
    loads = []
    real_load = checkpoints.load
    monkeypatch.setattr(checkpoints, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    st.cache_resource.clear()
    spinners = spinner_texts(monkeypatch)
    at = run_page("representations")
    assert calls == [] and loads == []          # the first view neither computes nor loads a model
    assert not [k for k in chart_keys(at) if k.startswith("rep_heat")]
    (button,) = buttons(at, "rep_compute")
    assert button.label == "Compute the layer x layer CKA (1 comparison, 128 images)"

    button.click().run()
    ok(at)
    assert len(calls) == 1 and not buttons(at, "rep_compute") and "rep_heat_0" in chart_keys(at)
    assert any(t.startswith("Layer x layer CKA 1 of 1: running 128 test images through tiny_xcit_linear and "
                            "tiny_xcit_fsne") for t in spinners)
    heat = chart(at, "rep_heat_0")
    at.toggle(key="rep_fit").set_value(True).run()
    ok(at)
    assert len(calls) == 1 and chart(at, "rep_heat_0") != heat        # refitted colours, same CKA

    st.cache_data.clear()
    second = run_page("representations")
    assert not buttons(second, "rep_compute") and chart(second, "rep_heat_0") == heat
    assert len(calls) == 1
