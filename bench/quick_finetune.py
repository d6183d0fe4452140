"""The Fine-tune page's quick preset, end to end: python bench/quick_finetune.py [CHECKPOINT ...] [--data-dir DIR]

For each checkpoint: measure this device's training speed (as the page does), plan the quick preset, submit
it to a fresh job queue (a real worker process), wait, and report expected vs actual seconds (submission to
done) and the test accuracy change against the parent on the same images. Appends a section to
bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitviz.checkpoints import read_meta  # noqa: E402
from vitviz.data import load_dataset  # noqa: E402
from vitviz.device import device_name, resolve_device  # noqa: E402
from vitviz.train.jobs import JobSpec, JobStore  # noqa: E402
from vitviz.train.plan import QUICK_BATCH, has_qkv_embeddings, measure_train_speed, plan_finetune, quick_scope  # noqa: E402,E501


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="*", default=[str(ROOT / "checkpoints" / "xcit_n12_p4_32_fsne.safetensors")])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10-mini"))
    p.add_argument("--markdown", default=str(ROOT / "bench" / "RESULTS.md"))
    args = p.parse_args(argv)
    device = resolve_device(None)
    rows = []
    for path in args.checkpoints:
        meta = read_meta(path)
        train_n = len(load_dataset(meta["dataset"], "train", root=args.data_dir, img_size=meta["img_size"]).labels)
        test_n = len(load_dataset(meta["dataset"], "test", root=args.data_dir, img_size=meta["img_size"]).labels)
        qkv = has_qkv_embeddings(meta["variant"], meta["variant_kwargs"])
        with tempfile.TemporaryDirectory() as runs:
            speed = measure_train_speed(meta["variant"], meta["variant_kwargs"], meta["num_classes"], quick_scope(qkv),
                                        min(QUICK_BATCH, train_n), device, img_size=meta["img_size"], runs_dir=runs)
            plan = plan_finetune("quick", images_per_second=speed, train_images=train_n, test_images=test_n,
                                 has_qkv=qkv)
            store = JobStore(runs)
            job_id = store.submit(JobSpec(checkpoint=str(path), dataset=meta["dataset"], data_root=args.data_dir,
                                          epochs=None, steps=plan.steps, lr=plan.lr, batch_size=plan.batch_size,
                                          trainable=plan.trainable))
            while store.get(job_id).state in ("queued", "running"):
                store.poll()
                time.sleep(0.2)
            job = store.get(job_id)
        row = {"checkpoint": Path(path).stem, "plan": plan.as_dict(), "state": job.state, "message": job.message,
               "actual_seconds": round(job.finished - job.created, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    command = "python " + " ".join(map(shlex.quote, ["bench/quick_finetune.py", *(argv or sys.argv[1:])]))
    lines = [f"## {time.strftime('%Y-%m-%d %H:%M')} — quick fine-tune preset, end to end ({device_name(device)})", "",
             f"`{command}`", "", "| checkpoint | plan | measured img/s | expected s | actual s | result |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['checkpoint']} | {r['plan']['note'].split(' sized')[0]} | {r['plan']['images_per_second']:.0f} | "
              f"{r['plan']['expected_seconds']:.0f} | {r['actual_seconds']:.0f} | {r['message']} |" for r in rows]
    with open(args.markdown, "a") as f:
        f.write("\n".join(lines) + "\n\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
