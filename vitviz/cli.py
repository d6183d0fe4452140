"""Command line: python -m vitviz variants | download | train | finetune | eval | train-zoo.

Every training command writes a checkpoint (weights + JSON metadata with the exact command,
the training config, device and time, and the per-class test accuracy) and prints a summary.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

DEFAULT_CHECKPOINT_DIR = Path("checkpoints")


def _command_line(argv) -> str:
    return " ".join(["python -m vitviz", *map(shlex.quote, argv)])


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig
    d = TrainConfig()
    p.add_argument("--dataset", required=True, help="cifar10 | cifar100 | stl10 | digits")
    p.add_argument("--data-dir", default=None, help="data directory (default $VITVIZ_DATA_DIR or ./data)")
    p.add_argument("--epochs", type=float, default=d.epochs)
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (falls back to eager)")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--fp16", action="store_true", help="store weights in float16 (shipped checkpoints)")
    p.add_argument("--out", default=None, help="checkpoint path (without suffix)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--note", default=None, help="free text stored in the checkpoint's metadata (e.g. the budget)")


def _config(args, **extra):
    from .train import TrainConfig
    return TrainConfig(epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
                       label_smoothing=args.label_smoothing, seed=args.seed, amp=not args.no_amp,
                       compile=args.compile, extra={"note": args.note} if args.note else {}, **extra)


class _Progress:
    """tqdm progress bar driven by the engine's callbacks."""

    def __init__(self, quiet: bool):
        self.bar, self.quiet = None, quiet

    def __call__(self, event, state):
        if self.quiet:
            return
        from tqdm import tqdm
        if event == "step":
            if self.bar is None:
                self.bar = tqdm(total=state["total_steps"], unit="step", dynamic_ncols=True)
            self.bar.update(1)
            if state["step"] % 10 == 0:
                self.bar.set_postfix(loss=f"{state['loss']:.3f}", lr=f"{state['lr']:.2e}")
        elif event == "epoch" and "test_accuracy" in state and self.bar is not None:
            self.bar.write(f"epoch {state['epoch']:.1f}: test accuracy {state['test_accuracy']:.4f}")
        elif event == "end" and self.bar is not None:
            self.bar.close()


def _summary(path: Path, meta: dict) -> str:
    m, tc = meta["metrics"], meta["train_config"]
    lines = [f"checkpoint: {path}", f"variant:    {meta['variant']} {json.dumps(meta['variant_kwargs'])}",
             f"dataset:    {meta['dataset']} ({len(meta['classes'])} classes)",
             f"trained:    {tc['steps_done']} steps ({tc['epochs_done']} epochs) in {tc['seconds']:.1f} s "
             f"on {tc['device']} ({tc['images_per_second']:.0f} img/s)"]
    if "test_accuracy" in m:
        lines.append(f"test accuracy: {m['test_accuracy']:.4f}")
        lines += [f"  {c:>12s}: {a:.3f}" for c, a in m["per_class_accuracy"].items() if a is not None]
    return "\n".join(lines)


def _save(run, out: str | None, default_name: str, fp16: bool) -> Path:
    from .train import save_run
    path = Path(out) if out else DEFAULT_CHECKPOINT_DIR / f"{default_name}_{time.strftime('%Y%m%d-%H%M%S')}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_run(run, path, dtype=torch.float16 if fp16 else None)


def cmd_train(args, argv) -> int:
    from .train import train_from_scratch
    kwargs = json.loads(args.variant_kwargs) if args.variant_kwargs else {}
    run = train_from_scratch(args.variant, args.dataset, _config(args), variant_kwargs=kwargs,
                             data_root=args.data_dir, device=args.device, callbacks=[_Progress(args.quiet)],
                             command=_command_line(argv))
    path = _save(run, args.out, f"{args.variant.removeprefix('vitviz_')}_{args.dataset}", args.fp16)
    print(_summary(path, run.meta))
    return 0


def cmd_finetune(args, argv) -> int:
    from .train import finetune
    run = finetune(args.checkpoint, args.dataset, _config(args, trainable=args.trainable), data_root=args.data_dir,
                   device=args.device, callbacks=[_Progress(args.quiet)], command=_command_line(argv))
    path = _save(run, args.out, f"{Path(args.checkpoint).stem}_ft_{args.dataset}", args.fp16)
    print(_summary(path, run.meta))
    return 0


