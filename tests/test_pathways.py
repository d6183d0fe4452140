"""vitviz.inspect.pathways (function-level Q/K/V similarity), weight overlap vs. function, and F-SNE codes as
the network sees them."""
import copy

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

import vitviz  # noqa: F401  (registers the variants)
from vitviz.inspect import code_contributions, pathway_cka, pathway_drift, weight_overlap
from vitviz.inspect.codes import code_contribution_label, fsne_modules
from vitviz.inspect.compare_weights import cka_long, cka_summary, drift_table, weight_drift
from vitviz.inspect.pathways import linear_cka, probe_images
from vitviz.inspect.weights import qkv_pathways

from tiny import tiny_kwargs

PREFIX = "vitviz_xcit_n12_p4_32_"


def _model(kind, seed=0, **extra):
    torch.manual_seed(seed)
    return timm.create_model(PREFIX + kind, num_classes=5, **dict(tiny_kwargs(PREFIX + kind), **extra)).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _features(model, x):
    """q̂, k̂ (XCA-normalised over tokens per image and channel) and v of every block, (B * N, C) each."""
    outs = []
    hooks = [blk.attn.qkv.register_forward_hook(lambda m, a, o: outs.append(o.detach())) for blk in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    feats = []
    for out in outs:  # (B, N, 3C)
        q, k, v = out.chunk(3, dim=-1)
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)  # over tokens, per image and channel
        feats.append([t.reshape(-1, t.shape[-1]) for t in (q, k, v)])
    return feats


@pytest.mark.parametrize("kind", ["linear", "sne", "psne", "fsne"])
def test_pathway_cka_is_linear_cka_of_what_xca_consumes(kind, images):
    model = _model(kind)
    result = pathway_cka(model, images, batch_size=4)  # 4 + 2: batches merge exactly
    assert result.matrices.shape == (2, 3, 3) and result.images == 6 and result.tokens_per_image == 64
    assert result.normalized_qk and len(result.blocks) == 2
    feats = _features(model, images)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                assert result.matrices[b, i, j] == pytest.approx(linear_cka(feats[b][i], feats[b][j]), abs=1e-9)
    np.testing.assert_allclose(result.matrices, np.swapaxes(result.matrices, 1, 2))
    np.testing.assert_allclose(np.diagonal(result.matrices, axis1=1, axis2=2), 1.0)
    one_batch = pathway_cka(model, images, batch_size=64)
    np.testing.assert_allclose(result.matrices, one_batch.matrices, atol=1e-9)
    table = result.table()
    assert list(table.columns) == ["block", "pair", "cka"] and len(table) == 6
    assert table["cka"].between(0, 1).all()
    summary = result.summary()
    assert summary["images"] == 6 and summary["q-k"] == pytest.approx(table.query("pair == 'q-k'")["cka"].mean())
    raw = pathway_cka(model, images, normalize_qk=False)
    assert not raw.normalized_qk and not np.allclose(raw.matrices, result.matrices)


def _logits(model, x):
    with torch.no_grad():
        return model(x)


