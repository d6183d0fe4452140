"""Where things live, with the standard library only (the CLI's quick commands import nothing heavier).

- the checkpoint directory (`$VITVIZ_CHECKPOINT_DIR`, else the repository's `checkpoints/`) and its
  git-ignored `runs/` subfolder, where every new checkpoint and the job queue go;
- portable paths for checkpoint metadata: a path inside the repository, or inside the `shared/` folder
  beside it (`../shared/data/...`, the project's shared data), is stored relative to the repository root;
  `resolve_stored_path` reads both these and the absolute paths older checkpoints stored on the machine
  that trained them.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

CHECKPOINT_DIR_ENV = "VITVIZ_CHECKPOINT_DIR"
RUNS_SUBDIR = "runs"
REPO_ROOT = Path(__file__).resolve().parent.parent


def default_checkpoint_dir() -> Path:
    """`$VITVIZ_CHECKPOINT_DIR`, else `checkpoints/` beside the package (the shipped set)."""
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    return Path(env).expanduser() if env else REPO_ROOT / "checkpoints"


def default_studies_dir() -> Path:
    """`$VITVIZ_STUDIES_DIR`, else `studies/` beside the package (the shipped study specs)."""
    env = os.environ.get("VITVIZ_STUDIES_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / "studies"


def default_runs_dir() -> Path:
    """Where new checkpoints (train, finetune, jobs) are written: `<checkpoint dir>/runs`, git-ignored."""
    return default_checkpoint_dir() / RUNS_SUBDIR


def portable_path(path: str | os.PathLike | None, root: Path = REPO_ROOT) -> str | None:
    """`path` as stored in metadata: relative to the repository when it is inside it or inside the project's
    `shared/` folder beside it, else unchanged (a repository cloned into /tmp must not make every /tmp path
    relative). None stays None."""
    if path is None:
        return None
    resolved = Path(path).expanduser().absolute()
    for base in (root, root.parent / "shared"):
        if resolved.is_relative_to(base):
            return os.path.relpath(resolved, root).replace(os.sep, "/")
    return str(path)


def resolve_stored_path(stored: str | os.PathLike | None, root: Path = REPO_ROOT) -> Path | None:
    """A path read from metadata, on this machine.

    Relative paths are relative to the repository. An absolute path from another machine that does not
    exist here is looked up by its trailing components under the repository and its parent (so
    `/work/shared/data/cifar10-mini` finds `../shared/data/cifar10-mini`); if nothing matches it is
    returned unchanged.
    """
    if not stored:
        return None
    path = Path(stored).expanduser()
    if not path.is_absolute():
        return (root / path).resolve()
    if path.exists():
        return path
    parts = path.parts[1:]
    for i in range(len(parts)):
        for base in (root, root.parent):
            candidate = base.joinpath(*parts[i:])
            if candidate.exists():
                return candidate
    return path


def portable_command(command: str | None, root: Path = REPO_ROOT) -> str | None:
    """A command line with every absolute path argument made portable (see portable_path)."""
    if command is None:
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out = []
    for word in words:
        flag, eq, value = word.partition("=") if word.startswith("--") and "=" in word else ("", "", word)
        if value.startswith(("/", "~")):
            value = portable_path(value, root)
        out.append(f"{flag}{eq}{value}" if eq else value)
    return " ".join(shlex.quote(w) for w in out)