def cmd_eval(args, argv) -> int:
    from . import checkpoints
    from .data import load_dataset
    from .train import evaluate
    model, meta = checkpoints.load(args.checkpoint, device=args.device)
    dataset = args.dataset or meta["dataset"]
    test_set = load_dataset(dataset, args.split, root=args.data_dir, img_size=meta["img_size"])
    result = evaluate(model, test_set, mean=meta["mean"], std=meta["std"], img_size=meta["img_size"])
    metrics = result.as_metrics()
    if args.update:
        if dataset != meta["dataset"] or args.split != "test":
            raise ValueError("--update rewrites the checkpoint's own test metrics: use its dataset and --split test")
        checkpoints.update_metrics(args.checkpoint, metrics)
    if args.json:
        metrics = {k: v for k, v in metrics.items() if k not in ("test_labels", "test_predictions")}
        print(json.dumps({"checkpoint": str(args.checkpoint), "dataset": dataset, "split": args.split, **metrics}))
    else:
        print(f"{args.checkpoint}: {dataset}/{args.split} accuracy {metrics['test_accuracy']:.4f} "
              f"on {metrics['num_test_samples']} images")
        for c, a in metrics["per_class_accuracy"].items():
            print(f"  {c:>12s}: {'-' if a is None else f'{a:.3f}'}")
    return 0


def cmd_variants(args, argv) -> int:
    from . import list_variants, variant_info
    for name in list_variants():
        info = variant_info(name)
        print(f"{name:34s} {info['family']:10s} {info['param_count']:>11,d}  {info['differs']}")
    return 0


