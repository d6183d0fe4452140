"""vitviz weights through timm's own API: shipped checkpoints via `pretrained_cfg_overlay=dict(file=...)`,
the Hugging Face Hub layout written by `export-hub` via timm's `local-dir:` source, and the refusals."""
import json
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

import vitviz  # noqa: F401  (registers the variants)
from vitviz import checkpoints
from vitviz.cli import main as cli_main
from vitviz.hub import export_hub
from tiny import tiny_kwargs

SHIPPED = sorted(Path(__file__).resolve().parents[1].glob("checkpoints/*.safetensors"))


def logits(model, seed=0):
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


def tiny_checkpoint(tmp_path, dtype=None) -> Path:
    """A small ViT checkpoint with non-default constructor args and 3 classes, saved by vitviz."""
    kwargs = dict(tiny_kwargs("vitviz_vit_"), embed="conv", pos="rope2d")
    torch.manual_seed(1)
    model = timm.create_model("vitviz_vit_softmax_32", num_classes=3, **kwargs)
    meta = dict(variant="vitviz_vit_softmax_32", variant_kwargs=kwargs, classes=["a", "b", "c"], img_size=32,
                mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], dataset="digits",
                metrics={"test_accuracy": 0.5, "per_class_accuracy": {"a": 0.25, "b": 0.5, "c": 0.75},
                         "num_test_samples": 12, "confusion_matrix": [[1, 3, 0], [0, 2, 2], [1, 0, 3]]},
                train_config={"epochs": 1.0, "lr": 0.001, "batch_size": 4, "command": "python -m vitviz train ..."})
    return checkpoints.save(model, tmp_path / "tiny", meta, dtype=dtype)


