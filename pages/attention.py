"""Attention: maps per layer and head for one checkpoint and one image; overlays, rollout, XCiT class attention,
token mixing of attention-free models, and how far efficient attention is from softmax."""
import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.inspect.attention_views import (attention_source, class_attention_heats, explorer_heats, group_by_grid,
                                            operator_share_table, query_index, rollout_refusal, seq_pool_heat,
                                            signed_caption, signed_summary)
from vitviz.explain.sweeps import ROLLOUT_DISCARDS, ROLLOUT_FUSIONS
from vitviz.ui import captured, choose_checkpoint, choose_image, show_figure, show_table
from vitviz.ui.explain_views import rollout_all
from vitviz.ui.fidelity import BUDGETS, fidelity_of, has_efficient_attention

ensure_app_navigation()
st.title("Attention")
left, right = st.columns([1, 3])
with left:
    path, model, meta = choose_checkpoint(container=st)
    picked = choose_image(meta, key="attn_image")
if picked is None:
    st.stop()
image, caption, true_class = picked
art = captured(path, image, ["attention", "implied_attention", "operator_parts", "operator_shares",
                             "projected_attention", "class_attention", "grids", "token_mixing", "fourier_mixing",
                             "seq_pool"])
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


def choose_part(maps):
    """The exact operator, or one of its parts (Nystromformer: product, conv band) with its share of the output."""
    parts = art.get("operator_parts") or []
    if len(parts) != len(maps) or len(parts[0]) < 2:
        return maps, "exact operator"
    st.caption("The exact operator is the sum of its parts; each part's contribution, as |part · V| / |output| "
               "per layer (head mean):")
    show_table(operator_share_table(art), "operator_shares", key="attn_shares")
    names = ["exact operator (sum)"] + list(parts[0])
    part = st.radio("Show", names, horizontal=True, key="attn_part")
    return (maps, "exact operator") if part == names[0] else ([p[part] for p in parts], f"{part} part only")


def token_attention_view():
    key, maps, grids, label = source
    st.subheader(label)
    if key == "projected_attention":
        st.caption("Linformer: rows are tokens, columns the k projected keys; there is no key grid to overlay.")
        show_figure(figures.attention_grid([m[0] for m in maps]), "linformer_maps", key="attn_lin")
        return
    maps, what = choose_part(maps)
    signed = signed_summary(maps)
    if signed is not None:
        st.warning(signed_caption(signed))
    heats, queries, columns = explorer_heats(maps, grids)
    st.caption("Drag the layer slider under the figure: every layer, head and query token is already in the "
               "browser, so switching is instant. Each cell is one key token; hover for its attention.")
    show_figure(figures.attention_explorer(image, heats, row_labels=queries, col_labels=columns,
                                           signed=signed is not None,
                                           title=f"query attention over the keys ({what})"),
                "attention_explorer", key="attn_explorer")
    refusal = rollout_refusal(maps, grids)
    if refusal is None:
        rollout_view(maps, grids, what)
    else:
        st.caption(refusal)
    query_choice = "class token"  # layers without one (CvT's first stages) use the centre token
    for i, (layers, group_maps, group_grid) in enumerate(group_by_grid(maps, grids)):
        shown = "class token" if group_grid["cls"] else "centre token"
        show_figure(figures.attention_grid([m[0] for m in group_maps], grid=group_grid["k"],
                                           query=query_index(group_grid, query_choice),
                                           titles=[f"layer {n}" for n in layers],
                                           title=f"{shown} attention ({what}), layers {layers[0]}-{layers[-1]}"
                                                 " x heads"),
                    f"attention_grid_{i}", key=f"attn_grid_{i}")


def rollout_view(maps, grids, what):
    """Rollout for every head fusion (side by side) and discard ratio (the slider), all in the browser."""
    pool = None if grids[0]["cls"] else art.get("seq_pool")  # CCT: read at its sequence pooling, w @ R
    heats = rollout_all(path, image, f"{source[0]}: {what}", maps, grids, pool)
    read = "class token" if grids[0]["cls"] else "sequence pooling (w @ R)" if pool is not None else "query mean"
    st.caption("Attention rollout (Abnar & Zuidema 2020) read at the " + read + ": heads fused by their mean, "
               "max or min (side by side); the slider discards the lowest share of each fused map before the "
               "residual is added. Every setting is already in the figure, so switching is instant.")
    show_figure(figures.attention_explorer(image, [[row] for row in heats], row_labels=[read],
                                           col_labels=[f"{f} over heads" for f in ROLLOUT_FUSIONS],
                                           layer_labels=[f"{d:.1f}" for d in ROLLOUT_DISCARDS],
                                           layer_name="discard", value_name="rollout", active=0,
                                           title=f"attention rollout ({what}); slider: discard ratio"),
                "rollout", key="attn_rollout")


