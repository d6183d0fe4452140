"""The chain from map to screen: the values plotted on the Attention, Compare and Cross-covariance pages
equal an independent recomputation from the model's own q and k.

Each reference loads the same tiny checkpoint with `vitviz.checkpoints.load`, runs the model with its own
forward hooks on the inputs of the attention computation (the attention kernel's q and k; the
class-attention block's q / k projections; XCA's qkv projection) and computes the maps here:
softmax(q k^T / sqrt(d)) for token and class attention, softmax(t * normalize(q) normalize(k)^T) for XCA.
`capture()` and the views in `vitviz.inspect` are not used. The page's figures are read from the JSON spec
that Streamlit sends to the browser (plotly encodes arrays as base64 "bdata"), including the layer slider
that switches layers in the browser.
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitviz import checkpoints
from vitviz.data import load_dataset

from app_fixtures import run_page, spec_array

ATOL = 1e-5


# --------------------------------------------------------------------------- reading the page



def figures_on(at) -> list[dict]:
    assert not at.exception, [e.value for e in at.exception]
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def figure_keyed(at, key: str) -> dict:
    """The plotly chart the page shows under widget key `key` (its element id ends in "-<key>")."""
    assert not at.exception, [e.value for e in at.exception]
    found = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, f"{len(found)} charts with key {key!r}"
    return found[0]


def traces_named(at, pattern: str) -> tuple[dict, dict[tuple, dict]]:
    """The one figure whose traces' names match `pattern` (a regex), and {groups: trace} for them."""
    found = []
    for fig in figures_on(at):
        matched = {}
        for trace in fig["data"]:
            m = re.fullmatch(pattern, str(trace.get("name")))
            if m:
                matched[m.groups()] = trace
        if matched:
            found.append((fig, matched))
    assert len(found) == 1, f"{len(found)} figures with traces named {pattern!r}"
    return found[0]


def visible_after_step(fig: dict, step: int) -> list[int]:
    """Indices of the traces shown after the browser applies slider step `step` (the client-side switch:
    a restyle of opacity and hover; hidden traces get opacity 0 and no hover)."""
    args = fig["layout"]["sliders"][0]["steps"][step]["args"][0]
    opacity = args["opacity"]
    assert len(opacity) == len(fig["data"]) == len(args["hoverinfo"])
    return [i for i, op in enumerate(opacity) if op > 0]


def visible_now(fig: dict) -> list[int]:
    return [i for i, t in enumerate(fig["data"]) if t.get("opacity", 1) > 0]


def select_checkpoint(at, key: str, stem: str):
    box = at.selectbox(key=key)
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith(stem))).run()
    assert not at.exception, [e.value for e in at.exception]


def use_digit(at, key: str):
    at.radio(key=f"{key}_source").set_value("Digits").run()
    assert not at.exception, [e.value for e in at.exception]


# --------------------------------------------------------------------------- independent references

def digit(index: int = 0) -> np.ndarray:
    return load_dataset("digits", "test", img_size=32).images[index]


def model_and_input(directory, stem, image):
    model, meta = checkpoints.load(directory / f"{stem}.safetensors", device="cpu")
    model.eval()
    x = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)[None].double() / 255
    x = (x - torch.tensor(meta["mean"]).double().view(1, 3, 1, 1)) / torch.tensor(meta["std"]).double().view(1, 3, 1, 1)
    return model.double(), x, meta


def run_with_hooks(model, x, hooks):
    handles = [module.register_forward_hook(fn, with_kwargs=kw) if not pre
               else module.register_forward_pre_hook(fn) for module, fn, pre, kw in hooks]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()


