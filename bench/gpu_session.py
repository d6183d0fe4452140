"""One GPU session, end to end, inside a fixed time budget (issue: trained on a GPU).

    python bench/gpu_session.py --data-dir data/cifar10-mini --out "$OUT" [--epochs 100] [--parallel 6]

Phases, each with its own deadline so that a slow phase cannot starve the ones after it:

1. train   every zoo entry (`vitviz.train.zoo.ZOO`) at the README recipe, `--parallel` processes at
           once on the one GPU (bf16 autocast, `--compile`), slowest first; a run still going at the
           training deadline is stopped (its process group killed) and reported, never half-written.
2. eval    `python -m vitviz eval --update` on each new checkpoint: per-sample test predictions.
3. bench   `bench/run.py --compile` (throughput against timm's references, the 50k-image epoch,
           attention cost against SDPA), with its own time limit.
4. capture `capture()` of every map on the device, per new checkpoint (median of 20 calls).
5. job     one fine-tune through `python -m vitviz jobs` on the device, polled to `done`.
6. pack    the new checkpoints into at most 5 tar files of at most 15 MiB each and 58 MiB together (XCiT
           first; what does not fit is named in session.json), plus
           `session.json` (every figure above) and `logs.tar.gz`, under --out.

The same script runs on the CPU with a tiny budget (`--epochs 0.02 --device cpu --quick`), which is
how it is tested before a GPU session spends its minutes. It needs torch, timm and scikit-learn only
(the GPU machine has no streamlit, plotly or captum).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# slowest first (measured on the CPU: XCiT-N12 and the 1,024-token softmax ViT dominate)
ORDER = ["xcit_n12_p4_32_fsne", "xcit_n12_p4_32_sne", "xcit_n12_p4_32_psne", "xcit_n12_p4_32_linear",
         "cct_7_3x1_32", "pit_32", "levit_32", "vit_softmax_32", "cvt_32", "vit_performer_32_conv_rope",
         "vit_nystrom_32_conv_rope",
         "vit_softmax_32_conv_rope", "vit_linformer_32_conv_rope", "mixer_32_conv", "fnet_32_conv"]
PACK_FILE_BYTES = 15 * 2**20
PACK_FILES = 5  # with session.json, logs.tar.gz and RESULTS_gpu.md: the 8 files that can come back
PACK_TOTAL_BYTES = 58 * 2**20  # $OUT returns 8 files, 64 MiB together: the tars + 3 small files
# what comes back first when not everything can: the mission's variants (XCiT Q/K/V, the efficient-attention
# ViTs, CvT, MLP-Mixer, FNet), then the compact transformers added later, largest last
PACK_ORDER = ["xcit_n12_p4_32_fsne", "xcit_n12_p4_32_sne", "xcit_n12_p4_32_psne", "xcit_n12_p4_32_linear",
              "vit_softmax_32", "vit_performer_32_conv_rope", "vit_nystrom_32_conv_rope", "vit_softmax_32_conv_rope",
              "vit_linformer_32_conv_rope", "cvt_32", "mixer_32_conv", "fnet_32_conv", "cct_7_3x1_32", "pit_32",
              "levit_32"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def spawn(cmd: list[str], logfile: Path) -> subprocess.Popen:
    """A child in its own process group (so a deadline can stop it with everything it started)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=open(logfile, "w"), stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_until(cmd: list[str], logfile: Path, seconds: float) -> dict:
    """Run `cmd` to the end or for `seconds`, whichever comes first."""
    start = time.perf_counter()
    proc = spawn(cmd, logfile)
    try:
        proc.wait(timeout=max(1.0, seconds))
    except subprocess.TimeoutExpired:
        stop(proc)
        return {"exit": None, "seconds": time.perf_counter() - start, "timed_out": True}
    return {"exit": proc.returncode, "seconds": time.perf_counter() - start, "timed_out": False}