def token_mixing_view():
    if "token_mixing" in art:
        mixing = art["token_mixing"]
        st.subheader("Token-mixing MLP, first-layer weights W1 (hidden units x tokens)")
        st.caption("Mixer mixes tokens by W2 GELU(W1 X + b1) + b2 along the token axis; it is nonlinear, so no "
                   "N x N map exists. Rows: hidden units; columns: tokens (row-major patch grid).")
        show_figure(figures.matrix_grid([m[None] for m in mixing], zmid=0.0, panel_px=180,
                                        titles=[f"block {i}: W1 {tuple(m.shape)}" for i, m in enumerate(mixing)]),
                    "token_mixing", key="attn_mixing")
    if "fourier_mixing" in art:
        fourier = art["fourier_mixing"]
        st.subheader("Fourier mixing: Re(FFT_tokens(FFT_channels(X))) = C_N X C_C - S_N X S_C")
        st.caption("The same fixed operator in every block, exactly: both terms carry comparable weight. "
                   "C and S are the cosine and sine matrices of the DFT, F = C - iS.")
        n, c = fourier["tokens"].shape[-1], fourier["channels"].shape[-1]
        show_figure(figures.matrix_grid(fourier["tokens"][None], zmid=0.0, panel_px=260,
                                        titles=[f"C_N (cos, {n} tokens)", f"S_N (sin, {n} tokens)"]),
                    "fourier_tokens", key="attn_fourier_tokens")
        show_figure(figures.matrix_grid(fourier["channels"][None], zmid=0.0, panel_px=260,
                                        titles=[f"C_C (cos, {c} channels)", f"S_C (sin, {c} channels)"]),
                    "fourier_channels", key="attn_fourier_channels")


@st.fragment
def fidelity_view():
    st.caption("For each efficient-attention layer: the softmax map of the same q and k, how far the layer's exact "
               "operator is from it (relative Frobenius norm, map and output), and how that distance changes as "
               f"the budget grows ({BUDGETS[0]}-{BUDGETS[-1]} random features or landmarks).")
    if not st.toggle("Compute", key="attn_fidelity"):
        return
    with st.spinner(f"Computing softmax maps of the same q and k per layer, and the approximation errors at "
                    f"{', '.join(map(str, BUDGETS))} features / landmarks ..."):
        result = fidelity_of(path, image)
    for note in result.notes:
        st.caption(note)
    if result.layers.empty:
        return
    show_table(result.layers, "fidelity_layers", key="attn_fidelity_layers")
    if not result.sweep.empty:
        sweep = result.sweep.assign(series=lambda d: "layer " + d["layer"].astype(str) + " " + d["budget_name"])
        show_figure(figures.efficiency_curves(sweep, x="budget", y="output_error", color="series",
                                              title="output error vs softmax as the budget grows",
                                              x_title="features / landmarks", y_title="|E v - S v| / |S v|"),
                    "fidelity_sweep", key="attn_fidelity_sweep")
    layer = st.selectbox("Difference map of layer", list(range(len(result.differences))), key="attn_fidelity_layer")
    show_figure(figures.attention_grid([result.differences[layer][None]], signed=True, titles=[f"layer {layer}"],
                                       panel_px=360, title="exact operator - softmax (head mean; rows: queries)"),
                "fidelity_difference", key="attn_fidelity_diff")


with right:
    if source is not None:
        token_attention_view()
    if "class_attention" in art:
        st.subheader("XCiT class attention (class token -> patches)")
        blocks = class_attention_heats(art)
        columns = list(blocks[0])
        show_figure(figures.attention_explorer(image, [[[b[c] for c in columns]] for b in blocks],
                                               row_labels=["class token"], col_labels=columns, layer_name="block",
                                               title="class attention per class-attention block (slider)"),
                    "class_attention", key="attn_class_attention")
    if "seq_pool" in art:
        st.subheader("Sequence pooling (CCT has no class token)")
        st.caption("The head reads sum_i w_i x_i of the last layer's tokens, w = softmax over tokens of a linear "
                   "score: these weights w (summing to 1) on the token grid are what the head looks at. Rollout "
                   "is read at this pooling (w @ R).")
        show_figure(figures.attention_overlay(image, seq_pool_heat(art), title="sequence-pooling weights"),
                    "seq_pool", key="attn_seq_pool")
    token_mixing_view()
    if has_efficient_attention(model):
        with st.expander("How close is this efficient attention to softmax attention?"):
            fidelity_view()

# Gradient-weighted relevance (Chefer et al. 2021), for a selectable class: a self-contained fragment.
from vitviz.ui.explain_views import relevance_section  # noqa: E402

with right:
    relevance_section(path, image, meta)
