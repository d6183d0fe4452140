"""Attributions (captum), feature projections and efficiency measures, on tiny models."""
import math

import numpy as np
import pytest
import timm
import torch
from torch import nn

import vitviz
from tiny import tiny_img_size, tiny_kwargs
from vitviz.inspect.attributions import METHODS, attribute, to_heatmap
from vitviz.inspect.efficiency import (SCALING_KINDS, CrossCovarianceKernel, attention_scaling, count_flops,
                                       kernel_outputs, model_cost, time_forward)
from vitviz.inspect.projections import Projection, features, project

MODELS = ["vitviz_vit_softmax_32", "vitviz_xcit_n12_p4_32_fsne"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: with a busy second core, two threads stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(name, num_classes=5):
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=num_classes, **tiny_kwargs(name))


def images(name, n=2, seed=1):
    size = tiny_img_size(name)
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


FAST = dict(n_steps=4, nt_samples=3, occlusion_window=8, internal_batch_size=8)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("name", MODELS)
def test_attribution_shape_finite_and_model_untouched(name, method):
    model = tiny_model(name)
    model.train()
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = images(name, n=3)
    x_before = x.clone()

    with torch.no_grad():  # must still work
        attr = attribute(model, x, method=method, **FAST)

    assert attr.shape == x.shape
    assert torch.isfinite(attr).all()
    assert attr.abs().sum() > 0
    assert torch.equal(x, x_before) and not x.requires_grad
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)

    heat = to_heatmap(attr)
    assert heat.shape == (3, x.shape[2], x.shape[3])
    assert heat.min() >= 0 and torch.allclose(heat.flatten(1).amax(1), torch.ones(3))


def test_attribution_default_target_is_prediction_and_chunks_agree():
    name = MODELS[0]
    model = tiny_model(name).eval()
    x = images(name, n=3)
    pred = model(x).argmax(1)
    default = attribute(model, x, method="saliency")
    explicit = attribute(model, x, target=pred, method="saliency")
    chunked = attribute(model, x, target=pred.tolist(), method="saliency", internal_batch_size=2)
    assert torch.allclose(default, explicit) and torch.allclose(explicit, chunked, atol=1e-6)


