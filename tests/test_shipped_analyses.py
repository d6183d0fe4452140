"""Analyses shipped with the checkpoints: read when the local cache has none, never for other weights; and every
file shipped in the repository belongs to a shipped checkpoint as it is now (none has gone stale)."""
import json
import shutil
from pathlib import Path

import pandas as pd

from vitviz import result_cache
from vitviz.checkpoint_meta import read_meta
from vitviz.explain import faithfulness as fa

ROOT = Path(__file__).resolve().parents[1]


def test_a_shipped_result_is_read_without_computing_and_a_retrained_checkpoint_misses_it(ckdir):
    path = str(ckdir / "tiny_xcit_fsne.safetensors")
    table = result_cache.weight_stats_result(path)
    shipped = result_cache.ship("weight_stats", [path], result_cache.settings_for("weight_stats"))
    assert shipped == ckdir / "analyses" / "weight_stats" / shipped.name
    assert json.loads(shipped.read_text())["checkpoints"] == ["tiny_xcit_fsne.safetensors"]  # no machine paths
    shutil.rmtree(ckdir / "runs")  # a fresh clone: nothing computed here
    pd.testing.assert_frame_equal(result_cache.weight_stats_result(path, compute=False), table)
    meta = read_meta(path)
    other = dict(meta, weights_sha256="0" * 64)  # the same name, retrained
    assert result_cache.weight_stats_result(path, meta=other, compute=False) is None


def test_a_shipped_faithfulness_result_is_read_and_a_stale_one_is_not(ckdir):
    path = str(ckdir / "tiny_vit_softmax.safetensors")
    settings = fa.Settings(images=4)
    target = fa.shipped_path(path, settings)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"format_version": fa.FORMAT_VERSION, "checkpoint": "tiny_vit_softmax",
                                  "methods": {}}))
    assert fa.load_cached(path, settings)["checkpoint"] == "tiny_vit_softmax"
    target.write_text(json.dumps({"format_version": fa.FORMAT_VERSION - 1}))  # another format: ignored
    assert fa.load_cached(path, settings) is None


def test_every_shipped_analysis_belongs_to_a_shipped_checkpoint_as_it_is_now():
    shipped = sorted((ROOT / "checkpoints" / "analyses").rglob("*.*"))
    shas = {p.stem: read_meta(p)["weights_sha256"][:12] for p in (ROOT / "checkpoints").glob("*.safetensors")}
    for f in shipped:
        for part in f.name.split("__"):
            stem, sha = part.split("-")[:2]  # checkpoint names have no "-"; the sha's first 12 digits follow
            assert shas.get(stem) == sha, f"{f.relative_to(ROOT)} is for other weights of {stem}"
    assert sum(f.stat().st_size for f in shipped) <= 3 * 2**20  # the budget for shipped analyses
