"""Where the Q/K/V embeddings change what XCiT represents: layer x layer linear CKA (minibatch unbiased
HSIC, Nguyen et al. 2021) between the block outputs of the XCiT baseline (linear Q/K/V) and each of SNE /
P-SNE / F-SNE, on the same test images (not a timing benchmark).

    python bench/representation_cka.py [--checkpoints 'checkpoints/xcit_n12_p4_32_*.safetensors']
                                       [--images 512] [--batch-size 64] [--features flatten|mean]
                                       [--data-dir DIR] [--markdown]

Prints the CKA at matching depth (blocks 0-11, then the two class-attention blocks) per pair, with the
number of images and where they come from (the checkpoint's test set when on disk, else the digits).
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
from vitviz import checkpoints  # noqa: E402
from vitviz.data.images import to_input  # noqa: E402
from vitviz.resolve import resolve  # noqa: E402
from vitviz.compare.representations import qkv_embedding_pairs, representation_cka  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoints", default=str(ROOT / "checkpoints" / "xcit_n12_p4_32_*.safetensors"))
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--features", default="flatten", choices=("flatten", "mean"))
    p.add_argument("--data-dir", default=None, help="data directory (sets $VITVIZ_DATA_DIR)")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    if args.data_dir:
        os.environ["VITVIZ_DATA_DIR"] = args.data_dir
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    paths = sorted(glob.glob(args.checkpoints))
    metas = {path: checkpoints.read_meta(path) for path in paths}
    pairs = qkv_embedding_pairs({path: meta["variant"] for path, meta in metas.items()})
    if not pairs:
        print("no XCiT linear baseline with SNE / P-SNE / F-SNE among the checkpoints", file=sys.stderr)
        return 1
    columns, sources = {}, set()
    for base, other, label in pairs:
        a, b = resolve(base, "cpu"), resolve(other, "cpu")
        model_a, meta_a, model_b, meta_b = a.model, a.meta, b.model, b.meta
        images, source = a.probe_images(args.images)
        sources.add(source)
        start = time.perf_counter()
        result = representation_cka(model_a, to_input(images, meta_a["mean"], meta_a["std"]), model_b,
                                    to_input(images, meta_b["mean"], meta_b["std"]),
                                    batch_size=args.batch_size, features=args.features)
        diag = result.diagonal()
        columns["block"] = diag["block_a"]
        columns[f"linear vs {label}"] = diag["cka"].round(3)
        print(f"linear vs {label}: {time.perf_counter() - start:.1f}s, first depth with CKA < 0.9: "
              f"{result.divergence_depth(0.9)}", file=sys.stderr)
    table = pd.DataFrame(columns)
    print(f"linear CKA at matching depth (minibatch unbiased HSIC, batch {args.batch_size}, "
          f"features {args.features}); images: {'; '.join(sorted(sources))}")
    if args.markdown:
        print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
        print("\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)))
    else:
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
