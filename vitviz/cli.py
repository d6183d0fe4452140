"""Command line of vitviz: python -m vitviz COMMAND (or `vitviz COMMAND` after `pip install -e .`).

`train` and `finetune` also run data-parallel under torchrun (`torchrun --nproc_per_node N -m vitviz
train ...`, see vitviz.train.distributed): `--batch-size` is then the global batch, and only rank 0
prints, evaluates and writes.

Every training command writes a checkpoint (weights + JSON metadata with the exact command,
the training config, device and time, and the per-class test accuracy) into the checkpoint
directory's git-ignored `runs/` folder (where the app lists it) and prints a summary.

Imports are lazy: `jobs show` and `jobs list` need only the standard library and answer at once.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CHECKPOINT_DIR = Path("checkpoints")
# The datasets of vitviz.data.DATASETS, spelled out so the parser needs no torch (tests check they match).
DATASET_NAMES = ("cifar10", "cifar100", "stl10", "oxford_pets", "flowers102", "stanford_cars", "digits")
DOWNLOAD_NAMES = tuple(name for name in DATASET_NAMES if name != "digits")  # stanford_cars: says how to place it
DATASET_HELP = " | ".join(DATASET_NAMES)


class HELP(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless it is None/False or the help text already names it."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _command_line(argv, launch=None) -> str:
    """The command as typed; under torchrun, the torchrun line that reproduces the world size."""
    prefix = "python -m vitviz"
    if launch is not None and launch.world_size > 1:
        nodes = f"--nnodes={launch.nodes} " if launch.nodes > 1 else ""
        prefix = f"torchrun {nodes}--nproc_per_node={launch.world_size // launch.nodes} -m vitviz"
    return " ".join([prefix, *map(shlex.quote, argv)])


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    from .train.config import TrainConfig
    d = TrainConfig()
    p.add_argument("--dataset", required=True, help=DATASET_HELP)
    p.add_argument("--data-dir", default=None, help="data directory (default: $VITVIZ_DATA_DIR or ./data)")
    p.add_argument("--epochs", type=float, default=d.epochs, help="training epochs")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="images per optimiser step, over all processes under torchrun (each gets batch / N)")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW peak learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="on weight matrices only")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs, help="linear warmup, then cosine")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help="cross-entropy smoothing")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed")
    p.add_argument("--device", default=None,
                   help="cuda | cpu (default: cuda when available; under torchrun each process uses cuda:LOCAL_RANK)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (falls back to eager)")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--fp16", action="store_true", help="store weights in float16 (shipped checkpoints)")
    p.add_argument("--out", default=None,
                   help="checkpoint path without suffix (default: <checkpoint dir>/runs/<name>_<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--note", default=None, help="free text stored in the checkpoint's metadata (e.g. the budget)")
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="epochs between test-set evaluations (the learning curve); 0: only at the end")
    p.add_argument("--no-cpu-amp", action="store_true",
                   help="train in float32 on the CPU (default: bf16 autocast where the CPU runs bf16 natively)")
    p.add_argument("--resume", default=None, metavar="STATE",
                   help="continue the run whose resume state this is (same command; a larger --epochs trains longer)")
    p.add_argument("--state", default=None,
                   help="where to keep this run's resume state (default: the --resume file, else beside the "
                        "checkpoint: <out>.resume.safetensors)")
    p.add_argument("--state-every", type=float, default=5.0, help="minutes between resume-state writes")


def _config(args, **extra):
    from .train.config import TrainConfig
    return TrainConfig(epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
                       label_smoothing=args.label_smoothing, seed=args.seed, amp=not args.no_amp,
                       cpu_amp=not args.no_cpu_amp, eval_every=args.eval_every,
                       compile=args.compile, extra={"note": args.note} if args.note else {}, **extra)


def _out_path(out: str | None, default_name: str) -> Path:
    from .locations import default_runs_dir
    return Path(out) if out else default_runs_dir() / f"{default_name}_{time.strftime('%Y%m%d-%H%M%S')}"


def _resume_args(args, out: Path, launch) -> dict:
    """The engine's resume options from --resume / --state / --state-every (rank 0 writes the state)."""
    from .train.resume import default_state_path
    state = args.state or args.resume or default_state_path(out)
    if launch.is_main and not args.quiet:
        print(f"resume state: {state} (every {args.state_every:g} min)", file=sys.stderr, flush=True)
    return {"resume": args.resume, "state_path": state, "state_every": args.state_every * 60}


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
    processes = f" x {tc['world_size']}" if tc.get("world_size", 1) > 1 else ""  # data-parallel (torchrun)
    lines = [f"checkpoint: {path}", f"variant:    {meta['variant']} {json.dumps(meta['variant_kwargs'])}",
             f"dataset:    {meta['dataset']} ({len(meta['classes'])} classes)",
             f"trained:    {tc['steps_done']} steps ({tc['epochs_done']} epochs) in {tc['seconds']:.1f} s "
             f"on {tc['device']}{processes} ({tc['images_per_second']:.0f} img/s)"]
    if "test_accuracy" in m:
        lines.append(f"test accuracy: {m['test_accuracy']:.4f}")
        lines += [f"  {c:>12s}: {a:.3f}" for c, a in m["per_class_accuracy"].items() if a is not None]
    return "\n".join(lines)


