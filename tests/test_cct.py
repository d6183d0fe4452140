"""CCT (Hassani et al., arXiv 2104.05704): tokenizer grid, sequence pooling, no class token, parameter count,
and the views that read CCT through its sequence-pooling weights (capture's ``seq_pool``, rollout, relevance)."""
import pytest
import timm
import torch
import torch.nn.functional as F

import vitviz
from vitviz.inspect.attention_views import rollout_heat, seq_pool_heat
from vitviz.inspect.capture import capture
from vitviz.inspect.compare_views import VIEWS, attention_view
from vitviz.inspect.relevance import chefer_relevance, relevance_from_maps
from vitviz.inspect.rollout import attention_rollout
from vitviz.layers.attention import AttentionKernel
from vitviz.models.cct import CCT, SequencePool

from tiny import tiny_kwargs

KINDS = ("softmax", "nystrom", "performer")
PAPER_PARAMS = 3.76e6  # CCT-7/3x1 [paper, Table: CIFAR]


def tiny(kind="softmax", **extra):
    name = f"vitviz_cct_7_3x1_32_{kind}"
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=5, **{**tiny_kwargs(name), **extra}).eval()


def images(b=2, seed=1):
    return torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_tokenizer_is_one_conv_relu_maxpool_on_a_16x16_grid():
    model = timm.create_model("vitviz_cct_7_3x1_32_softmax").eval()
    tokenizer = model.patch_embed
    assert tokenizer.grid_size == (16, 16) and tokenizer.num_patches == 256
    conv = tokenizer.convs[0][0]
    assert (conv.kernel_size, conv.stride, conv.padding, conv.bias) == ((3, 3), (1, 1), (1, 1), None)
    assert len(tokenizer.convs) == 1 and conv.out_channels == 256
    x = images()
    with torch.no_grad():
        tokens = tokenizer(x)
        hand = F.max_pool2d(F.relu(F.conv2d(x, conv.weight, padding=1)), 3, 2, 1)  # (B, 256, 16, 16)
    assert tokens.shape == (2, 256, 256)
    torch.testing.assert_close(tokens, hand.flatten(2).transpose(1, 2))
    assert model.pos_embed.shape == (1, 256, 256)


def test_full_config_matches_the_paper():
    model = timm.create_model("vitviz_cct_7_3x1_32_softmax")
    assert len(model.blocks) == 7 and model.embed_dim == 256
    attn = model.blocks[0].attn
    assert attn.num_heads == 4 and attn.qkv.bias is None  # the authors' qkv has no bias
    assert model.blocks[0].mlp.fc1.out_features == 512     # MLP ratio 2
    rates = [0.0 if isinstance(b.drop_path, torch.nn.Identity) else b.drop_path.drop_prob for b in model.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1) and rates == sorted(rates)
    assert model.blocks[0].attn.kernel.attn_drop == pytest.approx(0.1)


@pytest.mark.parametrize("kind", KINDS)
def test_param_count_matches_paper(kind):
    count = vitviz.param_count(f"vitviz_cct_7_3x1_32_{kind}")
    print(f"vitviz_cct_7_3x1_32_{kind}: {count:,} parameters (paper: CCT-7/3x1 3.76M)")
    assert abs(count - PAPER_PARAMS) / PAPER_PARAMS < 0.03
    if kind != "nystrom":  # Nystromformer adds its residual conv: 7 layers x 4 heads x 33 taps
        assert count == 3_760_139
    else:
        assert count == 3_760_139 + 7 * 4 * 33


def test_no_class_token():
    model = tiny()
    assert model.num_prefix_tokens == 0
    assert not any("cls" in n for n, _ in model.named_parameters())
    x = images()
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, 256, 32)  # 256 tokens, no extra one
    art = capture(model, x, want=["attention", "grids"])
    assert all(a.shape[-2:] == (256, 256) for a in art["attention"])
    assert all(g == {"q": (16, 16), "k": (16, 16), "cls": False} for g in art["grids"])


