"""Training engine, fine-tuning, evaluation and the CLI, on tiny models and fixture data (CPU)."""
import importlib
import json
import threading

import numpy as np
import pytest
import sklearn.metrics
import timm
import torch

import vitviz  # noqa: F401  (registers the variants)
from vitviz import checkpoints
from vitviz.cli import main as cli_main
from vitviz.data import ImageDataset, load_dataset
from vitviz.train import TrainConfig, evaluate, finetune, save_run, train, train_from_scratch
from vitviz.train.engine import TrainingCancelled, apply_trainable, decay_groups, lr_at, qkv_parameter_names

from test_data import cifar_rows, write_cifar10
from tiny import tiny_kwargs

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
TINY_VIT = dict(depth=1, embed_dim=32, num_heads=2, patch_size=8)


@pytest.fixture(scope="module")
def digits():
    train_set = load_dataset("digits", "train", img_size=32)
    test_set = load_dataset("digits", "test", img_size=32)
    return subset(train_set, 256), subset(test_set, 128)


def subset(ds: ImageDataset, n: int) -> ImageDataset:
    return ImageDataset(ds.name, ds.images[:n], ds.labels[:n], ds.classes, ds.split)


def tiny_vit(num_classes=10):
    return timm.create_model("vitviz_vit_softmax_32", num_classes=num_classes, **TINY_VIT)


class StepLog:
    def __init__(self):
        self.events = []

    def __call__(self, event, state):
        self.events.append((event, dict(state)))

    def losses(self):
        return [s["loss"] for e, s in self.events if e == "step" and np.isfinite(s["loss"])]


def test_a_few_steps_lower_the_loss():
    log = StepLog()
    config = TrainConfig(steps=40, batch_size=32, lr=3e-3, warmup_epochs=0, label_smoothing=0.0)
    result = train(tiny_vit(3), three_class_set("train", 128, size=32), config, mean=MEAN, std=STD, img_size=32,
                   test_set=three_class_set("test", 60, size=32), callbacks=[log])
    losses = log.losses()
    assert result.steps == 40 and len(losses) == 40
    assert np.mean(losses[-10:]) < 0.6 * losses[0], losses
    assert result.final_eval.accuracy > 0.6  # chance is 1/3
    assert [e for e, _ in log.events].count("end") == 1
    assert result.history[-1]["test_accuracy"] == result.final_eval.accuracy


def test_training_is_deterministic_under_a_seed(digits):
    train_set, _ = digits
    config = TrainConfig(steps=4, batch_size=16, warmup_epochs=0)
    weights = []
    for _ in range(2):
        torch.manual_seed(123)  # model init
        model = tiny_vit()
        train(model, train_set, config, mean=MEAN, std=STD, img_size=32)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_cancel_stops_within_one_step_and_writes_nothing(digits, tmp_path):
    train_set, test_set = digits
    cancel = threading.Event()
    log = StepLog()

    def cancel_after_three(event, state):
        if event == "step" and state["step"] == 3:
            cancel.set()

    with pytest.raises(TrainingCancelled, match="step 3"):
        train_from_scratch("vitviz_vit_softmax_32", (train_set, test_set), TrainConfig(steps=50, batch_size=16),
                           variant_kwargs=TINY_VIT, callbacks=[log, cancel_after_three], cancel=cancel)
    assert [s["step"] for e, s in log.events if e == "step"] == [1, 2, 3]
    assert list(tmp_path.iterdir()) == []


def test_cli_interrupt_writes_nothing(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # the module, not the package attribute `vitviz.train.finetune` (that name is the finetune() function)
    monkeypatch.setattr(importlib.import_module("vitviz.train.finetune"), "train_from_scratch", interrupted)
    code = cli_main(["train", "--variant", "vitviz_fnet_32", "--dataset", "digits", "--steps", "2",
                     "--out", str(tmp_path / "x")])
    assert code == 130 and list(tmp_path.iterdir()) == []
    assert "nothing was written" in capsys.readouterr().err


def test_lr_schedule_warmup_then_cosine():
    lrs = [lr_at(s, 100, 10, 1e-3, 1e-5) for s in range(100)]
    assert lrs[0] < lrs[5] < lrs[9] <= 1e-3
    assert max(lrs) == pytest.approx(1e-3, rel=0.02)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1e-5, abs=2e-6)


