"""Efficient attention kernels against exact softmax attention, and RoPE properties.

Tolerances (relative Frobenius error of the attention output, B=2, H=4, N=64, d=32, inputs ~ N(0, 0.25)):
- Performer: error falls as features grow; <= 0.10 at 4,096 features (about 1/sqrt(m) behaviour);
- Nystromformer: landmarks = N with 30 pseudo-inverse iterations is exact to 1e-3; error falls with landmarks;
- Linformer: k = N with its identity initialisation is exact to 1e-5.
"""
import pytest
import torch

from vitviz.layers.attention import (LinformerKernel, NystromKernel, PerformerKernel, SoftmaxKernel,
                                     iterative_pinv, segment_means_matrix)
from vitviz.layers.rope import RotaryEmbedding


def qkv(n=64, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 4, n, d, generator=g) * 0.5 for _ in range(3)]


def rel_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture
def exact():
    q, k, v = qkv()
    return q, k, v, SoftmaxKernel(32)(q, k, v)


def test_softmax_explicit_path_equals_fused_path(exact):
    q, k, v, reference = exact
    kernel = SoftmaxKernel(32)
    kernel.need_map = True
    maps = []
    kernel.attention_map.register_forward_hook(lambda m, i, o: maps.append(o))
    torch.testing.assert_close(kernel(q, k, v), reference, rtol=1e-5, atol=1e-5)
    assert maps[0].shape == (2, 4, 64, 64)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 4, 64))


def test_performer_converges_to_softmax(exact):
    q, k, v, reference = exact
    errors = {}
    for m in (16, 256, 4096):
        runs = []
        for seed in range(3):
            torch.manual_seed(seed)
            runs.append(rel_error(PerformerKernel(32, num_features=m)(q, k, v), reference))
        errors[m] = sum(runs) / len(runs)
    assert errors[16] > errors[256] > errors[4096], errors
    assert errors[4096] <= 0.10, errors


def test_performer_implied_attention_is_row_stochastic_and_consistent(exact):
    q, k, v, _ = exact
    kernel = PerformerKernel(32)
    implied = kernel.implied_attention(q, k)
    torch.testing.assert_close(implied.sum(-1), torch.ones(2, 4, 64))
    assert (implied >= 0).all()
    torch.testing.assert_close(implied @ v, kernel(q, k, v), rtol=1e-4, atol=1e-5)


def test_nystrom_converges_to_softmax(exact):
    q, k, v, reference = exact
    errors = [rel_error(NystromKernel(32, 4, m, conv_kernel=0)(q, k, v), reference) for m in (4, 16, 64)]
    assert errors[0] > errors[2], errors
    full = NystromKernel(32, 4, num_landmarks=64, pinv_iterations=30, conv_kernel=0)
    assert rel_error(full(q, k, v), reference) < 1e-3


def test_nystrom_handles_token_counts_not_divisible_by_landmarks():
    q, k, v = qkv(n=65)
    out = NystromKernel(32, 4, num_landmarks=8)(q, k, v)
    assert out.shape == v.shape and torch.isfinite(out).all()


def test_segment_means_equal_reshaped_means_when_divisible():
    x = torch.randn(12, 3)
    torch.testing.assert_close(segment_means_matrix(12, 4) @ x, x.reshape(4, 3, 3).mean(1))


def test_iterative_pinv_inverts_a_softmax_matrix():
    a = torch.randn(16, 16).softmax(-1)
    torch.testing.assert_close(iterative_pinv(a, 40) @ a, torch.eye(16), atol=1e-3, rtol=0)


def test_linformer_with_k_equal_n_is_exact(exact):
    q, k, v, reference = exact
    kernel = LinformerKernel(32, seq_len=64, k=64)
    assert rel_error(kernel(q, k, v), reference) < 1e-5
    assert kernel.implied_attention(q, k).shape == (2, 4, 64, 64)


def test_linformer_map_is_n_by_k():
    q, k, v = qkv()
    kernel = LinformerKernel(32, seq_len=64, k=16)
    assert kernel.implied_attention(q, k).shape == (2, 4, 64, 16)


def test_rope_1d_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(8, (1, 16), mode="1d", num_prefix_tokens=0)
    q, k = torch.randn(8), torch.randn(8)
    rq = rope(q.expand(1, 1, 16, 8))[0, 0]
    rk = rope(k.expand(1, 1, 16, 8))[0, 0]
    torch.testing.assert_close(rq[5] @ rk[2], rq[10] @ rk[7], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(rq[5] @ rk[2], rq[5] @ rk[4])


def test_rope_2d_is_shift_invariant_on_the_grid_and_keeps_the_class_token():
    rope = RotaryEmbedding(8, (4, 4), mode="2d", num_prefix_tokens=1)
    q, k = torch.randn(8), torch.randn(8)
    rq = rope(q.expand(1, 1, 17, 8))[0, 0]
    rk = rope(k.expand(1, 1, 17, 8))[0, 0]
    torch.testing.assert_close(rq[0], q)  # class token unrotated
    idx = lambda r, c: 1 + 4 * r + c  # noqa: E731
    torch.testing.assert_close(rq[idx(0, 1)] @ rk[idx(1, 0)], rq[idx(2, 3)] @ rk[idx(3, 2)], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(17))  # rotations keep norms
