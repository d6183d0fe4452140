"""Registry-wide model tests: every registered variant builds, runs, and trains at a tiny size."""
import pytest
import timm
import torch

import vitviz
from vitviz.layers.qkv_embedding import FullySharedQKV, PartiallySharedQKV, SeparateNonLinearQKV
from tiny import tiny_img_size, tiny_kwargs

VARIANTS = vitviz.list_variants()

REQUIRED = (
    [f"vitviz_xcit_n12_{cfg}_{q}" for cfg in ("p16_224", "p4_32") for q in ("linear", "sne", "psne", "fsne")]
    + [f"vitviz_vit_{a}_32" for a in ("softmax", "performer", "linformer", "nystrom")]
    + ["vitviz_fnet_32", "vitviz_mixer_32", "vitviz_cvt_32", "vitviz_cvt_13_224",
       "vitviz_cvt_nystrom_32", "vitviz_cvt_performer_32"]
)


def test_required_variants_are_registered():
    missing = sorted(set(REQUIRED) - set(VARIANTS))
    assert not missing, f"not registered: {missing}"


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_backward_tiny(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=5, **tiny_kwargs(name))
    size = tiny_img_size(name)
    x = torch.randn(3, 3, size, size)
    logits = model(x)
    assert logits.shape == (3, 5)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), "missing or non-finite gradient"
    assert model.get_classifier().out_features == 5


@pytest.mark.parametrize("name", VARIANTS)
def test_catalog_entry(name):
    info = vitviz.variant_info(name)
    for key in ("family", "paper", "differs", "img_size", "param_count", "baseline"):
        assert info[key], f"{name}: empty {key}"
    assert info["param_count"] > 0


def test_unknown_variant_info_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown vitviz variant"):
        vitviz.variant_info("vitviz_nope")


@pytest.mark.parametrize("config", ["p16_224", "p4_32"])
@pytest.mark.parametrize("qkv", ["sne", "psne", "fsne"])
def test_qkv_variants_within_10_percent_of_linear(config, qkv):
    base = vitviz.param_count(f"vitviz_xcit_n12_{config}_linear")
    count = vitviz.param_count(f"vitviz_xcit_n12_{config}_{qkv}")
    assert abs(count - base) / base <= 0.10, f"{qkv}: {count} vs linear {base}"


def test_xcit_n12_param_count_matches_paper():
    # 3.05M with a 1000-class head [paper]
    assert abs(vitviz.param_count("vitviz_xcit_n12_p16_224_linear") - 3.05e6) < 0.01e6


def test_cvt13_param_count_matches_paper():
    assert abs(vitviz.param_count("vitviz_cvt_13_224") - 20.0e6) < 0.2e6


@pytest.mark.parametrize("img_size", [224, 64])
def test_linear_xcit_is_timm_xcit(img_size):
    torch.manual_seed(0)
    reference = timm.create_model("xcit_nano_12_p16_224", num_classes=7, img_size=img_size).eval()
    for name, p in reference.named_parameters():  # make every weight matter (layer-scale, BN, biases)
        p.data.normal_(0, 0.05) if "gamma" not in name else p.data.fill_(0.5)
    ours = timm.create_model("vitviz_xcit_n12_p16_224_linear", num_classes=7, img_size=img_size).eval()
    result = ours.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_xcit_cifar_config_has_64_tokens_and_swapped_embeddings():
    model = timm.create_model("vitviz_xcit_n12_p4_32_psne", num_classes=10)
    tokens, grid = model.patch_embed(torch.randn(1, 3, 32, 32))
    assert tokens.shape == (1, 64, 128) and grid == (8, 8)
    assert all(isinstance(b.attn.qkv, PartiallySharedQKV) for b in model.blocks)
    assert len(model.blocks) == 12 and model.blocks[0].attn.num_heads == 4


def test_qkv_embedding_in_class_attention_option():
    model = timm.create_model("vitviz_xcit_n12_p4_32_sne", num_classes=3, depth=1, qkv_in_class_attention=True)
    assert all(isinstance(b.attn.qkv, SeparateNonLinearQKV) for b in model.cls_attn_blocks)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("mode", ["concat", "add", "gate"])
def test_fsne_code_modes(mode):
    model = timm.create_model("vitviz_xcit_n12_p4_32_fsne", num_classes=3, depth=2, code_mode=mode)
    emb = model.blocks[0].attn.qkv
    assert isinstance(emb, FullySharedQKV) and emb.code_mode == mode
    assert emb.codes.shape == (3, 128 if mode == "add" else 8)
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert emb.codes.grad is not None and emb.codes.grad.abs().sum() > 0


def test_fsne_concat_equals_linear_on_concatenated_input():
    torch.manual_seed(0)
    emb = FullySharedQKV(16, hidden=24, code_length=8)
    x = torch.randn(2, 5, 16)
    expected = torch.cat([emb.fc2(torch.relu(emb.fc1(torch.cat([x, c.expand(2, 5, 8)], -1)))) for c in emb.codes], -1)
    torch.testing.assert_close(emb(x), expected)


def test_fsne_codes_start_as_distinct_unit_vectors():
    codes = FullySharedQKV(32).codes.detach()
    torch.testing.assert_close(codes @ codes.t(), torch.eye(3), atol=1e-5, rtol=0)


