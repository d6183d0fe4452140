"""Every setting of an explanation at once (vitviz.inspect.sweeps), for the figures that switch them in the browser:
each entry equals the one-setting computation it replaces."""
import numpy as np
import pytest
import timm
import torch

from vitviz.inspect import capture
from vitviz.inspect.attention_views import attention_source, rollout_heat
from vitviz.inspect.relevance import chefer_relevance
from vitviz.inspect.sweeps import ROLLOUT_DISCARDS, ROLLOUT_FUSIONS, relevance_all_classes, rollout_sweep

from tiny import tiny_kwargs


def _model(variant, seed=0):
    torch.manual_seed(seed)
    return timm.create_model(variant, num_classes=5, **tiny_kwargs(variant)).eval()


def _random_maps(layers=3, heads=2, grid=(3, 3), cls=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1] + int(cls)
    return [torch.softmax(torch.randn(1, heads, n, n, generator=g) * 2, -1) for _ in range(layers)], \
        [{"q": grid, "k": grid, "cls": cls}] * layers


def _assert_sweep_matches(maps, grids, **kwargs):
    heats = rollout_sweep(maps, grids, **kwargs)
    assert len(heats) == len(ROLLOUT_DISCARDS) and all(len(row) == len(ROLLOUT_FUSIONS) for row in heats)
    for d, discard in enumerate(ROLLOUT_DISCARDS):
        for f, fusion in enumerate(ROLLOUT_FUSIONS):
            expected = rollout_heat(maps, grids, fusion, discard, **kwargs)
            np.testing.assert_allclose(heats[d][f], expected, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{fusion}, discard {discard}")


@pytest.mark.parametrize("cls", [True, False])
def test_rollout_sweep_equals_rollout_heat_for_every_fusion_and_discard(cls):
    maps, grids = _random_maps(cls=cls)
    _assert_sweep_matches(maps, grids)


def test_rollout_sweep_on_a_vit_capture():
    model = _model("vitviz_vit_softmax_32")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    art = capture(model, x, want=["attention", "grids"])
    _, maps, grids, _ = attention_source(art)
    _assert_sweep_matches(maps, grids)
    assert rollout_sweep(maps, grids)[0][0].shape == grids[0]["q"]


def test_rollout_sweep_refuses_what_rollout_refuses():
    maps, grids = _random_maps()
    signed = [m - 0.05 for m in maps]  # negative entries, rows no longer sum to 1
    assert rollout_sweep(signed, grids) is None and rollout_heat(signed, grids) is None


@pytest.mark.parametrize("variant", ["vitviz_vit_softmax_32", "vitviz_xcit_n12_p4_32_linear"])
def test_relevance_for_every_class_equals_one_class_at_a_time(variant):
    model = _model(variant)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    sweep = relevance_all_classes(model, x, chunk=2)  # 5 classes in chunks of 2, 2 and 1
    assert sweep.heats.shape[0] == 5
    single = chefer_relevance(model, x)
    assert sweep.predicted == int(single.target[0]) and sweep.what == single.what
    for c in range(5):
        np.testing.assert_allclose(sweep.heats[c], chefer_relevance(model, x, c).relevance[0].numpy(),
                                   rtol=1e-4, atol=1e-6, err_msg=f"class {c}")
    with pytest.raises(ValueError, match="one normalised image"):
        relevance_all_classes(model, torch.zeros(2, 3, 32, 32))


def test_rollout_sweep_read_at_a_sequence_pooling():
    maps, grids = _random_maps(cls=False)
    pool = torch.softmax(torch.randn(1, 9, generator=torch.Generator().manual_seed(3)), -1)  # CCT's w
    _assert_sweep_matches(maps, grids, pool=pool)
