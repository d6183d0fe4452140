"""vitviz.inspect.compare_weights (and the small XCA / compare-view helpers the pages use)."""
import numpy as np
import pandas as pd
import pytest
import timm
import torch

import vitviz  # noqa: F401  (registers the variants)
from vitviz.inspect import capture, qkv_pathways, weight_overlap, weight_stats
from vitviz.inspect.compare_views import VIEWS, attention_view, top_predictions
from vitviz.inspect.compare_weights import (SHARED_PATHWAY, STATISTIC_HELP, STATISTICS, block_count, block_spectra,
                                            block_values, combine, overlap_long, stat_lines)
from vitviz.inspect.cross_covariance import temperature_table, xca_matrices

from tiny import tiny_kwargs


def _model(variant, seed=0):
    torch.manual_seed(seed)
    return timm.create_model(variant, num_classes=3, **tiny_kwargs(variant)).eval()


@pytest.fixture(scope="module")
def models():
    return {"lin": _model("vitviz_xcit_n12_p4_32_linear"), "fsne": _model("vitviz_xcit_n12_p4_32_fsne", 1)}


def test_combine_adds_checkpoint_and_variant_columns():
    a, b = pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [3]})
    out = combine({"A": a, "B": b}, {"A": "va", "B": "vb"})
    assert list(out.columns) == ["checkpoint", "variant", "x"]
    assert out["checkpoint"].tolist() == ["A", "A", "B"] and out["variant"].tolist() == ["va", "va", "vb"]
    assert list(combine({}).columns) == ["checkpoint"]


def test_stat_lines_counts_shared_layers_once(models):
    stats = {name: weight_stats(m) for name, m in models.items()}
    lines = stat_lines(stats, "fro_norm", {"lin": "L", "fsne": "F"})
    lin, fsne = lines[lines["checkpoint"] == "lin"], lines[lines["checkpoint"] == "fsne"]
    assert len(lin) == 2 * 3 and set(lin["series"]) == {"lin · q", "lin · k", "lin · v"}
    # F-SNE: fc1 and fc2 are shared by q, k, v -> one row per block and layer
    assert len(fsne) == 2 * 2 and set(fsne["pathway"]) == {SHARED_PATHWAY} and fsne["shared"].all()
    assert set(fsne["series"]) == {f"fsne · {SHARED_PATHWAY} · fc1", f"fsne · {SHARED_PATHWAY} · fc2"}
    expected = stats["lin"].query("block == 1 and pathway == 'k'")["fro_norm"].item()
    assert lin.query("block == 1 and pathway == 'k'")["fro_norm"].item() == pytest.approx(expected)
    assert set(lines["variant"]) == {"L", "F"}
    with pytest.raises(ValueError, match="unknown statistic"):
        stat_lines(stats, "mean")
    assert set(STATISTICS) <= set(stats["lin"].columns)
    assert set(STATISTIC_HELP) == set(STATISTICS) and all("=" in text for text in STATISTIC_HELP.values())


def test_block_spectra_and_values(models):
    weights = {name: qkv_pathways(m) for name, m in models.items()}
    assert block_count(weights) == 2
    spectra = block_spectra(weights, 1, "k")
    assert set(spectra) == {"lin · linear", "fsne · fc1 (shared)", "fsne · fc2 (shared)"}
    w = models["lin"].blocks[1].attn.qkv.weight.detach().chunk(3)[1]
    np.testing.assert_allclose(spectra["lin · linear"], torch.linalg.svdvals(w.double()).numpy(), rtol=1e-6)
    assert np.all(np.diff(spectra["fsne · fc1 (shared)"]) <= 0)
    values = block_values(weights, 0, "q")
    assert values["lin"].size == 32 * 32
    assert values["fsne"].size == sum(t.numel() for t in weights["fsne"][0]["q"].values())
    assert block_values(weights, None, "v")["lin"].size == 2 * 32 * 32
    assert block_spectra(weights, 5, "q") == {}
    with pytest.raises(ValueError, match="pathway"):
        block_values(weights, 0, "x")