def test_no_weight_decay_on_norms_biases_temperatures_codes():
    model = timm.create_model("vitviz_xcit_n12_p4_32_fsne", num_classes=10, **tiny_kwargs("vitviz_xcit_n12_p4_32_"))
    decayed, exempt = decay_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    exempt_names = {names[id(p)] for p in exempt["params"]}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    assert decayed["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    assert any("temperature" in n for n in exempt_names) and any(n.endswith("codes") for n in exempt_names)
    assert all(not n.endswith(".bias") and "norm" not in n for n in decayed_names)
    assert "head.weight" in decayed_names


@pytest.mark.parametrize("scope", ["qkv", "head"])
def test_freeze_policy_trains_only_what_it_names(scope, digits):
    train_set, _ = digits
    model = timm.create_model("vitviz_xcit_n12_p4_32_sne", num_classes=10, **tiny_kwargs("vitviz_xcit_n12_p4_32_"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    qkv = set(qkv_parameter_names(model))
    assert any(n.startswith("blocks.0.attn.qkv.fc1.") for n in qkv) and not any("mlp" in n for n in qkv)
    train(model, train_set, TrainConfig(steps=3, batch_size=16, warmup_epochs=0, trainable=scope),
          mean=MEAN, std=STD, img_size=32)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    allowed = {"head.weight", "head.bias"} | (qkv if scope == "qkv" else set())
    assert changed <= allowed and "head.weight" in changed
    if scope == "qkv":
        assert changed & qkv


def test_qkv_freeze_is_refused_for_a_model_without_qkv_embeddings():
    model = timm.create_model("vitviz_fnet_32", num_classes=10, **tiny_kwargs("vitviz_fnet_32"))
    with pytest.raises(ValueError, match="no Q/K/V"):
        apply_trainable(model, "qkv")


class LookupModel(torch.nn.Module):
    """Predicts a fixed label per sample; the sample index is encoded in pixel (0, 0) of channel 0."""

    def __init__(self, table, num_classes):
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table))
        self.num_classes = num_classes
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        index = torch.round(x[:, 0, 0, 0] * 255).long()
        return torch.nn.functional.one_hot(self.table[index], self.num_classes).float() * 5 + self.dummy


def test_evaluate_matches_sklearn_on_a_known_confusion():
    rng = np.random.default_rng(0)
    n, k = 200, 4
    labels = rng.integers(0, k, n)
    predictions = np.where(rng.random(n) < 0.6, labels, rng.integers(0, k, n))
    labels[labels == 3] = 2  # class 3 has no samples: its accuracy is undefined
    images = np.zeros((n, 8, 8, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n)
    ds = ImageDataset("fixture", images, labels, ["a", "b", "c", "d"], "test")
    model = LookupModel(predictions, k).train()
    result = evaluate(model, ds, mean=(0, 0, 0), std=(1, 1, 1), img_size=8, batch_size=64)
    assert model.training  # mode restored
    np.testing.assert_array_equal(result.predictions, predictions)
    np.testing.assert_array_equal(result.confusion, sklearn.metrics.confusion_matrix(labels, predictions,
                                                                                      labels=range(k)))
    recall = sklearn.metrics.recall_score(labels, predictions, labels=[0, 1, 2], average=None)
    np.testing.assert_allclose(result.per_class_accuracy[:3], recall)
    assert np.isnan(result.per_class_accuracy[3])
    assert result.accuracy == pytest.approx(sklearn.metrics.accuracy_score(labels, predictions))
    metrics = result.as_metrics()
    assert metrics["per_class_accuracy"]["d"] is None and metrics["num_test_samples"] == n
    json.dumps(metrics)


def three_class_set(split: str, n: int, size: int = 48) -> ImageDataset:
    """A 3-class set at another size (like STL-10's 96 px for a 32 px model): one bright colour channel per class."""
    rng = np.random.default_rng(1 if split == "train" else 2)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, (n, size, size, 3), dtype=np.uint8)
    images[np.arange(n), :, :, labels] += 150
    return ImageDataset("three", images, labels, ["red", "green", "blue"], split)


def test_finetune_to_a_new_class_count_and_input_size(digits, tmp_path):
    train_set, test_set = digits
    parent = train_from_scratch("vitviz_vit_softmax_32", (train_set, test_set), TrainConfig(steps=2, batch_size=16),
                                variant_kwargs=TINY_VIT)
    parent_path = save_run(parent, tmp_path / "parent")
    run = finetune(parent_path, (three_class_set("train", 96), three_class_set("test", 48)),
                   TrainConfig(steps=30, batch_size=16, lr=3e-3, warmup_epochs=0))
    assert run.model.get_classifier().out_features == 3
    assert run.meta["classes"] == ["red", "green", "blue"] and run.meta["parent"] == str(parent_path)
    assert run.meta["img_size"] == 32 and run.meta["dataset"] == "three"
    assert run.result.final_eval.accuracy > 0.6  # the colour task is easy
    child_path = save_run(run, tmp_path / "child", dtype=torch.float16)
    model, meta = checkpoints.load(child_path)
    assert meta["num_classes"] == 3 and set(meta["metrics"]["per_class_accuracy"]) == {"red", "green", "blue"}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 3)