def cmd_checkpoints(args, argv) -> int:
    """The checkpoints in a directory as a markdown table (the README's results table)."""
    from .overview import checkpoint_table
    table, problems = checkpoint_table(args.dir, recursive=False)
    print("| checkpoint | variant | options | params | test accuracy | epochs | train time | device |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table.sort_values("checkpoint").to_dict("records"):
        acc = "" if r["test_accuracy"] is None else f"{r['test_accuracy']:.1%}"
        secs = "" if r["train_seconds"] is None else f"{r['train_seconds']:.0f} s"
        print(f"| {r['checkpoint']} | {r['variant']} | {r['options']} | {r['params']:,} | {acc} | {r['epochs']} | "
              f"{secs} | {r['device']} |")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_download(args, argv) -> int:
    from .data import DATASETS, download_dataset
    info = DATASETS[args.name]
    print(f"downloading {info.title} ({info.download_megabytes} MB) ...")
    print(f"ready: {download_dataset(args.name, args.data_dir)}")
    return 0


def cmd_train_zoo(args, argv) -> int:
    """Train every shipped checkpoint with one recipe, `--parallel` runs at a time (one process each)."""
    from .train.zoo import ZOO
    names = args.only.split(",") if args.only else list(ZOO)
    unknown = sorted(set(names) - set(ZOO))
    if unknown:
        raise ValueError(f"unknown zoo entries {unknown}; known: {', '.join(ZOO)}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = ["--dataset", args.dataset, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
              "--lr", str(args.lr), "--warmup-epochs", str(args.warmup_epochs), "--seed", str(args.seed),
              "--fp16", "--quiet"]
    if args.note:
        recipe += ["--note", args.note]
    if args.data_dir:
        recipe += ["--data-dir", args.data_dir]
    if args.device:
        recipe += ["--device", args.device]
    if args.compile:
        recipe.append("--compile")
    pending, running, failed = list(names), {}, []
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            variant, kwargs = ZOO[name]
            cmd = [sys.executable, "-m", "vitviz", "train", "--variant", variant, "--variant-kwargs",
                   json.dumps(kwargs), "--out", str(out_dir / name), *recipe]
            log = open(out_dir / f"{name}.log", "w")
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
            print(f"started {name}", flush=True)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[name]
                print(f"{'finished' if proc.returncode == 0 else 'FAILED'} {name} (exit {proc.returncode})", flush=True)
                if proc.returncode:
                    failed.append(name)
        time.sleep(1)
    return 1 if failed else 0


def _job_line(job) -> str:
    eta = f", ETA {job.eta_seconds:.0f} s" if job.eta_seconds is not None else ""
    tail = f" -> {job.checkpoint}" if job.checkpoint else (f" ({job.message})" if job.message else "")
    return (f"{job.id}  {job.state:9s} {job.progress:6.1%}{eta}  {job.spec['dataset']:8s} "
            f"{job.spec['checkpoint']}{tail}")


def cmd_jobs(args, argv) -> int:
    from .train.jobs import JobSpec, JobStore
    store = JobStore(args.runs_dir)
    store.poll()
    if args.jobs_command == "submit":
        spec = JobSpec(checkpoint=args.checkpoint, dataset=args.dataset, epochs=args.epochs, steps=args.steps,
                       lr=args.lr, batch_size=args.batch_size, trainable=args.trainable, data_root=args.data_dir,
                       device=args.device, out=args.out)
        job_id = store.submit(spec)
        print(json.dumps({"id": job_id}) if args.json else f"submitted {job_id}")
    elif args.jobs_command == "show":
        job = store.get(args.id)
        print(json.dumps(job.as_dict()) if args.json else _job_line(job))
    elif args.jobs_command == "list":
        jobs = store.list()
        if args.json:
            print(json.dumps([j.as_dict() for j in jobs]))
        else:
            print("\n".join(_job_line(j) for j in jobs) or "no jobs")
    elif args.jobs_command == "cancel":
        job = store.cancel(args.id)
        print(json.dumps(job.as_dict()) if args.json else f"cancel requested: {_job_line(job)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitviz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("variants", help="list registered variants with parameter counts")
    p = sub.add_parser("checkpoints", help="the checkpoints in a directory as a markdown table")
    p.add_argument("--dir", default=str(DEFAULT_CHECKPOINT_DIR))
    p = sub.add_parser("download", help="download a dataset into the data directory (verifies checksums)")
    p.add_argument("name", choices=["cifar10", "cifar100", "stl10"])
    p.add_argument("--data-dir", default=None)
    p = sub.add_parser("train", help="train a variant from scratch")
    p.add_argument("--variant", required=True)
    p.add_argument("--variant-kwargs", default=None, help='JSON, e.g. \'{"embed": "conv", "pos": "rope2d"}\'')
    _add_recipe_args(p)
    p = sub.add_parser("finetune", help="fine-tune a checkpoint on a dataset")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--trainable", default="all", choices=["all", "qkv", "head"],
                   help="freeze policy: train everything, only the Q/K/V embeddings + head, or only the head")
    _add_recipe_args(p)
    p = sub.add_parser("eval", help="evaluate a checkpoint (overall and per-class accuracy)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", default=None, help="default: the checkpoint's dataset")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--update", action="store_true", help="write the fresh test metrics into the checkpoint's JSON")
    p = sub.add_parser("train-zoo", help="train the shipped checkpoint set with one recipe")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out-dir", default=str(DEFAULT_CHECKPOINT_DIR))
    p.add_argument("--epochs", type=float, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-epochs", type=float, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default=None, help="stored in every checkpoint's metadata")
    p.add_argument("--device", default=None)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time (several fit on one GPU)")
    p.add_argument("--only", default=None, help="comma-separated zoo names")
    p = sub.add_parser("jobs", help="background fine-tune jobs (the same queue as the app's Fine-tune page)")
    p.add_argument("--runs-dir", default=None, help="job store directory (default: <checkpoint dir>/runs)")
    jobs = p.add_subparsers(dest="jobs_command", required=True)
    j = jobs.add_parser("submit", help="queue a fine-tune; prints its id")
    j.add_argument("--checkpoint", required=True)
    j.add_argument("--dataset", required=True)
    j.add_argument("--epochs", type=float, default=3.0)
    j.add_argument("--steps", type=int, default=None)
    j.add_argument("--lr", type=float, default=5e-4)
    j.add_argument("--batch-size", type=int, default=128)
    j.add_argument("--trainable", default="all", choices=["all", "qkv", "head"])
    j.add_argument("--data-dir", default=None)
    j.add_argument("--device", default=None)
    j.add_argument("--out", default=None, help="checkpoint path (default: in the runs directory)")
    j.add_argument("--json", action="store_true")
    for name, text in (("show", "state, progress, metrics and checkpoint of a job"), ("cancel", "cancel a job")):
        j = jobs.add_parser(name, help=text)
        j.add_argument("id")
        j.add_argument("--json", action="store_true")
    j = jobs.add_parser("list", help="all jobs, newest first")
    j.add_argument("--json", action="store_true")
    return parser


COMMANDS = {"variants": cmd_variants, "download": cmd_download, "train": cmd_train, "finetune": cmd_finetune,
            "eval": cmd_eval, "train-zoo": cmd_train_zoo, "jobs": cmd_jobs,
            "checkpoints": cmd_checkpoints}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from .checkpoints import CheckpointError
    from .data import DatasetNotFoundError, DatasetFormatError, DownloadError
    try:
        return COMMANDS[args.command](args, argv)
    except (CheckpointError, DatasetNotFoundError, DatasetFormatError, DownloadError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
