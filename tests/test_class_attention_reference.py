"""capture()'s XCiT class-attention maps against an independent recomputation.

For every class-attention block, in order, the test records the block's own q and k (forward hooks
on the block's projection modules, in a separate forward pass) and computes
softmax(q_cls k^T / sqrt(d_h)) itself. Reversing the blocks, dropping the 1/sqrt(d) scale, reading
another token's row or another block's keys all change the maps far beyond the tolerance.
"""
from __future__ import annotations

import math

import pytest
import timm
import torch

import vitviz  # noqa: F401
from vitviz.inspect.capture import capture
from tiny import tiny_kwargs


def build(name, **extra):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=5, **tiny_kwargs(name), **extra)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # distinct, non-trivial weights per block (timm's init leaves biases at 0)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def recorded_qk(model, x):
    """Per class-attention block: (q of the class token, k of all tokens), each (B, heads, N, d)."""
    records, handles = [], []
    for blk in model.cls_attn_blocks:
        attn, rec = blk.attn, {}
        records.append(rec)
        heads = attn.num_heads
        if hasattr(attn, "q"):  # timm's ClassAttn: separate q, k Linears; q sees the class token only
            def on_q(m, a, out, rec=rec, h=heads):
                B, C = out.shape[0], out.shape[-1]
                rec["q"] = out.reshape(B, -1, h, C // h).transpose(1, 2)[:, :, :1]
            def on_k(m, a, out, rec=rec, h=heads):  # noqa: E306
                B, N, C = out.shape
                rec["k"] = out.reshape(B, N, h, C // h).transpose(1, 2)
            handles += [attn.q.register_forward_hook(on_q), attn.k.register_forward_hook(on_k)]
        else:  # a Q/K/V embedding: (B, N, 3C) laid out as [q ; k ; v]
            def on_qkv(m, a, out, rec=rec, h=heads):
                B, N, C3 = out.shape
                C = C3 // 3
                q, k = out[..., :C], out[..., C:2 * C]
                rec["q"] = q.reshape(B, N, h, C // h).transpose(1, 2)[:, :, :1]
                rec["k"] = k.reshape(B, N, h, C // h).transpose(1, 2)
            handles.append(attn.qkv.register_forward_hook(on_qkv))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return records


def reference_maps(model, x):
    maps = []
    for rec in recorded_qk(model, x):
        q, k = rec["q"].double(), rec["k"].double()
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        maps.append(torch.softmax(scores, -1)[:, :, 0])  # (B, heads, N + 1)
    return maps


@pytest.mark.parametrize("name, extra", [
    ("vitviz_xcit_n12_p4_32_linear", {}),
    ("vitviz_xcit_n12_p4_32_fsne", {}),
    ("vitviz_xcit_n12_p4_32_sne", {"qkv_in_class_attention": True}),
    ("vitviz_xcit_n12_p4_32_fsne", {"qkv_in_class_attention": True}),
])
def test_class_attention_maps_equal_softmax_of_the_blocks_q_and_k(name, extra):
    model = build(name, **extra)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = reference_maps(model, x)
    got = capture(model, x, want=["class_attention"])["class_attention"]
    assert len(got) == len(expected) == len(model.cls_attn_blocks) == 2
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape == (2, model.cls_attn_blocks[i].attn.num_heads, 65)
        torch.testing.assert_close(g.double(), e, atol=1e-5, rtol=0, msg=f"class-attention block {i}")
    # the fixture can tell the blocks apart, so a reversed order cannot pass
    assert (expected[0] - expected[1]).abs().max() > 1e-3  # 100x the tolerance
    # and the 1/sqrt(d) matters at these weights
    q_k = recorded_qk(model, x)[0]
    unscaled = torch.softmax(q_k["q"].double() @ q_k["k"].double().transpose(-2, -1), -1)[:, :, 0]
    assert (unscaled - expected[0]).abs().max() > 1e-3
