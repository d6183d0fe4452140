"""Tests for vitviz.checkpoints (safetensors + JSON checkpoint format)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct

import pytest
import safetensors
import safetensors.torch
import timm
import torch

from vitviz import checkpoints as ck
from vitviz.checkpoints import CheckpointError

VIT = "vit_tiny_patch16_224"
VIT_KWARGS = {"img_size": 32, "patch_size": 8, "depth": 2}
CLASSES = ["cat", "dog", "frog"]


def make_vit(depth: int = 2, num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(VIT, num_classes=num_classes, **{**VIT_KWARGS, "depth": depth}).eval()


def vit_meta(**extra) -> dict:
    meta = {
        "variant": VIT,
        "variant_kwargs": dict(VIT_KWARGS),
        "classes": list(CLASSES),
        "img_size": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "dataset": "toy",
    }
    meta.update(extra)
    return meta


@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    return make_vit()


@pytest.fixture
def saved(tmp_path, vit):
    """A fresh fp32 checkpoint 'ckpt' in tmp_path; returns (weights, json) paths."""
    weights = ck.save(vit, tmp_path / "ckpt", vit_meta())
    return weights, weights.with_suffix(".json")


def x32(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def edit_json(json_path, **changes):
    meta = json.loads(json_path.read_text())
    for key, value in changes.items():
        if value is ...:
            del meta[key]
        else:
            meta[key] = value
    json_path.write_text(json.dumps(meta))


def rehash(weights, json_path):
    """Make the JSON's sha match the weights file, so the parser itself must cope."""
    edit_json(json_path, weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest())


def expect_error(path, *fragments, **kw):
    with pytest.raises(CheckpointError) as info:
        ck.load(path, device="cpu", **kw)
    msg = str(info.value)
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


# --------------------------------------------------------------------------- round trips


def test_round_trip_fp32_exact(saved, vit):
    weights, json_path = saved
    assert weights.name == "ckpt.safetensors" and json_path.is_file()
    model, meta = ck.load(weights, device="cpu")
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(x32()), vit(x32()))
    for key in ck.REQUIRED_KEYS:
        assert key in meta, key
    assert meta["num_classes"] == 3 and meta["classes"] == CLASSES
    assert meta["metrics"] == {} and meta["train_config"] == {} and meta["parent"] is None
    assert meta["format_version"] == 1 and meta["weights_dtype"] == "float32"
    assert meta["created"].endswith("+00:00") and "T" in meta["created"]
    assert {"python", "torch", "timm", "vitviz"} <= set(meta["versions"])
    assert meta["param_count"] == sum(p.numel() for p in vit.parameters())
    assert meta["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["path"] == str(weights)


def test_round_trip_fp16_storage(tmp_path, vit):
    weights = ck.save(vit, tmp_path / "half", vit_meta(), dtype=torch.float16)
    stored = safetensors.torch.load_file(weights)
    assert all(t.dtype == torch.float16 for t in stored.values())
    model, meta = ck.load(weights, device="cpu")
    assert meta["weights_dtype"] == "float16"
    assert next(model.parameters()).dtype == torch.float32
    with torch.no_grad():
        got, want = model(x32()), vit(x32())
    assert torch.allclose(got, want, rtol=1e-2, atol=1e-2 * want.abs().max().item())


def test_batchnorm_buffers_fp16(tmp_path):
    torch.manual_seed(0)
    small = {"channels": [8, 16, 32, 64], "stem_width": 8}  # shrunk resnet10t: keeps the test fast
    net = timm.create_model("resnet10t", num_classes=3, **small)
    with torch.no_grad():  # make running stats and the counter non-trivial
        for _ in range(2):
            net.train()(torch.randn(2, 3, 32, 32))
    net.eval()
    meta = vit_meta(variant="resnet10t", variant_kwargs=small)
    weights = ck.save(net, tmp_path / "rn", meta, dtype=torch.float16)
    stored = safetensors.torch.load_file(weights)
    counters = [k for k in stored if k.endswith("num_batches_tracked")]
    assert counters and all(stored[k].dtype == torch.int64 and stored[k].item() == 2 for k in counters)
    model, _ = ck.load(tmp_path / "rn.json", device="cpu")
    assert model.state_dict()[counters[0]].item() == 2
    with torch.no_grad():
        got, want = model(x32()), net(x32())
    assert torch.allclose(got, want, rtol=1e-2, atol=1e-2 * want.abs().max().item())


@pytest.mark.parametrize("given", ["ckpt", "ckpt.safetensors", "ckpt.json"])
def test_suffix_variants(tmp_path, vit, given):
    assert ck.save(vit, tmp_path / given, vit_meta()) == tmp_path / "ckpt.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.json", "ckpt.safetensors"]
    for other in [tmp_path / "ckpt", tmp_path / "ckpt.safetensors", str(tmp_path / "ckpt.json")]:
        _, meta = ck.load(other, device="cpu")
        assert meta["path"] == str(tmp_path / "ckpt.safetensors")
    assert ck.read_meta(tmp_path / given)["variant"] == VIT


