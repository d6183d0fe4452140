"""timm's model contract, checked for every registered vitviz variant (what timm's own test suite
checks for its models): a registered pretrained config that describes the input, forward at the
config's input size, backward, classifier / first conv names, forward_features / forward_head /
reset_classifier, gradient checkpointing, in_chans, forward_intermediates and features_only.
Models are built at the tiny widths of tests/tiny.py; the input size is the config's."""
import pytest
import timm
import torch
import torch.utils.checkpoint
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import get_model_traits

import vitviz
from vitviz.data import DATASETS
from vitviz.models import CATALOG
from tiny import tiny_kwargs

VARIANTS = vitviz.list_variants()
# timm's own LeViT and PiT report nominal reductions: LeViT subsamples keeping the last row ((r - 1) // 2 + 1:
# 224 px -> 14, 7, 4 at reductions 16, 32, 64) and PiT's overlapping stem (kernel 16, stride 8, no padding)
# gives 27 tokens at 224 px, reduction 8; their grids are within one token of size / reduction
NOMINAL_REDUCTION = ("vitviz_levit_", "vitviz_pit_")
CIFAR10 = DATASETS["cifar10"]


def build(name: str, **kwargs) -> torch.nn.Module:
    """The variant at its tiny width and its config's input size."""
    args = tiny_kwargs(name)
    args.pop("img_size", None)
    torch.manual_seed(0)
    return timm.create_model(name, **{**args, **kwargs})


def cfg_input(name: str, batch: int = 2, in_chans: int = 3) -> torch.Tensor:
    size = timm.models.get_pretrained_cfg(name).input_size
    return torch.randn(batch, in_chans, *size[1:])


@pytest.mark.parametrize("name", VARIANTS)
def test_pretrained_cfg_describes_the_input(name):
    cfg = timm.models.get_pretrained_cfg(name)
    assert cfg is not None and cfg.architecture == name
    info = CATALOG[name]
    assert cfg.input_size == (3, info.img_size, info.img_size)
    assert cfg.num_classes == info.default_classes
    if info.img_size == 32:
        assert (cfg.mean, cfg.std) == (CIFAR10.mean, CIFAR10.std)
        assert cfg.crop_pct == 1.0
    else:
        assert (cfg.mean, cfg.std) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    assert cfg.interpolation in ("bilinear", "bicubic")
    assert cfg.classifier and cfg.first_conv and cfg.license
    arxiv = info.paper.split("arXiv ")[1].split(";")[0].split(")")[0]  # the catalog's own paper
    assert f"arXiv:{arxiv}" in cfg.paper_ids and cfg.paper_name


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_backward_features_head_at_cfg_input_size(name):
    model = build(name, num_classes=7)
    cfg = model.pretrained_cfg
    data = timm.data.resolve_data_config({}, model=model)
    assert data["input_size"] == tuple(cfg["input_size"])
    assert (tuple(data["mean"]), tuple(data["std"])) == (tuple(cfg["mean"]), tuple(cfg["std"]))
    assert (data["crop_pct"], data["interpolation"]) == (cfg["crop_pct"], cfg["interpolation"])
    x = cfg_input(name)

    logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    logits.logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"

    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)
        model.reset_classifier(5)
        assert model(x).shape == (2, 5) and model.num_classes == 5


@pytest.mark.parametrize("name", VARIANTS)
def test_classifier_first_conv_and_in_chans(name):
    for in_chans in (3, 1):
        model = build(name, in_chans=in_chans)
        state = model.state_dict()
        classifier = model.pretrained_cfg["classifier"]
        assert f"{classifier}.weight" in state and model.get_classifier() is model.get_submodule(classifier)
        assert state[f"{classifier}.weight"].shape[0] == model.pretrained_cfg["num_classes"]
        for first_conv in (model.pretrained_cfg["first_conv"], get_model_traits(model)["first_conv"]):
            assert state[f"{first_conv}.weight"].shape[1] == in_chans
    with torch.no_grad():
        assert torch.isfinite(model.eval()(cfg_input(name, in_chans=1))).all()


@pytest.mark.parametrize("embed", ["conv", "conv_bn"])
@pytest.mark.parametrize("name", ["vitviz_vit_softmax_32", "vitviz_fnet_32", "vitviz_mixer_32"])
def test_conv_stem_declares_its_first_conv(name, embed):
    model = build(name, embed=embed, in_chans=1)
    first_conv = get_model_traits(model)["first_conv"]
    assert first_conv != model.pretrained_cfg["first_conv"]
    assert model.state_dict()[f"{first_conv}.weight"].shape[1] == 1


@pytest.mark.parametrize("name", VARIANTS)
def test_grad_checkpointing_checkpoints_and_changes_nothing(name, monkeypatch):
    model = build(name).eval()  # eval: BN running statistics stay put between the two passes
    x = cfg_input(name)

    def run():
        model.zero_grad()
        out = model(x)
        out.square().sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    reference, reference_grads = run()
    calls = []
    original = torch.utils.checkpoint.checkpoint

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", spy)
    model.set_grad_checkpointing(True)
    out, grads = run()
    assert calls, "set_grad_checkpointing(True) did not checkpoint anything"
    torch.testing.assert_close(out, reference)
    for n, g in grads.items():
        torch.testing.assert_close(g, reference_grads[n], msg=lambda m: f"{n}: {m}")
    model.set_grad_checkpointing(False)
    calls.clear()
    model(x)
    assert not calls


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_intermediates_and_features_only(name):
    model = build(name).eval()
    x = cfg_input(name)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        assert len(intermediates) == len(model.feature_info)
        size = x.shape[-1]
        for feature, info in zip(intermediates, model.feature_info):
            assert feature.shape[:2] == (2, info["num_chs"])
            if name.startswith(NOMINAL_REDUCTION):
                assert abs(feature.shape[-1] - size / info["reduction"]) <= 1
            else:
                assert feature.shape[-1] == size // info["reduction"]
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        torch.testing.assert_close(last_two, intermediates[-2:])

        extractor = build(name, features_only=True, out_indices=2).eval()
        features = extractor(x)
    assert [f.shape for f in features] == [f.shape for f in intermediates[-2:]]