def _save(run, path: Path, fp16: bool) -> Path:
    import torch

    from .train.finetune import save_run
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_run(run, path, dtype=torch.float16 if fp16 else None)


def cmd_train(args, argv) -> int:
    from .train import distributed
    from .train.finetune import train_from_scratch
    kwargs = json.loads(args.variant_kwargs) if args.variant_kwargs else {}
    out = _out_path(args.out, f"{args.variant.removeprefix('vitviz_')}_{args.dataset}")
    with distributed.session(args.device) as launch:  # one process unless started by torchrun
        run = train_from_scratch(args.variant, args.dataset, _config(args), variant_kwargs=kwargs,
                                 data_root=args.data_dir, device=launch.device,
                                 callbacks=[_Progress(args.quiet or not launch.is_main)],
                                 command=_command_line(argv, launch), **_resume_args(args, out, launch))
        if launch.is_main:  # only rank 0 writes
            path = _save(run, out, args.fp16)
            print(_summary(path, run.meta))
    return 0


def cmd_finetune(args, argv) -> int:
    from .train import distributed
    from .train.finetune import finetune
    out = _out_path(args.out, f"{Path(args.checkpoint).stem}_ft_{args.dataset}")
    with distributed.session(args.device) as launch:  # one process unless started by torchrun
        run = finetune(args.checkpoint, args.dataset, _config(args, trainable=args.trainable),
                       data_root=args.data_dir, device=launch.device,
                       callbacks=[_Progress(args.quiet or not launch.is_main)], command=_command_line(argv, launch),
                       **_resume_args(args, out, launch))
        if launch.is_main:  # only rank 0 writes
            path = _save(run, out, args.fp16)
            print(_summary(path, run.meta))
    return 0


def cmd_eval(args, argv) -> int:
    from . import checkpoints
    from .data import load_dataset
    from .resolve import resolve
    from .train.evaluate import evaluate
    checkpoint = resolve(args.checkpoint, args.device)
    model, meta = checkpoint.model, checkpoint.meta
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
    from .models import list_variants, variant_info
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
    if info.downloadable:
        print(f"downloading {info.title} ({info.download_megabytes} MB) ...")
    print(f"ready: {download_dataset(args.name, args.data_dir)}")
    return 0


