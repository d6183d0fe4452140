"""Does bf16 autocast change what CPU training learns? (issue 27: "the loss curve of the first 200 steps within
noise of eager").

python bench/cpu_precision.py [--variant xcit_n12_p4_32_linear] [--steps 200] [--seeds 0 1] [--threads 1]

Trains the zoo entry through the real engine on cifar10-mini (the zoo recipe: batch 64, lr 1e-3, crop + flip,
label smoothing) for `--steps` steps, in float32 and with bf16 autocast, once per seed; the seed sets the
initial weights, the data order and the augmentation. "Noise" is how far two float32 runs with different
seeds are apart; the bf16 effect is how far bf16 is from float32 at the same seed. Both are the mean absolute
difference of the per-step training loss, smoothed over 20 steps, over the last half of the run (the first
steps share the initial loss), and the final mean loss of the last 20 steps. Also reports img/s of each run.

Writes bench/results/cpu-precision-<time>.json and appends a section to bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vitviz.train import TrainConfig, train_from_scratch  # noqa: E402
from vitviz.train.zoo import ZOO  # noqa: E402

SMOOTH = 20


def curve(variant, kwargs, data_dir, steps, seed, bf16):
    losses = []

    def on_step(event, state):
        if event == "step":
            losses.append(state["batch_loss"].item())

    config = TrainConfig(steps=steps, batch_size=64, lr=1e-3, warmup_epochs=3, seed=seed, cpu_amp=bf16)
    run = train_from_scratch(variant, "cifar10", config, variant_kwargs=kwargs, data_root=data_dir, device="cpu",
                             callbacks=[on_step])
    return run.result, losses


def smooth(x):
    x = np.asarray(x, dtype=float)
    return np.convolve(x, np.ones(SMOOTH) / SMOOTH, mode="valid")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="xcit_n12_p4_32_linear", choices=list(ZOO))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10-mini"))
    p.add_argument("--markdown", default=str(ROOT / "bench" / "RESULTS.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = {}
    for seed in args.seeds:
        for bf16 in (False, True):
            result, losses = curve(*ZOO[args.variant], args.data_dir, args.steps, seed, bf16)
            runs[(seed, bf16)] = {"seed": seed, "precision": "bf16 autocast" if bf16 else "float32",
                                  "images_per_second": result.images_per_second, "losses": losses}
            print(json.dumps({k: v for k, v in runs[(seed, bf16)].items() if k != "losses"}), flush=True)

    def gap(a, b):
        sa, sb = smooth(a), smooth(b)
        n = min(len(sa), len(sb))
        half = n // 2
        return float(np.mean(np.abs(sa[half:n] - sb[half:n])))

    seeds = args.seeds
    precision_gaps = [gap(runs[(s, False)]["losses"], runs[(s, True)]["losses"]) for s in seeds]
    seed_gaps = [gap(runs[(a, False)]["losses"], runs[(b, False)]["losses"])
                 for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    summary = {"variant": args.variant, "steps": args.steps, "threads": args.threads, "seeds": seeds,
               "loss_points_per_run": len(runs[(seeds[0], False)]["losses"]),
               "bf16_vs_float32_same_seed": precision_gaps, "float32_seed_vs_seed": seed_gaps,
               "final_loss": {f"{r['precision']} seed {r['seed']}": float(np.mean(r["losses"][-SMOOTH:]))
                              for r in runs.values()},
               "images_per_second": {f"{r['precision']} seed {r['seed']}": round(r["images_per_second"], 1)
                                     for r in runs.values()}}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"cpu-precision-{stamp}.json").write_text(json.dumps(
        {**summary, "runs": [dict(r) for r in runs.values()]}, indent=1))
    command = "python " + " ".join(map(shlex.quote, ["bench/cpu_precision.py", *(argv or sys.argv[1:])]))
    lines = [f"## {time.strftime('%Y-%m-%d %H:%M')} — CPU training precision: bf16 autocast vs float32", "",
             f"`{command}`", "",
             f"{args.variant}, {args.steps} steps of the zoo recipe on cifar10-mini, {args.threads} thread(s). "
             f"Gap = mean |difference| of the {SMOOTH}-step smoothed training loss over the second half of the run.",
             "",
             "| comparison | loss gap |", "|---|---|"]
    lines += [f"| bf16 vs float32, seed {s} | {g:.4f} |" for s, g in zip(seeds, precision_gaps)]
    lines += [f"| float32 seed {a} vs seed {b} (noise) | {g:.4f} |"
              for (a, b), g in zip([(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]], seed_gaps)]
    lines += ["", f"| run | img/s | mean loss of the last {SMOOTH} steps |", "|---|---|---|"]
    lines += [f"| {r['precision']}, seed {r['seed']} | {r['images_per_second']:.1f} | "
              f"{np.mean(r['losses'][-SMOOTH:]):.4f} |" for r in runs.values()]
    verdict = ("within noise" if max(precision_gaps) <= max(seed_gaps) else "larger than the seed-to-seed noise")
    lines += ["", f"bf16's effect on the loss curve is {verdict} (largest bf16 gap {max(precision_gaps):.4f}, "
                  f"seed-to-seed gap {max(seed_gaps):.4f}).", ""]
    with open(args.markdown, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
