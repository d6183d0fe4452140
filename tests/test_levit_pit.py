"""LeViT and PiT from timm with vitviz attention kernels (issue 15).

- The softmax variants are timm's models: timm's state dicts load unchanged and the outputs agree to 1e-5,
  at the model and at the attention module (fused and explicit path).
- LeViT's attention biases are in the maps (softmax and Nystromformer; the Performer variants have none), and
  map @ V is the attention output with non-zero biases; Nystromformer with every token a landmark is softmax
  with the bias.
- capture reports each layer's grid: PiT's pooled stages, LeViT's stages and its subsampling attention
  (fewer queries than keys).
- Parameter counts of the 224 configs equal timm's levit_128s (without its distillation head) and pit_ti_224.
- Relevance runs through LeViT's subsampling attention (checked against maps in the graph); PiT's uses its last
  stage; rollout is refused with the reason.
- The FLOP counter (efficiency page) works on both.
"""
import pytest
import timm
import torch

import vitviz
from vitviz.inspect.approximation import fidelity
from vitviz.inspect.attention_views import rollout_refusal
from vitviz.inspect.capture import capture
from vitviz.inspect.relevance import chefer_relevance
from vitviz.layers.attention import AttentionKernel, NystromKernel
from vitviz.models.levit import KernelAttention, KernelAttentionDownsample
from vitviz.models.pit import StageAttention

from tiny import tiny_kwargs

LEVIT_SMALL = dict(embed_dim=(16, 32, 48), key_dim=8, num_heads=(2, 2, 2))  # real depths 2/3/4, narrow
PIT_SMALL = dict(base_dims=(8, 8, 8), heads=(1, 2, 2))                      # real depths 2/6/4, narrow