def cmd_train_zoo(args, argv) -> int:
    """Train every shipped checkpoint with one recipe, `--parallel` runs at a time (one process each)."""
    from .train.zoo import ZOO
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("train-zoo starts its own processes: run it with python, not torchrun "
                         "(torchrun is for one `train` or `finetune` over several GPUs)")
    names = args.only.split(",") if args.only else list(ZOO)
    unknown = sorted(set(names) - set(ZOO))
    if unknown:
        raise ValueError(f"unknown zoo entries {unknown}; known: {', '.join(ZOO)}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from .train.resume import default_state_path
    recipe = ["--dataset", args.dataset, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
              "--lr", str(args.lr), "--warmup-epochs", str(args.warmup_epochs), "--seed", str(args.seed),
              "--eval-every", str(args.eval_every), "--state-every", str(args.state_every), "--fp16", "--quiet"]
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
            state = Path(args.state_dir) / f"{name}.resume.safetensors" if args.state_dir else \
                default_state_path(out_dir / name)
            cmd += ["--state", str(state)]
            if state.exists() and not args.fresh:  # a stopped run continues; a foreign state is refused
                cmd += ["--resume", str(state)]
            log = open(out_dir / f"{name}.log", "a" if "--resume" in cmd else "w")  # a resumed run keeps its log
            env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
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
    return f"{job.id}  {job.state:9s} {job.progress:6.1%}{eta}  {job.label}{tail}"


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
    elif args.jobs_command == "resume":
        job = store.resume(args.id)
        print(json.dumps(job.as_dict()) if args.json else f"resumed: {_job_line(job)}")
    return 0


def _jobs_parser(sub) -> None:
    from .train.jobs import JobSpec
    d = JobSpec(checkpoint="", dataset="")
    p = sub.add_parser("jobs", help="background fine-tune jobs (the same queue as the app's Fine-tune page)",
                       description="Background fine-tune jobs: one worker process each, one running at a time.",
                       formatter_class=HELP)
    p.add_argument("--runs-dir", default=None, help="job store directory (default: <checkpoint dir>/runs)")
    jobs = p.add_subparsers(dest="jobs_command", required=True, metavar="{submit,show,list,cancel,resume}")
    j = jobs.add_parser("submit", help="queue a fine-tune; prints its id", formatter_class=HELP,
                        description="Queue a fine-tune of a checkpoint on a dataset; prints the job's id.")
    j.add_argument("--checkpoint", required=True, help="the checkpoint to fine-tune (.safetensors or .json path)")
    j.add_argument("--dataset", required=True, help=DATASET_HELP)
    j.add_argument("--epochs", type=float, default=d.epochs, help="training epochs (ignored with --steps)")
    j.add_argument("--steps", type=int, default=d.steps, help="optimiser steps (overrides --epochs)")
    j.add_argument("--lr", type=float, default=d.lr, help="AdamW peak learning rate")
    j.add_argument("--batch-size", type=int, default=d.batch_size, help="images per optimiser step")
    j.add_argument("--trainable", default=d.trainable, choices=["all", "qkv", "head"],
                   help="what is trained: everything, the Q/K/V embeddings + head, or the head only")
    j.add_argument("--data-dir", default=d.data_root, help="data directory (default: $VITVIZ_DATA_DIR or ./data)")
    j.add_argument("--device", default=d.device, help="cuda | cpu (default: cuda when available)")
    j.add_argument("--out", default=d.out, help="checkpoint path (default: <runs dir>/<checkpoint>_ft_<dataset>_<id>)")
    j.add_argument("--json", action="store_true", help="print JSON")
    for name, text in (("show", "state, progress, metrics and checkpoint of a job"), ("cancel", "cancel a job"),
                       ("resume", "queue a failed job again, continuing from its last saved step")):
        j = jobs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".", formatter_class=HELP)
        j.add_argument("id", help="the job's id (from submit or list)")
        j.add_argument("--json", action="store_true", help="print JSON")
    j = jobs.add_parser("list", help="all jobs, newest first", formatter_class=HELP,
                        description="All jobs, newest first.")
    j.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitviz", description=__doc__.splitlines()[0],
                                     formatter_class=HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands (python -m vitviz COMMAND --help for each)")

    def command(name, text):
        return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".", formatter_class=HELP)

    p = command("app", "start the browser app (warms imports and the checkpoint table before the first visit)")
    p.add_argument("--port", type=int, default=8501, help="server port")
    p.add_argument("--address", default="localhost", help="server address")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER,
                   help="further options for streamlit run, after -- (e.g. -- --server.maxUploadSize 50)")
    command("variants", "list registered variants with parameter counts")
    p = command("checkpoints", "the checkpoints in a directory as a markdown table")
    p.add_argument("--dir", default=str(DEFAULT_CHECKPOINT_DIR), help="checkpoint directory")
    p = command("download", "download a dataset into the data directory (verifies checksums)")
    p.add_argument("name", choices=DOWNLOAD_NAMES, help="dataset")
    p.add_argument("--data-dir", default=None, help="data directory (default: $VITVIZ_DATA_DIR or ./data)")
    p = command("train", "train a variant from scratch")
    p.add_argument("--variant", required=True, help="a registered variant (python -m vitviz variants)")
    p.add_argument("--variant-kwargs", default=None, help='JSON, e.g. \'{"embed": "conv", "pos": "rope2d"}\'')
    _add_recipe_args(p)
    p = command("finetune", "fine-tune a checkpoint on a dataset")
    p.add_argument("--checkpoint", required=True, help="the checkpoint to fine-tune")
    p.add_argument("--trainable", default="all", choices=["all", "qkv", "head"],
                   help="freeze policy: train everything, only the Q/K/V embeddings + head, or only the head")
    _add_recipe_args(p)
    p = command("eval", "evaluate a checkpoint (overall and per-class accuracy)")
    p.add_argument("--checkpoint", required=True, help="the checkpoint to evaluate")
    p.add_argument("--dataset", default=None, help="default: the checkpoint's dataset")
    p.add_argument("--data-dir", default=None, help="data directory (default: $VITVIZ_DATA_DIR or ./data)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="which split")
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--update", action="store_true", help="write the fresh test metrics into the checkpoint's JSON")
    p = command("train-zoo", "train the shipped checkpoint set with one recipe")
    p.add_argument("--dataset", default="cifar10", help=DATASET_HELP)
    p.add_argument("--data-dir", default=None, help="data directory (default: $VITVIZ_DATA_DIR or ./data)")
    p.add_argument("--out-dir", default=str(DEFAULT_CHECKPOINT_DIR), help="where the checkpoints go")
    p.add_argument("--epochs", type=float, default=100, help="training epochs")
    p.add_argument("--batch-size", type=int, default=128, help="images per optimiser step")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate")
    p.add_argument("--warmup-epochs", type=float, default=5, help="linear warmup, then cosine")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--note", default=None, help="stored in every checkpoint's metadata")
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    p.add_argument("--compile", action="store_true", help="torch.compile the models")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time (several fit on one GPU)")
    p.add_argument("--eval-every", type=int, default=1, help="epochs between test evaluations (learning curve)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per run (OMP_NUM_THREADS); 1 per run beside other work on a small CPU")
    p.add_argument("--state-every", type=float, default=5.0, help="minutes between each run's resume-state writes")
    p.add_argument("--state-dir", default=None,
                   help="where each run keeps its resume state (default: beside its checkpoint in --out-dir)")
    p.add_argument("--fresh", action="store_true",
                   help="start every run anew (default: continue each run from its resume state when there is one)")
    p.add_argument("--only", default=None, help="comma-separated zoo names")
    p = command("export-hub", "write a checkpoint in the Hugging Face Hub layout timm loads "
                              "(config.json, model.safetensors, README.md model card)")
    p.add_argument("--checkpoint", required=True, help="the checkpoint to export")
    p.add_argument("--out", required=True, help="output folder (upload it with huggingface_hub.upload_folder)")
    p = command("faithfulness", "faithfulness of explanation methods on a checkpoint's test images: perturbation "
                                "test (Chefer et al. 2021) and RISE deletion/insertion; cached on disk")
    p.add_argument("--checkpoint", required=True, help="the checkpoint to test")
    p.add_argument("--methods", nargs="+", default=["raw_attention", "rollout", "chefer", "saliency",
                                                    "integrated_gradients", "random"],
                   choices=["raw_attention", "rollout", "chefer", "saliency", "integrated_gradients", "random"],
                   help="explanation methods")
    p.add_argument("--images", type=int, default=100, help="test images (drawn with --seed)")
    p.add_argument("--seed", type=int, default=0, help="image sample and tie-breaking seed")
    p.add_argument("--rise-steps", type=int, default=16, help="deletion/insertion steps")
    p.add_argument("--ig-steps", type=int, default=16, help="integrated-gradients path steps")
    p.add_argument("--batch-size", type=int, default=50, help="images per batch")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the intervals")
    p.add_argument("--data-dir", default=None, help="data directory (default: $VITVIZ_DATA_DIR or ./data)")
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    p.add_argument("--recompute", action="store_true", help="ignore a cached result")
    p.add_argument("--progress", action="store_true", help="write progress beside the cache (for the app)")
    p.add_argument("--json", action="store_true", help="print JSON (table, verdict, cache path)")
    p = command("representations", "layer x layer linear CKA between the block outputs of two checkpoints on the "
                                   "same test images (minibatch unbiased HSIC, Nguyen et al. 2021)")
    p.add_argument("checkpoints", nargs="*", help="two checkpoints (A B); omit with --preset")
    p.add_argument("--preset", action="store_true",
                   help="XCiT baseline (linear) vs each of SNE / P-SNE / F-SNE among the checkpoints in --dir")
    p.add_argument("--dir", default=str(DEFAULT_CHECKPOINT_DIR), help="checkpoint directory for --preset")
    p.add_argument("--images", type=int, default=512, help="test images of the first checkpoint (spread over it)")
    p.add_argument("--batch-size", type=int, default=64, help="minibatch of the HSIC estimator")
    p.add_argument("--features", default="flatten", choices=["flatten", "mean"],
                   help="an image's features: its tokens flattened, or their mean")
    p.add_argument("--data-dir", default=None, help="data directory (default: $VITVIZ_DATA_DIR or ./data)")
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print JSON (matrices, matching-depth CKA, images)")
    p = command("study", "check a paper's claim over seeds: train every arm x seed of a study spec, then decide")
    studies = p.add_subparsers(dest="study_command", required=True, metavar="{run,show,cancel}")
    q = studies.add_parser("run", help="train the runs a study still lacks, then decide",
                           description="Check the spec, train every arm x seed of the study that has no checkpoint "
                                       "yet (a stopped run continues from its resume state), then write result.json. "
                                       "--executor queue (default): through the app's job queue (the Fine-tune "
                                       "page's; one run at a time, each in its own worker process; Ctrl-C stops "
                                       "waiting, not the runs). local / debug / slurm: through submitit (one job per "
                                       "run; slurm submits to a SLURM cluster).",
                           formatter_class=HELP)
    q.add_argument("spec", help="the study's JSON spec (its folder holds the runs and the result)")
    q.add_argument("--executor", choices=["queue", "local", "debug", "slurm"], default="queue")
    q.add_argument("--runs-dir", default=None, help="the job queue's folder (default: <checkpoint dir>/runs)")
    q.add_argument("--slurm-partition", default=None, help="slurm: the partition")
    q.add_argument("--gpus-per-node", type=int, default=None, help="slurm: GPUs per run")
    q.add_argument("--timeout-min", type=int, default=None, help="submitit: minutes per run before it is stopped")
    q = studies.add_parser("show", help="the study's result and progress: per-arm accuracy, verdict, per class",
                           description="The study's result from the runs done so far, and its runs done / total.",
                           formatter_class=HELP)
    q.add_argument("spec", help="the study's JSON spec")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument("--runs-dir", default=None, help="the job queue's folder (default: <checkpoint dir>/runs)")
    q = studies.add_parser("cancel", help="cancel the study's queued and running runs",
                           description="Cancel the study's jobs in the queue (finished runs stay).",
                           formatter_class=HELP)
    q.add_argument("spec", help="the study's JSON spec")
    q.add_argument("--runs-dir", default=None, help="the job queue's folder (default: <checkpoint dir>/runs)")
    _jobs_parser(sub)
    return parser


def cmd_app(args, argv) -> int:
    from .launcher import launch
    extra = args.streamlit_args[1:] if args.streamlit_args[:1] == ["--"] else args.streamlit_args
    return launch(port=args.port, address=args.address, extra=extra)


def cmd_export_hub(args, argv) -> int:
    from .hub import export_hub
    for path in export_hub(args.checkpoint, args.out).values():
        print(path)
    print(f'load it with: timm.create_model("local-dir:{args.out}", pretrained=True) after import vitviz')
    return 0


def cmd_faithfulness(args, argv) -> int:
    from .explain import faithfulness as fa
    settings = fa.Settings(images=args.images, seed=args.seed, methods=tuple(args.methods), rise_steps=args.rise_steps,
                           ig_steps=args.ig_steps, batch_size=args.batch_size, n_boot=args.n_boot)
    cached = None if args.recompute else fa.load_cached(args.checkpoint, settings, data_root=args.data_dir)
    if cached is None:
        report = fa.write_progress(args.checkpoint, settings, args.data_dir) if args.progress else None
        if report is None and not args.json:
            def report(fraction, message):
                print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)
        try:
            cached = fa.run_faithfulness(args.checkpoint, settings, device=args.device, data_root=args.data_dir,
                                         progress=report)
        except BaseException as exc:
            if args.progress:
                fa.clear_progress(args.checkpoint, settings, error=f"{type(exc).__name__}: {exc}",
                                  data_root=args.data_dir)
            raise
        if args.progress:
            fa.clear_progress(args.checkpoint, settings, data_root=args.data_dir)
    table = fa.faithfulness_table([cached])
    if args.json:
        print(json.dumps({"cache": str(fa.cache_path(args.checkpoint, settings, data_root=args.data_dir)),
                          "image_source": cached["image_source"], "clean_accuracy": cached["clean_accuracy"],
                          "table": json.loads(table.to_json(orient="records")),
                          "verdict": fa.verdict(cached)}))
    else:
        print(f"{cached['checkpoint']} ({cached['variant']}), {cached['image_source']}, "
              f"clean accuracy {cached['clean_accuracy']:.3f}")
        print(table.to_string(index=False))
        print(fa.verdict(cached))
    return 0


