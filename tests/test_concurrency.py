"""Shared cached models under many threads: capture and attributions give what sequential calls give.

Streamlit serves sessions from threads that share one cached model per checkpoint. capture() hooks the
model and flips flags; attributions freeze parameters. Interleaved on one model, unsynchronised calls
recorded each other's blocks (4 vs 12-19 attention blocks on a 4-layer model).
"""
from concurrent.futures import ThreadPoolExecutor

import pytest
import timm
import torch

import vitviz  # noqa: F401  (registers the variants)
from vitviz.inspect import attribute
from vitviz.inspect.capture import capture

from tiny import tiny_img_size, tiny_kwargs

THREADS, CALLS = 8, 24
WANT = ["attention", "implied_attention", "projected_attention", "xca", "class_attention", "grids", "qkv"]


def _model(name):
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=5, **tiny_kwargs(name)).eval()


def _images(name, seed):
    s = tiny_img_size(name)
    return torch.randn(1 + seed % 2, 3, s, s, generator=torch.Generator().manual_seed(seed))


def _flat(art):
    out = {}
    for key in art:
        value = art[key]
        if isinstance(value, torch.Tensor):
            out[key] = [value]
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            out[key] = value
        elif isinstance(value, list) and value and isinstance(value[0], tuple):
            out[key] = [t for triple in value for t in triple]
    return out


@pytest.mark.parametrize("name", ["vitviz_vit_softmax_32", "vitviz_vit_nystrom_32", "vitviz_xcit_n12_p4_32_fsne",
                                  "vitviz_cvt_32"])
def test_concurrent_captures_equal_sequential(name):
    model = _model(name)
    inputs = [_images(name, i) for i in range(CALLS)]
    expected = [_flat(capture(model, x, want=WANT)) for x in inputs]
    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(lambda x: _flat(capture(model, x, want=WANT)), inputs))
    for exp, res in zip(expected, got):
        assert exp.keys() == res.keys()
        for key in exp:
            assert len(exp[key]) == len(res[key]), f"{key}: {len(res[key])} blocks instead of {len(exp[key])}"
            for a, b in zip(exp[key], res[key]):
                torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_concurrent_attributions_and_captures_on_one_model():
    name = "vitviz_vit_softmax_32"
    model = _model(name)
    flags = [p.requires_grad for p in model.parameters()]
    inputs = [_images(name, i) for i in range(12)]
    exp_attr = [attribute(model, x, target=0, method="saliency") for x in inputs]
    exp_cap = [capture(model, x, want=["attention"])["attention"] for x in inputs]

    def job(i):
        x = inputs[i // 2]
        if i % 2:
            return attribute(model, x, target=0, method="saliency")
        return capture(model, x, want=["attention"])["attention"]

    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(job, range(24)))
    for i, res in enumerate(got):
        expected = exp_attr[i // 2] if i % 2 else exp_cap[i // 2]
        if i % 2:
            torch.testing.assert_close(res, expected, rtol=0, atol=0)
        else:
            assert len(res) == len(expected)
            for a, b in zip(expected, res):
                torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert [p.requires_grad for p in model.parameters()] == flags