def train_zoo(args, names: list[str], out_dir: Path, logs: Path, deadline: float) -> dict:
    from vitviz.train.zoo import ZOO
    recipe = ["--dataset", "cifar10", "--data-dir", args.data_dir, "--epochs", str(args.epochs),
              "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--warmup-epochs", str(args.warmup_epochs),
              "--seed", "0", "--fp16", "--quiet", "--note", args.note]
    if args.device:
        recipe += ["--device", args.device]
    if args.compile:
        recipe.append("--compile")
    pending, running, done = list(names), {}, {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            variant, kwargs = ZOO[name]
            cmd = [sys.executable, "-m", "vitviz", "train", "--variant", variant, "--variant-kwargs",
                   json.dumps(kwargs), "--out", str(out_dir / name), *recipe]
            running[name] = (spawn(cmd, logs / f"train_{name}.log"), time.perf_counter())
            log(f"train started {name}")
        for name, (proc, start) in list(running.items()):
            if proc.poll() is not None:
                done[name] = {"exit": proc.returncode, "seconds": time.perf_counter() - start}
                del running[name]
                log(f"train {'finished' if proc.returncode == 0 else 'FAILED'} {name} "
                    f"({done[name]['seconds']:.0f} s)")
        if time.perf_counter() > deadline:
            for name, (proc, start) in running.items():
                stop(proc)
                done[name] = {"exit": None, "seconds": time.perf_counter() - start, "timed_out": True}
                log(f"train STOPPED at the deadline: {name}")
            for name in pending:
                done[name] = {"exit": None, "seconds": 0.0, "not_started": True}
            break
        time.sleep(0.5)
    return done


def evaluate_all(args, paths: list[Path], logs: Path, seconds: float) -> dict:
    """`eval --update` of every new checkpoint, `--parallel` at a time, all within `seconds`."""
    deadline, results, pending, running = time.perf_counter() + seconds, {}, list(paths), {}
    while pending or running:
        while pending and len(running) < args.parallel:
            path = pending.pop(0)
            cmd = [sys.executable, "-m", "vitviz", "eval", "--checkpoint", str(path), "--data-dir", args.data_dir,
                   "--update", "--json"] + (["--device", args.device] if args.device else [])
            running[path] = (spawn(cmd, logs / f"eval_{path.stem}.log"), time.perf_counter())
        for path, (proc, start) in list(running.items()):
            timed_out = time.perf_counter() > deadline
            if proc.poll() is None and not timed_out:
                continue
            if timed_out and proc.poll() is None:
                stop(proc)
            del running[path]
            meta = json.loads(path.with_suffix(".json").read_text())
            results[path.stem] = {"exit": proc.returncode if not timed_out else None, "timed_out": timed_out,
                                  "seconds": time.perf_counter() - start,
                                  "test_accuracy": (meta.get("metrics") or {}).get("test_accuracy"),
                                  "train_seconds": (meta.get("train_config") or {}).get("seconds")}
        time.sleep(0.2)
    return results


def capture_latency(args, paths: list[Path], repeats: int = 20) -> dict:
    import numpy as np
    import torch

    from vitviz.inspect import capture
    from vitviz.resolve import resolve
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    want = ["attention", "implied_attention", "projected_attention", "class_attention", "xca", "grids",
            "token_mixing"]
    out = {}
    for path in paths:
        checkpoint = resolve(path, device)
        model, meta = checkpoint.model, checkpoint.meta
        x = torch.randn(1, 3, meta["img_size"], meta["img_size"], device=device)
        capture(model, x, want=want)
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            capture(model, x, want=want)
            times.append(time.perf_counter() - start)  # capture returns CPU tensors: already synchronised
        out[path.stem] = {"ms_median": 1000 * float(np.median(times)), "ms_min": 1000 * float(np.min(times)),
                          "device": str(device)}
        log(f"capture {path.stem}: {out[path.stem]['ms_median']:.1f} ms")
    return out


def fine_tune_job(args, checkpoint: Path, runs_dir: Path, logs: Path, seconds: float) -> dict:
    env_cmd = [sys.executable, "-m", "vitviz", "jobs", "--runs-dir", str(runs_dir)]
    submit = env_cmd + ["submit", "--checkpoint", str(checkpoint), "--dataset", "cifar10", "--data-dir",
                        args.data_dir, "--epochs", "1", "--json"] + (["--device", args.device] if args.device else [])
    proc = subprocess.run(submit, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    (logs / "job_submit.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        return {"state": "submit failed", "stderr": proc.stderr[-2000:]}
    job_id = json.loads(proc.stdout.strip().splitlines()[-1])["id"]
    start, job = time.perf_counter(), {}
    while time.perf_counter() - start < seconds:
        shown = subprocess.run(env_cmd + ["show", job_id, "--json"], capture_output=True, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
        job = json.loads(shown.stdout) if shown.returncode == 0 else {"state": "show failed"}
        if job.get("state") in ("done", "failed", "cancelled"):
            break
        time.sleep(1.0)
    job["wall_seconds"] = time.perf_counter() - start
    if job.get("state") not in ("done", "failed", "cancelled"):  # out of time: leave no worker behind
        subprocess.run(env_cmd + ["cancel", job_id], capture_output=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    return {k: job.get(k) for k in ("id", "state", "progress", "checkpoint", "message", "wall_seconds")}


def pack(paths: list[Path], out: Path) -> dict:
    """Checkpoints (weights + metadata) into at most PACK_FILES tars of at most PACK_FILE_BYTES each and
    PACK_TOTAL_BYTES together (what can come back from the machine, with session.json and the logs beside them).

    Checkpoints go in PACK_ORDER (the XCiT variants first), each into the first tar it fits; one that
    fits nowhere within the limits stays on the machine and is named in "left_out" (the zoo in fp16 is ~68 MB
    since stop 20, over the ~60 MB that can come back)."""
    rank = {name: i for i, name in enumerate(PACK_ORDER)}
    bins: list[list[Path]] = []
    sizes: list[int] = []
    left_out: list[str] = []
    for path in sorted(paths, key=lambda p: (rank.get(p.stem, len(rank)), p.stem)):
        size = path.stat().st_size + path.with_suffix(".json").stat().st_size + 4096
        if size > PACK_FILE_BYTES or sum(sizes) + size > PACK_TOTAL_BYTES:
            left_out.append(path.stem)
            continue
        for i, used in enumerate(sizes):
            if used + size <= PACK_FILE_BYTES:
                bins[i].append(path)
                sizes[i] += size
                break
        else:
            if len(bins) == PACK_FILES:
                left_out.append(path.stem)
                continue
            bins.append([path])
            sizes.append(size)
    written = []
    for i, group in enumerate(bins):
        name = out / f"checkpoints_{i}.tar"
        with tarfile.open(name, "w") as tar:
            for path in group:
                tar.add(path, arcname=path.name)
                tar.add(path.with_suffix(".json"), arcname=path.with_suffix(".json").name)
        written.append(name.name)
    if left_out:
        log(f"pack: not coming back (over the return limits): {', '.join(left_out)}")
    return {"files": written, "left_out": left_out}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="cifar10-mini (a git-ignored copy carried to the GPU machine)")
    p.add_argument("--out", required=True, help="folder for what comes back ($OUT on the GPU machine)")
    p.add_argument("--work-dir", default=str(ROOT / "gpu_runs"), help="where checkpoints are written (ignored)")
    p.add_argument("--epochs", type=float, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-epochs", type=float, default=5)
    p.add_argument("--parallel", type=int, default=6)
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--only", default=None, help="comma-separated zoo names (default: all, slowest first)")
    p.add_argument("--train-seconds", type=float, default=330)
    p.add_argument("--eval-seconds", type=float, default=60)
    p.add_argument("--bench-seconds", type=float, default=120)
    p.add_argument("--job-seconds", type=float, default=60)
    p.add_argument("--quick", action="store_true", help="CPU rehearsal: quick bench (attention sweep only)")
    p.add_argument("--note", default="GPU session: README recipe at --epochs on one GPU, several runs at once")
    args = p.parse_args(argv)
    args.data_dir = str(Path(args.data_dir).resolve())
    out, work = Path(args.out), Path(args.work_dir)
    logs = work / "logs"
    for d in (out, work, logs):
        d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    session = {"argv": sys.argv[1:] if argv is None else argv, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    names = args.only.split(",") if args.only else ORDER

    session["train"] = train_zoo(args, names, work, logs, t0 + args.train_seconds)
    trained = [work / f"{n}.safetensors" for n, r in session["train"].items()
               if r.get("exit") == 0 and (work / f"{n}.safetensors").exists()]
    log(f"trained {len(trained)}/{len(names)} in {time.perf_counter() - t0:.0f} s")
    session["eval"] = evaluate_all(args, trained, logs, args.eval_seconds)

    bench = [sys.executable, "bench/run.py", "--out", str(work / "bench"), "--markdown", str(out / "RESULTS_gpu.md")]
    bench += (["--quick", "--only", "attention"] if args.quick else
              ["--compile", "--train-set", "xcit", "--only", "train,epoch,attention"])
    bench += ["--device", args.device] if args.device else []
    session["bench"] = run_until(bench, logs / "bench.log", args.bench_seconds)
    session["capture"] = capture_latency(args, trained)
    if trained:
        session["job"] = fine_tune_job(args, trained[-1], work / "runs", logs, args.job_seconds)
    session["packs"] = pack(trained, out)
    session["seconds"] = time.perf_counter() - t0
    (out / "session.json").write_text(json.dumps(session, indent=1))
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        tar.add(logs, arcname="logs")
        if (work / "bench").exists():
            tar.add(work / "bench", arcname="bench")
    print(json.dumps(session, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