@pytest.fixture
def cifar_fixture(tmp_path):
    write_cifar10(tmp_path / "data")
    return tmp_path / "data"


def test_cli_train_then_finetune_then_eval_on_fixture_files(cifar_fixture, tmp_path, capsys):
    out = tmp_path / "ckpt" / "fnet"
    argv = ["train", "--variant", "vitviz_fnet_32", "--variant-kwargs", json.dumps(tiny_kwargs("vitviz_fnet_32")),
            "--dataset", "cifar10", "--data-dir", str(cifar_fixture), "--steps", "3", "--batch-size", "8",
            "--out", str(out), "--quiet", "--fp16"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "dog" in printed
    meta = checkpoints.read_meta(out)
    assert meta["train_config"]["command"].startswith("python -m vitviz train --variant vitviz_fnet_32")
    assert meta["train_config"]["steps_done"] == 3 and meta["dataset"] == "cifar10"
    assert set(meta["metrics"]["per_class_accuracy"]) == set(meta["classes"])
    assert meta["metrics"]["num_test_samples"] == 4

    child = tmp_path / "ckpt" / "child"
    assert cli_main(["finetune", "--checkpoint", str(out.with_suffix(".safetensors")), "--dataset", "cifar10",
                     "--data-dir", str(cifar_fixture), "--steps", "2", "--batch-size", "4", "--trainable", "head",
                     "--out", str(child), "--quiet"]) == 0
    child_meta = checkpoints.read_meta(child)
    assert child_meta["parent"].endswith("fnet.safetensors") and child_meta["train_config"]["trainable"] == "head"
    capsys.readouterr()

    assert cli_main(["eval", "--checkpoint", str(child.with_suffix(".safetensors")), "--data-dir",
                     str(cifar_fixture), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the reported accuracy is the checkpoint's own predictions on the fixture's test batch, recomputed
    # here from the raw CIFAR rows (R, G, B planes) with the checkpoint's normalisation
    model, meta = checkpoints.load(child)
    rows, labels = cifar_rows(4, seed=5), np.array([5, 6, 7, 8])  # test_batch is batch index 5
    x = torch.from_numpy(rows.reshape(4, 3, 32, 32)).float() / 255
    x = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        predictions = model.eval()(x).argmax(-1).numpy()
    assert report["num_test_samples"] == 4
    assert report["test_accuracy"] == pytest.approx(float((predictions == labels).mean()))
    for label in labels:
        expected = float(predictions[labels == label][0] == label)
        assert report["per_class_accuracy"][meta["classes"][label]] == pytest.approx(expected)

    assert cli_main(["eval", "--checkpoint", str(child), "--data-dir", str(cifar_fixture), "--update"]) == 0
    updated = checkpoints.read_meta(child)["metrics"]
    assert updated["test_labels"] == [5, 6, 7, 8] and len(updated["test_predictions"]) == 4
    assert updated["test_set_sha256"] == child_meta["metrics"]["test_set_sha256"]
    checkpoints.load(child)  # weights still match their recorded hash


def test_cli_missing_dataset_is_a_clear_error(tmp_path, capsys):
    code = cli_main(["train", "--variant", "vitviz_fnet_32", "--dataset", "cifar10", "--data-dir",
                     str(tmp_path / "nowhere"), "--steps", "1", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "nowhere" in err
    assert not (tmp_path / "x.safetensors").exists()


def test_cli_train_on_real_cifar10_mini(cifar10_mini, tmp_path):
    out = tmp_path / "mini"
    assert cli_main(["train", "--variant", "vitviz_mixer_32", "--variant-kwargs",
                     json.dumps(tiny_kwargs("vitviz_mixer_32")), "--dataset", "cifar10", "--data-dir",
                     str(cifar10_mini), "--steps", "5", "--batch-size", "32", "--out", str(out), "--quiet"]) == 0
    meta = checkpoints.read_meta(out)
    assert meta["metrics"]["num_test_samples"] == 1000 and len(meta["classes"]) == 10
