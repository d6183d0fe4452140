"""Data-parallel training under torchrun: sharding, BatchNorm swapping, and a real 2-process gloo run.

The 2-process run launches the user's command line, `torchrun --nproc_per_node 2 -m vitviz train ...`,
on the CPU (gloo) on the digits, and checks it against one process over the same global batch.
"""
import json
import os
import socket
import subprocess
import sys

import pytest
import timm
import torch

import vitviz  # noqa: F401  (registers the variants)
from vitviz import checkpoints
from vitviz.cli import main as cli_main
from vitviz.train import distributed
from vitviz.train.batches import apply_crop_flip, draw_crop_flip, random_crop_flip

from conftest import ROOT
from tiny import tiny_kwargs

TINY_VIT = dict(depth=1, embed_dim=32, num_heads=2, patch_size=8)


@pytest.mark.parametrize("batch_size, world_size", [(1, 1), (8, 1), (8, 2), (12, 4), (64, 8)])
def test_shards_of_a_batch_are_disjoint_equal_and_cover_it_in_order(batch_size, world_size):
    slices = [distributed.shard_slice(batch_size, rank, world_size) for rank in range(world_size)]
    positions = [list(range(batch_size))[s] for s in slices]
    assert [p for part in positions for p in part] == list(range(batch_size))  # disjoint, covering, in order
    assert {len(p) for p in positions} == {batch_size // world_size}


def test_a_batch_that_does_not_divide_among_the_ranks_is_refused():
    with pytest.raises(ValueError, match="multiple"):
        distributed.shard_slice(10, 0, 4)
    with pytest.raises(ValueError, match="rank"):
        distributed.shard_slice(8, 2, 2)


def test_every_rank_draws_the_same_epoch_and_their_shards_make_the_single_process_batches():
    """Each rank has its own generator with the shared seed: same permutation, so over an epoch the
    ranks' shards are disjoint, cover the epoch, and step by step union to one process's batch."""
    n, batch_size, world_size, seed = 103, 12, 3, 7
    orders = [torch.randperm(n, generator=torch.Generator().manual_seed(seed)) for _ in range(world_size)]
    assert all(torch.equal(orders[0], o) for o in orders)
    steps = n // batch_size
    seen = []
    for step in range(steps):
        single = orders[0][step * batch_size:(step + 1) * batch_size]
        shards = [distributed.shard(orders[r][step * batch_size:(step + 1) * batch_size], r, world_size)
                  for r in range(world_size)]
        assert torch.equal(torch.cat(shards), single)
        seen += [int(i) for s in shards for i in s]
    assert len(seen) == len(set(seen)) == steps * batch_size  # no image twice in an epoch


def test_augmentation_drawn_for_the_global_batch_and_sliced_equals_the_single_process_augmentation():
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    whole = random_crop_flip(images, 4, True, torch.Generator().manual_seed(3))
    for rank in range(2):
        params = draw_crop_flip(8, 4, True, torch.Generator().manual_seed(3))
        mine = distributed.shard_slice(8, rank, 2)
        part = apply_crop_flip(images[mine], {k: v[mine] for k, v in params.items()}, 4)
        assert torch.equal(part, whole[mine])


def test_batchnorm_becomes_sync_batchnorm_and_comes_back_with_the_trained_values():
    name = "vitviz_cvt_32"
    model = timm.create_model(name, num_classes=10, **tiny_kwargs(name)).eval()
    x = torch.randn(2, 3, 32, 32)
    kinds = {n: type(m) for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    keys = list(model.state_dict())
    replaced = distributed.to_sync_batchnorm(model)
    assert set(replaced) == set(kinds) and kinds
    assert all(isinstance(model.get_submodule(n), torch.nn.SyncBatchNorm) for n in kinds)
    assert list(model.state_dict()) == keys
    some = next(iter(kinds))
    with torch.no_grad():  # "training" changes the stand-in's values
        model.get_submodule(some).running_mean.add_(1.0)
        model.get_submodule(some).weight.mul_(2.0)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        out = model(x)  # eval mode: SyncBatchNorm normalises with the running statistics, on the CPU too
    distributed.restore_batchnorm(model, replaced)
    assert {n: type(model.get_submodule(n)) for n in kinds} == kinds
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(model(x), out)


def test_the_weights_digest_tells_identical_weights_from_different_ones():
    torch.manual_seed(0)
    model = timm.create_model("vitviz_vit_softmax_32", num_classes=10, **TINY_VIT)
    twin = timm.create_model("vitviz_vit_softmax_32", num_classes=10, **TINY_VIT)
    twin.load_state_dict(model.state_dict())
    assert distributed.parameters_digest(model) == distributed.parameters_digest(twin)
    with torch.no_grad():
        next(twin.parameters()).view(-1)[0] += 1.0
    assert distributed.parameters_digest(model) != distributed.parameters_digest(twin)
    assert distributed.ranks_in_sync(model, torch.device("cpu"))  # one process: trivially


def test_without_torchrun_there_is_one_process_and_no_process_group(monkeypatch):
    for name in distributed.LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched_by_torchrun()
    assert not distributed.launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
    assert distributed.launched_by_torchrun({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    with distributed.session("cpu") as launch:
        assert (launch.rank, launch.world_size, launch.backend, launch.is_main) == (0, 1, None, True)
        assert not torch.distributed.is_initialized() and distributed.world_size() == 1


def test_train_zoo_refuses_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli_main(["train-zoo", "--only", "fnet_32_conv", "--out-dir", "unused"]) == 2
    assert "not torchrun" in capsys.readouterr().err


def test_two_gloo_processes_under_torchrun_train_like_one_process_over_the_same_global_batch(tmp_path):
    recipe = ["train", "--variant", "vitviz_vit_softmax_32", "--variant-kwargs", json.dumps(TINY_VIT),
              "--dataset", "digits", "--steps", "3", "--batch-size", "16", "--warmup-epochs", "0",
              "--device", "cpu", "--quiet", "--no-cpu-amp"]  # float32: bf16 rounding would hide the 1e-5 check
    out_dir = tmp_path / "two"
    env = dict(os.environ, OMP_NUM_THREADS="1", VITVIZ_DDP_CHECK_EVERY_STEP="1",
               VITVIZ_CHECKPOINT_DIR=str(tmp_path / "default"))
    if "lo" in {name for _, name in socket.if_nameindex()}:  # gloo over loopback, whatever the hostname resolves to
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "vitviz", *recipe, "--out", str(out_dir / "ddp")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # only rank 0 wrote, and printed: one checkpoint (and its resume state), one summary; nothing elsewhere
    assert sorted(p.name for p in out_dir.iterdir()) == ["ddp.json", "ddp.resume.safetensors", "ddp.safetensors"]
    assert not (tmp_path / "default").exists()
    assert proc.stdout.count("checkpoint:") == 1 and "CPU x 2" in proc.stdout
    two = checkpoints.read_meta(out_dir / "ddp")
    tc = two["train_config"]
    assert tc["world_size"] == 2 and tc["batch_size"] == 16 and tc["steps_done"] == 3
    assert tc["data_parallel"] == {"backend": "gloo", "batch_size_per_rank": 8, "sync_batchnorm": False,
                                   "ranks_in_sync": True, "ranks_checked": "every step"}
    assert tc["command"].startswith("torchrun --nproc_per_node=2 -m vitviz train --variant vitviz_vit_softmax_32")

    # one process over the same global batch of 16: same data, same augmentation, same steps
    assert cli_main([*recipe, "--out", str(tmp_path / "one")]) == 0
    one = checkpoints.read_meta(tmp_path / "one")
    assert one["train_config"]["world_size"] == 1 and "data_parallel" not in one["train_config"]
    (h2,), (h1,) = tc["history"], one["train_config"]["history"]
    assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-5)
    assert h2["train_accuracy"] == h1["train_accuracy"]
    model_two, _ = checkpoints.load(out_dir / "ddp")
    model_one, _ = checkpoints.load(tmp_path / "one")
    for (name, a), (_, b) in zip(model_two.state_dict().items(), model_one.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    assert two["metrics"]["num_test_samples"] == one["metrics"]["num_test_samples"]
