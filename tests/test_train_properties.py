"""Training properties checked on what train() really does, not on its helpers alone.

- The AdamW that train() builds carries the weight-decay groups: weight matrices decay, while
  biases, norms, position embeddings and class tokens do not (inspected after training started).
- random_crop_flip flips horizontally (along W) and crops windows of the zero-padded image.
- Checkpoints refuse the next format_version and accept the current one.
"""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import vitviz  # noqa: F401
from vitviz import checkpoints
from vitviz.data import ImageDataset
from vitviz.train import TrainConfig, train
from vitviz.train.batches import random_crop_flip

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def small_set(n=32, size=32):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    return ImageDataset("three", rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8), labels,
                        ["a", "b", "c"], "train")


@pytest.fixture
def recorded_optimizers(monkeypatch):
    """Patch torch.optim.AdamW so that every optimizer train() builds is recorded."""
    made = []
    original = torch.optim.AdamW

    class Recording(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    return made


def expected_decay(name: str, p: torch.nn.Parameter) -> bool:
    """The house rule, written independently: only weight matrices / conv kernels decay."""
    exempt_names = ("pos_embed", "cls_token", "temperature", "codes")
    return p.ndim >= 2 and not any(e in name for e in exempt_names)


@pytest.mark.parametrize("variant, kwargs", [
    ("vitviz_vit_softmax_32", dict(depth=1, embed_dim=32, num_heads=2, patch_size=8)),
    ("vitviz_xcit_n12_p4_32_fsne", dict(depth=1, embed_dim=32, num_heads=2)),
])
def test_train_builds_adamw_with_the_weight_decay_groups(recorded_optimizers, variant, kwargs):
    model = timm.create_model(variant, num_classes=3, **kwargs)
    seen_groups = []

    def on_step(event, state):  # the optimizer as it is while training runs
        if event == "step" and not seen_groups:
            opt = recorded_optimizers[-1]
            seen_groups.extend({"weight_decay": g["weight_decay"], "ids": {id(p) for p in g["params"]}}
                               for g in opt.param_groups)
    config = TrainConfig(steps=2, batch_size=8, warmup_epochs=0, weight_decay=0.07)
    train(model, small_set(), config, mean=MEAN, std=STD, img_size=32, callbacks=[on_step])
    assert len(recorded_optimizers) == 1 and seen_groups
    decay_of = {}
    for group in seen_groups:
        for pid in group["ids"]:
            assert pid not in decay_of, "a parameter is in two groups"
            decay_of[pid] = group["weight_decay"]
    named = dict(model.named_parameters())
    assert set(decay_of) == {id(p) for p in named.values()}  # every trainable parameter, once
    wrong = {n: decay_of[id(p)] for n, p in named.items()
             if decay_of[id(p)] != (0.07 if expected_decay(n, p) else 0.0)}
    assert not wrong, wrong
    # the fixture has both kinds, so the check above cannot pass vacuously
    assert any(expected_decay(n, p) for n, p in named.items())
    assert any(not expected_decay(n, p) for n, p in named.items())


def test_train_with_head_scope_optimises_only_the_head(recorded_optimizers):
    model = timm.create_model("vitviz_vit_softmax_32", num_classes=3, depth=1, embed_dim=32, num_heads=2,
                              patch_size=8)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(model, small_set(), TrainConfig(steps=2, batch_size=8, warmup_epochs=0, trainable="head"),
          mean=MEAN, std=STD, img_size=32)
    in_optimizer = {id(p) for g in recorded_optimizers[-1].param_groups for p in g["params"]}
    head = {id(p) for p in model.get_classifier().parameters()}
    assert in_optimizer == head
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed == {"head.weight", "head.bias"}


# ---------------------------------------------------------------- augmentation

def distinct_batch(b=64, h=6, w=6):
    """uint8 images whose every pixel value is unique, so each output reveals where it came from."""
    return (torch.arange(b * 3 * h * w) % 251 + 1).reshape(b, 3, h, w).to(torch.uint8)


def test_flip_is_horizontal_and_random_per_image():
    images = distinct_batch()
    out = random_crop_flip(images, padding=0, flip=True, generator=torch.Generator().manual_seed(0))
    horizontal = images.flip(-1)  # mirror left-right: along the width axis
    vertical = images.flip(-2)
    kinds = []
    for i in range(len(images)):
        if torch.equal(out[i], images[i]):
            kinds.append("same")
        elif torch.equal(out[i], horizontal[i]):
            kinds.append("horizontal")
        else:
            assert not torch.equal(out[i], vertical[i]), "vertical flip"
            raise AssertionError(f"image {i} is neither itself nor its horizontal mirror")
    assert 16 < kinds.count("horizontal") < 48, kinds.count("horizontal")  # ~ half of 64
    same = random_crop_flip(images, padding=0, flip=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same, images)


def test_crop_is_a_window_of_the_zero_padded_image():
    images = distinct_batch(b=32)
    p = 2
    out = random_crop_flip(images, padding=p, flip=False, generator=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(images, (p, p, p, p))
    offsets = set()
    for i in range(len(images)):
        matches = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                   if torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 6])]
        assert len(matches) == 1, (i, matches)
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets are drawn per image


# ---------------------------------------------------------------- checkpoint format version

def test_checkpoint_rejects_the_next_format_version_and_accepts_the_current(tmp_path):
    import json
    model = timm.create_model("vitviz_vit_softmax_32", num_classes=3, depth=1, embed_dim=32, num_heads=2,
                              patch_size=8)
    meta = {"variant": "vitviz_vit_softmax_32",
            "variant_kwargs": dict(depth=1, embed_dim=32, num_heads=2, patch_size=8),
            "dataset": "three", "classes": ["a", "b", "c"], "img_size": 32, "mean": list(MEAN), "std": list(STD)}
    path = checkpoints.save(model, tmp_path / "ckpt", meta)
    json_path = path.with_suffix(".json")
    current = json.loads(json_path.read_text())["format_version"]
    assert current == checkpoints.FORMAT_VERSION
    checkpoints.load(path, device="cpu")  # the current version loads

    data = json.loads(json_path.read_text())
    data["format_version"] = checkpoints.FORMAT_VERSION + 1
    json_path.write_text(json.dumps(data))
    with pytest.raises(checkpoints.CheckpointError, match="format_version"):
        checkpoints.load(path, device="cpu")
