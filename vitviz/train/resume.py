"""Resume states: what a stopped training run needs to continue bit-for-bit.

A state is one safetensors file (nothing in it is unpickled) written atomically by the engine every
`every_seconds` of training and at the end, by rank 0 only:

- tensors: the model's state dict (`model.<key>`, full precision), AdamW's moments and step counts
  (`optim.<index>.<name>`), the data-order generator's and torch's global RNG states (`rng.data`,
  `rng.torch`: crop/flip/permutation and dropout/drop-path), and, when the run stopped inside an epoch,
  that epoch's permutation (`order`);
- a JSON header: the format version, the run's identity (variant and options, dataset and classes, a
  fingerprint of the training images, the parent checkpoint of a fine-tune, the recipe), the step
  reached, the history so far, the partial epoch's loss/accuracy sums, the training seconds spent, the
  optimiser's param groups.

`--resume PATH` reloads it; the run continues from the saved step with the same data order, augmentation
and optimiser state, so 2 + 2 epochs equal 4 (tests/test_resume.py). The total length may change
(`--epochs` larger than the saved run's: train longer; the schedule is then laid over the new length);
anything else that differs (variant, data, recipe) is refused with the file's name and the differences,
before anything is written.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from ..checkpoints import _fsync_dir, _replace, _write_temp

FORMAT = "vitviz-resume"
FORMAT_VERSION = 1
SUFFIX = ".resume.safetensors"
# Recipe fields that may differ on resume: the run's length (train longer) and where/how often it reports.
LENGTH_FIELDS = ("epochs", "steps", "eval_every", "compile", "max_resident_bytes", "extra")


class ResumeError(ValueError):
    """A resume state that is unreadable, or that belongs to another run."""


def default_state_path(out: str | os.PathLike) -> Path:
    """Where the run that writes checkpoint `out` keeps its resume state: beside it, `<out>.resume.safetensors`
    (a new run's default `out` is in the git-ignored `<checkpoint dir>/runs/`; the suffix is git-ignored too)."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".safetensors").removesuffix(".json") + SUFFIX)


def recipe_identity(config_dict: dict) -> dict:
    return {k: v for k, v in config_dict.items() if k not in LENGTH_FIELDS}


@dataclass
class ResumeState:
    path: Path
    identity: dict
    step: int
    history: list = field(default_factory=list)
    sums: dict = field(default_factory=dict)      # loss_sum, correct_sum, seen of the partial epoch
    train_seconds: float = 0.0
    model: dict = field(default_factory=dict)     # state dict
    optimizer: dict = field(default_factory=dict)  # torch optimizer state dict
    rng_data: torch.Tensor | None = None
    rng_torch: torch.Tensor | None = None
    order: torch.Tensor | None = None             # the current epoch's permutation (mid-epoch states only)
    resumes: list = field(default_factory=list)   # earlier resumes: [{"step": ..., "time": ...}]

    def check(self, identity: dict) -> None:
        """Raise ResumeError naming the file and every field that differs from this run's identity."""
        diffs = []
        for key in sorted(set(self.identity) | set(identity)):
            mine, theirs = self.identity.get(key), identity.get(key)
            if key == "recipe":
                for k in sorted(set(mine or {}) | set(theirs or {})):
                    if (mine or {}).get(k) != (theirs or {}).get(k):
                        diffs.append(f"recipe {k}: state {(mine or {}).get(k)!r}, this run {(theirs or {}).get(k)!r}")
            elif mine != theirs:
                diffs.append(f"{key}: state {_short(mine)}, this run {_short(theirs)}")
        if diffs:
            raise ResumeError(f"{self.path}: this resume state belongs to another run ({'; '.join(diffs)}); "
                              "nothing was written")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def write_state(path: Path, *, identity: dict, step: int, history: list, sums: dict, train_seconds: float,
                model: torch.nn.Module, optimizer: torch.optim.Optimizer, rng_data: torch.Tensor,
                order: torch.Tensor | None, resumes: list) -> Path:
    """Write a resume state atomically (temp file + rename): a kill mid-write leaves the previous one."""
    tensors = {f"model.{k}": v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
               for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for name, value in slots.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{index}.{name}"] = value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
    tensors["rng.data"] = rng_data.clone()
    tensors["rng.torch"] = torch.get_rng_state().clone()
    if order is not None:
        tensors["order"] = order.detach().to("cpu").clone()
    header = {"identity": identity, "step": step, "history": history, "sums": sums,
              "train_seconds": train_seconds, "param_groups": opt["param_groups"], "resumes": resumes,
              "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    blob = safetensors.torch.save(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                                     "state": json.dumps(header)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(_write_temp(path, blob), path)
    _fsync_dir(path.parent)
    return path


def read_state(path: str | os.PathLike) -> ResumeState:
    """Read a resume state; ResumeError (naming the file) when it is missing, corrupt or not a state."""
    path = Path(path)
    if not path.is_file():
        raise ResumeError(f"{path}: no resume state there")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ResumeError(f"{path}: not a vitviz resume state (a checkpoint? resume takes the "
                                  f"{SUFFIX} file the run wrote)")
            if meta.get("format_version") != str(FORMAT_VERSION):
                raise ResumeError(f"{path}: resume state format {meta.get('format_version')}, this vitviz reads "
                                  f"{FORMAT_VERSION}")
            header = json.loads(meta["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except ResumeError:
        raise
    except Exception as exc:  # safetensors raises several kinds for truncated or foreign files
        raise ResumeError(f"{path}: unreadable resume state ({type(exc).__name__}: {exc})") from exc
    model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    optimizer = {"state": slots, "param_groups": header["param_groups"]}
    return ResumeState(path, header["identity"], int(header["step"]), header["history"], header["sums"],
                       float(header["train_seconds"]), model, optimizer, tensors.get("rng.data"),
                       tensors.get("rng.torch"), tensors.get("order"), header.get("resumes", []))


class StateWriter:
    """Writes the state every `every_seconds` (at step boundaries) and when asked to at the end."""

    def __init__(self, path: str | os.PathLike, every_seconds: float = 300.0):
        self.path, self.every_seconds = Path(path), float(every_seconds)
        self.last = time.monotonic()
        self.writes = 0

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_seconds

    def write(self, **state) -> Path:
        path = write_state(self.path, **state)
        self.last = time.monotonic()
        self.writes += 1
        return path
