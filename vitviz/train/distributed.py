"""Data-parallel training over several processes (launched by torchrun): process group, ranks, sharding.

`torchrun --nproc_per_node N -m vitviz train ...` starts N copies of the command with RANK, WORLD_SIZE
and LOCAL_RANK in their environment; `session()` sees them, joins the process group (NCCL on GPUs,
gloo on CPUs) and gives each process its device (`cuda:LOCAL_RANK`). Without those variables (plain
`python -m vitviz train`, the app, background jobs) nothing here does anything: one process, as before.

The engine asks `rank()` / `world_size()` and, with more than one process, wraps the model in
`DataParallel` (DDP; BatchNorm made SyncBatchNorm on GPUs). The batch convention:

- `--batch-size` / `TrainConfig.batch_size` is the *global* batch: images per optimiser step over all
  processes. Each rank computes on `batch_size / world_size` of them (it must divide).
- Every rank draws the same seeded permutation of the data each epoch (same generator, same seed),
  cuts it into the same global batches as one process would, and takes its contiguous slice of each
  (`shard_slice`). So the ranks' shards of a step are disjoint and together are exactly the batch a
  single process would train on, with the same augmentation (drawn for the whole batch, then sliced).
- DDP averages the gradients, so the step equals one process's step on the global batch (up to
  floating-point summation order; BatchNorm statistics too when it is synchronised).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import resolve_device

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Launch:
    """Where this process stands: its rank among `world_size` processes and its device."""
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None = None  # None: a single process, no process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def nodes(self) -> int:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
        return max(1, self.world_size // max(per_node, 1))


def launched_by_torchrun(env=None) -> bool:
    """True when torchrun (or srun + torchrun) started this process as one of several."""
    env = os.environ if env is None else env
    return all(name in env for name in LAUNCH_VARIABLES) and int(env["WORLD_SIZE"]) > 1


def init(device=None) -> Launch:
    """Join the process group when launched by torchrun; otherwise describe the single process.

    `device` is the user's choice ("cuda", "cpu" or None for CUDA when available): under torchrun a
    CUDA device becomes `cuda:LOCAL_RANK` and the backend NCCL; a CPU run uses gloo.
    """
    device = resolve_device(device)
    if not launched_by_torchrun():
        return Launch(0, 1, 0, device)
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, **({"device_id": device} if backend == "nccl" else {}))
    return Launch(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device=None):
    """`with session(args.device) as launch:` ... the process group lives for the block (if launched)."""
    launch = init(device)
    try:
        yield launch
    finally:
        if launch.backend is not None:
            teardown()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def backend() -> str | None:
    return dist.get_backend() if active() else None


def shard_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """The contiguous part of a global batch of `batch_size` that `rank` computes on.

    The slices of ranks 0..world_size-1 are disjoint, equal in size and cover the batch in order.
    """
    if batch_size % world_size:
        raise ValueError(f"the global batch size {batch_size} must be a multiple of the {world_size} processes")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    per_rank = batch_size // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's part of a global batch (of indices, images, or per-image parameters)."""
    return batch[shard_slice(len(batch), rank, world_size)]


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of `value` over the ranks (in place, returned); unchanged in a single process."""
    if active():
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def parameters_digest(model: torch.nn.Module) -> str:
    """sha256 of the model's parameters (names and bytes): equal digests <=> identical weights."""
    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        digest.update(name.encode())
        digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def ranks_in_sync(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether every rank holds bit-identical parameters (a collective: every rank must call it)."""
    if not active():
        return True
    head = int(parameters_digest(model)[:15], 16)  # 60 bits of the digest fit an int64
    bounds = torch.tensor([head, -head], dtype=torch.int64, device=device)
    dist.all_reduce(bounds, op=dist.ReduceOp.MAX)
    return int(bounds[0]) == -int(bounds[1])  # max == min over the ranks


def to_sync_batchnorm(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Swap every BatchNorm layer of `model` (in place) for a SyncBatchNorm sharing its parameters and
    statistics; returns the swapped-out layers by name, for `restore_batchnorm`."""
    from torch.nn.modules.batchnorm import _BatchNorm
    replaced = {}
    for name in [n for n, m in model.named_modules()
                 if n and isinstance(m, _BatchNorm) and not isinstance(m, torch.nn.SyncBatchNorm)]:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        replaced[name] = getattr(parent, child)
        setattr(parent, child, torch.nn.SyncBatchNorm.convert_sync_batchnorm(replaced[name]))
    return replaced


def restore_batchnorm(model: torch.nn.Module, replaced: dict[str, torch.nn.Module]) -> None:
    """Put the original BatchNorm layers back, holding the values their SyncBatchNorm stand-ins trained."""
    for name, original in replaced.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        stand_in = getattr(parent, child)
        original.load_state_dict(stand_in.state_dict())
        original.train(stand_in.training)
        setattr(parent, child, original)


class DataParallel:
    """The model as the engine trains it: DDP over the process group, or the model itself.

    BatchNorm: on GPUs (NCCL) its layers become SyncBatchNorm for the training, so their statistics are
    over the global batch as in one process, and `finish()` puts the original layers back with the
    trained values (the checkpoint and the returned model are unchanged in kind). On CPUs (gloo)
    SyncBatchNorm is unavailable (PyTorch implements it for GPUs only): BatchNorm then normalises with
    each rank's own part of the batch, and DDP broadcasts rank 0's running statistics at every step.

    With VITVIZ_DDP_CHECK_EVERY_STEP=1 in the environment the engine compares the ranks' weights after
    every step (a debugging aid: it hashes the parameters each step); by default once, at the end.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model, self.device = model, device
        self.world_size = world_size()
        self.replaced: dict[str, torch.nn.Module] = {}  # BatchNorm layers swapped out for the training
        self.check_every_step = self.world_size > 1 and os.environ.get("VITVIZ_DDP_CHECK_EVERY_STEP") == "1"
        if self.world_size == 1:
            self.module = model
        else:
            from torch.nn.parallel import DistributedDataParallel
            if device.type == "cuda":
                self.replaced = to_sync_batchnorm(model)
            # static_graph: the graph is the same every step; it also tolerates parameters a forward leaves unused
            self.module = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, static_graph=True)
        self.sync_batchnorm = bool(self.replaced)

    def after_step(self, step: int) -> None:
        if self.check_every_step and not ranks_in_sync(self.model, self.device):
            raise RuntimeError(f"the ranks' weights differ after step {step}")

    def finish(self) -> bool:
        """After training (every rank calls it): put BatchNorm back; returns whether the ranks agree."""
        in_sync = ranks_in_sync(self.model, self.device)
        if not in_sync:
            warnings.warn("after training the ranks' weights differ; rank 0's are kept", RuntimeWarning)
        restore_batchnorm(self.model, self.replaced)
        self.replaced = {}
        return in_sync