def token_attention_reference(directory, stem, image) -> list[torch.Tensor]:
    """Per ViT block: softmax(q k^T / sqrt(d)) of the q, k its attention kernel receives, (heads, N, N)."""
    model, x, _ = model_and_input(directory, stem, image)
    recorded = []

    def on_kernel(module, args):
        q, k = args[0], args[1]
        recorded.append(torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)[0])

    run_with_hooks(model, x, [(blk.attn.kernel, on_kernel, True, False) for blk in model.blocks])
    assert len(recorded) == len(model.blocks)
    return recorded


def class_attention_reference(directory, stem, image) -> list[torch.Tensor]:
    """Per class-attention block: the class token's softmax(q_cls k^T / sqrt(d)) over [cls, patches],
    from the block's q and k projections, (heads, N + 1)."""
    model, x, _ = model_and_input(directory, stem, image)
    records, hooks = [], []
    for blk in model.cls_attn_blocks:
        attn, rec = blk.attn, {}
        records.append(rec)
        heads = attn.num_heads
        if hasattr(attn, "q"):  # timm's ClassAttn: separate q and k Linears
            def on_q(m, a, out, rec=rec, h=heads):
                rec["q"] = out.reshape(out.shape[0], -1, h, out.shape[-1] // h).transpose(1, 2)[:, :, :1]

            def on_k(m, a, out, rec=rec, h=heads):
                rec["k"] = out.reshape(out.shape[0], out.shape[1], h, out.shape[-1] // h).transpose(1, 2)
            hooks += [(attn.q, on_q, False, False), (attn.k, on_k, False, False)]
        else:  # a Q/K/V embedding module: (B, N, 3C) laid out [q ; k ; v]
            def on_qkv(m, a, out, rec=rec, h=heads):
                B, N, C = out.shape[0], out.shape[1], out.shape[2] // 3
                rec["q"] = out[..., :C].reshape(B, N, h, C // h).transpose(1, 2)[:, :, :1]
                rec["k"] = out[..., C:2 * C].reshape(B, N, h, C // h).transpose(1, 2)
            hooks.append((attn.qkv, on_qkv, False, False))
    run_with_hooks(model, x, hooks)
    out = []
    for rec in records:
        q, k = rec["q"], rec["k"]
        out.append(torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)[0, :, 0])
    return out


def xca_reference(directory, stem, image) -> list[torch.Tensor]:
    """Per XCiT block: softmax(t * normalize(q) normalize(k)^T) over channels, (heads, d, d), from the
    block's qkv projection (q, k as (heads, d, N), L2-normalised over tokens) and its learned t."""
    model, x, _ = model_and_input(directory, stem, image)
    recorded = []

    def hook_for(attn):
        def on_qkv(m, a, out):
            B, N, C3 = out.shape
            h = attn.num_heads
            qkv = out.reshape(B, N, 3, h, C3 // 3 // h).permute(2, 0, 3, 4, 1)
            q, k = F.normalize(qkv[0], dim=-1), F.normalize(qkv[1], dim=-1)
            recorded.append(torch.softmax(q @ k.transpose(-2, -1) * attn.temperature, -1)[0])
        return on_qkv

    run_with_hooks(model, x, [(blk.attn.qkv, hook_for(blk.attn), False, False) for blk in model.blocks])
    return recorded


def on_grid(row: torch.Tensor, side: int) -> np.ndarray:
    """A row over [class token, patches] -> the patches (class-token column dropped) on the side x side grid."""
    assert row.shape[-1] == side * side + 1
    return row[..., 1:].reshape(*row.shape[:-1], side, side).numpy()


def shown_like_overlay(heat: np.ndarray, size: int) -> np.ndarray:
    """How an image overlay draws a token heat: bilinear to the image size, then min-max to [0, 1] (which
    magnifies float32 rounding by 1 / range: hence the looser tolerance where it is used)."""
    up = F.interpolate(torch.from_numpy(heat)[None, None].double(), size=(size, size), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    return (up - up.min()) / (up.max() - up.min())


# --------------------------------------------------------------------------- Attention page


def open_attention(stem):
    at = run_page("attention")
    select_checkpoint(at, "checkpoint", stem)
    use_digit(at, "attn_image")
    return at


def test_attention_page_plots_each_layer_head_and_query_of_the_model(app_env):
    reference = token_attention_reference(app_env, "tiny_vit_softmax", digit(0))
    side = 8  # 32 px, patch 4
    at = open_attention("tiny_vit_softmax")
    fig, traces = traces_named(at, r"(class token|centre token) · layer (\d+) · (head \d+|mean)")
    n_layers, n_heads = len(reference), reference[0].shape[0]
    assert len(traces) == 2 * n_layers * (n_heads + 1)
    centre = 1 + (side // 2) * side + side // 2  # token 0 is the class token
    for (query, layer, head), trace in traces.items():
        attn = reference[int(layer)]
        row = attn[:, 0 if query == "class token" else centre]
        expected = on_grid(row.mean(0) if head == "mean" else row[int(head.split()[1])], side)
        np.testing.assert_allclose(spec_array(trace["z"]), expected, atol=ATOL, err_msg=f"{query} {layer} {head}")
        # the heat is placed over the image one cell per patch: 4 px cells centred on the patches
        assert (trace["x0"], trace["dx"], trace["y0"], trace["dy"]) == (1.5, 4.0, 1.5, 4.0)
    image = next(t for t in fig["data"] if t["type"] == "image")
    np.testing.assert_array_equal(spec_array(image["z"]), digit(0))


def test_attention_layer_slider_switches_to_that_layers_values(app_env):
    """The client-side layer switch: slider step L makes exactly layer L's maps visible, their plotted values
    are layer L's, and they differ between layers (values, not titles)."""
    reference = token_attention_reference(app_env, "tiny_vit_softmax", digit(0))
    at = open_attention("tiny_vit_softmax")
    fig, _ = traces_named(at, r"(class token|centre token) · layer (\d+) · (head \d+|mean)")
    slider = fig["layout"]["sliders"][0]
    n_layers = len(reference)
    assert len(slider["steps"]) == n_layers and slider["active"] == n_layers - 1
    assert visible_now(fig) == visible_after_step(fig, n_layers - 1)  # what is shown first matches the slider
    shown = {}
    for layer in range(n_layers):
        heats = {}
        for i in visible_after_step(fig, layer):
            trace = fig["data"][i]
            if trace["type"] != "heatmap":
                continue
            m = re.fullmatch(r"class token · layer (\d+) · (head \d+|mean)", trace["name"])
            if m and m.group(2) == "mean":
                heats[int(m.group(1))] = spec_array(trace["z"])
        assert list(heats) == [layer], f"step {layer} shows class-token maps of layers {list(heats)}"
        np.testing.assert_allclose(heats[layer], on_grid(reference[layer][:, 0].mean(0), 8), atol=ATOL)
        shown[layer] = heats[layer]
    # changing the layer changes the plotted values, by more than the tolerance used above
    assert not np.allclose(shown[0], shown[n_layers - 1], atol=10 * ATOL)


def test_attention_grid_overview_plots_the_class_token_rows(app_env):
    reference = token_attention_reference(app_env, "tiny_vit_softmax", digit(0))
    at = open_attention("tiny_vit_softmax")
    _, traces = traces_named(at, r"layer (\d+) · h(\d+)")
    assert len(traces) == len(reference) * reference[0].shape[0]
    for (layer, head), trace in traces.items():
        np.testing.assert_allclose(spec_array(trace["z"]), on_grid(reference[int(layer)][int(head), 0], 8), atol=ATOL)


def test_attention_page_class_attention_is_the_class_tokens_softmax(app_env):
    reference = class_attention_reference(app_env, "tiny_xcit_linear", digit(0))
    at = open_attention("tiny_xcit_linear")
    fig, traces = traces_named(at, r"class token · block (\d+) · (head \d+|mean)")
    heads = reference[0].shape[0]
    assert len(traces) == len(reference) * (heads + 1)
    for (block, head), trace in traces.items():
        row = reference[int(block)]
        # class-token column dropped, every patch kept (the last one included)
        expected = on_grid(row.mean(0) if head == "mean" else row[int(head.split()[1])], 8)
        np.testing.assert_allclose(spec_array(trace["z"]), expected, atol=ATOL, err_msg=f"block {block} {head}")
    for block in range(len(reference)):
        names = [fig["data"][i]["name"] for i in visible_after_step(fig, block) if fig["data"][i]["type"] == "heatmap"]
        assert names and all(f"block {block} ·" in n for n in names)


# --------------------------------------------------------------------------- Cross-covariance page


def test_cross_covariance_page_plots_the_xca_softmax(app_env):
    reference = xca_reference(app_env, "tiny_xcit_linear", digit(0))
    at = run_page("cross_covariance")
    select_checkpoint(at, "xcc_checkpoint", "tiny_xcit_linear")
    use_digit(at, "xcc_image")
    fig, traces = traces_named(at, r"layer (\d+) · head (\d+)")
    assert len(traces) == len(reference) * reference[0].shape[0]
    for (layer, head), trace in traces.items():
        np.testing.assert_allclose(spec_array(trace["z"]), reference[int(layer)][int(head)].numpy(), atol=ATOL,
                                   err_msg=f"layer {layer} head {head}")
    for layer in range(len(reference)):
        names = [fig["data"][i]["name"] for i in visible_after_step(fig, layer) if fig["data"][i]["type"] == "heatmap"]
        assert names == [f"layer {layer} · head {h}" for h in range(reference[0].shape[0])]
    assert not np.allclose(reference[0], reference[-1], atol=10 * ATOL)  # layers are told apart
    # the overview of all layers (one heatmap, a tile per layer and head) holds the same maps
    import plotly.graph_objects as go
    from vitviz.figures import mosaic_tiles
    overview = figure_keyed(at, "xcc_overview")
    trace = dict(overview["data"][0], z=spec_array(overview["data"][0]["z"]))
    tiles = mosaic_tiles(go.Figure(data=[trace]))
    assert tiles.shape[:2] == (len(reference), reference[0].shape[0])
    for layer in range(len(reference)):
        np.testing.assert_allclose(tiles[layer], reference[layer].numpy(), atol=ATOL)


# --------------------------------------------------------------------------- Compare page


@pytest.mark.parametrize("view", ["last-layer attention (class token)", "attention rollout / class attention"])
def test_compare_page_plots_each_checkpoints_own_map(app_env, view):
    stems = ("tiny_vit_softmax", "tiny_xcit_linear")
    vit = token_attention_reference(app_env, stems[0], digit(0))
    xcit = class_attention_reference(app_env, stems[1], digit(0))
    expected = {stems[1]: on_grid(torch.stack(xcit).mean((0, 1)), 8) if view.startswith("attention rollout")
                else on_grid(xcit[-1].mean(0), 8)}
    if view.startswith("last-layer"):
        expected[stems[0]] = on_grid(vit[-1][:, 0].mean(0), 8)

    at = run_page("compare")
    use_digit(at, "cmp_image")
    box = at.multiselect(key="cmp_checkpoints")
    box.set_value([next(o for o in box.options if o.startswith(s)) for s in stems]).run()
    at.radio(key="cmp_view").set_value(view).run()
    for i, stem in enumerate(stems):
        fig = figure_keyed(at, f"cmp_fig_{i}")
        assert fig["layout"]["title"]["text"] == stem
        if stem not in expected:
            continue
        heat = next(t for t in fig["data"] if t["type"] == "heatmap")
        np.testing.assert_allclose(spec_array(heat["z"]), shown_like_overlay(expected[stem], 32), atol=1e-4,
                                   err_msg=f"{stem}: {view}")
