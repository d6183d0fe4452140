"""Known-answer tests for mutants that survived the library-wide mutation run (issue 26, bench/RESULTS.md
"Mutation score over the library"): each test names the mutant(s) it kills. Tiny models, no data, no network."""
import tarfile

import numpy as np
import pandas as pd
import pytest
import timm
import torch

import vitviz  # noqa: F401  (registers the variants)
from tiny import tiny_kwargs


# --------------------------------------------------------------------------- data

def test_tar_member_starting_with_a_backslash_is_refused():
    """download.check_tar_member__mutmut_7 ("\\\\" -> "XX\\\\XX"): a Windows-style absolute member name."""
    from vitviz.data.download import DownloadError, check_tar_member
    member = tarfile.TarInfo("\\evil.txt")
    with pytest.raises(DownloadError, match="unsafe path"):
        check_tar_member(member)
    check_tar_member(tarfile.TarInfo("fine/evil\\name.txt"))  # a backslash inside a name is only a character


# --------------------------------------------------------------------------- metrics

def test_paired_bootstrap_mean_diff_ci_of_empty_input_is_all_nan():
    """metrics.paired_bootstrap_mean_diff_ci__mutmut_31 (float(None))."""
    from vitviz.metrics import paired_bootstrap_mean_diff_ci
    assert all(np.isnan(v) for v in paired_bootstrap_mean_diff_ci([], []))


def test_paired_bootstrap_mean_diff_ci_default_seed_is_zero():
    """metrics.paired_bootstrap_mean_diff_ci__mutmut_3 (default seed 0 -> 1): results are reproducible
    across versions only if the documented default stays."""
    from vitviz.metrics import paired_bootstrap_mean_diff_ci
    rng = np.random.default_rng(3)
    a, b = rng.random(15), rng.random(15)
    assert paired_bootstrap_mean_diff_ci(a, b, n_boot=200) == paired_bootstrap_mean_diff_ci(a, b, n_boot=200, seed=0)
    assert paired_bootstrap_mean_diff_ci(a, b, n_boot=200) != paired_bootstrap_mean_diff_ci(a, b, n_boot=200, seed=1)


# --------------------------------------------------------------------------- explain

def test_cls_rollout_map_refuses_a_non_square_rollout():
    """rollout.cls_rollout_map__mutmut_15 (shape[-2] -> shape[+2]: the squareness check compared a side with
    itself)."""
    from vitviz.explain.rollout import cls_rollout_map
    with pytest.raises(ValueError, match=r"\(B, N, N\)"):
        cls_rollout_map(torch.rand(2, 5, 4))


# --------------------------------------------------------------------------- inspect

def test_pca_projection_of_two_feature_dimensions():
    """projections.project__mutmut_16 (d < 2 -> d < 3): two features are enough for a 2-D projection."""
    from vitviz.inspect.projections import project
    x = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.1], [3.0, 0.0]])
    p = project(x, "pca")
    assert p.points.shape == (4, 2)
    assert p.explained_variance[0] > 0.99


def test_preferred_defaults_rank_cvt_before_other_families():
    """compare_views.preferred_defaults__mutmut_17 ("CvT" -> "CVT" in the family order)."""
    from vitviz.inspect.compare_views import preferred_defaults
    table = pd.DataFrame([dict(family="MLP-Mixer", variant="vitviz_mixer_32", checkpoint="a", path="a.st"),
                          dict(family="CvT", variant="vitviz_cvt_32", checkpoint="b", path="b.st")])
    assert preferred_defaults(table, count=1) == ["b.st"]


# --------------------------------------------------------------------------- models

