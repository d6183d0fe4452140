"""Cost of a model and of its attention: parameters, FLOPs, forward time, peak memory.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`, which counts matrix products
(linear, matmul/bmm, convolution, attention) as 2 x multiply-accumulates; element-wise work
(softmax, exp, norms, activations) and FFTs (FNet's token mixing) are not counted. Attention is
counted under the math SDPA backend so that fused attention is counted the same on every
device (the CPU fused kernel has no FLOP formula of its own).
"""
from __future__ import annotations

import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ..layers.attention import SoftmaxKernel, make_kernel
from ..device import resolve_device
from .exclusive import eval_mode

SCALING_KINDS = ("softmax_explicit", "softmax_fused", "performer", "linformer", "nystrom", "xca")


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs of one call `fn(*args, **kwargs)` (2 x MACs of the matrix products), forward only.

    Grad mode stays on (nothing is backpropagated; the graph is dropped with the output): under no_grad a view
    of a parameter (PiT's expanded class token) is a leaf that requires grad, and the counter's module tracker
    fails on it when it is a module's input."""
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def model_cost(model: nn.Module, img_size, batch_size: int = 1, in_chans: int = 3) -> dict:
    """{"params", "flops", "flops_per_image", "batch_size", "img_size"} for one eval-mode forward
    of a random (batch_size, in_chans, H, W) input on the model's device. `params` counts every
    parameter (trainable or not); `flops` is for the whole batch."""
    h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    x = torch.randn(batch_size, in_chans, h, w, device=_device_of(model))
    with eval_mode(model):
        flops = count_flops(model, x)
    return dict(params=sum(p.numel() for p in model.parameters()), flops=flops,
                flops_per_image=flops // batch_size, batch_size=batch_size, img_size=(h, w))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(model: nn.Module, x: torch.Tensor, warmup: int = 2, repeats: int = 5) -> dict:
    """Wall-clock time of an eval-mode, no-grad forward of `x` (already on the model's device).

    Returns {"ms_median", "ms_min", "images_per_second" (batch / median), "peak_memory_bytes"}.
    On CUDA each call is bracketed by `torch.cuda.synchronize` and the peak is
    `torch.cuda.max_memory_allocated` over the timed calls (absolute: weights, input and
    activations). On the CPU the peak is None: tracemalloc does not see torch's allocator and
    process RSS is not a per-call measure, so nothing meaningful can be reported.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    device = x.device
    times = []
    with eval_mode(model), torch.no_grad():
        for _ in range(warmup):
            model(x)
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            _sync(device)
            times.append((time.perf_counter() - start) * 1e3)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    median = statistics.median(times)
    return dict(ms_median=median, ms_min=min(times), images_per_second=x.shape[0] / (median / 1e3),
                peak_memory_bytes=peak)


class CrossCovarianceKernel(nn.Module):
    """XCiT's cross-covariance attention (XCA, arXiv 2106.09681) on per-head q, k, v (B, H, N, d):
    q and k L2-normalised along the tokens, a d x d map softmax(q^T k * temperature) mixes the
    channels of v. This is the core of `timm.models.xcit.XCA` without its qkv / output
    projections (temperature 1, timm's initial value), so it times one attention op like the
    other kernels; its cost is linear in N."""

    def __init__(self, num_heads: int, temperature: float = 1.0):
        super().__init__()
        self.temperature = nn.Parameter(torch.full((num_heads, 1, 1), float(temperature)))

    def forward(self, q, k, v):
        q = F.normalize(q, dim=-2)
        k = F.normalize(k, dim=-2)
        attn = (q.transpose(-2, -1) @ k * self.temperature).softmax(dim=-1)  # (B, H, d, d)
        return v @ attn.transpose(-2, -1)                                    # (B, H, N, d)


def scaling_kernel(kind: str, head_dim: int, heads: int, tokens: int) -> nn.Module:
    """The module `attention_scaling` times for `kind` (one of SCALING_KINDS)."""
    if kind == "softmax_explicit":
        kernel = SoftmaxKernel(head_dim)
        kernel.need_map = True
        return kernel
    if kind == "softmax_fused":
        return SoftmaxKernel(head_dim)
    if kind == "xca":
        return CrossCovarianceKernel(heads)
    if kind in ("performer", "linformer", "nystrom"):
        return make_kernel(kind, head_dim, heads, seq_len=tokens)
    raise ValueError(f"unknown attention kind {kind!r}; choose from {', '.join(SCALING_KINDS)}")


def estimated_map_bytes(kind: str, tokens: int, heads: int, batch_size: int, element_size: int = 4) -> int:
    """Bytes of the largest intermediate that grows with N^2: the explicit N x N map
    (B * heads * N * N * element size) for explicit softmax, 0 for the others."""
    return batch_size * heads * tokens * tokens * element_size if kind == "softmax_explicit" else 0


def _default_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 4
    return 1 << 30


def attention_scaling(kinds=SCALING_KINDS, tokens=(64, 256, 1024, 4096), dim: int = 128, heads: int = 4,
                      batch_size: int = 1, device=None, max_seconds: float = 30.0, repeats: int = 5,
                      memory_budget_bytes: int | None = None, dtype: torch.dtype = torch.float32, seed: int = 0):
    """Time ONE attention operation per (kind, N): the kernel applied to random q, k, v of shape
    (batch_size, heads, N, dim // heads), no projections, no grad.

    kinds: softmax_explicit (SoftmaxKernel with need_map: the N x N map is materialised),
    softmax_fused (SoftmaxKernel's default fused SDPA), performer, linformer (built for each N,
    k = 64), nystrom (64 landmarks, with its residual conv on v), xca (`CrossCovarianceKernel`:
    XCiT's d x d attention, implemented here on q, k, v).

    Long-format DataFrame with columns kind, tokens, ms (median of up to `repeats` timed calls
    after one warm-up; a cell stops repeating after ~0.5 s), peak_memory_bytes (CUDA: peak
    allocated during the call minus what was allocated before it, i.e. the op's working memory and
    output; NaN on the CPU), flops (counted on the meta device, so also for skipped cells), note,
    device. Cells whose N x N map would exceed `memory_budget_bytes` (default: 1 GiB on the CPU,
    a quarter of free memory on CUDA) or that come after `max_seconds` of sweeping are skipped:
    ms NaN and the reason in `note`.
    """
    import pandas as pd

    device = resolve_device(device)
    budget = _default_budget(device) if memory_budget_bytes is None else memory_budget_bytes
    if dim % heads:
        raise ValueError(f"dim {dim} is not divisible by heads {heads}")
    head_dim = dim // heads
    for kind in kinds:
        if kind not in SCALING_KINDS:
            raise ValueError(f"unknown attention kind {kind!r}; choose from {', '.join(SCALING_KINDS)}")
    element_size = torch.empty((), dtype=dtype).element_size()
    started = time.perf_counter()
    rows = []
    for n in tokens:
        gen = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(batch_size, heads, n, head_dim, generator=gen, dtype=dtype).to(device)
                   for _ in range(3))
        meta = torch.empty(batch_size, heads, n, head_dim, device="meta", dtype=dtype)
        for kind in kinds:
            torch.manual_seed(seed)
            kernel = scaling_kernel(kind, head_dim, heads, n).eval()
            flops = count_flops(copy.deepcopy(kernel).to(device="meta", dtype=dtype), meta, meta, meta)
            row = dict(kind=kind, tokens=n, ms=math.nan, peak_memory_bytes=math.nan, flops=flops, note="",
                       device=str(device))
            need = estimated_map_bytes(kind, n, heads, batch_size, element_size)
            if need > budget:
                row["note"] = f"skipped: N x N map needs ~{need / 2**20:.0f} MiB > budget {budget / 2**20:.0f} MiB"
            elif time.perf_counter() - started > max_seconds:
                row["note"] = f"skipped: sweep exceeded max_seconds={max_seconds}"
            else:
                kernel = kernel.to(device=device, dtype=dtype)
                row.update(_time_kernel(kernel, q, k, v, repeats))
            rows.append(row)
            del kernel
    return pd.DataFrame(rows, columns=["kind", "tokens", "ms", "peak_memory_bytes", "flops", "note", "device"])


@torch.no_grad()
def _time_kernel(kernel: nn.Module, q, k, v, repeats: int, cell_seconds: float = 0.5) -> dict:
    device = q.device
    kernel(q, k, v)  # warm-up
    _sync(device)
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    times, cell_start = [], time.perf_counter()
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = kernel(q, k, v)
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
        del out
        if time.perf_counter() - cell_start > cell_seconds:
            break
    peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else math.nan
    return dict(ms=statistics.median(times), peak_memory_bytes=peak)


def kernel_outputs(kinds, q, k, v) -> dict:
    """{kind: output} of the `attention_scaling` kernels on the same q, k, v (for cross-checks such
    as explicit vs fused softmax, which compute the same function)."""
    B, H, N, d = q.shape
    out = {}
    with torch.no_grad():
        for kind in kinds:
            kernel = scaling_kernel(kind, d, H, N).eval().to(q)
            out[kind] = kernel(q, k, v)
    return out


__all__ = ["model_cost", "time_forward", "attention_scaling", "count_flops", "scaling_kernel",
           "kernel_outputs", "estimated_map_bytes", "CrossCovarianceKernel", "SCALING_KINDS"]