def rel(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@torch.no_grad()
def trained_like(state: dict, seed: int = 0, shift: float = 1.0) -> dict:
    """Non-trivial LeViT / PiT weights: attention biases, BatchNorm statistics (means and biases N(0, shift^2))
    and the BatchNorm weights that LeViT initialises at zero (its residual branches would be zero otherwise)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value
        elif "attention_biases" in key:
            out[key] = torch.randn(value.shape, generator=g)
        elif key.endswith("running_mean") or key.endswith("bn.bias"):
            out[key] = torch.randn(value.shape, generator=g) * shift
        elif key.endswith("running_var") or key.endswith("bn.weight"):
            out[key] = torch.rand(value.shape, generator=g) + 0.5
        else:
            out[key] = value
    return out


def build(name, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs).eval()


# --------------------------------------------------------------------------- the softmax variants are timm's

@pytest.mark.parametrize("name, reference", [
    ("vitviz_levit_128s_224_softmax", dict(model_name="levit_128s", distilled=False)),
    ("vitviz_pit_ti_224_softmax", dict(model_name="pit_ti_224")),
])
def test_softmax_variants_are_timm_with_the_same_weights(name, reference):
    theirs = timm.create_model(**reference).eval()
    state = trained_like(theirs.state_dict())
    theirs.load_state_dict(state)
    ours = build(name)
    ours.load_state_dict(state, strict=True)  # timm's keys, unchanged
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs(x)
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)
        art = capture(ours, x, want=["attention"])  # the explicit path (maps requested) too
    torch.testing.assert_close(art["logits"], expected, atol=1e-5, rtol=1e-5)


def test_levit_attention_modules_equal_timms_with_bias():
    """Module level, with biases that matter: both LeViT attention kinds, fused and explicit path."""
    torch.manual_seed(0)
    theirs = timm.create_model("levit_128s", distilled=False, img_size=128).eval()  # 8x8, 4x4, 2x2
    theirs.load_state_dict(trained_like(theirs.state_dict()))
    ours = build("vitviz_levit_128s_224_softmax", img_size=128)
    ours.load_state_dict(theirs.state_dict())
    timm_modules = dict(theirs.named_modules())
    pairs = [(o, timm_modules[n]) for n, o in ours.named_modules()
             if isinstance(o, (KernelAttention, KernelAttentionDownsample))]
    assert [type(o) for o, _ in pairs].count(KernelAttentionDownsample) == 2
    for o, t in pairs:
        x = torch.randn(2, t.resolution[0] * t.resolution[1], o.kv.linear.in_features if o.subsamples else
                        o.qkv.linear.in_features)
        with torch.no_grad():
            expected = t(x)
            torch.testing.assert_close(o(x), expected, atol=1e-5, rtol=1e-5)
            o.kernel.need_map = True
            torch.testing.assert_close(o(x), expected, atol=1e-5, rtol=1e-5)
            o.kernel.need_map = False
            o.attention_biases.zero_()
            assert rel(o(x), expected) > 1e-3  # the biases are not negligible here


# --------------------------------------------------------------------------- biases in the maps

def layer_records(model, x):
    """Per kernel: its v, its bias (or None) and its output, from a plain forward."""
    records, handles = [], []
    for m in model.modules():
        if isinstance(m, AttentionKernel):
            r = {}
            records.append(r)
            handles.append(m.register_forward_pre_hook(
                lambda mod, a, r=r: r.update(v=a[2], bias=a[3] if len(a) > 3 else None)))
            handles.append(m.register_forward_hook(lambda mod, a, o, r=r: r.update(out=o)))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return records


@pytest.mark.parametrize("kind", ["softmax", "nystrom", "performer"])
def test_levit_maps_hold_the_biases_and_map_times_v_is_the_output(kind):
    model = build(f"vitviz_levit_{kind}_32", num_classes=10, **LEVIT_SMALL)
    # moderate activations: FAVOR+'s positive features exp(w x - |x|^2 / 2) underflow in float32 for |x| >~ 13
    model.load_state_dict(trained_like(model.state_dict(), shift=0.3))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, NystromKernel) and m.res_conv is not None:
                m.res_conv.weight.normal_(0, 0.3)
    attns = [m for m in model.modules() if isinstance(m, (KernelAttention, KernelAttentionDownsample))]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    key = "attention" if kind == "softmax" else "implied_attention"
    art = capture(model, x, want=[key, "qkv", "logit_bias", "grids"])
    records = layer_records(model, x)
    assert len(art[key]) == len(attns) == len(records) == 11  # 2 + 3 + 4 blocks, 2 subsampling attentions
    for m, attn, (q, k, v), r in zip(attns, art[key], art["qkv"], records):
        assert rel(attn @ v, r["out"]) < 1e-4
        if kind == "performer":
            assert m.attention_biases is None and r["bias"] is None
            continue
        bias = m.attention_biases[:, m.attention_bias_idxs].detach()
        torch.testing.assert_close(r["bias"], bias)
        torch.testing.assert_close(art["logit_bias"][attns.index(m)], bias)
        if kind == "softmax":
            torch.testing.assert_close(attn, ((q * m.scale) @ k.transpose(-2, -1) + bias).softmax(-1),
                                       atol=1e-5, rtol=1e-5)
            assert rel(attn, ((q * m.scale) @ k.transpose(-2, -1)).softmax(-1)) > 0.05
        else:
            with torch.no_grad():
                torch.testing.assert_close(attn, m.kernel.implied_attention(q, k, bias), atol=1e-5, rtol=1e-5)
                assert rel(attn, m.kernel.implied_attention(q, k)) > 0.05
    note = " ".join(art["notes"])
    assert ("have no attention biases" if kind == "performer" else "include its learned attention biases") in note
    assert "fewer queries than keys" in note
    if kind == "performer":
        assert "logit_bias" not in art
        assert "attention_biases" not in " ".join(n for n, _ in model.named_parameters())


def test_nystrom_with_every_token_a_landmark_is_softmax_with_the_bias():
    g = torch.Generator().manual_seed(0)
    q, k, v = [torch.randn(1, 2, 16, 8, generator=g) * 0.5 for _ in range(3)]
    bias = torch.randn(2, 16, 16, generator=g)
    softmax = ((q * 8 ** -0.5) @ k.transpose(-2, -1) + bias).softmax(-1)
    kernel = NystromKernel(8, 2, num_landmarks=16, pinv_iterations=30, conv_kernel=0)
    assert rel(kernel.implied_attention(q, k, bias), softmax) < 1e-3
    assert rel(kernel(q, k, v, bias), softmax @ v) < 1e-3
    assert rel(kernel.implied_attention(q, k), softmax) > 0.1
    rectangular = NystromKernel(8, 2, num_landmarks=4, conv_kernel=0)  # LeViT's subsampling attention: 4 x 16
    out = rectangular(q[:, :, :4], k, v, bias[:, :4])
    torch.testing.assert_close(rectangular.implied_attention(q[:, :, :4], k, bias[:, :4]) @ v, out,
                               atol=1e-5, rtol=1e-5)


def test_fidelity_compares_with_softmax_including_the_bias():
    model = build("vitviz_levit_nystrom_32", num_classes=10, num_landmarks=64, pinv_iterations=30,
                  conv_kernel=0, **LEVIT_SMALL)
    model.load_state_dict(trained_like(model.state_dict()))
    report = fidelity(model, torch.randn(1, 3, 32, 32), budgets=(4, 64))
    assert any("attention biases" in n for n in report.notes)
    # every token a landmark (64 / 16 / 4 tokens): the operator is softmax with the bias, up to the pseudo-inverse
    assert report.layers["map_error"].max() < 1e-2, report.layers


# --------------------------------------------------------------------------- grids per stage

def test_pit_grids_per_stage():
    model = build("vitviz_pit_softmax_32", num_classes=10, **PIT_SMALL)
    art = capture(model, torch.randn(1, 3, 32, 32), want=["attention", "grids"])
    expected = [(16, 16)] * 2 + [(8, 8)] * 6 + [(4, 4)] * 4
    assert [g["q"] for g in art["grids"]] == [g["k"] for g in art["grids"]] == expected == model.stage_grids[:1] * 2 \
        + model.stage_grids[1:2] * 6 + model.stage_grids[2:] * 4
    assert all(g["cls"] for g in art["grids"]) and any("pooling layer" in n for n in art["notes"])
    for attn, g in zip(art["attention"], art["grids"]):
        assert attn.shape[-2:] == (g["q"][0] * g["q"][1] + 1,) * 2
    big = build("vitviz_pit_ti_224_softmax", **tiny_kwargs("vitviz_pit_ti_224_softmax"))
    assert big.stage_grids == [(7, 7), (4, 4), (2, 2)]  # 64 px: (64 - 16) / 8 + 1 = 7
    assert build("vitviz_pit_ti_224_softmax", depth=(1, 1, 1)).stage_grids == [(27, 27), (14, 14), (7, 7)]
    assert all(isinstance(b.attn, StageAttention) for s in big.transformers for b in s.blocks)


def test_levit_grids_per_stage_and_rectangular_maps():
    model = build("vitviz_levit_softmax_32", num_classes=10, **LEVIT_SMALL)
    art = capture(model, torch.randn(1, 3, 32, 32), want=["attention", "grids"])
    q = [(8, 8)] * 2 + [(4, 4)] * 4 + [(2, 2)] * 5
    k = [(8, 8)] * 2 + [(8, 8)] + [(4, 4)] * 3 + [(4, 4)] + [(2, 2)] * 4
    assert [g["q"] for g in art["grids"]] == q and [g["k"] for g in art["grids"]] == k
    assert not any(g["cls"] for g in art["grids"])
    for attn, g in zip(art["attention"], art["grids"]):
        assert attn.shape[-2:] == (g["q"][0] * g["q"][1], g["k"][0] * g["k"][1])
        torch.testing.assert_close(attn.sum(-1), torch.ones(attn.shape[:-1]))
    assert [n.endswith("attn_downsample") for n in art["block_names"]].count(True) == 2
    refusal = rollout_refusal(art["attention"], art["grids"])
    assert "subsampled queries" in refusal and "8x8 -> 4x4 -> 2x2" in refusal


# --------------------------------------------------------------------------- parameter counts

def test_param_counts_of_the_224_configs_equal_timms():
    levit = vitviz.param_count("vitviz_levit_128s_224_softmax")
    with torch.device("meta"):
        timm_levit = sum(p.numel() for p in timm.create_model("levit_128s", distilled=False).parameters())
        timm_levit_dist = sum(p.numel() for p in timm.create_model("levit_128s").parameters())
        timm_pit = sum(p.numel() for p in timm.create_model("pit_ti_224").parameters())
    assert levit == timm_levit == 7_391_290
    # the paper's 7.8M counts the distillation head (BatchNorm1d(384) + Linear(384, 1000)) that vitviz leaves out
    assert timm_levit_dist - levit == 2 * 384 + 384 * 1000 + 1000 and abs(timm_levit_dist - 7.8e6) < 0.05e6
    assert vitviz.param_count("vitviz_pit_ti_224_softmax") == timm_pit == 4_847_272
    assert abs(timm_pit - 4.9e6) < 0.06e6
    # Performer: no attention biases (heads x tokens per attention); Nystromformer adds its residual convs
    assert vitviz.param_count("vitviz_levit_128s_224_performer") < levit < \
        vitviz.param_count("vitviz_levit_128s_224_nystrom")
    assert vitviz.param_count("vitviz_pit_ti_224_performer") == timm_pit


# --------------------------------------------------------------------------- relevance and rollout

def test_levit_relevance_runs_through_the_subsampling_attention():
    """Against maps in the graph (explicit softmax path, retain_grad): R <- R + A_bar R in the blocks, R <- A_bar R at
    the subsampling attention; the mean of R's rows on the first stage's 8x8 grid."""
    model = build("vitviz_levit_softmax_32", num_classes=10, **LEVIT_SMALL)
    model.load_state_dict(trained_like(model.state_dict()))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    got = chefer_relevance(model, x, target=4)
    assert got.grid == (8, 8) and got.relevance.shape == (2, 8, 8) and got.relevance.abs().sum() > 0
    assert any("subsampling attention" in n for n in got.notes)
    attns = [m for m in model.modules() if isinstance(m, (KernelAttention, KernelAttentionDownsample))]
    maps, hooks = [], []
    for a in attns:
        a.kernel.need_map = True

        def keep(m, args, out):
            out.retain_grad()
            maps.append(out)
        hooks.append(a.kernel.attention_map.register_forward_hook(keep))
    model(x)[:, 4].sum().backward()
    for h in hooks:
        h.remove()
    r = torch.eye(64, dtype=torch.float64).repeat(2, 1, 1)
    for a, m in zip(attns, maps):
        a_bar = (m.grad * m).clamp_min(0).mean(1).double()
        r = a_bar @ r if a.subsamples else r + a_bar @ r
    assert r.shape == (2, 4, 64)
    assert torch.allclose(got.relevance.flatten(1).double(), r.mean(1), atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("kind", ["softmax", "performer"])
def test_pit_relevance_uses_its_last_stage_and_rollout_is_refused(kind):
    model = build(f"vitviz_pit_{kind}_32", num_classes=10, **PIT_SMALL)
    got = chefer_relevance(model, torch.randn(1, 3, 32, 32), target=0)
    assert got.grid == (4, 4) and "PiT last stage (4 blocks on its 4x4 grid with the class token)" in got.what
    assert any("last stage only" in n for n in got.notes) and torch.isfinite(got.relevance).all()
    key = "attention" if kind == "softmax" else "implied_attention"
    art = capture(model, torch.randn(1, 3, 32, 32), want=[key, "grids"])
    assert "16x16 -> 8x8 -> 4x4" in rollout_refusal(art[key], art["grids"])


@pytest.mark.parametrize("name, kwargs", [("vitviz_pit_softmax_32", PIT_SMALL),
                                          ("vitviz_levit_softmax_32", LEVIT_SMALL)])
def test_model_cost_counts_flops(name, kwargs):
    """PiT hands its expanded class token (under no_grad: a leaf view that requires grad) to a module; the FLOP
    counter's module tracker must cope."""
    from vitviz.inspect.efficiency import model_cost
    cost = model_cost(build(name, num_classes=10, **kwargs), 32)
    assert cost["flops"] > 0 and cost["params"] > 0