class OnePixel(nn.Module):
    """Logits depend on a single input value, x[:, 1, 3, 5]."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([2.0, -1.0, 0.5]))

    def forward(self, x):
        return x[:, 1, 3, 5, None] * self.w


def test_saliency_is_nonzero_only_at_the_pixel_the_model_reads():
    x = torch.randn(2, 3, 8, 8)
    attr = attribute(OnePixel(), x, target=0, method="saliency")
    expected = torch.zeros_like(x)
    expected[:, 1, 3, 5] = 2.0
    assert torch.equal(attr, expected)
    heat = to_heatmap(attr)
    assert heat[:, 3, 5].eq(1).all() and heat.sum() == 2


def test_integrated_gradients_of_a_linear_one_pixel_model_is_exact():
    x = torch.randn(2, 3, 8, 8)
    attr = attribute(OnePixel(), x, target=2, method="integrated_gradients", n_steps=8)
    expected = torch.zeros_like(x)
    expected[:, 1, 3, 5] = 0.5 * x[:, 1, 3, 5]  # (x - 0) * d logit / dx
    assert torch.allclose(attr, expected, atol=1e-6)


def test_occlusion_only_marks_windows_covering_the_pixel():
    x = torch.randn(1, 3, 8, 8)
    attr = attribute(OnePixel(), x, target=0, method="occlusion", occlusion_window=4)
    nonzero = attr[0, 0] != 0
    assert nonzero[:4, 4:].all() and nonzero.sum() == 16  # the 4x4 window at rows 0-3, cols 4-7


def test_unknown_method_raises_with_choices():
    with pytest.raises(ValueError, match="integrated_gradients"):
        attribute(OnePixel(), torch.randn(1, 3, 8, 8), method="gradcam_plus_plus")


@pytest.mark.parametrize("name", vitviz.list_variants())
def test_features_are_the_classifier_input(name):
    model = tiny_model(name)
    model.train()
    x = images(name, n=3)
    f = features(model, x, batch_size=2)
    assert model.training
    head = model.get_classifier()
    assert f.shape == (3, head.in_features)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(head(f), model(x), atol=1e-5)


def test_pca_projection():
    name = MODELS[1]
    f = features(tiny_model(name), images(name, n=12))
    proj = project(f, "pca")
    assert isinstance(proj, Projection) and proj.method == "pca"
    assert proj.points.shape == (12, 2) and np.isfinite(proj.points).all()
    # against an SVD of the centred features: the same explained-variance ratios and the same points
    # (each component up to its sign)
    x = f.double().numpy()
    x = x - x.mean(0)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    np.testing.assert_allclose(proj.explained_variance, (sv[:2] ** 2) / (sv ** 2).sum(), rtol=1e-4)
    for c in range(2):
        expected = u[:, c] * sv[c]
        sign = np.sign(expected @ proj.points[:, c])
        np.testing.assert_allclose(proj.points[:, c], sign * expected, rtol=1e-3, atol=1e-3 * sv[0])


def test_tsne_projection_small_n():
    rng = np.random.default_rng(0)
    f = np.concatenate([rng.normal(0, 1, (10, 16)), rng.normal(8, 1, (10, 16))])
    proj = project(f, "tsne", seed=0)
    assert proj.points.shape == (20, 2) and np.isfinite(proj.points).all()
    assert proj.explained_variance is None
    # the two well-separated clusters stay apart
    a, b = proj.points[:10], proj.points[10:]
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    assert gap > max(np.linalg.norm(a - a.mean(0), axis=1).max(), np.linalg.norm(b - b.mean(0), axis=1).max())
    with pytest.raises(ValueError, match="pca"):
        project(f, "umap")


def test_flops_of_a_linear_layer():
    assert count_flops(nn.Linear(10, 20), torch.randn(3, 10)) == 2 * 3 * 10 * 20


def test_model_cost():
    name = MODELS[0]
    model = tiny_model(name)
    cost = model_cost(model, 32, batch_size=2)
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    assert cost["flops"] > 0 and cost["flops"] == 2 * cost["flops_per_image"]
    assert model.training
    # fused SDPA (CPU) is counted like the explicit map path: same q k^T and attn v products
    for block in model.blocks:
        block.attn.kernel.need_map = True
    assert model_cost(model, 32, batch_size=2)["flops"] == cost["flops"]


def test_time_forward_cpu():
    name = MODELS[0]
    model = tiny_model(name)
    t = time_forward(model, images(name, n=2), warmup=1, repeats=2)
    assert 0 < t["ms_min"] <= t["ms_median"]
    assert t["images_per_second"] == pytest.approx(2 / (t["ms_median"] / 1e3))
    assert t["peak_memory_bytes"] is None


def test_attention_scaling_cpu():
    df = attention_scaling(tokens=(16, 64), device="cpu", repeats=2)
    assert list(df.columns[:5]) == ["kind", "tokens", "ms", "peak_memory_bytes", "flops"]
    assert len(df) == len(SCALING_KINDS) * 2
    assert set(zip(df.kind, df.tokens)) == {(k, n) for k in SCALING_KINDS for n in (16, 64)}
    assert np.isfinite(df.ms).all() and (df.ms > 0).all() and (df.note == "").all()
    assert (df.flops > 0).all()
    by = df.set_index(["kind", "tokens"]).flops
    assert by["softmax_explicit", 64] == by["softmax_fused", 64]
    assert by["softmax_fused", 64] == 16 * by["softmax_fused", 16]  # quadratic in N
    assert by["xca", 64] == 4 * by["xca", 16]                        # linear in N


def test_attention_scaling_skips_over_budget():
    df = attention_scaling(kinds=("softmax_explicit", "softmax_fused"), tokens=(64,), device="cpu", repeats=1,
                           memory_budget_bytes=1000)
    explicit = df[df.kind == "softmax_explicit"].iloc[0]
    assert math.isnan(explicit.ms) and "skipped" in explicit.note and explicit.flops > 0
    assert np.isfinite(df[df.kind == "softmax_fused"].ms).all()


def test_explicit_and_fused_softmax_agree():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 64, 32, generator=g) for _ in range(3))
    out = kernel_outputs(["softmax_explicit", "softmax_fused", "xca"], q, k, v)
    assert torch.allclose(out["softmax_explicit"], out["softmax_fused"], atol=1e-5)
    assert not torch.allclose(out["softmax_explicit"], out["xca"], atol=1e-3)


def test_xca_kernel_matches_timm_xca():
    from timm.models.xcit import XCA

    torch.manual_seed(0)
    B, N, C, H = 2, 16, 32, 4
    xca = XCA(C, num_heads=H).eval()
    with torch.no_grad():
        xca.temperature.uniform_(0.5, 2.0)
    x = torch.randn(B, N, C)
    kernel = CrossCovarianceKernel(H)
    with torch.no_grad():
        kernel.temperature.copy_(xca.temperature)
        q, k, v = xca.qkv(x).reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
        ours = xca.proj(kernel(q, k, v).transpose(1, 2).reshape(B, N, C))
        assert torch.allclose(ours, xca(x), atol=1e-5)


def test_explicit_softmax_materialises_the_map_and_fused_does_not():
    from vitviz.inspect.efficiency import scaling_kernel

    q = torch.randn(1, 4, 16, 8)
    for kind, expected in (("softmax_explicit", [(1, 4, 16, 16)]), ("softmax_fused", [])):
        kernel, seen = scaling_kernel(kind, 8, 4, 16), []
        kernel.attention_map.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
        kernel(q, q, q)
        assert seen == expected, kind
