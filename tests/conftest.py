import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(min(2, os.cpu_count() or 1))
# The app warms itself up in a background thread after its first page (vitviz.ui.warm); in the tests' process
# (AppTest) and the servers they start, that thread would only compete with the tests. tests/test_warm.py runs it.
os.environ.setdefault("VITVIZ_NO_WARM", "1")

CIFAR10_MINI = ROOT.parent / "shared" / "data" / "cifar10-mini"


@pytest.fixture
def cifar10_mini() -> Path:
    if not (CIFAR10_MINI / "cifar-10-batches-py" / "batches.meta").exists():
        pytest.skip(f"real data not present at {CIFAR10_MINI}")
    return CIFAR10_MINI


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    """Tiny checkpoints (evaluated on the digits) for the app tests, written once per session."""
    from app_fixtures import write_tiny_checkpoints
    directory = tmp_path_factory.mktemp("app_checkpoints")
    write_tiny_checkpoints(directory)
    return directory


@pytest.fixture
def app_env(checkpoint_dir, monkeypatch, tmp_path):
    """The app sees the tiny checkpoints and an empty data directory."""
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(checkpoint_dir))
    monkeypatch.setenv("VITVIZ_DATA_DIR", str(tmp_path / "data"))
    return checkpoint_dir


@pytest.fixture
def ckdir(checkpoint_dir, tmp_path):
    """A private copy of the tiny checkpoints (so no other test's cache files are there)."""
    import shutil
    directory = tmp_path / "ck"
    directory.mkdir()
    for f in checkpoint_dir.glob("tiny_*"):
        shutil.copy(f, directory / f.name)
    return directory