def test_meta_defaults_kept_and_header(tmp_path, vit):
    meta = vit_meta(metrics={"test_accuracy": 0.5}, train_config={"lr": 1e-3}, parent="a/b.safetensors",
                    mean=(0.5, 0.5, 0.5), extra_key="kept")
    weights = ck.save(vit, tmp_path / "m", meta)
    got = ck.read_meta(weights)
    assert got["metrics"] == {"test_accuracy": 0.5} and got["train_config"] == {"lr": 1e-3}
    assert got["parent"] == "a/b.safetensors" and got["extra_key"] == "kept" and got["mean"] == [0.5] * 3
    with safetensors.safe_open(weights, framework="pt") as f:
        header = f.metadata()
    assert header["variant"] == VIT
    essential = json.loads(header["vitviz_meta"])
    assert essential["variant_kwargs"] == VIT_KWARGS and essential["num_classes"] == 3


def test_save_rejects_bad_meta(tmp_path, vit):
    with pytest.raises(ValueError, match="classes"):
        ck.save(vit, tmp_path / "x", {k: v for k, v in vit_meta().items() if k != "classes"})
    with pytest.raises(ValueError, match="num_classes"):
        ck.save(vit, tmp_path / "x", vit_meta(classes=["a", "b"]))
    with pytest.raises(ValueError):
        ck.save(vit, tmp_path / "x", vit_meta(), dtype=torch.int8)
    assert list(tmp_path.iterdir()) == []


def test_shared_and_noncontiguous_tensors(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4)
            self.b = torch.nn.Linear(4, 4)
            self.b.weight = self.a.weight  # tied parameter
            self.register_buffer("view", self.a.weight.detach()[1:])  # shares storage
            self.register_buffer("transposed", torch.arange(6.0).reshape(2, 3).t())

    net = Tied()
    weights = ck.save(net, tmp_path / "tied", vit_meta(), dtype=torch.float16)
    stored = safetensors.torch.load_file(weights)
    assert torch.equal(stored["b.weight"], net.a.weight.detach().half())
    assert torch.equal(stored["transposed"], net.transposed.half())


# --------------------------------------------------------------------------- atomicity & listing


def test_atomic_write_leaves_no_temp_files(tmp_path, vit):
    ck.save(vit, tmp_path / "a", vit_meta())
    ck.save(vit, tmp_path / "a", vit_meta())  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.safetensors"]


def test_failing_serialiser_leaves_nothing(tmp_path, vit, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(safetensors.torch, "save", boom)
    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ck.save(vit, tmp_path / "a", vit_meta())
    assert list(tmp_path.iterdir()) == []
    assert ck.list_checkpoints(tmp_path) == []


def test_failure_before_json_hides_checkpoint(tmp_path, vit, monkeypatch):
    old = ck.save(vit, tmp_path / "a", vit_meta())
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("no space left")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        ck.save(vit, tmp_path / "a", vit_meta(dataset="other"))
    with pytest.raises(OSError):
        ck.save(vit, tmp_path / "new", vit_meta())
    monkeypatch.undo()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert ck.list_checkpoints(tmp_path) == []  # neither a stale nor a half-written pair is visible
    assert old.exists()  # the weights may remain, but without JSON they are invisible


def test_list_checkpoints(tmp_path, vit):
    ck.save(vit, tmp_path / "b", vit_meta())
    ck.save(vit, tmp_path / "a", vit_meta())
    ck.save(vit, tmp_path / "runs" / "r1", vit_meta())
    (tmp_path / "lonely_weights.safetensors").write_bytes(b"x")
    (tmp_path / "lonely_meta.json").write_text(json.dumps(vit_meta()))
    (tmp_path / "broken.safetensors").write_bytes(b"x")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "novariant.safetensors").write_bytes(b"x")
    (tmp_path / "novariant.json").write_text(json.dumps({"classes": []}))
    (tmp_path / "alist.safetensors").write_bytes(b"x")
    (tmp_path / "alist.json").write_text("[1, 2]")
    (tmp_path / ".c.json.abc.tmp").write_text(json.dumps(vit_meta()))
    (tmp_path / ".c.safetensors.abc.tmp").write_bytes(b"x")
    (tmp_path / ".hidden.safetensors").write_bytes(b"x")  # hidden pairs are ignored too
    (tmp_path / ".hidden.json").write_text(json.dumps(vit_meta()))

    assert ck.list_checkpoints(tmp_path) == [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    assert ck.list_checkpoints(tmp_path, recursive=True) == [
        tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "runs" / "r1.safetensors"]
    assert ck.list_checkpoints(tmp_path / "does_not_exist") == []


def test_list_checkpoints_is_cheap(tmp_path, vit, monkeypatch):
    ck.save(vit, tmp_path / "a", vit_meta())

    def forbidden(*a, **k):
        raise AssertionError("list_checkpoints must not build models or hash weights")

    monkeypatch.setattr(timm, "create_model", forbidden)
    monkeypatch.setattr(hashlib, "sha256", forbidden)
    monkeypatch.setattr(safetensors.torch, "load", forbidden)
    monkeypatch.setattr(safetensors.torch, "load_file", forbidden)
    assert ck.list_checkpoints(tmp_path) == [tmp_path / "a.safetensors"]
    assert ck.read_meta(tmp_path / "a")["variant"] == VIT


def test_load_never_unpickles(saved, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("unpickling is forbidden")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    model, meta = ck.load(saved[0], device="cpu")
    assert meta["variant"] == VIT


def test_device_argument(saved):
    model, _ = ck.load(saved[0], device=torch.device("cpu"))
    assert next(model.parameters()).device.type == "cpu"
    model, _ = ck.load(saved[0])  # default device
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(model.parameters()).device.type == want


# --------------------------------------------------------------------------- bad files


def test_missing_json(saved):
    weights, json_path = saved
    json_path.unlink()
    expect_error(weights, "ckpt.json", "not found")
    with pytest.raises(CheckpointError, match="ckpt.json"):
        ck.read_meta(weights)


def test_missing_weights(saved):
    weights, json_path = saved
    weights.unlink()
    expect_error(json_path, "ckpt.safetensors", "not found")


def test_truncated_weights(saved):
    weights, json_path = saved
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    expect_error(weights, "ckpt.safetensors", "sha256")
    rehash(weights, json_path)  # bypass the hash check: the parser must fail cleanly
    msg = expect_error(weights, "ckpt.safetensors", "safetensors")
    assert "sha256" not in msg


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 7, os.urandom(4096),
                                     struct.pack("<Q", 20) + b"{\"a\": not json}    "])
