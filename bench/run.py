"""Benchmarks (not tests): python bench/run.py [--quick] [--only train,cputrain,attention,capture,epoch]

Writes <out>/<device>-<date>.json and appends a markdown section to bench/RESULTS.md with device,
versions, date and the exact command.

- cputrain:  CPU training img/s of every zoo variant, float32 vs bf16 autocast (the engine's CPU default),
             eager, plus torch.compile with --compile; `--threads 1` as the background zoo runs use.
- train:     training throughput (img/s, AdamW step, bf16 autocast on CUDA) and peak memory of each
             variant and of timm's own xcit_nano_12_p16_224 / vit_tiny_patch16_224, same process,
             batch and precision; eager, plus torch.compile with --compile.
- epoch:     one fine-tune epoch of 50,000 images at 32 px for the CIFAR-native XCiT variants
             (device-resident uint8 data, crop + flip on the device) — GPU only unless --cpu-epoch.
- capture:   latency of capture() (all maps of one image) per shipped-style variant.
- attention: time and memory of one attention operation as tokens grow (64 ... 4,096).
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import vitviz  # noqa: E402,F401
from vitviz.data import ImageDataset  # noqa: E402
from vitviz.inspect import attention_scaling, capture  # noqa: E402
from vitviz.train import TrainConfig, train  # noqa: E402
from vitviz.device import autocast, device_name  # noqa: E402
from vitviz.train.engine import decay_groups  # noqa: E402
from vitviz.train.zoo import ZOO  # noqa: E402

TIMM_REFERENCES = {"xcit_nano_12_p16_224": 224, "vit_tiny_patch16_224": 224}
PAPER_XCIT = [f"vitviz_xcit_n12_p16_224_{k}" for k in ("linear", "sne", "psne", "fsne")]
CIFAR_XCIT = [f"vitviz_xcit_n12_p4_32_{k}" for k in ("linear", "sne", "psne", "fsne")]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(name: str, kwargs: dict, img_size: int, batch: int, steps: int, device, compile_: bool,
                     cpu_bf16: bool = False) -> dict:
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=1000 if img_size == 224 else 10, **kwargs).to(device)
    model.train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(decay_groups(model, 0.05), lr=1e-3, **({"fused": True} if device.type == "cuda" else {}))
    step_model = model
    if compile_:
        try:
            step_model = torch.compile(model)
        except Exception as exc:  # noqa: BLE001
            return {"error": f"compile failed: {exc}"}
    x = torch.randn(batch, 3, img_size, img_size, device=device)
    if device.type == "cuda":
        x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with autocast(device, cpu=cpu_bf16):
            loss = F.cross_entropy(step_model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    try:
        for _ in range(3 if not compile_ else 5):
            step()
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        seconds = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        return {"error": "out of memory"}
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    return {"images_per_second": batch * steps / seconds, "peak_memory_bytes": peak, "batch": batch,
            "steps": steps, "compiled": compile_, "precision": "bf16 autocast" if cpu_bf16 or device.type == "cuda"
            else "float32"}


def bench_train(args, device) -> list[dict]:
    rows = []
    batch = args.batch or (256 if device.type == "cuda" else 16)
    steps = args.steps or (30 if device.type == "cuda" else 3)
    entries = [(n, {}, 224) for n in TIMM_REFERENCES] + [(n, {}, 224) for n in PAPER_XCIT]
    entries += [(variant, kwargs, 32) for variant, kwargs in ZOO.values()
                if args.train_set == "all" or variant in CIFAR_XCIT]
    for compile_ in ([False, True] if args.compile else [False]):
        for name, kwargs, size in entries:
            b = batch if size == 224 else (args.batch_32 or (2048 if device.type == "cuda" else 64))
            row = {"variant": name, "options": kwargs, "img_size": size,
                   **train_throughput(name, kwargs, size, b, steps, device, compile_)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def bench_cpu_train(args, device) -> list[dict]:
    """CPU training img/s per zoo variant at one batch: float32 eager (the engine before bf16 autocast), bf16
    autocast eager (the engine now), and each compiled with --compile; the modes interleaved per variant."""
    if device.type != "cpu":
        return [{"skipped": "CPU only"}]
    rows = []
    batch, steps = args.batch_32 or 64, args.steps or 8
    modes = [(False, False), (False, True)] + ([(True, False), (True, True)] if args.compile else [])
    for zoo_name, (variant, kwargs) in ZOO.items():
        if args.train_set == "xcit" and variant not in CIFAR_XCIT:
            continue
        for compile_, bf16 in modes:
            row = {"checkpoint": zoo_name, "variant": variant, "options": kwargs, "img_size": 32,
                   "threads": torch.get_num_threads(),
                   **train_throughput(variant, kwargs, 32, batch, steps, device, compile_, cpu_bf16=bf16)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def bench_epoch(args, device) -> list[dict]:
    """One epoch over 50,000 random uint8 32 px images with the real engine (resident data, GPU augmentation)."""
    if device.type != "cuda" and not args.cpu_epoch:
        return [{"skipped": "GPU only (pass --cpu-epoch to run it on the CPU)"}]
    rng = np.random.default_rng(0)
    n = 50_000 if device.type == "cuda" else 2_000
    data = ImageDataset("random", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n),
                        [str(i) for i in range(10)], "train")
    rows = []
    for name in CIFAR_XCIT:
        for compile_ in ([False, True] if args.compile else [False]):
            model = timm.create_model(name, num_classes=10)
            config = TrainConfig(epochs=1, batch_size=args.batch_32 or 2048, warmup_epochs=0, compile=compile_)
            result = train(model, data, config, mean=(0.5,) * 3, std=(0.25,) * 3, img_size=32, device=device)
            row = {"variant": name, "images": n, "seconds": result.seconds, "compiled": compile_,
                   "images_per_second": result.images_per_second}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def bench_capture(args, device) -> list[dict]:
    rows = []
    for zoo_name, (variant, kwargs) in ZOO.items():
        model = timm.create_model(variant, num_classes=10, **kwargs).to(device).eval()
        x = torch.randn(1, 3, 32, 32, device=device)
        want = ["attention", "projected_attention", "implied_attention", "class_attention", "xca", "grids"]
        capture(model, x, want=want)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            capture(model, x, want=want)
            sync(device)
            times.append(time.perf_counter() - start)
        rows.append({"checkpoint": zoo_name, "variant": variant, "ms_median": 1000 * float(np.median(times)),
                     "ms_min": 1000 * float(np.min(times))})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_attention(args, device) -> list[dict]:
    tokens = (64, 256, 1024, 4096) if device.type == "cuda" or not args.quick else (64, 256, 1024)
    df = attention_scaling(tokens=tokens, device=device, batch_size=8 if device.type == "cuda" else 1)
    return json.loads(df.to_json(orient="records"))


def markdown(result: dict) -> str:
    lines = [f"## {result['date']} — {result['device']}", "", f"`{result['command']}`", "",
             f"torch {result['versions']['torch']}, timm {result['versions']['timm']}, "
             f"python {result['versions']['python']}", ""]
    if result.get("train"):
        lines += ["### Training throughput", "", "| variant | img px | batch | compiled | img/s | peak MiB |",
                  "|---|---|---|---|---|---|"]
        for r in result["train"]:
            if "error" in r:
                lines.append(f"| {r['variant']} | {r['img_size']} | | | {r['error']} | |")
                continue
            peak = f"{r['peak_memory_bytes'] / 2**20:.0f}" if r["peak_memory_bytes"] else "n/a (CPU)"
            opts = f" {r['options']}" if r["options"] else ""
            lines.append(f"| {r['variant']}{opts} | {r['img_size']} | {r['batch']} | {r['compiled']} | "
                         f"{r['images_per_second']:,.0f} | {peak} |")
        lines.append("")
    if result.get("cputrain"):
        lines += ["### CPU training throughput (img/s), same batch, modes interleaved", "",
                  "| checkpoint | threads | batch | float32 eager | bf16 autocast eager | speed-up | float32 compiled "
                  "| bf16 compiled |", "|---|---|---|---|---|---|---|---|"]
        by = {}
        for r in result["cputrain"]:
            if "skipped" not in r:
                by.setdefault(r["checkpoint"], {})[(r.get("compiled"), r.get("precision"))] = r
        for name, modes in by.items():
            def cell(compiled, precision):
                r = modes.get((compiled, precision))
                return "" if r is None else (r["error"] if "error" in r else f"{r['images_per_second']:.1f}")
            first = next(iter(modes.values()))
            base, fast = modes.get((False, "float32")), modes.get((False, "bf16 autocast"))
            ratio = (f"{fast['images_per_second'] / base['images_per_second']:.2f}x"
                     if base and fast and "error" not in base and "error" not in fast else "")
            lines.append(f"| {name} | {first['threads']} | {first['batch']} | {cell(False, 'float32')} | "
                         f"{cell(False, 'bf16 autocast')} | {ratio} | {cell(True, 'float32')} | "
                         f"{cell(True, 'bf16 autocast')} |")
        lines.append("")
    if result.get("epoch"):
        lines += ["### One fine-tune epoch", "", "| variant | images | compiled | seconds | img/s |",
                  "|---|---|---|---|---|"]
        for r in result["epoch"]:
            if "skipped" in r:
                lines.append(f"| {r['skipped']} | | | | |")
            else:
                lines.append(f"| {r['variant']} | {r['images']:,} | {r['compiled']} | {r['seconds']:.2f} | "
                             f"{r['images_per_second']:,.0f} |")
        lines.append("")
    if result.get("capture"):
        lines += ["### capture() latency, one 32 px image, all maps", "", "| checkpoint | median ms | min ms |",
                  "|---|---|---|"]
        lines += [f"| {r['checkpoint']} | {r['ms_median']:.1f} | {r['ms_min']:.1f} |" for r in result["capture"]]
        lines.append("")
    if result.get("attention"):
        lines += ["### One attention operation as tokens grow (dim 128, 4 heads)", "",
                  "| kind | tokens | ms | peak MiB | GFLOPs | note |", "|---|---|---|---|---|---|"]
        for r in result["attention"]:
            ms = "skipped" if r["ms"] is None else f"{r['ms']:.3f}"
            peak = f"{r['peak_memory_bytes'] / 2**20:.1f}" if r.get("peak_memory_bytes") else "n/a"
            flops = f"{r['flops'] / 1e9:.3f}" if r.get("flops") else ""
            lines.append(f"| {r['kind']} | {r['tokens']} | {ms} | {peak} | {flops} | {r.get('note') or ''} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="train,epoch,capture,attention")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, default=None, help="batch for 224 px models")
    parser.add_argument("--batch-32", type=int, default=None, help="batch for 32 px models")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--train-set", default="all", choices=["all", "xcit"],
                        help="train: every zoo variant, or only timm's references and the XCiT variants "
                             "(224 px and CIFAR-native; for a short GPU session)")
    parser.add_argument("--cpu-epoch", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smaller token sweep on CPU")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--markdown", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "device": device_name(device),
              "command": "python " + " ".join(map(shlex.quote, ["bench/run.py", *(argv or sys.argv[1:])])),
              "versions": {"torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version(),
                           "cpu_threads": torch.get_num_threads()}}
    for part in args.only.split(","):
        result[part] = {"train": bench_train, "cputrain": bench_cpu_train, "epoch": bench_epoch,
                        "capture": bench_capture, "attention": bench_attention}[part](args, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{device.type}-{time.strftime('%Y%m%d-%H%M%S')}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    with open(args.markdown, "a") as f:
        f.write(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
