"""Fine-tune presets: the quick plan fits its budget at the measured speed, both directions of every bound."""
import json

import pytest

from vitviz.train import plan
from vitviz.train.plan import STARTUP_SECONDS, expected_seconds, measure_train_speed, plan_finetune


@pytest.mark.parametrize("speed", [20.0, 80.0, 400.0])
def test_quick_plan_fills_but_never_exceeds_its_budget(speed):
    p = plan_finetune("quick", images_per_second=speed, train_images=50_000, test_images=1000, has_qkv=True)
    assert p.trainable == "qkv" and p.batch_size == 64
    assert p.expected_seconds <= 60.0 + 1e-9
    one_more = expected_seconds(p.steps + 1, p.batch_size, speed, 1000)
    assert one_more > 60.0  # as many steps as fit
    assert p.expected_seconds == pytest.approx(STARTUP_SECONDS + p.steps * 64 / speed + 1000 * 0.35 / speed)


def test_quick_plan_is_capped_in_epochs_on_a_fast_device_and_floored_on_a_slow_one():
    fast = plan_finetune("quick", images_per_second=50_000, train_images=5000, test_images=1000, has_qkv=False)
    assert fast.steps == round(3 * (5000 // 64)) and fast.trainable == "head"
    slow = plan_finetune("quick", images_per_second=1.0, train_images=5000, test_images=1000, has_qkv=True)
    assert slow.steps == 5 and slow.expected_seconds > 60  # the floor, and the page states the longer time


def test_full_plan_is_three_epochs_of_every_weight():
    p = plan_finetune("full", images_per_second=100.0, train_images=5000, test_images=1000, has_qkv=True)
    assert (p.trainable, p.batch_size, p.steps) == ("all", 128, 3 * (5000 // 128))
    with pytest.raises(ValueError, match="preset"):
        plan_finetune("fast", images_per_second=1.0, train_images=1, test_images=1, has_qkv=True)


def test_measured_speed_is_kept_per_setting(tmp_path, monkeypatch):
    kwargs = dict(depth=1, embed_dim=16, num_heads=2, patch_size=8)
    first = measure_train_speed("vitviz_vit_softmax_32", kwargs, 10, "qkv", 8, "cpu", runs_dir=tmp_path)
    assert first > 0
    cache = json.loads((tmp_path / "train_speed.speeds").read_text())
    assert len(cache) == 1
    calls = []
    # a re-measurement would divide by zero
    monkeypatch.setattr(plan.time, "perf_counter", lambda: calls.append(1) or 0.0)
    assert measure_train_speed("vitviz_vit_softmax_32", kwargs, 10, "qkv", 8, "cpu", runs_dir=tmp_path) == first
    assert calls == []
    monkeypatch.undo()
    measure_train_speed("vitviz_vit_softmax_32", kwargs, 10, "head", 8, "cpu", runs_dir=tmp_path)
    measure_train_speed("vitviz_vit_softmax_32", kwargs, 10, "qkv", 16, "cpu", runs_dir=tmp_path)
    assert len(json.loads((tmp_path / "train_speed.speeds").read_text())) == 3  # scope and batch are in the key


def test_has_qkv_embeddings_by_family():
    assert plan.has_qkv_embeddings("vitviz_xcit_n12_p4_32_fsne", {})
    assert not plan.has_qkv_embeddings("vitviz_mixer_32", {"embed": "conv"})


def test_the_speed_cache_is_not_taken_for_a_checkpoint(tmp_path):
    from vitviz.overview import checkpoint_table
    runs = tmp_path / "runs"
    measure_train_speed("vitviz_vit_softmax_32", dict(depth=1, embed_dim=16, num_heads=2, patch_size=8), 10, "head",
                        4, "cpu", runs_dir=runs)
    table, problems = checkpoint_table(tmp_path)
    assert problems == [] and table.empty