def cmd_representations(args, argv) -> int:
    from . import checkpoints
    from .compare.representations import checkpoint_cka, qkv_embedding_pairs
    from .resolve import resolve
    from .device import resolve_device
    if args.preset:
        paths = [str(p) for p in sorted(Path(args.dir).glob("*.safetensors"))]
        pairs = qkv_embedding_pairs({p: checkpoints.read_meta(p)["variant"] for p in paths})
        if not pairs:
            raise ValueError(f"no XCiT linear baseline with SNE / P-SNE / F-SNE checkpoints in {args.dir}")
    elif len(args.checkpoints) == 2:
        pairs = [(args.checkpoints[0], args.checkpoints[1], "")]
    else:
        raise ValueError("give two checkpoints, or --preset")
    device = resolve_device(args.device)
    out = []
    for a, b, label in pairs:
        ra, rb = resolve(a, device), resolve(b, device)
        result, source = checkpoint_cka(ra.model, ra.meta, rb.model, rb.meta, args.images, batch_size=args.batch_size,
                                        features=args.features, data_root=args.data_dir)
        out.append(dict(a=Path(a).stem, b=Path(b).stem, label=label, images=result.images, image_source=source,
                        batch_size=result.batch_size, features=result.features, blocks_a=list(result.blocks_a),
                        blocks_b=list(result.blocks_b), matrix=result.matrix.tolist(),
                        matching_depth=json.loads(result.diagonal().to_json(orient="records")),
                        first_depth_below_0_9=result.divergence_depth(0.9)))
        if not args.json:
            print(f"{Path(a).stem} vs {Path(b).stem}{f' ({label})' if label else ''}: {source}; minibatch "
                  f"{result.batch_size}, features {result.features}; first depth with CKA < 0.9: "
                  f"{result.divergence_depth(0.9)}")
            print(result.diagonal().to_string(index=False))
    if args.json:
        print(json.dumps(out))
    return 0


