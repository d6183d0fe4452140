"""The disk cache of slow analyses (vitviz.inspect.result_cache): same results as computing afresh, no recomputation
on a hit (counted with a spy, not timed), misses when the weights, the settings or the image source change, and
nothing a checkpoint listing would mistake for a checkpoint."""
import json

import numpy as np
import pandas as pd

from vitviz import checkpoints
from vitviz.data.images import to_input
from vitviz.inspect import result_cache
from vitviz.inspect.pathways import pathway_cka, pathway_drift, probe_images
from vitviz.inspect.representations import checkpoint_cka
from vitviz.overview import checkpoint_table


def spy(monkeypatch, name):
    """Count the calls of result_cache's `name` (the computation behind a cache miss)."""
    calls = []
    real = getattr(result_cache, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(result_cache, name, counted)
    return calls


def test_pathway_cka_is_computed_once_then_read_from_disk(ckdir, monkeypatch, tmp_path):
    path = ckdir / "tiny_xcit_fsne.safetensors"
    calls = spy(monkeypatch, "pathway_cka")
    data = tmp_path / "data"
    assert result_cache.pathway_cka_result(path, 8, data_root=data, compute=False) is None
    assert calls == []
    first, source = result_cache.pathway_cka_result(path, 8, data_root=data)
    assert len(calls) == 1 and "digits" in source
    stored = list((ckdir / "runs" / "analyses" / "pathway_cka").iterdir())
    assert len(stored) == 1 and stored[0].suffix == ".analysis" and "tiny_xcit_fsne-" in stored[0].name
    again, source_again = result_cache.pathway_cka_result(path, 8, data_root=data, compute=False)
    assert len(calls) == 1 and source_again == source
    np.testing.assert_array_equal(again.matrices, first.matrices)
    assert (again.blocks, again.images, again.tokens_per_image, again.normalized_qk) == \
        (first.blocks, first.images, first.tokens_per_image, first.normalized_qk)
    # the stored numbers are what a fresh computation gives
    model, meta = checkpoints.load(path)
    images, _ = probe_images(meta, 8, data)
    np.testing.assert_allclose(pathway_cka(model, to_input(images, meta["mean"], meta["std"])).matrices,
                               first.matrices, rtol=1e-12)
    # other settings miss; the cache file is not a checkpoint to any listing
    assert result_cache.pathway_cka_result(path, 16, data_root=data, compute=False) is None
    table, problems = checkpoint_table(ckdir)
    assert len(table) == 4 and problems == []


def test_a_retrained_checkpoint_under_the_same_name_misses(ckdir, tmp_path):
    path = ckdir / "tiny_xcit_linear.safetensors"
    result_cache.pathway_cka_result(path, 4, data_root=tmp_path)
    model, meta = checkpoints.load(path)
    for p in model.parameters():
        p.data.add_(0.1)
    keep = ("variant", "variant_kwargs", "classes", "img_size", "mean", "std", "dataset", "metrics", "train_config")
    checkpoints.save(model, ckdir / "tiny_xcit_linear", {k: meta[k] for k in keep})
    assert result_cache.pathway_cka_result(path, 4, data_root=tmp_path, compute=False) is None


def test_unreadable_or_foreign_cache_files_are_recomputed_and_unwritable_dirs_still_answer(ckdir, monkeypatch,
                                                                                          tmp_path):
    path = ckdir / "tiny_xcit_fsne.safetensors"
    meta = checkpoints.read_meta(path)
    settings = {"count": 4, "images": result_cache.image_source_key(meta, tmp_path)}
    target = result_cache.cache_path("pathway_cka", [path], settings)
    target.parent.mkdir(parents=True)
    target.write_text("{not json")
    calls = spy(monkeypatch, "pathway_cka")
    assert result_cache.pathway_cka_result(path, 4, data_root=tmp_path, compute=False) is None
    result_cache.pathway_cka_result(path, 4, data_root=tmp_path)
    assert len(calls) == 1 and json.loads(target.read_text())["format_version"] == result_cache.FORMAT_VERSION
    target.write_text(json.dumps({"format_version": -1, "payload": {}}))   # another format: a miss
    assert result_cache.pathway_cka_result(path, 4, data_root=tmp_path, compute=False) is None
    # a directory that cannot be written only means no caching
    (ckdir / "blocked").write_text("a file where the cache folder would go")
    monkeypatch.setattr(result_cache, "FOLDER", ("blocked", "analyses"))
    result, _ = result_cache.pathway_cka_result(path, 4, data_root=tmp_path)
    assert result.matrices.shape[1:] == (3, 3) and len(calls) == 2


def test_representation_cka_round_trip(ckdir, monkeypatch, tmp_path):
    a, b = ckdir / "tiny_xcit_linear.safetensors", ckdir / "tiny_vit_softmax.safetensors"
    calls = spy(monkeypatch, "checkpoint_cka")
    first, source = result_cache.representation_cka_result(a, b, 8, batch_size=4, features="mean",
                                                           data_root=tmp_path)
    again, again_source = result_cache.representation_cka_result(a, b, 8, batch_size=4, features="mean",
                                                                 data_root=tmp_path, compute=False)
    assert len(calls) == 1 and again_source == source
    np.testing.assert_array_equal(again.matrix, first.matrix)
    assert (again.blocks_a, again.blocks_b, again.images, again.batch_size, again.features) == \
        (first.blocks_a, first.blocks_b, 8, 4, "mean")
    model_a, meta_a = checkpoints.load(a)
    model_b, meta_b = checkpoints.load(b)
    fresh, _ = checkpoint_cka(model_a, meta_a, model_b, meta_b, 8, batch_size=4, features="mean", data_root=tmp_path)
    np.testing.assert_allclose(fresh.matrix, first.matrix, rtol=1e-10, atol=1e-12)
    # the other order, batch size or features are other results
    assert result_cache.representation_cka_result(b, a, 8, batch_size=4, features="mean", data_root=tmp_path,
                                                  compute=False) is None
    assert result_cache.representation_cka_result(a, b, 8, batch_size=8, features="mean", data_root=tmp_path,
                                                  compute=False) is None


def test_pathway_drift_round_trip(ckdir, monkeypatch, tmp_path):
    child, parent = ckdir / "tiny_xcit_fsne.safetensors", ckdir / "tiny_xcit_linear.safetensors"
    calls = spy(monkeypatch, "pathway_drift")
    table, source = result_cache.pathway_drift_result(child, parent, 4, data_root=tmp_path)
    again, _ = result_cache.pathway_drift_result(child, parent, 4, data_root=tmp_path, compute=False)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(again, table)
    model, meta = checkpoints.load(child)
    parent_model, parent_meta = checkpoints.load(parent)
    images, _ = probe_images(meta, 4, tmp_path)
    fresh = pathway_drift(parent_model, model, to_input(images, parent_meta["mean"], parent_meta["std"]),
                          to_input(images, meta["mean"], meta["std"]))
    pd.testing.assert_frame_equal(fresh, table, rtol=1e-10)


def test_image_source_key_names_where_the_images_come_from(tmp_path):
    assert result_cache.image_source_key({"dataset": "digits"}) == "digits (bundled)"
    meta = {"dataset": "cifar10", "train_config": {}}
    assert result_cache.image_source_key(meta, tmp_path) == "digits (bundled)"  # the test set is not there
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6))):
        (folder / name).write_bytes(b"")
    assert result_cache.image_source_key(meta, tmp_path) == f"cifar10 at {tmp_path}"


def test_weight_stats_round_trip(ckdir):
    from vitviz.inspect.weights import weight_stats
    path = ckdir / "tiny_xcit_fsne.safetensors"
    assert result_cache.weight_stats_result(path, compute=False) is None
    table = result_cache.weight_stats_result(path)
    pd.testing.assert_frame_equal(result_cache.weight_stats_result(path, compute=False), table)
    pd.testing.assert_frame_equal(weight_stats(checkpoints.load(path)[0]), table)
