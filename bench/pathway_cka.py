"""Q/K/V pathway similarity of checkpoints on their own test images (not a timing benchmark).

    python bench/pathway_cka.py [--checkpoints 'checkpoints/xcit_n12_p4_32_*.safetensors'] [--images 1000]
                                [--data-dir DIR] [--batch-size 128] [--markdown]

Per checkpoint: the mean over blocks of the linear CKA between q-k, q-v and k-v as XCA consumes them
(`vitviz.inspect.pathway_cka`), the range over blocks, and, for contrast, the mean weight cosine and shared
fraction (`weight_overlap`). Images: the checkpoint's test set (data directory, then its training directory;
`--data-dir` sets $VITVIZ_DATA_DIR), else the digits — the source is printed.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

import vitviz  # noqa: E402,F401
from vitviz.inspect import pathway_cka, weight_overlap  # noqa: E402
from vitviz.resolve import resolve  # noqa: E402


def measure(path: str, count: int, batch_size: int) -> dict:
    checkpoint = resolve(path, "cpu")
    model, meta = checkpoint.model, checkpoint.meta
    images, source = checkpoint.probe_images(count)
    start = time.perf_counter()
    result = pathway_cka(model, checkpoint.inputs(images), batch_size=batch_size)
    seconds = time.perf_counter() - start
    table = result.table()
    overlap = weight_overlap(model)
    row = {"checkpoint": Path(path).stem, "variant": meta["variant"], "test acc": meta["metrics"]["test_accuracy"]}
    for pair in ("q-k", "q-v", "k-v"):
        values = table[table["pair"] == pair]["cka"]
        row[f"CKA {pair}"] = f"{values.mean():.3f} ({values.min():.2f}–{values.max():.2f})"
    row.update({"weight cosine q-k": f"{overlap[overlap['pair'] == 'q-k']['cosine'].mean():.3f}",
                "shared fraction": f"{overlap['shared_fraction'].mean():.2f}",
                "blocks": result.matrices.shape[0], "images": result.images,
                "tokens/image": result.tokens_per_image, "source": source, "seconds": round(seconds, 1)})
    return row


def markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoints", default=str(ROOT / "checkpoints" / "xcit_n12_p4_32_*.safetensors"),
                   help="glob of checkpoint files")
    p.add_argument("--images", type=int, default=1000, help="test images per checkpoint (spread over the set)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", default=None, help="data directory (sets $VITVIZ_DATA_DIR)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = p.parse_args(argv)
    if args.data_dir:
        os.environ["VITVIZ_DATA_DIR"] = args.data_dir
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    paths = sorted(glob.glob(args.checkpoints))
    if not paths:
        print(f"no checkpoints match {args.checkpoints}", file=sys.stderr)
        return 1
    table = pd.DataFrame([measure(path, args.images, args.batch_size) for path in paths])
    print("mean linear CKA over blocks (min–max over blocks); q and k after XCA's per-channel normalisation")
    print(markdown(table) if args.markdown else table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
