"""Where a CPU training step's time goes (issue 27): torch.profiler over real engine steps of one zoo entry.

python bench/cpu_profile.py [--variant xcit_n12_p4_32_linear] [--steps 6] [--threads 1] [--no-bf16]

Trains through `vitviz.train.train` (the zoo recipe: batch 64, crop + flip, AdamW, grad clipping) on random uint8
images after two warm-up steps, records every operator, and reports the share of self CPU time by kind: matrix
products (linear layers, attention's matmuls), convolutions (patch embedding, XCiT's LPI depthwise convs),
normalisation (LayerNorm, BatchNorm), activations (GELU, softmax), the optimiser (AdamW's updates, gradient
clipping), and the rest; plus the 15 most expensive operators. Appends a section to bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import vitviz  # noqa: E402,F401
from vitviz.data import ImageDataset  # noqa: E402
from vitviz.train import TrainConfig, train  # noqa: E402
from vitviz.train.zoo import ZOO  # noqa: E402

KINDS = [("optimiser and gradient clipping", ("adam", "_foreach", "lerp", "addcdiv", "addcmul", "vector_norm",
                                             "clip", "_fused")),
         ("matrix products", ("aten::mm", "bmm", "addmm", "matmul", "linear", "baddbmm", "mkldnn", "onednn")),
         ("convolutions", ("conv",)),
         ("normalisation", ("layer_norm", "batch_norm")),
         ("activations", ("gelu", "softmax", "relu", "silu")),
         ("copies and casts (bf16 weights each step)", ("copy_", "_to_copy", "contiguous", "clone")),
         ("elementwise (div, mul, add, sum)", ("aten::div", "aten::mul", "aten::add", "aten::sum", "aten::sub"))]


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, keys in KINDS:
        if any(k in low for k in keys):
            return kind
    return "other"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="xcit_n12_p4_32_linear", choices=list(ZOO))
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--markdown", default=str(ROOT / "bench" / "RESULTS.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    variant, kwargs = ZOO[args.variant]
    rng = np.random.default_rng(0)
    n = 64 * (args.steps + 2)
    data = ImageDataset("random", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n),
                        [str(i) for i in range(10)], "train")
    torch.manual_seed(0)
    model = timm.create_model(variant, num_classes=10, **kwargs)
    config = TrainConfig(steps=2, batch_size=64, warmup_epochs=0, cpu_amp=not args.no_bf16)
    train(model, data, config, mean=(0.5,) * 3, std=(0.25,) * 3, img_size=32, device="cpu")  # warm-up
    config = TrainConfig(steps=args.steps, batch_size=64, warmup_epochs=0, cpu_amp=not args.no_bf16)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = train(model, data, config, mean=(0.5,) * 3, std=(0.25,) * 3, img_size=32, device="cpu")
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    shares: dict[str, float] = {}
    for e in events:
        shares[kind_of(e.key)] = shares.get(kind_of(e.key), 0.0) + e.self_cpu_time_total / total
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]
    command = "python " + " ".join(map(shlex.quote, ["bench/cpu_profile.py", *(argv or sys.argv[1:])]))
    lines = [f"## {time.strftime('%Y-%m-%d %H:%M')} — where a CPU training step's time goes", "", f"`{command}`", "",
             f"{args.variant}, batch 64, {args.steps} profiled steps, {args.threads} thread(s), "
             f"{'float32' if args.no_bf16 else 'bf16 autocast'}: {result.images_per_second:.1f} img/s under the "
             f"profiler.", "", "| kind | share of self CPU time |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])]
    lines += ["", "| operator | calls | self CPU ms per step | share |", "|---|---|---|---|"]
    lines += [f"| `{e.key}` | {e.count // args.steps} | {e.self_cpu_time_total / 1000 / args.steps:.1f} | "
              f"{e.self_cpu_time_total / total:.1%} |" for e in top]
    text = "\n".join(lines) + "\n\n"
    with open(args.markdown, "a") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
