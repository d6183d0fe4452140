"""Compute the on-demand analyses of the shipped checkpoints at the pages' defaults and ship them beside the
checkpoints (`checkpoints/analyses/`, tracked), so a fresh clone opens every page with its figures drawn.

python bench/ship_analyses.py [--min-epochs 30] [--dir checkpoints] [--skip-faithfulness]

Only checkpoints trained for at least `--min-epochs` epochs are covered (analyses of the older short runs would
go stale when those are retrained). For each: the Q/K/V weight statistics, the pathway CKA (64 test images), the
faithfulness of the six explanation methods (100 test images); and the layer x layer CKA of the Representations
page's default pairs (XCiT linear vs SNE / P-SNE / F-SNE, 128 images) where both sides qualify. Every result is
keyed by its checkpoints' weights sha256, as the disk cache is: a checkpoint retrained under the same name never
finds the old result. Prints the shipped files and their total size.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitviz import result_cache  # noqa: E402
from vitviz.checkpoint_meta import list_checkpoints, read_meta  # noqa: E402
from vitviz.compare.pathways import DEFAULT_PROBE_IMAGES  # noqa: E402
from vitviz.compare.representations import qkv_embedding_pairs  # noqa: E402
from vitviz.data import data_dir  # noqa: E402
from vitviz.explain import faithfulness as fa  # noqa: E402
from vitviz.resolve import resolve  # noqa: E402

LAYER_CKA_IMAGES, LAYER_CKA_BATCH, LAYER_CKA_FEATURES = 128, 64, "flatten"  # the Representations page's defaults


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=str(ROOT / "checkpoints"))
    p.add_argument("--min-epochs", type=float, default=30)
    p.add_argument("--skip-faithfulness", action="store_true")
    args = p.parse_args(argv)
    data = str(data_dir())  # what the pages pass
    paths = [str(q) for q in list_checkpoints(args.dir)
             if (read_meta(q).get("train_config") or {}).get("epochs_done", 0) >= args.min_epochs]
    shipped = []
    for path in paths:
        r = resolve(path, "cpu")
        start = time.perf_counter()
        result_cache.weight_stats_result(r)
        shipped.append(result_cache.ship("weight_stats", [r.path], result_cache.settings_for("weight_stats"),
                                         [r.meta]))
        if r.meta["variant"].startswith("vitviz_xcit_"):
            result_cache.pathway_cka_result(r, DEFAULT_PROBE_IMAGES, data_root=data)
            shipped.append(result_cache.ship("pathway_cka", [r.path], result_cache.settings_for(
                "pathway_cka", count=DEFAULT_PROBE_IMAGES, images=r.image_source(data)), [r.meta]))
        if not args.skip_faithfulness:
            settings = fa.Settings()
            source, target = fa.cache_path(r.path, settings), fa.shipped_path(r.path, settings)
            if not target.exists():
                if not source.exists():
                    fa.run_faithfulness(r, settings)
                target.parent.mkdir(parents=True, exist_ok=True)
                found = json.loads(source.read_text())
                found["checkpoint_path"] = Path(found.get("checkpoint_path", "")).name  # no machine's paths
                target.write_text(json.dumps(found))
            shipped.append(target)
        print(f"{Path(path).stem}: {time.perf_counter() - start:.0f} s", flush=True)
    for a, b, _ in qkv_embedding_pairs({q: read_meta(q)["variant"] for q in paths}):
        ra, rb = resolve(a, "cpu"), resolve(b, "cpu")
        result_cache.representation_cka_result(ra, rb, LAYER_CKA_IMAGES, batch_size=LAYER_CKA_BATCH,
                                               features=LAYER_CKA_FEATURES, data_root=data)
        settings = result_cache.settings_for("representation_cka", count=LAYER_CKA_IMAGES, batch_size=LAYER_CKA_BATCH,
                                             features=LAYER_CKA_FEATURES, images=ra.image_source(data))
        shipped.append(result_cache.ship("representation_cka", [ra.path, rb.path], settings, [ra.meta, rb.meta]))
    total = sum(f.stat().st_size for f in shipped)
    for f in shipped:
        print(f"shipped {f.relative_to(ROOT)} ({f.stat().st_size / 1024:.1f} KiB)")
    print(f"{len(shipped)} files, {total / 1024:.0f} KiB in all, for {len(paths)} checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
