"""Which explanation to trust, per shipped checkpoint: the faithfulness table of issue 14 over the zoo.

    python bench/faithfulness_zoo.py [--checkpoints 'checkpoints/*.safetensors'] [--images 100] [--seed 0]
                                     [--data-dir DIR] [--compute] [--markdown]

For each checkpoint it reads the cached result of `python -m vitviz faithfulness --checkpoint C --images N`
(same settings; `--compute` runs the missing ones here, on the default device) and prints

- one summary row per checkpoint: the most faithful method by the perturbation test's probability AUC
  (positive order, lower is better), the runner-up, the paired-bootstrap difference with its 95% interval
  and whether it is significant, and the random-ranking floor;
- the full method x checkpoint table (all metrics with 95% bootstrap intervals over images);
- the verdict sentence of each checkpoint, as the Faithfulness page writes it.

Checkpoints with no cached result are listed as missing (not computed) unless `--compute` is given.
"""
from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import vitviz  # noqa: E402,F401
from vitviz.explain.faithfulness import (  # noqa: E402
    Settings, faithfulness_table, load_cached, run_faithfulness, verdict, wide_table)
from vitviz.metrics import paired_bootstrap_mean_diff_ci  # noqa: E402

METRIC = "positive_probability"


def summary_row(result: dict, level: float = 0.95) -> dict:
    """Best and runner-up method by METRIC (lower is better), their paired difference and the random floor."""
    scored = {m: np.asarray(b["auc"][METRIC]) for m, b in result["methods"].items()
              if "auc" in b and m != "random"}
    ranked = sorted(scored, key=lambda m: scored[m].mean())
    row = dict(checkpoint=result["checkpoint"], images=len(next(iter(scored.values()))) if scored else 0,
               best="", best_auc=np.nan, runner_up="", runner_up_auc=np.nan, diff="", significant="",
               random=np.nan, seconds=result.get("seconds"))
    if ranked:
        row.update(best=ranked[0], best_auc=scored[ranked[0]].mean())
    if len(ranked) > 1:
        boots = result.get("settings", {}).get("n_boot", 1000)
        diff, low, high = paired_bootstrap_mean_diff_ci(scored[ranked[1]], scored[ranked[0]], n_boot=boots,
                                                         level=level)
        row.update(runner_up=ranked[1], runner_up_auc=scored[ranked[1]].mean(),
                   diff=f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]", significant="yes" if low > 0 or high < 0 else "no")
    if "auc" in result["methods"].get("random", {}):
        row["random"] = float(np.mean(result["methods"]["random"]["auc"][METRIC]))
    return row


def markdown(frame) -> str:
    """A pipe table (pandas' to_markdown needs tabulate, which vitviz does not depend on)."""
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", default=str(ROOT / "checkpoints" / "*.safetensors"))
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--compute", action="store_true", help="run the checkpoints that have no cached result")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = p.parse_args(argv)

    import pandas as pd

    settings = Settings(images=args.images, seed=args.seed)
    results, missing = [], []
    for path in sorted(glob.glob(args.checkpoints)):
        res = load_cached(path, settings, data_root=args.data_dir)
        if res is None and args.compute:
            res = run_faithfulness(path, settings, data_root=args.data_dir)
        if res is None:
            missing.append(Path(path).stem)
        else:
            results.append(res)
    if not results:
        print(f"no cached faithfulness results at {args.images} images (seed {args.seed}); run "
              f"`python -m vitviz faithfulness --checkpoint C --images {args.images}` or pass --compute")
        return 1
    summary = pd.DataFrame([summary_row(r) for r in results])
    full = wide_table(faithfulness_table(results))

    def show(frame):
        print(markdown(frame) if args.markdown else frame.to_string(index=False))

    print(f"Perturbation test, probability AUC (positive order, lower is better); {args.images} images, "
          f"seed {args.seed}; source: {results[0].get('image_source')}; device: {results[0].get('device')}\n")
    show(summary)
    print()
    show(full)
    print()
    for r in results:
        print("- " + verdict(r))
    if missing:
        print(f"\nmissing (no cached result): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
