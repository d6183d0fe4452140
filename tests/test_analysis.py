"""Attention rollout, Q/K/V weight statistics and F-SNE codes (vitviz.inspect.{rollout,weights,codes})."""
import math

import numpy as np
import pytest
import timm
import torch
from tiny import tiny_kwargs

import vitviz  # noqa: F401  (registers the variants)
from vitviz.inspect.codes import code_drift, code_similarity, qkv_codes
from vitviz.inspect.rollout import attention_rollout, cls_rollout_map, upsample_map
from vitviz.inspect.pathways import linear_cka
from vitviz.inspect.weights import (effective_rank, qkv_pathways, singular_values, stable_rank, weight_histograms,
                                    weight_overlap, weight_stats)

PREFIX = "vitviz_xcit_n12_p4_32_"
DEPTH = tiny_kwargs(PREFIX)["depth"]
DIM = tiny_kwargs(PREFIX)["embed_dim"]


def _model(kind: str, **extra):
    torch.manual_seed(0)
    return timm.create_model(f"{PREFIX}{kind}", num_classes=10, **tiny_kwargs(PREFIX), **extra).eval()


@pytest.fixture(scope="module")
def models():
    return {kind: _model(kind) for kind in ("linear", "sne", "psne", "fsne")}


def _random_attention(blocks=3, batch=2, heads=3, tokens=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, tokens, tokens, generator=g, dtype=torch.float64).mul(2).softmax(-1)
            for _ in range(blocks)]


# --------------------------------------------------------------------------- rollout

@pytest.mark.parametrize("fusion", ["mean", "min", "max"])
@pytest.mark.parametrize("discard", [0.0, 0.5])
def test_rollout_of_identity_attention_is_identity(fusion, discard):
    eye = torch.eye(6).expand(2, 4, 6, 6)
    for residual in (True, False):
        r = attention_rollout([eye, eye, eye], head_fusion=fusion, discard_ratio=discard, residual=residual,
                              tokens=6)
        assert r.shape == (2, 6, 6)
        torch.testing.assert_close(r, torch.eye(6).expand(2, 6, 6))


@pytest.mark.parametrize("fusion", ["mean", "min", "max"])
def test_rollout_rows_are_stochastic(fusion):
    r = attention_rollout(_random_attention(), head_fusion=fusion, tokens=5)
    assert r.shape == (2, 5, 5)
    assert (r >= 0).all()
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 5, dtype=r.dtype))


def test_rollout_multiplies_later_blocks_on_the_left():
    attn = _random_attention(blocks=3, heads=1)
    r = attention_rollout(attn, residual=False, tokens=5)
    a1, a2, a3 = (a[:, 0] for a in attn)
    torch.testing.assert_close(r, a3 @ a2 @ a1)
    assert not torch.allclose(r, a1 @ a2 @ a3)  # the order matters for these matrices
    eye = torch.eye(5, dtype=torch.float64)
    res = [0.5 * a + 0.5 * eye for a in (a1, a2, a3)]
    torch.testing.assert_close(attention_rollout(attn, tokens=5), res[2] @ res[1] @ res[0])


def test_head_fusion_modes_differ_and_match_their_definition():
    attn = _random_attention(blocks=1, heads=4)
    for fusion, fn in (("mean", lambda a: a.mean(1)), ("min", lambda a: a.amin(1)), ("max", lambda a: a.amax(1))):
        fused = fn(attn[0])
        expected = fused / fused.sum(-1, keepdim=True)
        torch.testing.assert_close(attention_rollout(attn, head_fusion=fusion, residual=False, tokens=5), expected)
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(attn, head_fusion="median", tokens=5)


@pytest.mark.parametrize("residual", [True, False])
def test_discard_zeroes_entries_and_keeps_rows_stochastic(residual):
    attn = _random_attention(blocks=1, heads=2, tokens=6)
    r = attention_rollout(attn, discard_ratio=0.5, residual=residual, tokens=6)
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 6, dtype=r.dtype))
    off_diag = ~torch.eye(6, dtype=torch.bool)
    # half of the 30 off-diagonal entries per sample are gone; the diagonal is never discarded
    assert ((r == 0) & off_diag).sum(dim=(1, 2)).tolist() == [15, 15]
    assert (torch.diagonal(r, dim1=-2, dim2=-1) > 0).all()
    kept = attention_rollout(attn, discard_ratio=0.0, residual=residual, tokens=6)
    assert ((kept == 0) & off_diag).sum() == 0


def test_rollout_treats_samples_independently():
    attn = _random_attention(blocks=3, batch=2, heads=2, tokens=5, seed=3)
    together = attention_rollout(attn, head_fusion="max", discard_ratio=0.4, tokens=5)
    for b in range(2):
        alone = attention_rollout([a[b:b + 1] for a in attn], head_fusion="max", discard_ratio=0.4, tokens=5)
        torch.testing.assert_close(together[b:b + 1], alone)
    assert not torch.allclose(together[0], together[1])


