import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(min(2, os.cpu_count() or 1))

CIFAR10_MINI = ROOT.parent / "shared" / "data" / "cifar10-mini"


@pytest.fixture
def cifar10_mini() -> Path:
    if not (CIFAR10_MINI / "cifar-10-batches-py" / "batches.meta").exists():
        pytest.skip(f"real data not present at {CIFAR10_MINI}")
    return CIFAR10_MINI
