"""The Hub model card and the config's provenance, line by line (issue 26: mutants of vitviz.hub that the
round-trip test in tests/test_hub.py let through). No model is built for the card: `model_card` is a pure
function of the checkpoint's metadata and the exported timm config."""
import json

import timm
import torch

import vitviz  # noqa: F401  (registers the variants)
from vitviz import checkpoints
from vitviz.hub import export_hub, model_card
from vitviz.models._common import PAPERS
from tiny import tiny_kwargs


def card_inputs(**meta_changes):
    meta = dict(variant="not_a_catalog_variant", variant_kwargs={"depth": 2, "embed": "conv"},
                classes=["a", "b"], dataset="digits", param_count=12345, weights_dtype="float16",
                path="/somewhere/tiny.safetensors", weights_sha256="0123456789abcdef" * 4,
                parent="parent.safetensors",
                metrics={"test_accuracy": 0.5, "num_test_samples": 12, "per_class_accuracy": {"a": 0.25, "b": 0.75},
                         "confusion_matrix": [[1, 3], [2, 6]]},
                train_config={"epochs": 3, "lr": 0.001, "extra": {"note": "a noted recipe"}})
    meta.update(meta_changes)
    config = {"pretrained_cfg": {"input_size": [3, 32, 32], "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3],
                                 "interpolation": "bicubic", "crop_pct": 1.0, "license": "apache-2.0",
                                 "paper_ids": [PAPERS["xcit"][0], "arXiv:9999.99999", "a workshop note"]}}
    return meta, config


def test_model_card_front_matter_usage_and_details():
    meta, config = card_inputs()
    card = model_card(meta, config, "tiny-repo")
    assert card.startswith("---\ntags:\n- image-classification\n- timm\n- vitviz\nlibrary_name: timm\n"
                           "license: apache-2.0\ndatasets:\n- digits\nmetrics:\n- accuracy\n---\n\n# tiny-repo\n\n")
    assert "`not_a_catalog_variant` (depth=2, embed='conv') trained by vitviz on digits (2 classes)." in card
    assert ("- **Input:** 32 x 32 RGB, mean [0.5, 0.4, 0.3], std [0.2, 0.25, 0.3], interpolation bicubic, "
            "crop 1.0") in card
    assert "- **Weights:** float16, from `tiny.safetensors` (sha256 0123456789ab...)" in card
    assert "- **Parent checkpoint:** parent.safetensors" in card
    assert ("```python\nimport timm\nimport vitviz  # registers the vitviz architectures with timm\n\n"
            'model = timm.create_model("hf-hub:USER/tiny-repo", pretrained=True).eval()') in card


def test_model_card_metrics_recipe_and_references():
    meta, config = card_inputs()
    card = model_card(meta, config, "tiny-repo")
    assert "| test accuracy | 50.0% |\n| test samples | 12 |\n| dataset | digits |" in card
    assert "| a | 25.0% | 4 |\n| b | 75.0% | 8 |" in card
    assert "AdamW with warmup and cosine decay (vitviz's training engine). Note: a noted recipe" in card
    assert "| epochs | 3 |\n| lr | 0.001 |" in card
    assert ("## References\n\n"
            f"- {PAPERS['xcit'][1]}: https://arxiv.org/abs/{PAPERS['xcit'][0].removeprefix('arXiv:')}\n"
            "- arXiv:9999.99999: https://arxiv.org/abs/9999.99999\n"  # an unnamed paper: its id
            "- a workshop note\n") in card


def test_model_card_without_parent_test_count_or_note():
    meta, config = card_inputs(parent=None, metrics={"test_accuracy": 0.5}, train_config={"epochs": 3})
    card = model_card(meta, config, "tiny-repo")
    assert "- **Parent checkpoint:** none (trained from scratch)" in card
    assert "| test samples | n/a |" in card
    assert "(vitviz's training engine).\n" in card and "Note:" not in card
    assert "## Per-class accuracy" not in card


def test_export_hub_config_keeps_the_provenance(tmp_path):
    kwargs = tiny_kwargs("vitviz_vit_")
    torch.manual_seed(0)
    model = timm.create_model("vitviz_vit_softmax_32", num_classes=2, **kwargs)
    meta = dict(variant="vitviz_vit_softmax_32", variant_kwargs=kwargs, classes=["a", "b"], img_size=32,
                mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], dataset="digits", metrics={"test_accuracy": 0.75})
    path = checkpoints.save(model, tmp_path / "tiny", meta)
    saved = checkpoints.load(path, device="cpu")[1]
    paths = export_hub(path, tmp_path / "hub")
    provenance = json.loads(paths["config.json"].read_text())["vitviz"]
    assert provenance == dict(dataset="digits", test_accuracy=0.75, parent=None, checkpoint="tiny.safetensors",
                              weights_sha256=saved["weights_sha256"], created=saved["created"],
                              versions=saved["versions"])