def test_pit_has_no_attention_dropout_by_default():
    """pit.PiT.__init____mutmut_8 (attn_drop_rate default 0.0 -> 1.0): in training mode the default model
    computes exactly what it computes in eval mode (no dropout anywhere by default)."""
    torch.manual_seed(0)
    model = timm.create_model("vitviz_pit_softmax_32", num_classes=3, **tiny_kwargs("vitviz_pit_"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.train()(x), model.eval()(x))


def test_cvt_feature_info_names_its_stages():
    """cvt.CvT.__init____mutmut_76 (feature_info key "module" -> "moduleXX"): timm's features_only needs it."""
    model = timm.create_model("vitviz_cvt_32", num_classes=3, **tiny_kwargs("vitviz_cvt_"))
    assert [f["module"] for f in model.feature_info] == ["stages.0", "stages.1", "stages.2"]
    feats = timm.create_model("vitviz_cvt_32", features_only=True, **tiny_kwargs("vitviz_cvt_"))(
        torch.randn(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [16, 32, 64]


def test_paper_fields_of_the_pretrained_cfgs():
    """_common.papers__mutmut_6 (paper_name dropped) and pit._papers__mutmut_18 ("vix" -> "VIX"). Both run when
    vitviz is imported, before mutmut's forkserver sets a mutant: checked in a fresh process (RESULTS.md)."""
    from vitviz.models._common import PAPERS, papers
    assert papers("pit", "vix", "nystrom") == dict(
        paper_ids=(PAPERS["pit"][0], PAPERS["vix"][0], PAPERS["nystrom"][0]), paper_name=PAPERS["pit"][1])
    from vitviz.models.pit import _papers
    assert _papers("nystrom")["paper_ids"] == (PAPERS["pit"][0], PAPERS["vix"][0], PAPERS["nystrom"][0])
    cfg = timm.create_model("vitviz_pit_nystrom_32", **tiny_kwargs("vitviz_pit_")).pretrained_cfg
    assert cfg["paper_name"] == PAPERS["pit"][1] and PAPERS["vix"][0] in cfg["paper_ids"]


# --------------------------------------------------------------------------- compare

def test_cka_summary_names_each_checkpoints_variant():
    """side_by_side.cka_summary__mutmut_12 (variants.get(name, "") -> variants.get("", ...))."""
    from vitviz.compare.pathways import PathwayCKA
    from vitviz.compare.side_by_side import cka_summary
    eye = np.eye(3)[None]
    result = PathwayCKA(eye, ("blocks.0",), 4, 16, False)
    table = cka_summary({"a.safetensors": result, "b.safetensors": result},
                        variants={"a.safetensors": "vitviz_vit_softmax_32"})
    assert table["variant"].tolist() == ["vitviz_vit_softmax_32", ""]


def test_weight_stats_of_separate_q_k_v_linears():
    """weights._raw_pathways__mutmut_28 (zip(PATHWAYS, linears) -> zip(linears)): CvT's attention keeps q, k and
    v as three separate linear layers (proj_q, proj_k, proj_v)."""
    from vitviz.compare.weights import weight_stats
    model = timm.create_model("vitviz_cvt_32", num_classes=3, **tiny_kwargs("vitviz_cvt_"))
    stats = weight_stats(model)
    first = stats[stats["block"] == stats["block"].min()]
    assert sorted(first["pathway"]) == ["k", "q", "v"]
    assert set(first["layer"]) == {"linear"} and not first["shared"].any()
    q = model.stages[0].blocks[0].attn.proj_q.weight
    row = first[first["pathway"] == "q"].iloc[0]
    assert row["fro_norm"] == pytest.approx(float(q.detach().norm()), rel=1e-5)


# --------------------------------------------------------------------------- layers

@pytest.mark.parametrize("mode", ["1d", "2d"])
def test_rope_angles_match_the_formula(mode):
    """rope.rope_angles__mutmut_3 (base 10000 -> 10001) and __mutmut_25 (1d exponent 2/d -> 3/d): RoFormer's
    theta_i = 10000^(-2i/d) per position (1d), and per row and per column with d/2 channels each (2d)."""
    from vitviz.layers.rope import rope_angles
    d, (h, w) = 8, (2, 3)
    angles = rope_angles(d, (h, w), mode).double()
    if mode == "1d":
        theta = torch.tensor([10000.0 ** (-2 * i / d) for i in range(d // 2)], dtype=torch.float64)
        expected = torch.arange(h * w, dtype=torch.float64)[:, None] * theta
    else:
        theta = torch.tensor([10000.0 ** (-4 * i / d) for i in range(d // 4)], dtype=torch.float64)
        rows = torch.tensor([n // w for n in range(h * w)], dtype=torch.float64)
        cols = torch.tensor([n % w for n in range(h * w)], dtype=torch.float64)
        expected = torch.cat([rows[:, None] * theta, cols[:, None] * theta], dim=1)
    torch.testing.assert_close(angles, expected, rtol=1e-6, atol=1e-7)


def test_fsne_codes_shorter_than_three_are_unit_vectors():
    """qkv_embedding._distinct_unit_vectors__mutmut_17 (normalised over dim -2): with a code length below 3 the
    three codes cannot be orthonormal, but each is still a unit vector."""
    from vitviz.layers.qkv_embedding import FullySharedQKV
    torch.manual_seed(0)
    codes = FullySharedQKV(16, code_length=2).codes.detach()
    assert codes.shape == (3, 2)
    torch.testing.assert_close(codes.norm(dim=-1), torch.ones(3))


# --------------------------------------------------------------------------- checkpoints

def test_checkpoint_metadata_is_indented_json(tmp_path):
    """checkpoints.save__mutmut_42 (json.dumps without indent=2): the metadata file is meant to be read and
    diffed by people (one key a line)."""
    from vitviz import checkpoints
    model = timm.create_model("vitviz_vit_softmax_32", num_classes=2, **tiny_kwargs("vitviz_vit_"))
    meta = dict(variant="vitviz_vit_softmax_32", variant_kwargs=tiny_kwargs("vitviz_vit_"), classes=["a", "b"],
                img_size=32, mean=[0.5] * 3, std=[0.25] * 3, dataset="digits")
    path = checkpoints.save(model, tmp_path / "tiny", meta)
    text = path.with_suffix(".json").read_text()
    assert text.startswith("{\n  \"") and text.endswith("}\n")


# --------------------------------------------------------------------------- result cache

def test_cache_record_keeps_kind_checkpoints_and_settings(tmp_path):
    """result_cache.store__mutmut_18 ("settings" -> "XXsettingsXX"): the record says what it was computed from."""
    import json

    from vitviz import checkpoints
    from vitviz.result_cache import load, settings_for, store
    model = timm.create_model("vitviz_vit_softmax_32", num_classes=2, **tiny_kwargs("vitviz_vit_"))
    meta = dict(variant="vitviz_vit_softmax_32", variant_kwargs=tiny_kwargs("vitviz_vit_"), classes=["a", "b"],
                img_size=32, mean=[0.5] * 3, std=[0.25] * 3, dataset="digits")
    path = checkpoints.save(model, tmp_path / "tiny", meta)
    settings = settings_for("weight_stats")
    target = store("weight_stats", [path], settings, {"x": [1, 2]})
    record = json.loads(target.read_text())
    assert (record["kind"], record["checkpoints"], record["settings"]) == ("weight_stats", [str(path)], settings)
    assert load("weight_stats", [path], settings) == {"x": [1, 2]}


def test_faithfulness_verdict_compares_with_random_at_the_given_level():
    """faithfulness.verdict__mutmut_119 (the comparison with the random ranking at the default 95% instead of
    `level`): lower is better for this metric, and these AUCs beat random at 95% (the interval of the difference
    lies below 0) but not at 99.9%."""
    from vitviz.explain.faithfulness import verdict
    from vitviz.metrics import paired_bootstrap_mean_diff_ci
    best = -np.random.default_rng(9).normal(0.45, 1.0, 20)
    rand = np.zeros(20)
    assert paired_bootstrap_mean_diff_ci(rand, best, n_boot=500, level=0.95)[2] < 0
    assert paired_bootstrap_mean_diff_ci(rand, best, n_boot=500, level=0.999)[2] > 0
    result = {"checkpoint": "c", "methods": {"rollout": {"auc": {"positive_probability": best.tolist()}},
                                             "random": {"auc": {"positive_probability": rand.tolist()}}}}
    assert "; it beats a random ranking" in verdict(result, n_boot=500, level=0.95)
    assert "; it does not significantly beat a random ranking" in verdict(result, n_boot=500, level=0.999)


def test_weights_size_check_accepts_a_file_that_is_all_header(tmp_path):
    """checkpoint_meta.check_weights_size__mutmut_31 (`header_len <= size - 8` -> `size - 9`): a safetensors
    file without tensors is its 8-byte length and its header, nothing after."""
    import safetensors.torch

    from vitviz.checkpoint_meta import check_weights_size
    path = tmp_path / "empty.safetensors"
    safetensors.torch.save_file({}, str(path))
    assert path.stat().st_size == 8 + int.from_bytes(path.read_bytes()[:8], "little")
    check_weights_size(path)
