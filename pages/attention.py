"""Attention: maps per layer and head for one checkpoint and one image; overlays, rollout, XCiT class attention."""
import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.inspect.attention_views import (attention_source, class_attention_heats, group_by_grid, query_heat,
                                            query_index, rollout_heat)
from vitviz.ui import captured, choose_checkpoint, choose_image, show_figure

ensure_app_navigation()
st.title("Attention")
left, right = st.columns([1, 3])
with left:
    path, model, meta = choose_checkpoint(container=st)
    picked = choose_image(meta, key="attn_image")
if picked is None:
    st.stop()
image, caption, true_class = picked
art = captured(path, image, ["attention", "implied_attention", "projected_attention", "class_attention", "grids",
                             "token_mixing"])
probs = art["logits"].softmax(-1)[0]
top = probs.topk(min(3, len(probs)))
with left:
    st.image(image, caption=caption, width=160)
    st.write("Prediction: " + ", ".join(f"**{meta['classes'][i]}** {p:.1%}" for p, i in zip(top.values.tolist(),
                                                                                        top.indices.tolist())))
    if true_class:
        st.caption(f"true class: {true_class}")
for note in art["notes"]:
    right.info(note)

source = attention_source(art)


def token_attention_view():
    key, maps, grids, label = source
    st.subheader(label)
    if key == "projected_attention":
        st.caption("Linformer: rows are tokens, columns the k projected keys; there is no key grid to overlay.")
        show_figure(figures.attention_grid([m[0] for m in maps]), "linformer_maps", key="attn_lin")
        return
    query_choice = st.radio("Query token", ["class token", "centre token"] if grids[-1]["cls"] else ["centre token"],
                            horizontal=True, key="attn_query",
                            help="layers without a class token (CvT's first stages) use the centre token")
    cols = st.columns(2)
    with cols[0]:
        layer_view(maps, grids, query_choice)
    with cols[1]:
        if rollout_heat(maps, grids) is None:
            st.caption("Rollout needs square maps over the same tokens in every layer (not the case here).")
        else:
            rollout_view(maps, grids)
    for i, (layers, group_maps, group_grid) in enumerate(group_by_grid(maps, grids)):
        show_figure(figures.attention_grid([m[0] for m in group_maps], grid=group_grid["k"],
                                           query=query_index(group_grid, query_choice),
                                           titles=[f"layer {n}" for n in layers],
                                           title=f"{query_choice} attention, layers {layers[0]}-{layers[-1]} x heads"),
                    f"attention_grid_{i}", key=f"attn_grid_{i}")


@st.fragment
def layer_view(maps, grids, query_choice):
    layer = st.radio("Layer", list(range(len(maps))), index=len(maps) - 1, horizontal=True, key="attn_layer")
    head = st.selectbox("Head", ["mean"] + list(range(maps[layer].shape[1])), key="attn_head")
    heat = query_heat(maps[layer][0], grids[layer], query_index(grids[layer], query_choice), head)
    show_figure(figures.attention_overlay(image, heat, title=f"layer {layer}, head {head}"), "attention_overlay",
                key="attn_overlay")


@st.fragment
def rollout_view(maps, grids):
    fusion = st.selectbox("Rollout head fusion", ["mean", "max", "min"], key="attn_fusion")
    discard = st.slider("Discard ratio", 0.0, 0.9, 0.0, 0.1, key="attn_discard")
    show_figure(figures.attention_overlay(image, rollout_heat(maps, grids, fusion, discard),
                                          title=f"rollout ({fusion})"), "rollout", key="attn_rollout")


with right:
    if source is not None:
        token_attention_view()
    if "class_attention" in art:
        st.subheader("XCiT class attention (class token -> patches)")
        for block, heats in enumerate(class_attention_heats(art)):
            show_figure(figures.overlay_row(image, heats, title=f"class-attention block {block}"),
                        f"class_attention_{block}", key=f"attn_ca_{block}")
    if "token_mixing" in art:
        st.subheader("Token mixing")
        show_figure(figures.matrix_grid([m[None] for m in art["token_mixing"]], zmid=0.0,
                                        titles=[f"block {i}" for i in range(len(art["token_mixing"]))]),
                    "token_mixing", key="attn_mixing")