def test_rollout_rejects_non_square_and_empty():
    with pytest.raises(ValueError, match=r"\(2, 4, 1, 17\)"):
        attention_rollout([torch.rand(2, 4, 1, 17)], tokens=17)
    with pytest.raises(ValueError, match="square"):
        attention_rollout([torch.rand(4, 5, 5)], tokens=5)
    with pytest.raises(ValueError):
        attention_rollout([], tokens=5)


def test_cls_rollout_map_and_upsample():
    r = attention_rollout(_random_attention(blocks=2, batch=2, tokens=17), tokens=17)
    m = cls_rollout_map(r, grid=(4, 4))
    assert m.shape == (2, 4, 4)
    torch.testing.assert_close(m.reshape(2, -1), r[:, 0, 1:])
    no_cls = cls_rollout_map(r[:, 1:, 1:], grid=None, has_cls=False)
    torch.testing.assert_close(no_cls.reshape(2, -1), r[:, 1:, 1:].mean(1))
    with pytest.raises(ValueError, match="grid"):
        cls_rollout_map(r, grid=(3, 5))
    up = upsample_map(m, 32)
    assert up.shape == (2, 32, 32)
    for b in range(2):
        assert up[b].min().item() == pytest.approx(0.0) and up[b].max().item() == pytest.approx(1.0)
    assert upsample_map(torch.ones(1, 4, 4), (8, 6)).abs().sum() == 0


# --------------------------------------------------------------------------- weights

def test_linear_pathways_reproduce_qkv_weight(models):
    model = models["linear"]
    paths = qkv_pathways(model)
    assert len(paths) == DEPTH
    for i, p in enumerate(paths):
        assert p["kind"] == "linear" and p["shared"] == {"linear": False}
        assert p["q"]["linear"].shape == (DIM, DIM)
        cat = torch.cat([p[t]["linear"] for t in "qkv"])
        assert torch.equal(cat, model.blocks[i].attn.qkv.weight.detach())
    with_cls = qkv_pathways(model, include_class_attention=True)
    assert len(with_cls) == DEPTH + len(model.cls_attn_blocks)
    assert with_cls[-1]["class_attention"] and torch.equal(with_cls[-1]["k"]["linear"],
                                                           model.cls_attn_blocks[-1].attn.k.weight.detach())


@pytest.mark.parametrize("kind, shared", [("sne", {"fc1": False, "fc2": False}),
                                          ("psne", {"shared": True, "fc2": False}),
                                          ("fsne", {"fc1": True, "fc2": True})])
def test_nonlinear_pathways_and_shared_flags(models, kind, shared):
    paths = qkv_pathways(models[kind])
    assert len(paths) == DEPTH
    for i, p in enumerate(paths):
        assert p["kind"] == kind and p["shared"] == shared
        assert all(set(p[t]) == set(shared) for t in "qkv")
        for layer, is_shared in shared.items():
            same = torch.equal(p["q"][layer], p["k"][layer]) and torch.equal(p["q"][layer], p["v"][layer])
            assert same == is_shared
    table = weight_stats(models[kind])
    assert len(table) == DEPTH * 3 * len(shared)
    assert table.groupby("layer")["shared"].all().to_dict() == shared


def test_sne_pathways_are_slices_of_fc1():
    model = _model("sne")
    p = qkv_pathways(model)[0]
    fc1 = model.blocks[0].attn.qkv.fc1.weight.detach()
    torch.testing.assert_close(torch.cat([p[t]["fc1"] for t in "qkv"]), fc1, rtol=0, atol=0)


def test_weight_stats_columns_and_values(models):
    table = weight_stats(models["linear"])
    for col in ("block", "pathway", "layer", "shared", "shape", "fro_norm", "spectral_norm", "mean", "std",
                "effective_rank", "stable_rank"):
        assert col in table.columns
    assert len(table) == DEPTH * 3
    row = table[(table.block == 1) & (table.pathway == "v")].iloc[0]
    w = models["linear"].blocks[1].attn.qkv.weight.detach().double()[2 * DIM:]
    assert row["shape"] == f"{DIM}x{DIM}"
    assert row.fro_norm == pytest.approx(float(torch.linalg.norm(w)))
    assert row.spectral_norm == pytest.approx(float(torch.linalg.matrix_norm(w, ord=2)))
    assert row["mean"] == pytest.approx(float(w.mean()))
    assert row["std"] == pytest.approx(float(w.std(correction=0)))
    assert row.stable_rank == pytest.approx(row.fro_norm ** 2 / row.spectral_norm ** 2)
    assert row.effective_rank >= 1.0 and row.effective_rank <= DIM
    assert row.effective_rank == pytest.approx(effective_rank(w))


def test_effective_and_stable_rank():
    assert effective_rank(torch.eye(7)) == pytest.approx(7.0)
    u, v = torch.randn(9, 1), torch.randn(1, 5)
    assert effective_rank(u @ v) == pytest.approx(1.0, abs=1e-4)
    assert stable_rank(u @ v) == pytest.approx(1.0, abs=1e-6)
    assert stable_rank(torch.eye(4)) == pytest.approx(4.0)
    assert effective_rank(torch.diag(torch.tensor([1.0, 1.0, 0.0]))) == pytest.approx(2.0)
    assert effective_rank(torch.zeros(3, 3)) == 0.0
    s = singular_values(torch.diag(torch.tensor([1.0, 3.0, 2.0])))
    torch.testing.assert_close(s, torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))