def test_sne_equals_three_separate_mlps():
    torch.manual_seed(0)
    emb = SeparateNonLinearQKV(16, hidden=8)
    x = torch.randn(2, 5, 16)
    parts = []
    for t, w in emb.pathway_weights().items():
        i = "qkv".index(t)
        h = torch.relu(x @ w["fc1"].t() + emb.fc1.bias[i * 8:(i + 1) * 8])
        parts.append(h @ w["fc2"].t() + emb.fc2.bias[i])
    torch.testing.assert_close(emb(x), torch.cat(parts, -1))


def test_psne_pathway_weights_reproduce_the_output_and_share_the_first_layer():
    """pathway_weights() are the matrices the forward uses: q/k/v = fc2_t(ReLU(shared x)). Changing the
    shared first layer moves all three pathways; changing one pathway's second layer moves only that one."""
    torch.manual_seed(0)
    emb = PartiallySharedQKV(16, hidden=12)
    x = torch.randn(2, 5, 16)

    def from_pathway_weights():
        w = emb.pathway_weights()
        h = torch.relu(x @ w["q"]["shared"].t() + emb.shared.bias)
        return [h @ w[t]["fc2"].t() + emb.fc2.bias[i] for i, t in enumerate("qkv")]
    with torch.no_grad():
        torch.testing.assert_close(emb(x), torch.cat(from_pathway_weights(), -1))
        before = emb(x).reshape(2, 5, 3, 16)
        emb.pathway_weights()["k"]["shared"].add_(0.1)  # the shared layer, reached through pathway k
        after_shared = emb(x).reshape(2, 5, 3, 16)
        assert all(not torch.allclose(before[:, :, i], after_shared[:, :, i]) for i in range(3))
        emb.pathway_weights()["v"]["fc2"].add_(0.1)      # v's own second layer
        after_v = emb(x).reshape(2, 5, 3, 16)
        torch.testing.assert_close(after_v[:, :, :2], after_shared[:, :, :2])
        assert not torch.allclose(after_v[:, :, 2], after_shared[:, :, 2])


@pytest.mark.parametrize("embed", ["linear", "conv", "conv_bn"])
@pytest.mark.parametrize("pos", ["learned", "rope1d", "rope2d"])
@pytest.mark.parametrize("attention", ["softmax", "performer", "linformer", "nystrom"])
def test_vix_embed_and_position_options(attention, embed, pos):
    model = timm.create_model(f"vitviz_vit_{attention}_32", num_classes=4, embed=embed, pos=pos,
                              **tiny_kwargs("vitviz_vit_"))
    assert (model.pos_embed is None) == pos.startswith("rope")
    assert (model.blocks[0].attn.rope is not None) == pos.startswith("rope")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_conv_embedding_is_three_3x3_convs():
    model = timm.create_model("vitviz_vit_softmax_32", embed="conv")
    convs = [m for m in model.patch_embed.proj if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (3, 32, (3, 3)), (32, 64, (3, 3)), (64, 128, (3, 3))]


@pytest.mark.parametrize("embed", ["conv", "conv_bn"])
def test_other_families_accept_conv_embedding(embed):
    for name in ("vitviz_fnet_32", "vitviz_mixer_32"):
        model = timm.create_model(name, num_classes=3, embed=embed, **tiny_kwargs(name))
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_vix_default_is_four_blocks_of_width_128():
    model = timm.create_model("vitviz_vit_softmax_32")
    assert len(model.blocks) == 4 and model.embed_dim == 128 and model.blocks[0].attn.num_heads == 4
    assert model.blocks[0].mlp.fc1.out_features == 256


def test_cvt13_follows_the_official_code_and_cifar_config_keeps_ours():
    official = timm.create_model("vitviz_cvt_13_224", img_size=64, depths=(1, 1, 1), dims=(12, 24, 48))
    assert [s.embed.proj.padding for s in official.stages] == [(2, 2), (1, 1), (1, 1)]
    assert [s.blocks[0].attn.kernel.scale for s in official.stages] == pytest.approx([12 ** -0.5, 24 ** -0.5,
                                                                                     48 ** -0.5])
    cifar = timm.create_model("vitviz_cvt_32", depths=(1, 1, 1), dims=(16, 32, 64))
    assert [s.blocks[0].attn.kernel.scale for s in cifar.stages] == pytest.approx([16 ** -0.5, 16 ** -0.5,
                                                                                  16 ** -0.5])
    assert [s.embed.proj.padding for s in cifar.stages] == [(1, 1)] * 3


def test_cvt_grids_and_strided_kv():
    model = timm.create_model("vitviz_cvt_32")
    grids = [(s.grid, s.blocks[0].attn.kv_grid) for s in model.stages]
    assert grids == [((32, 32), (16, 16)), ((16, 16), (8, 8)), ((8, 8), (8, 8))]
    assert [s.cls_token is not None for s in model.stages] == [False, False, True]


def test_pretrained_is_refused_with_a_pointer_to_checkpoints():
    with pytest.raises(ValueError, match="checkpoints.load"):
        timm.create_model("vitviz_vit_softmax_32", pretrained=True)


def test_linformer_rejects_other_token_counts():
    model = timm.create_model("vitviz_vit_linformer_32", num_classes=2, **tiny_kwargs("vitviz_vit_"))
    with pytest.raises(ValueError, match="Linformer was built for 65 tokens"):
        model.blocks[0].attn(torch.randn(1, 17, 32))
