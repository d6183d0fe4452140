"""Layer x layer linear CKA between block outputs (minibatch unbiased HSIC, Nguyen et al. 2021)."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import vitviz  # noqa: F401  (registers the variants)
from vitviz.inspect.pathways import linear_cka
from vitviz.inspect.representations import (block_outputs, hsic1, minibatch_cka, qkv_embedding_pairs,
                                            representation_blocks, representation_cka, unbiased_cka)

from tiny import tiny_kwargs


# --------------------------------------------------------------------------- NumPy references

def ref_hsic1(k: np.ndarray, g: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5), written term by term with explicit loops over the kernels."""
    n = k.shape[0]
    kt, lt = k.copy(), g.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    trace = sum(kt[i, j] * lt[j, i] for i in range(n) for j in range(n))
    middle = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return (trace + middle - last) / (n * (n - 3))


def ref_minibatch_cka(x: np.ndarray, y: np.ndarray, batch: int) -> float:
    kx = [x[i:i + batch] @ x[i:i + batch].T for i in range(0, len(x), batch)]
    ly = [y[i:i + batch] @ y[i:i + batch].T for i in range(0, len(y), batch)]
    xy = np.mean([ref_hsic1(k, g) for k, g in zip(kx, ly)])
    xx = np.mean([ref_hsic1(k, k) for k in kx])
    yy = np.mean([ref_hsic1(g, g) for g in ly])
    return xy / np.sqrt(xx * yy)


def ref_biased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s HSIC with the centring matrix H: tr(K H L H)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, g = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)
    return hsic(k, g) / np.sqrt(hsic(k, k) * hsic(g, g))


def _pair(n=40, d1=6, d2=9, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    y = np.tanh(x @ rng.normal(size=(d1, d2))) + 0.3 * rng.normal(size=(n, d2))
    return x, y


# --------------------------------------------------------------------------- estimator

def test_hsic1_matches_reference():
    x, y = _pair(12)
    assert hsic1(x @ x.T, y @ y.T) == pytest.approx(ref_hsic1(x @ x.T, y @ y.T), rel=1e-10)


def test_minibatch_cka_matches_reference():
    x, y = _pair(40)
    ours = minibatch_cka([x], [y], batch_size=10)[0, 0]
    assert ours == pytest.approx(ref_minibatch_cka(x, y, 10), rel=1e-10)


def test_layer_by_layer_matrix_matches_pairwise_reference():
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(24, d)) for d in (3, 5)]
    ys = [rng.normal(size=(24, d)) + xs[0][:, :1] for d in (4, 2, 7)]
    matrix = minibatch_cka(xs, ys, batch_size=8)
    assert matrix.shape == (2, 3)
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            assert matrix[i, j] == pytest.approx(ref_minibatch_cka(x, y, 8), rel=1e-9)


def test_self_cka_is_one_and_invariances():
    x, y = _pair(64)
    assert unbiased_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(y.shape[1], y.shape[1])))
    base = minibatch_cka([x], [y], batch_size=16)[0, 0]
    assert minibatch_cka([x], [y @ q], batch_size=16)[0, 0] == pytest.approx(base, rel=1e-10)
    assert minibatch_cka([x * 7.5], [y * 0.01], batch_size=16)[0, 0] == pytest.approx(base, rel=1e-10)
    assert 0.1 < base < 1.0


def test_minibatch_close_to_full_batch():
    x, y = _pair(2000, d1=5, d2=8, seed=4)
    full_unbiased = unbiased_cka(x, y)
    assert minibatch_cka([x], [y], batch_size=2000)[0, 0] == pytest.approx(full_unbiased, rel=1e-12)
    mini = minibatch_cka([x], [y], batch_size=100)[0, 0]
    assert mini == pytest.approx(full_unbiased, abs=0.02)
    # and, with n >> d, both agree with the (biased) full-batch linear CKA and its NumPy reference
    assert linear_cka(x, y) == pytest.approx(ref_biased_cka(x, y), rel=1e-9)
    assert mini == pytest.approx(linear_cka(x, y), abs=0.03)


def test_small_last_batch_joins_previous():
    x, y = _pair(22)
    # 22 = 10 + 10 + 2 -> batches 10 and 12
    kx = [x[:10], x[10:]]
    ky = [y[:10], y[10:]]
    xy = np.mean([ref_hsic1(a @ a.T, b @ b.T) for a, b in zip(kx, ky)])
    xx = np.mean([ref_hsic1(a @ a.T, a @ a.T) for a in kx])
    yy = np.mean([ref_hsic1(b @ b.T, b @ b.T) for b in ky])
    assert minibatch_cka([x], [y], batch_size=10)[0, 0] == pytest.approx(xy / np.sqrt(xx * yy), rel=1e-10)


def test_too_few_images_rejected():
    x, y = _pair(3)
    with pytest.raises(ValueError):
        minibatch_cka([x], [y], batch_size=8)


# --------------------------------------------------------------------------- models

FAMILIES = ["vitviz_xcit_n12_p4_32_linear", "vitviz_vit_softmax_32", "vitviz_cvt_32"]