def test_overlap_long(models):
    table = overlap_long({name: weight_overlap(m) for name, m in models.items()})
    assert list(table.columns) == ["checkpoint", "kind", "block", "pair", "shared_fraction", "cosine",
                                   "cosine_unshared"]
    assert np.allclose(table[table["checkpoint"] == "fsne"]["cosine"], 1.0)
    assert table[table["checkpoint"] == "fsne"]["cosine_unshared"].isna().all()


def test_xca_matrices_and_temperatures(models):
    art = capture(models["lin"], torch.randn(1, 3, 32, 32), want=["xca", "temperatures"])
    m = xca_matrices(art)
    assert m.shape == (2, 2, 16, 16)
    np.testing.assert_allclose(m.sum(-1), 1.0, rtol=1e-5)  # softmax rows
    np.testing.assert_allclose(xca_matrices(art, average_heads=True)[:, 0], m.mean(1), rtol=1e-6)
    table = temperature_table(art["temperatures"])
    assert list(table.columns) == ["layer", "head 0", "head 1"] and len(table) == 2
    with pytest.raises(ValueError, match="cross-covariance"):
        xca_matrices({"logits": None})


def test_attention_views_per_family(models):
    x = torch.randn(1, 3, 32, 32)
    xcit = capture(models["lin"], x, want=["attention", "class_attention", "grids"])
    heat, note = attention_view(xcit, VIEWS[0])
    assert heat.shape == (8, 8) and "class attention" in note
    vit = capture(_model("vitviz_vit_softmax_32"), x, want=["attention", "grids"])
    rollout, _ = attention_view(vit, VIEWS[0])
    last, note = attention_view(vit, VIEWS[1])
    assert rollout.shape == last.shape == (8, 8) and not np.allclose(rollout, last)
    performer = capture(_model("vitviz_vit_performer_32"), x, want=["attention", "implied_attention", "grids"])
    assert "approximation" in attention_view(performer, VIEWS[1])[1]
    heat, note = attention_view({"logits": None, "grids": []}, VIEWS[1])
    assert heat is None and "no token attention" in note
    with pytest.raises(ValueError):
        attention_view(vit, VIEWS[2])


def test_top_predictions():
    top = top_predictions(torch.tensor([[0.0, 2.0, 1.0]]), ["a", "b", "c"], k=2)
    assert [c for c, _ in top] == ["b", "c"] and top[0][1] > top[1][1]
    assert len(top_predictions(torch.zeros(1, 2), ["a", "b"])) == 2


def test_preferred_defaults_pick_one_attention_model_per_family():
    import pandas as pd
    from vitviz.inspect.compare_views import preferred_defaults
    table = pd.DataFrame([
        {"checkpoint": "cvt", "variant": "vitviz_cvt_32", "family": "CvT", "path": "c"},
        {"checkpoint": "fnet", "variant": "vitviz_fnet_32", "family": "FNet", "path": "f"},
        {"checkpoint": "lin", "variant": "vitviz_vit_linformer_32", "family": "ViT", "path": "l"},
        {"checkpoint": "soft", "variant": "vitviz_vit_softmax_32", "family": "ViT", "path": "s"},
        {"checkpoint": "x", "variant": "vitviz_xcit_n12_p4_32_sne", "family": "XCiT", "path": "x"},
    ])
    assert preferred_defaults(table) == ["x", "s"]
    assert preferred_defaults(table, 4) == ["x", "s", "c", "f"]
    assert preferred_defaults(table.iloc[:0]) == []


def test_cvt_rollout_view_falls_back_to_the_class_token_map():
    import timm
    import torch
    from vitviz.inspect import capture
    from vitviz.inspect.compare_views import CAPTURE_WANT, VIEWS, attention_view
    from tiny import tiny_kwargs
    model = timm.create_model("vitviz_cvt_32", num_classes=10, **tiny_kwargs("vitviz_cvt_32"))
    art = capture(model, torch.randn(1, 3, 32, 32), want=CAPTURE_WANT)
    heat, note = attention_view(art, VIEWS[0])
    assert heat is not None and heat.shape == art["grids"][-1]["k"] and "strided" in note