def test_linear_cka_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g, dtype=torch.float64)
    y = torch.randn(200, 8, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ q) == pytest.approx(1.0)
    assert linear_cka(x, 3.7 * x) == pytest.approx(1.0)
    assert linear_cka(x, y) == pytest.approx(linear_cka(x @ q * 0.2, y * 5.0))
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))
    assert linear_cka(x, y) < 0.3  # independent noise
    assert linear_cka(x, x + 5.0) == pytest.approx(1.0)  # centred
    with pytest.raises(ValueError):
        linear_cka(x, y[:10])


def test_weight_overlap(models):
    model = models["linear"]
    plain = weight_overlap(model)
    assert list(plain.columns) == ["block", "module", "kind", "class_attention", "pair", "shared_fraction", "cosine",
                                   "cosine_unshared"]
    assert len(plain) == DEPTH * 3 and set(plain.pair) == {"q-k", "q-v", "k-v"}
    w = model.blocks[0].attn.qkv.weight.detach().double()
    wq, wk = w[:DIM].flatten(), w[DIM:2 * DIM].flatten()
    row = plain[(plain.block == 0) & (plain.pair == "q-k")].iloc[0]
    assert row.cosine == pytest.approx(float(wq @ wk / (wq.norm() * wk.norm())))
    assert row.cosine_unshared == pytest.approx(row.cosine) and row.shared_fraction == 0.0
    fsne = weight_overlap(models["fsne"])
    assert np.allclose(fsne.cosine, 1.0) and fsne.cosine_unshared.isna().all() and (fsne.shared_fraction == 1).all()
    psne = weight_overlap(models["psne"])
    assert (psne.shared_fraction == 0.5).all() and (psne.cosine > psne.cosine_unshared).all()


def test_weight_histograms_share_edges(models):
    h = weight_histograms(models["sne"], bins=20)
    assert h["edges"].shape == (21,)
    assert len(h["blocks"]) == DEPTH
    for t in "qkv":
        assert h["counts"][t].shape == (DEPTH, 20)
    p = qkv_pathways(models["sne"])
    n = sum(w.numel() for w in p[0]["q"].values())
    assert h["counts"]["q"][0].sum() == n  # range covers every weight
    assert h["edges"][0] <= min(float(w.min()) for e in p for t in "qkv" for w in e[t].values())


def test_qkv_pathways_needs_an_embedding():
    with pytest.raises(ValueError, match="no Q/K/V embedding"):
        qkv_pathways(torch.nn.Sequential(torch.nn.Linear(4, 4)))


# --------------------------------------------------------------------------- codes

def test_codes_shape_similarity_and_drift(models):
    model = models["fsne"]
    codes = qkv_codes(model)
    length = model.blocks[0].attn.qkv.code_length
    assert codes.shape == (DEPTH, 3, length)
    assert torch.equal(codes[1], model.blocks[1].attn.qkv.codes.detach())
    sim = code_similarity(codes)
    assert sim.shape == (DEPTH, 3, 3)
    torch.testing.assert_close(torch.diagonal(sim, dim1=-2, dim2=-1), torch.ones(DEPTH, 3, dtype=sim.dtype))
    torch.testing.assert_close(sim, sim.transpose(-1, -2))
    assert sim[0, 0, 1].abs() < 1e-5  # initialised orthonormal

    same = code_drift(codes, codes.clone())
    assert len(same) == DEPTH * 3 and set(same.pathway) == {"q", "k", "v"}
    assert (same.l2_change == 0).all() and (same.relative_change == 0).all()
    assert np.allclose(same.cosine, 1.0)

    moved = codes.clone()
    moved[1, 2] = -moved[1, 2]
    drift = code_drift(codes, moved)
    row = drift[(drift.block == 1) & (drift.pathway == "v")].iloc[0]
    assert row.cosine == pytest.approx(-1.0) and row.relative_change == pytest.approx(2.0)
    assert row.l2_change == pytest.approx(2 * float(codes[1, 2].norm()))
    assert (drift.drop(index=row.name).l2_change == 0).all()
    with pytest.raises(ValueError, match="shape"):
        code_drift(codes, codes[:1])


def test_codes_include_fsne_class_attention_only():
    model = _model("fsne", qkv_in_class_attention=True)
    codes = qkv_codes(model)
    assert codes.shape[0] == DEPTH + len(model.cls_attn_blocks)
    assert torch.equal(codes[-1], model.cls_attn_blocks[-1].attn.qkv.codes.detach())
    assert len(qkv_pathways(model, include_class_attention=True)) == codes.shape[0]


@pytest.mark.parametrize("kind", ["linear", "psne"])
def test_qkv_codes_needs_fsne(models, kind):
    with pytest.raises(ValueError, match="F-SNE"):
        qkv_codes(models[kind])
    assert math.isfinite(float(weight_stats(models[kind]).fro_norm.sum()))