def _model(variant, seed=0):
    torch.manual_seed(seed)
    return timm.create_model(variant, num_classes=10, **tiny_kwargs(variant)).eval()


@pytest.mark.parametrize("variant", FAMILIES + ["mixer", "fnet"])
def test_blocks_found_and_network_with_itself_is_one(variant):
    if variant in ("mixer", "fnet"):
        names = [n for n in timm.list_models(f"vitviz_{variant}*")]
        if not names:
            pytest.skip(f"no {variant} variant registered")
        variant = names[0]
    model = _model(variant)
    blocks = representation_blocks(model)
    assert len(blocks) >= 2
    x = torch.randn(10, 3, 32, 32)
    outs, names = block_outputs(model, x)
    assert names == [name for name, _ in blocks]
    assert all(o.shape[0] == 10 and o.ndim == 2 for o in outs)
    result = representation_cka(model, x, model, batch_size=5)
    assert np.allclose(np.diag(result.matrix), 1.0, atol=1e-9)
    assert result.images == 10 and result.blocks_a == result.blocks_b


def test_xcit_hooks_cls_attention_blocks_and_restores_model():
    model = _model("vitviz_xcit_n12_p4_32_linear")
    model.train()
    names = [name for name, _ in representation_blocks(model)]
    assert names[-1].startswith("cls_attn_blocks.") and names[0] == "blocks.0"
    x = torch.randn(6, 3, 32, 32)
    before = [len(m._forward_hooks) for m in model.modules()]
    block_outputs(model, x, features="mean")
    assert model.training and all(m.training for m in model.modules())
    assert [len(m._forward_hooks) for m in model.modules()] == before


def test_matches_direct_numpy_computation_on_two_models():
    a, b = _model("vitviz_xcit_n12_p4_32_linear", 0), _model("vitviz_vit_softmax_32", 1)
    x = torch.randn(12, 3, 32, 32)
    result = representation_cka(a, x, b, batch_size=6, features="mean")
    xs, _ = block_outputs(a, x, "mean")
    ys, _ = block_outputs(b, x, "mean")
    assert result.matrix.shape == (len(xs), len(ys))
    for i, f in enumerate(xs):
        for j, g in enumerate(ys):
            ref = ref_minibatch_cka(f.double().numpy(), g.double().numpy(), 6)
            assert result.matrix[i, j] == pytest.approx(ref, rel=1e-6)
    diag = result.diagonal()
    assert list(diag["depth"]) == list(range(len(xs)))


def test_qkv_preset_pairs():
    variants = {"a": "vitviz_xcit_n12_p4_32_linear", "b": "vitviz_xcit_n12_p4_32_fsne",
                "c": "vitviz_xcit_n12_p4_32_sne", "d": "vitviz_vit_softmax_32", "e": "vitviz_xcit_n12_p4_32_psne"}
    assert qkv_embedding_pairs(variants) == [("a", "c", "SNE"), ("a", "e", "P-SNE"), ("a", "b", "F-SNE")]
    assert qkv_embedding_pairs({"b": "vitviz_xcit_n12_p4_32_fsne"}) == []


def test_cli_representations_preset_and_pair(checkpoint_dir, tmp_path, capsys):
    import json

    from vitviz.cli import main
    code = main(["representations", "--preset", "--dir", str(checkpoint_dir), "--images", "8", "--batch-size", "4",
                 "--data-dir", str(tmp_path), "--device", "cpu", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["a"], r["b"], r["label"]) for r in out] == [("tiny_xcit_linear", "tiny_xcit_fsne", "F-SNE")]
    assert out[0]["images"] == 8 and "digits" in out[0]["image_source"]
    assert np.asarray(out[0]["matrix"]).shape == (4, 4) and len(out[0]["matching_depth"]) == 4
    same = checkpoint_dir / "tiny_vit_softmax.safetensors"
    assert main(["representations", str(same), str(same), "--images", "8", "--batch-size", "4",
                 "--data-dir", str(tmp_path), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "tiny_vit_softmax vs tiny_vit_softmax" in text and "8 digits test images" in text
    assert main(["representations", str(same)]) == 2  # one checkpoint: a user error, one line


def test_layer_cka_heatmap_figure():
    from vitviz.figures import layer_cka_heatmap
    matrix = np.array([[1.0, 0.5, 0.2], [0.4, 0.9, 0.3]])
    fig = layer_cka_heatmap(matrix, ["blocks.0", "cls_attn_blocks.0"], ["stages.0.blocks.0", "b", "c"],
                            row_title="A", col_title="B", title="t")
    trace = fig.data[0]
    assert list(trace.y) == ["b0", "cls0"] and list(trace.x) == ["s0.b0", "b", "c"]
    assert np.allclose(np.asarray(trace.z), matrix) and trace.zmin == 0 and trace.zmax == 1
    fitted = layer_cka_heatmap(matrix, ["a", "b"], ["x", "y", "z"], fit_scale=True).data[0]
    assert fitted.zmin == pytest.approx(0.2) and fitted.zmax == pytest.approx(1.0)
    with pytest.raises(ValueError):
        layer_cka_heatmap(matrix, ["a"], ["x", "y", "z"])
