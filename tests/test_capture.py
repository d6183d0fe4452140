"""capture(): the artifacts of every registered variant, and that it leaves the model as it found it."""
import pytest
import timm
import torch
from timm.layers import set_fused_attn

import vitviz
from vitviz.inspect.capture import capture

from tiny import tiny_img_size, tiny_kwargs

ALL = vitviz.list_variants()


def build(name, **extra):
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=5, **tiny_kwargs(name), **extra)


def images_for(name, b=2):
    s = tiny_img_size(name)
    return torch.randn(b, 3, s, s, generator=torch.Generator().manual_seed(1))


def state_snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ALL)
def test_capture_every_variant_logits_match_and_model_untouched(name):
    model = build(name).train()
    x = images_for(name)
    flags = {n: getattr(m, "need_map", getattr(m, "fused_attn", None)) for n, m in model.named_modules()}
    before = state_snapshot(model)
    with torch.no_grad():
        model.eval()
        expected = model(x)
        model.train()
    art = capture(model, x, want=["logits", "attention", "implied_attention", "operator_parts", "operator_shares",
                                  "projected_attention", "xca", "class_attention", "qkv", "codes", "grids",
                                  "token_mixing", "fourier_mixing"])
    torch.testing.assert_close(art["logits"], expected, atol=1e-4, rtol=1e-4)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert flags == {n: getattr(m, "need_map", getattr(m, "fused_attn", None)) for n, m in model.named_modules()}
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    has_maps = any(k in art for k in ("attention", "implied_attention", "projected_attention", "xca"))
    assert has_maps or "token_mixing" in art or "fourier_mixing" in art, f"{name}: nothing to show ({list(art)})"


@pytest.mark.parametrize("name", ["vitviz_vit_softmax_32", "vitviz_cvt_32"])
def test_softmax_maps_are_row_stochastic_with_grids(name):
    model = build(name)
    art = capture(model, images_for(name), want=["attention", "grids", "qkv"])
    assert len(art["attention"]) == len(art["grids"]) == len(art["qkv"]) > 0
    for attn, grid, (q, k, v) in zip(art["attention"], art["grids"], art["qkv"]):
        B, H, Nq, Nk = attn.shape
        assert Nq == grid["q"][0] * grid["q"][1] + grid["cls"]
        assert Nk == grid["k"][0] * grid["k"][1] + grid["cls"]
        torch.testing.assert_close(attn.sum(-1), torch.ones(B, H, Nq), atol=1e-5, rtol=0)
        assert q.shape[:3] == (B, H, Nq) and k.shape[:3] == (B, H, Nk) and v.shape == k.shape
        torch.testing.assert_close(attn, ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1),
                                   atol=1e-5, rtol=1e-4)


def test_cvt_keys_are_strided():
    art = capture(build("vitviz_cvt_32"), images_for("vitviz_cvt_32"), want=["attention", "grids"])
    grids = art["grids"]
    assert any(g["k"][0] < g["q"][0] for g in grids)
    assert grids[-1]["cls"] and not grids[0]["cls"]