@pytest.mark.skipif(not SHIPPED, reason="no shipped checkpoints")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_checkpoint_loads_through_timm_with_identical_logits(path):
    ours, meta = checkpoints.load(path, device="cpu")
    model = timm.create_model(meta["variant"], pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 file -> fp32 model
    torch.testing.assert_close(logits(model), logits(ours), rtol=0, atol=0)
    cfg = timm.data.resolve_data_config({}, model=model)
    assert cfg["input_size"] == (3, meta["img_size"], meta["img_size"])
    assert (list(cfg["mean"]), list(cfg["std"])) == (meta["mean"], meta["std"])
    assert list(model.pretrained_cfg["label_names"]) == meta["classes"]


@pytest.mark.parametrize("dtype", [torch.float16, None])
def test_adapter_reads_the_checkpoint_metadata(tmp_path, dtype):
    path = tiny_checkpoint(tmp_path, dtype)
    ours, meta = checkpoints.load(path, device="cpu")
    model = timm.create_model("vitviz_vit_softmax_32", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert model.num_classes == 3 and model.blocks[0].attn.rope is not None and model.pos_embed is None
    stored = safetensors.torch.load_file(str(path))
    for name, p in model.state_dict().items():  # every tensor exactly the stored one, upcast to the model's dtype
        torch.testing.assert_close(p, stored[name].to(p.dtype), rtol=0, atol=0)
    torch.testing.assert_close(logits(model), logits(ours), rtol=0, atol=0)
    assert model.pretrained_cfg["mean"] == (0.5, 0.4, 0.3)
    # the same file without its JSON: the safetensors header describes it
    Path(path).with_suffix(".json").unlink()
    alone = timm.create_model("vitviz_vit_softmax_32", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    torch.testing.assert_close(logits(alone), logits(ours), rtol=0, atol=0)
    # a new head for other classes: timm drops the stored classifier, keeps the rest
    five = timm.create_model("vitviz_vit_softmax_32", pretrained=True, num_classes=5,
                             pretrained_cfg_overlay=dict(file=str(path)))
    assert five.num_classes == 5
    torch.testing.assert_close(five.blocks[0].attn.qkv.weight, ours.blocks[0].attn.qkv.weight)


def test_adapter_refuses_another_variants_checkpoint(tmp_path):
    path = tiny_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="holds weights of 'vitviz_vit_softmax_32'"):
        timm.create_model("vitviz_vit_performer_32", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_plain_state_dict_file_loads_with_the_callers_arguments(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("vitviz_mixer_32", num_classes=4, embed="conv", **tiny_kwargs("vitviz_mixer_32"))
    safetensors.torch.save_file(source.state_dict(), str(tmp_path / "plain.safetensors"))
    model = timm.create_model("vitviz_mixer_32", pretrained=True, num_classes=4, embed="conv",
                              pretrained_cfg_overlay=dict(file=str(tmp_path / "plain.safetensors"), num_classes=4),
                              **tiny_kwargs("vitviz_mixer_32"))
    torch.testing.assert_close(logits(model), logits(source), rtol=0, atol=0)


def test_pretrained_without_weights_points_to_the_file_overlay():
    with pytest.raises(ValueError, match="pretrained_cfg_overlay=dict\\(file="):
        timm.create_model("vitviz_cvt_32", pretrained=True)


def test_timm_xcit_weights_load_into_the_baseline_through_timm(tmp_path):
    assert timm.models.get_pretrained_cfg("vitviz_xcit_n12_p16_224_linear").hf_hub_id == \
        "timm/xcit_nano_12_p16_224.fb_in1k"
    torch.manual_seed(0)
    reference = timm.create_model("xcit_nano_12_p16_224", img_size=64).eval()  # 64 px: a fast forward
    safetensors.torch.save_file(reference.state_dict(), str(tmp_path / "xcit.safetensors"))
    ours = timm.create_model("vitviz_xcit_n12_p16_224_linear", pretrained=True, img_size=64,
                             pretrained_cfg_overlay=dict(file=str(tmp_path / "xcit.safetensors"))).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_export_hub_round_trips_through_timm_local_dir(tmp_path):
    path = tiny_checkpoint(tmp_path, torch.float16)
    ours, meta = checkpoints.load(path, device="cpu")
    out = tmp_path / "hub" / "tiny-vit"
    assert cli_main(["export-hub", "--checkpoint", str(path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "vitviz_vit_softmax_32" and config["num_classes"] == 3
    assert config["model_args"]["embed"] == "conv" and config["model_args"]["pos"] == "rope2d"
    assert config["label_names"] == ["a", "b", "c"]
    assert config["pretrained_cfg"]["mean"] == [0.5, 0.4, 0.3]
    assert config["pretrained_cfg"]["first_conv"] == "patch_embed.proj.0"

    model = timm.create_model(f"local-dir:{out}", pretrained=True)
    torch.testing.assert_close(logits(model), logits(ours), rtol=0, atol=0)
    cfg = timm.data.resolve_data_config({}, model=model)
    assert (tuple(cfg["mean"]), tuple(cfg["std"])) == ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    # the same folder through the overlay form of timm's local path
    again = timm.create_model("vitviz_vit_softmax_32", pretrained=True, **config["model_args"],
                              pretrained_cfg_overlay=dict(file=str(out), source="local-dir", num_classes=3))
    torch.testing.assert_close(logits(again), logits(ours), rtol=0, atol=0)

    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: timm" in card and "- digits" in card
    assert "| test accuracy | 50.0% |" in card
    assert "| a | 25.0% | 4 |" in card and "| c | 75.0% | 4 |" in card  # per-class table with support
    assert "| lr | 0.001 |" in card and "python -m vitviz train" in card  # recipe
    assert "https://arxiv.org/abs/2107.02239" in card  # paper references
    assert 'timm.create_model("local-dir:' in card


def test_export_hub_of_a_shipped_checkpoint(tmp_path):
    path = Path(__file__).resolve().parents[1] / "checkpoints" / "cvt_32.safetensors"
    if not path.exists():
        pytest.skip("no shipped checkpoints")
    paths = export_hub(path, tmp_path / "cvt_32")
    ours, meta = checkpoints.load(path, device="cpu")
    model = timm.create_model(f"local-dir:{tmp_path / 'cvt_32'}", pretrained=True)
    torch.testing.assert_close(logits(model), logits(ours), rtol=0, atol=0)
    assert safetensors.torch.load_file(str(paths["model.safetensors"]))["head.weight"].dtype == torch.float16
    card = paths["README.md"].read_text()
    assert "https://arxiv.org/abs/2103.15808" in card and "| airplane |" in card