def test_garbage_weights(saved, garbage):
    weights, json_path = saved
    weights.write_bytes(garbage)
    expect_error(weights, "ckpt.safetensors", "sha256")
    rehash(weights, json_path)
    expect_error(weights, "ckpt.safetensors", "not a valid safetensors file")


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2, 3]", "\xff\xfe"])
def test_bad_json(saved, text):
    weights, json_path = saved
    json_path.write_bytes(text.encode("latin-1"))
    expect_error(weights, "ckpt.json")


def test_missing_keys(saved):
    _, json_path = saved
    edit_json(json_path, classes=..., weights_sha256=...)
    expect_error(json_path, "ckpt.json", "missing keys", "classes", "weights_sha256")


@pytest.mark.parametrize("key,value", [("img_size", "32"), ("mean", [0.5, 0.5]), ("variant_kwargs", []),
                                       ("num_classes", 4), ("format_version", 99), ("parent", 3),
                                       ("weights_sha256", "abc"), ("img_size", True)])
def test_wrong_types(saved, key, value):
    _, json_path = saved
    edit_json(json_path, **{key: value})
    expect_error(json_path, "ckpt.json", key if key != "format_version" else "format_version")


def test_unknown_variant(saved):
    _, json_path = saved
    edit_json(json_path, variant="no_such_model_xyz")
    expect_error(json_path, "ckpt.json", "unknown variant", "no_such_model_xyz")


def test_unbuildable_kwargs(saved):
    _, json_path = saved
    edit_json(json_path, variant_kwargs={**VIT_KWARGS, "bogus_kwarg": 1})
    expect_error(json_path, "ckpt.json", "cannot build")


def test_weights_missing_keys(saved):
    weights, json_path = saved
    edit_json(json_path, variant_kwargs={**VIT_KWARGS, "depth": 3})
    expect_error(weights, "ckpt.safetensors", "missing keys", "blocks.2.")
    model, _ = ck.load(weights, device="cpu", strict=False)  # tolerated when not strict
    assert len(model.blocks) == 3


def test_weights_unexpected_keys(tmp_path):
    weights = ck.save(make_vit(depth=3), tmp_path / "deep", vit_meta(variant_kwargs={**VIT_KWARGS, "depth": 3}))
    edit_json(weights.with_suffix(".json"), variant_kwargs=VIT_KWARGS)
    expect_error(weights, "deep.safetensors", "unexpected keys", "blocks.2.")


def test_weights_shape_mismatch(saved):
    weights, json_path = saved
    edit_json(json_path, classes=["a", "b", "c", "d"], num_classes=4)
    msg = expect_error(weights, "ckpt.safetensors", "shape mismatch", "head.weight", "(3, 192)", "(4, 192)")
    assert "head.bias" in msg
    expect_error(weights, "shape mismatch", strict=False)  # never tolerated


def test_sha_mismatch(saved):
    weights, _ = saved
    data = bytearray(weights.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    data[8 + header_len + 10] ^= 0xFF  # inside the tensor data region
    weights.write_bytes(bytes(data))
    safetensors.torch.load(bytes(data))  # still parseable: only the hash can catch it
    expect_error(weights, "ckpt.safetensors", "sha256 mismatch")


def test_errors_are_chained(saved):
    weights, json_path = saved
    json_path.write_text("{")
    with pytest.raises(CheckpointError) as info:
        ck.load(weights, device="cpu")
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
