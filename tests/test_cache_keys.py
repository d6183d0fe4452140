"""Every disk cache misses when anything that changes its result changes, and hits when nothing did.

The cases are generated from the caches' own parameter lists (the analyses' signatures, `result_cache.KEYS`,
the faithfulness `Settings` fields), so a new parameter that is left out of a key fails here: either it is in
the key, or it is listed below as not changing the numbers, with the reason.
"""
import dataclasses
import inspect
import json

import pytest

from vitviz import result_cache
from vitviz.checkpoints import read_meta
from vitviz.data.testsets import image_source_key
from vitviz.explain import faithfulness as fa
from vitviz.train import plan

from test_data import CIFAR10_NAMES, write_cifar10

# keyword parameters of the *_result analyses that do not change the stored result, and why
NOT_IN_KEY = {
    "model": "the loaded checkpoint itself (its weights sha256 is in the file name)",
    "meta": "the checkpoint's metadata (read from the checkpoint when not given; sha256 in the file name)",
    "parent_model": "as model", "parent_meta": "as meta", "model_a": "as model", "meta_a": "as meta",
    "model_b": "as model", "meta_b": "as meta",
    "device": "where it is computed, not what (float32 on every device)",
    "compute": "whether to compute on a miss, not the result",
}
# key names that stand for a parameter of another name
KEY_OF = {"data_root": "images"}
ANALYSES = {"pathway_cka": result_cache.pathway_cka_result, "pathway_drift": result_cache.pathway_drift_result,
            "representation_cka": result_cache.representation_cka_result,
            "weight_stats": result_cache.weight_stats_result}
OTHER_VALUES = {"count": (8, 9), "batch_size": (64, 32), "features": ("flatten", "mean"),
                "images": ("digits (bundled)", "cifar10 at /data")}


@pytest.mark.parametrize("kind", list(ANALYSES))
def test_every_parameter_of_an_analysis_is_in_its_key_or_named_harmless(kind):
    params = [p for p in inspect.signature(ANALYSES[kind]).parameters.values()
              if p.kind is inspect.Parameter.KEYWORD_ONLY or p.default is not inspect.Parameter.empty]
    params += [p for p in inspect.signature(ANALYSES[kind]).parameters.values()
               if p.name == "count"]
    names = {KEY_OF.get(p.name, p.name) for p in params} - set(NOT_IN_KEY)
    assert names == set(result_cache.KEYS[kind]), (kind, names)


def pair(ckdir):
    return [str(ckdir / "tiny_xcit_linear.safetensors"), str(ckdir / "tiny_xcit_fsne.safetensors")]


@pytest.mark.parametrize("kind", list(ANALYSES))
def test_each_setting_of_each_kind_moves_the_cache_file_and_nothing_else_does(kind, ckdir):
    paths = pair(ckdir) if kind in ("pathway_drift", "representation_cka") else pair(ckdir)[:1]
    base = {k: OTHER_VALUES[k][0] for k in result_cache.KEYS[kind]}
    here = result_cache.cache_path(kind, paths, result_cache.settings_for(kind, **base))
    assert result_cache.cache_path(kind, paths, result_cache.settings_for(kind, **dict(base))) == here  # hit
    for key in result_cache.KEYS[kind]:
        changed = result_cache.cache_path(kind, paths, result_cache.settings_for(kind, **{**base,
                                                                                         key: OTHER_VALUES[key][1]}))
        assert changed != here, key
    with pytest.raises(ValueError, match="keyed by"):
        result_cache.settings_for(kind, **base, seed=1)  # a setting the key does not know is refused
    if result_cache.KEYS[kind]:
        with pytest.raises(ValueError, match="keyed by"):
            result_cache.settings_for(kind, **{k: v for k, v in list(base.items())[1:]})
    if len(paths) == 2:  # the pair is ordered: (a, b) and (b, a) are different results
        assert result_cache.cache_path(kind, paths[::-1], result_cache.settings_for(kind, **base)) != here


def test_retrained_weights_and_another_format_version_miss(ckdir, monkeypatch):
    path = pair(ckdir)[0]
    settings = result_cache.settings_for("pathway_cka", count=8, images="digits (bundled)")
    here = result_cache.cache_path("pathway_cka", [path], settings)
    meta = read_meta(path)
    other = dict(meta, weights_sha256="f" * 64)
    assert result_cache.cache_path("pathway_cka", [path], settings, [other]) != here
    assert result_cache.store("pathway_cka", [path], settings, {"x": 1}) == here
    assert result_cache.load("pathway_cka", [path], settings) == {"x": 1}
    monkeypatch.setattr(result_cache, "FORMAT_VERSION", result_cache.FORMAT_VERSION + 1)
    assert result_cache.cache_path("pathway_cka", [path], settings) != here  # the version is in the settings hash
    monkeypatch.undo()
    record = json.loads(here.read_text())
    here.write_text(json.dumps(dict(record, format_version=0)))  # a stale file under today's name
    assert result_cache.load("pathway_cka", [path], settings) is None  # ignored, not misread


# ------------------------------------------------------------------------------------------ faithfulness

FAITHFULNESS_NEUTRAL = {"batch_size": "images per forward pass: the same numbers, batched differently"}
FAITHFULNESS_OTHER = {"images": 50, "seed": 1, "methods": ("rollout", "random"), "rise_steps": 8, "ig_steps": 8,
                      "batch_size": 10, "n_boot": 500}


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(fa.Settings)])
def test_each_faithfulness_setting_changes_the_key_unless_it_cannot_change_the_numbers(field, ckdir):
    path = pair(ckdir)[0]
    base = fa.Settings()
    changed = dataclasses.replace(base, **{field: FAITHFULNESS_OTHER[field]})
    same = fa.cache_path(path, changed) == fa.cache_path(path, base)
    assert same == (field in FAITHFULNESS_NEUTRAL), field
    assert fa.cache_path(path, dataclasses.replace(base)) == fa.cache_path(path, base)


def test_faithfulness_results_on_other_images_are_another_cache_entry(ckdir, tmp_path):
    """A result computed on the digits (test set not on disk) is not served once the test set is there."""
    path = pair(ckdir)[0]
    meta = read_meta(path)
    empty, data = tmp_path / "empty", tmp_path / "data"
    empty.mkdir()
    write_cifar10(data)
    fake = dict(meta, dataset="cifar10", classes=list(CIFAR10_NAMES))
    assert image_source_key(fake, empty) != image_source_key(fake, data)
    assert fa.cache_path(path, fa.Settings(), fake, data_root=empty) != fa.cache_path(path, fa.Settings(), fake,
                                                                                      data_root=data)


def test_train_speed_is_kept_per_setting_that_changes_it():
    key = plan._speed_key("v", {"a": 1}, "qkv", 64, "cpu")
    for changed in (plan._speed_key("w", {"a": 1}, "qkv", 64, "cpu"), plan._speed_key("v", {"a": 2}, "qkv", 64, "cpu"),
                    plan._speed_key("v", {"a": 1}, "head", 64, "cpu"), plan._speed_key("v", {"a": 1}, "qkv", 32, "cpu"),
                    plan._speed_key("v", {"a": 1}, "qkv", 64, "cuda")):
        assert changed != key
    assert plan._speed_key("v", {"a": 1}, "qkv", 64, "cpu") == key