def test_sequence_pooling_is_the_hand_computation():
    model = tiny()
    x = images()
    with torch.no_grad():
        tokens = model.forward_features(x)                                   # after the final LayerNorm
        w = torch.softmax(tokens @ model.seq_pool.score.weight[0] + model.seq_pool.score.bias, dim=1)  # (B, N)
        pooled = (w[:, :, None] * tokens).sum(1)
        torch.testing.assert_close(model.forward_head(tokens, pre_logits=True), pooled)
        torch.testing.assert_close(model(x), pooled @ model.head.weight.t() + model.head.bias)
    pool = SequencePool(4)
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(pool(x), torch.einsum("bn,bnc->bc", pool.score(x)[..., 0].softmax(-1), x))


@pytest.mark.parametrize("kind", KINDS)
def test_seq_pool_artifact_sums_to_one_and_is_what_the_head_reads(kind):
    model = tiny(kind)
    x = images()
    art = capture(model, x, want=["seq_pool", "grids"])
    w = art["seq_pool"]
    assert w.shape == (2, 256) and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2))
    with torch.no_grad():
        torch.testing.assert_close(w, model.seq_pool.pool_weights(model.forward_features(x)))
    assert seq_pool_heat(art).shape == (16, 16)
    assert any("sequence-pooling" in n for n in art["notes"])
    heat, caption = attention_view(capture(model, x, want=["attention", "implied_attention", "grids", "seq_pool"]),
                                   VIEWS[1])
    assert heat.shape == (16, 16) and "sequence-pooling" in caption


def test_seq_pool_absent_elsewhere():
    name = "vitviz_vit_softmax_32"
    model = timm.create_model(name, num_classes=5, **tiny_kwargs(name)).eval()
    assert "seq_pool" not in capture(model, images())


def test_rollout_is_read_at_the_sequence_pooling():
    """w @ R: the pooled read-out is one more attention row over the final tokens (no residual)."""
    model = tiny()
    art = capture(model, images(1), want=["attention", "grids", "seq_pool"])
    rollout = attention_rollout(art["attention"], tokens=256)
    expected = (art["seq_pool"][0] @ rollout[0]).reshape(16, 16)
    heat = rollout_heat(art["attention"], art["grids"], pool=art["seq_pool"])
    torch.testing.assert_close(torch.as_tensor(heat), expected)
    assert heat.sum() == pytest.approx(1.0, abs=1e-5)  # w sums to 1 and R is row-stochastic
    heat_view, caption = attention_view(art, VIEWS[0])
    assert "sequence pooling" in caption and heat_view.shape == (16, 16)


def test_chefer_relevance_reads_the_sequence_pooling_as_maps_in_graph():
    """Against the maps' and pooling weights' own gradients (retain_grad on the explicit softmax path):
    R = I, R <- R + mean_h((grad A * A)^+) R per block, explanation (grad w * w)^+ @ R."""
    model = tiny()
    x = images()
    got = chefer_relevance(model, x, target=2)
    assert "sequence pooling" in got.what and got.grid == (16, 16)
    kept, hooks = [], []

    def keep(module, args, out):
        out.retain_grad()
        kept.append(out)
    kernels = [m for m in model.modules() if isinstance(m, AttentionKernel)]
    for kernel in kernels:
        kernel.need_map = True
        hooks.append(kernel.attention_map.register_forward_hook(keep))
    hooks.append(model.seq_pool.weights_map.register_forward_hook(keep))
    try:
        model(x)[:, 2].sum().backward()
    finally:
        for h in hooks:
            h.remove()
        for kernel in kernels:
            kernel.need_map = False
    *maps, w = kept
    R = relevance_from_maps([m.detach() for m in maps], [m.grad for m in maps])
    expected = ((w.grad * w).clamp_min(0).double()[:, None] @ R)[:, 0]
    torch.testing.assert_close(got.relevance.flatten(1).double(), expected, atol=1e-9, rtol=1e-4)
    assert float(got.relevance.abs().sum()) > 0


def test_mlp_norm_layouts_same_params_different_blocks():
    stream, branch = tiny(), tiny(mlp_norm="branch")
    assert sum(p.numel() for p in stream.parameters()) == sum(p.numel() for p in branch.parameters())
    branch.load_state_dict(stream.state_dict())
    with torch.no_grad():
        assert not torch.allclose(stream(images()), branch(images()))
    with pytest.raises(ValueError, match="mlp_norm"):
        CCT(depth=1, embed_dim=16, num_heads=2, mlp_norm="post")


def test_unknown_argument_is_an_error():
    with pytest.raises(TypeError, match="unknown CCT arguments"):
        tiny(patch_size=4)