@pytest.mark.parametrize("fused", [True, False])
def test_xcit_xca_class_attention_codes_regardless_of_fused_setting(fused):
    set_fused_attn(fused)
    try:
        name = "vitviz_xcit_n12_p4_32_fsne"
        model = build(name)
        art = capture(model, images_for(name), want=["xca", "class_attention", "codes", "temperatures", "qkv", "grids"])
    finally:
        set_fused_attn(True)
    depth, heads, dim = 2, 2, 32
    assert len(art["xca"]) == depth and art["xca"][0].shape == (2, heads, dim // heads, dim // heads)
    torch.testing.assert_close(art["xca"][0].sum(-1), torch.ones(2, heads, dim // heads), atol=1e-5, rtol=0)
    assert len(art["class_attention"]) == 2 and art["class_attention"][0].shape == (2, heads, 64 + 1)
    torch.testing.assert_close(art["class_attention"][0].sum(-1), torch.ones(2, heads), atol=1e-5, rtol=0)
    assert art["codes"].shape == (depth, 3, 8)
    torch.testing.assert_close(art["codes"][0], model.blocks[0].attn.qkv.codes.detach())
    assert art["temperatures"].shape == (depth, heads)
    assert art["grids"] == [{"q": (8, 8), "k": (8, 8), "cls": False}] * depth
    q, k, v = art["qkv"][0]
    assert q.shape == (2, heads, 64, dim // heads)
    # the recorded XCA map is what XCA computes from the recorded q, k
    qn, kn = torch.nn.functional.normalize(q.transpose(-2, -1), dim=-1), torch.nn.functional.normalize(
        k.transpose(-2, -1), dim=-1)
    expected = (qn @ kn.transpose(-2, -1) * model.blocks[0].attn.temperature.detach()).softmax(-1)
    torch.testing.assert_close(art["xca"][0], expected, atol=1e-5, rtol=1e-4)


def test_paper_config_xca_is_heads_by_32_by_32():
    model = timm.create_model("vitviz_xcit_n12_p16_224_linear", num_classes=10, img_size=64)
    art = capture(model, torch.randn(1, 3, 64, 64), want=["xca"])
    assert len(art["xca"]) == 12 and art["xca"][0].shape == (1, 4, 32, 32)


def test_class_attention_with_embedded_qkv():
    name = "vitviz_xcit_n12_p4_32_psne"
    model = build(name, qkv_in_class_attention=True)
    art = capture(model, images_for(name), want=["class_attention"])
    assert len(art["class_attention"]) == 2
    torch.testing.assert_close(art["class_attention"][1].sum(-1), torch.ones(2, 2), atol=1e-5, rtol=0)


def test_implied_attention_only_when_asked_and_labelled():
    name = "vitviz_vit_performer_32"
    model = build(name)
    assert "implied_attention" not in capture(model, images_for(name))
    art = capture(model, images_for(name), want=["implied_attention"])
    attn = art["implied_attention"][0]
    notes = " ".join(art["notes"])
    assert attn.shape == (2, 2, 65, 65) and "exactly the N x N operator" in notes and "approximates softmax" in notes
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 2, 65), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="max_implied_tokens"):
        capture(model, images_for(name), want=["implied_attention"], max_implied_tokens=16)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_linformer_map_is_n_by_k_and_labelled():
    name = "vitviz_vit_linformer_32"
    art = capture(build(name), images_for(name))
    attn = art["projected_attention"][0]
    assert attn.shape[2] == 65 and attn.shape[3] < 65 and "N x k" in " ".join(art["notes"])


def test_no_attention_variants_say_so_and_offer_token_mixing():
    mixer = capture(build("vitviz_mixer_32"), images_for("vitviz_mixer_32"))
    assert "attention" not in mixer and "no attention" in " ".join(mixer["notes"])
    assert mixer["token_mixing"][0].shape == (16, 64) and "fourier_mixing" not in mixer  # (hidden, tokens)
    fnet = capture(build("vitviz_fnet_32"), images_for("vitviz_fnet_32"))
    assert "no attention" in " ".join(fnet["notes"]) and "token_mixing" not in fnet
    assert fnet["fourier_mixing"]["tokens"].shape == (2, 64, 64)
    assert fnet["fourier_mixing"]["channels"].shape == (2, 32, 32)


def test_nystrom_operator_parts_sum_to_the_map_with_their_shares():
    name = "vitviz_vit_nystrom_32"
    model = build(name)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.kernel.res_conv.weight.normal_(0, 0.2)
    art = capture(model, images_for(name), want=["implied_attention", "operator_parts", "operator_shares"])
    parts, shares = art["operator_parts"][0], art["operator_shares"][0]
    assert set(parts) == set(shares) == {"nystrom", "conv"}
    torch.testing.assert_close(parts["nystrom"] + parts["conv"], art["implied_attention"][0])
    assert shares["conv"].shape == (2, 2) and (shares["conv"] > 0).all()
    band = parts["conv"][0, 0]
    assert band[0, 40] == 0 and band[40, 0] == 0  # kernel 33: |i - j| <= 16 only


def test_unknown_artifact_is_refused():
    with pytest.raises(ValueError, match="unknown artifacts"):
        capture(build("vitviz_fnet_32"), images_for("vitviz_fnet_32"), want=["heatmaps"])
