"""Device choice and precision: CUDA when available, else CPU.

Training autocasts to bf16 on CUDA and on CPUs whose oneDNN runs bf16 (AVX512-BF16/AMX; measured here:
XCiT-N12 p4 trains 1.6x faster on one core, bench/RESULTS.md); evaluation and every inspection stay in
full precision on the CPU, so the numbers the app shows do not depend on it.
"""
from __future__ import annotations

import contextlib

import torch


def resolve_device(device=None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU"


def cpu_bf16_supported() -> bool:
    """True when oneDNN runs bf16 matrix products on this CPU."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, enabled: bool = True, cpu: bool = False):
    """bf16 autocast on CUDA; on the CPU too when `cpu` (training) and the CPU runs bf16 natively."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if enabled and cpu and device.type == "cpu" and cpu_bf16_supported():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