def cmd_study(args, argv) -> int:
    from .studies import runner
    from .studies.study import load_spec, study_result
    from .train.jobs import JobStore
    spec = load_spec(args.spec)
    store = JobStore(args.runs_dir) if args.runs_dir else None

    def queue():
        return store or JobStore()
    if args.study_command == "cancel":
        print(f"cancelled {runner.cancel_study(spec, queue())} runs of {spec.name}")
        return 0
    if args.study_command == "run":
        say = lambda text: print(text, flush=True)  # noqa: E731
        if args.executor == "queue":
            try:
                result = runner.run_with_queue(spec, queue(), progress=say)
            except KeyboardInterrupt:
                print(f"stopped waiting; the runs go on in the queue (`python -m vitviz study cancel {args.spec}` "
                      "stops them)")
                return 130
        else:
            parameters = {k: v for k, v in (("slurm_partition", args.slurm_partition),
                                            ("gpus_per_node", args.gpus_per_node),
                                            ("timeout_min", args.timeout_min)) if v is not None}
            executor = runner.submitit_executor(args.executor, spec.folder / "submitit", **parameters)
            result = runner.run_with_submitit(spec, executor, progress=say)
    else:
        result = study_result(spec)
    status = runner.study_status(spec, queue() if args.study_command == "show" else None)
    result["progress"] = {"done": status.done, "total": status.total, "eta_seconds": status.eta_seconds,
                          "line": status.line()}
    if getattr(args, "json", False):
        print(json.dumps(result))
        return 0
    for arm, a in result["arms"].items():
        print(f"{arm:>12s}: {a['mean']:.2%} [{a['ci_low']:.2%}, {a['ci_high']:.2%}] over seeds {a['seeds']}")
    print(result.get("verdict_sentence", "no verdict yet: fewer than two seeds run in both arms"))
    print(status.line())
    if result["missing_runs"]:
        print(f"missing runs: {', '.join(result['missing_runs'])}")
    return 0 if not result["missing_runs"] or args.study_command == "show" else 1


COMMANDS = {"app": cmd_app, "variants": cmd_variants, "checkpoints": cmd_checkpoints, "download": cmd_download,
            "train": cmd_train, "finetune": cmd_finetune, "eval": cmd_eval, "train-zoo": cmd_train_zoo,
            "jobs": cmd_jobs, "export-hub": cmd_export_hub, "faithfulness": cmd_faithfulness,
            "representations": cmd_representations, "study": cmd_study}


def _user_error(exc: Exception) -> bool:
    """Errors a user can act on (bad file, missing data, bad value): one line, no traceback.

    Checked by name of the loaded modules, so that commands that never import torch stay light.
    """
    if isinstance(exc, (ValueError, KeyError)):
        return True
    kinds = []
    if "vitviz.checkpoints" in sys.modules:
        kinds.append(sys.modules["vitviz.checkpoints"].CheckpointError)
    if "vitviz.data.errors" in sys.modules:
        errors = sys.modules["vitviz.data.errors"]
        kinds += [errors.DatasetNotFoundError, errors.DatasetFormatError, errors.DownloadError]
    return isinstance(exc, tuple(kinds))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, argv)
    except Exception as exc:
        if not _user_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