def test_function_level_similarity_is_invariant_where_weight_cosine_is_not(images):
    """Why the weight cosine is only the secondary view. In block 0, k is made a copy of q (weight cosine 1,
    CKA 1). Two re-parametrisations of q that keep the logits (to ~1e-6) leave pathway_cka unchanged
    (within 1e-6), yet the q-k weight cosine drops far below 1 although q and k still compute the same."""
    # 1. SNE: permute the hidden units of block 0's q pathway (fc1 rows and bias, fc2 columns)
    sne = _model("sne", seed=3)
    emb = sne.blocks[0].attn.qkv
    h = emb.hidden
    with torch.no_grad():  # k := q
        emb.fc1.weight[h:2 * h] = emb.fc1.weight[:h]
        emb.fc1.bias[h:2 * h] = emb.fc1.bias[:h]
        emb.fc2.weight[1] = emb.fc2.weight[0]
        emb.fc2.bias[1] = emb.fc2.bias[0]
    permuted = copy.deepcopy(sne)
    emb = permuted.blocks[0].attn.qkv
    perm = torch.randperm(h, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        emb.fc1.weight[:h] = emb.fc1.weight[:h][perm]
        emb.fc1.bias[:h] = emb.fc1.bias[:h][perm]
        emb.fc2.weight[0] = emb.fc2.weight[0][:, perm]
    # 2. linear XCiT: rescale block 0's q channels by positive factors (XCA normalises each channel away)
    linear = _model("linear", seed=4)
    qkv, c = linear.blocks[0].attn.qkv, linear.embed_dim
    with torch.no_grad():  # k := q
        qkv.weight[c:2 * c] = qkv.weight[:c]
        qkv.bias[c:2 * c] = qkv.bias[:c]
    rescaled = copy.deepcopy(linear)
    qkv = rescaled.blocks[0].attn.qkv
    scale = torch.empty(c).uniform_(0.1, 10.0, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        qkv.weight[:c] *= scale[:, None]
        qkv.bias[:c] *= scale
    figures = {}
    for name, (before, after) in {"permutation": (sne, permuted), "rescaling": (linear, rescaled)}.items():
        logits_change = (_logits(before, images) - _logits(after, images)).abs().max().item()
        cka_before, cka_after = pathway_cka(before, images), pathway_cka(after, images)
        cka_change = np.abs(cka_before.matrices - cka_after.matrices).max()
        cos_before = weight_overlap(before).query("block == 0 and pair == 'q-k'")["cosine"].item()
        cos_after = weight_overlap(after).query("block == 0 and pair == 'q-k'")["cosine"].item()
        figures[name] = dict(logits=logits_change, cka=cka_change, cka_qk=cka_after.matrices[0, 0, 1],
                             cosine_before=cos_before, cosine_after=cos_after)
        assert logits_change < 1e-5, name
        assert cka_change < 1e-6, name
        assert cka_after.matrices[0, 0, 1] == pytest.approx(1.0, abs=1e-6)  # q and k still compute the same
        assert cos_before == pytest.approx(1.0) and cos_after < 0.9, name  # the weights say they differ
    print(figures)


def test_pathway_cka_on_a_vit_does_not_normalise():
    torch.manual_seed(0)
    vit = timm.create_model("vitviz_vit_softmax_32", num_classes=3, **tiny_kwargs("vitviz_vit_softmax_32")).eval()
    result = pathway_cka(vit, torch.randn(2, 3, 32, 32))
    assert not result.normalized_qk and result.matrices.shape == (2, 3, 3)


def test_pathway_drift_is_one_for_the_same_function_and_drops_when_weights_move(images):
    parent = _model("psne", seed=5)
    same = pathway_drift(parent, copy.deepcopy(parent), images, batch_size=4)
    assert list(same.columns) == ["block", "pathway", "cka", "images", "tokens_per_image"]
    assert len(same) == 2 * 3 and (same["images"] == 6).all()
    np.testing.assert_allclose(same["cka"], 1.0, atol=1e-9)
    child = copy.deepcopy(parent)
    with torch.no_grad():
        child.blocks[1].attn.qkv.fc2.weight[2].add_(torch.randn_like(child.blocks[1].attn.qkv.fc2.weight[2]))
    moved = pathway_drift(parent, child, images)
    assert moved.query("block == 1 and pathway == 'v'")["cka"].item() < 0.99
    np.testing.assert_allclose(moved.query("block == 0")["cka"], 1.0, atol=1e-9)
    np.testing.assert_allclose(moved.query("block == 1 and pathway != 'v'")["cka"], 1.0, atol=1e-9)
    drift = weight_drift(qkv_pathways(parent), qkv_pathways(child))
    assert drift.query("block == 1 and pathway == 'v'")["relative_change"].item() > 0.1
    assert drift.query("block == 0")["relative_change"].eq(0).all()
    assert np.allclose(drift.query("block == 0")["cosine"], 1)
    both = drift_table(moved, drift)
    assert list(both.columns) == ["block", "pathway", "function_cka", "weight_relative_change", "weight_cosine",
                                  "images"] and len(both) == 6
    with pytest.raises(ValueError, match="blocks"):
        pathway_drift(parent, _model("psne", depth=3), images)


def test_weight_overlap_reports_shared_fraction():
    fractions = {kind: weight_overlap(_model(kind))["shared_fraction"].unique().tolist()
                 for kind in ("linear", "sne", "psne", "fsne")}
    assert fractions == {"linear": [0.0], "sne": [0.0], "psne": [0.5], "fsne": [1.0]}
    table = weight_overlap(_model("fsne"))
    assert np.allclose(table["cosine"], 1.0) and table["cosine_unshared"].isna().all()


def test_cka_long_and_summary(images):
    ckas = {"a": pathway_cka(_model("linear"), images), "b": pathway_cka(_model("fsne"), images)}
    long = cka_long(ckas, {"a": "lin", "b": "fs"})
    assert list(long.columns) == ["checkpoint", "variant", "block", "pair", "cka"] and len(long) == 12
    summary = cka_summary(ckas, {"a": "lin", "b": "fs"})
    assert list(summary.columns) == ["checkpoint", "variant", "blocks", "images", "tokens_per_image",
                                     "mean q-k", "mean q-v", "mean k-v"]
    assert cka_summary(ckas, sources={"a": "x"})["images from"].tolist() == ["x", ""]
    assert summary["mean k-v"].iloc[1] == pytest.approx(ckas["b"].table().query("pair == 'k-v'")["cka"].mean())


def test_probe_images_fall_back_to_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("VITVIZ_DATA_DIR", str(tmp_path))
    meta = {"dataset": "cifar10", "img_size": 32, "classes": [str(i) for i in range(10)], "train_config": {}}
    images, source = probe_images(meta, count=50)
    assert images.shape == (50, 32, 32, 3) and images.dtype == np.uint8
    assert source.startswith("50 digits test images") and "cifar10 test set is not" in source
    digits, source = probe_images(dict(meta, dataset="digits"), count=10_000)
    assert source == f"{len(digits)} digits test images" and len(digits) == 360
    with pytest.raises(ValueError):
        probe_images(meta, count=0)


def test_probe_images_use_the_real_test_set(cifar10_mini, monkeypatch, tmp_path):
    monkeypatch.setenv("VITVIZ_DATA_DIR", str(tmp_path))
    meta = {"dataset": "cifar10", "img_size": 32, "train_config": {"data_root": str(cifar10_mini)},
            "classes": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    images, source = probe_images(meta, count=64)
    assert images.shape == (64, 32, 32, 3) and source == "64 cifar10 test images"


# --------------------------------------------------------------------------- F-SNE codes as the network sees them

@pytest.mark.parametrize("mode", ["concat", "add", "gate"])
def test_code_contributions_match_the_hand_formula(mode):
    model = _model("fsne", seed=6, code_mode=mode)
    seen, with_bias = code_contributions(model), code_contributions(model, include_bias=True)
    modules = [m for _, m in fsne_modules(model)]
    assert seen.shape == (2, 3, modules[0].hidden)
    for b, m in enumerate(modules):
        c = m.codes.detach()
        if mode == "concat":
            w, bias = m.fc1.weight[:, m.dim:], m.fc1.bias
            expected, expected_bias = c @ w.t(), c @ w.t() + bias
        elif mode == "add":
            w, bias = m.fc1.weight, m.fc1.bias
            expected, expected_bias = c @ w.t(), c @ w.t() + bias
        else:
            w, bias = m.gate.weight, m.gate.bias
            expected, expected_bias = c @ w.t(), torch.sigmoid(c @ w.t() + bias)
        torch.testing.assert_close(seen[b], expected.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(with_bias[b], expected_bias.detach(), rtol=1e-5, atol=1e-6)
        # the hidden units' pre-activation (concat/add) or gate (gate) per pathway, from the module's own forward
        x = torch.zeros(1, 1, m.dim)
        hidden = []
        m.fc2.register_forward_hook(lambda mod, a, o: hidden.append(a[0].detach()))
        with torch.no_grad():
            m(x)
        if mode == "gate":
            torch.testing.assert_close(hidden[0][0, 0], torch.relu(m.fc1.bias.detach()) * with_bias[b])
        else:
            torch.testing.assert_close(hidden[0][0, 0], torch.relu(with_bias[b]))
    label = code_contribution_label(model)
    assert label == {"concat": "W_c c_t", "add": "W c_t", "gate": "W_g c_t"}[mode]


def test_code_contributions_do_not_depend_on_the_code_basis():
    """Raw codes change under c -> R c, W_c -> W_c R⁻¹; the network and the contributions do not."""
    model = _model("fsne", seed=7)
    m = fsne_modules(model)[0][1]
    g = torch.Generator().manual_seed(0)
    r = torch.randn(m.code_length, m.code_length, generator=g) + 3 * torch.eye(m.code_length)
    before = code_contributions(model)
    raw_before = m.codes.detach().clone()
    with torch.no_grad():
        m.codes.copy_(m.codes @ r.t())
        m.fc1.weight[:, m.dim:] = m.fc1.weight[:, m.dim:] @ torch.linalg.inv(r)
    torch.testing.assert_close(code_contributions(model), before, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(F.cosine_similarity(raw_before[0], raw_before[1], dim=0),
                              F.cosine_similarity(m.codes[0], m.codes[1], dim=0), atol=1e-3)


# --------------------------------------------------------------------------- figures

def test_cka_figures():
    import pandas as pd
    from vitviz.figures import cka_by_depth, cka_grid

    df = pd.DataFrame([dict(checkpoint=c, block=b, pair=p, cka=0.1 * b + 0.5)
                       for c in ("a", "b") for b in range(3) for p in ("k-v", "q-k", "q-v")])
    fig = cka_by_depth(df)
    assert [a.text for a in fig.layout.annotations] == ["q-k", "q-v", "k-v"]
    assert len(fig.data) == 6 and [t.showlegend for t in fig.data].count(True) == 2
    assert {t.line.color for t in fig.data if t.name == "a"} == {fig.data[0].line.color}
    np.testing.assert_allclose(fig.data[0].y, [0.5, 0.6, 0.7])
    with pytest.raises(ValueError):
        cka_by_depth(df.drop(columns="cka"))
    grid = cka_grid(np.stack([np.eye(3), np.ones((3, 3))]), ["a", "b"])
    assert len(grid.data) == 2 and grid.data[0].zmin == 0 and grid.data[0].zmax == 1
    assert grid.data[0].showscale and not grid.data[1].showscale
    with pytest.raises(ValueError, match="shape"):
        cka_grid(np.zeros((2, 4, 4)))
