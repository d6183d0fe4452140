"""Cross-covariance: XCiT's d_h x d_h attention over channels, per layer and head, with its temperatures."""
import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.inspect.cross_covariance import TAU_NOTE, paper_tau, temperature_table, xca_matrices
from vitviz.ui import captured, checkpoints_table, choose_checkpoint, choose_image, show_figure, show_table


def is_xcit(row) -> bool:
    return "xcit" in row["variant"]


ensure_app_navigation()
st.title("Cross-covariance attention")
st.caption("XCiT attends over channels instead of tokens: per head a d_h x d_h softmax map of the "
           "cross-covariance of L2-normalised queries and keys, sharpened by a learned temperature. " + TAU_NOTE)
table, _ = checkpoints_table()
if table.empty or not table.apply(is_xcit, axis=1).any():
    st.info("No XCiT checkpoint found; cross-covariance attention exists only in XCiT variants. "
            "Train one with `python -m vitviz train` (e.g. an `vitviz_xcit_*` variant).")
    st.stop()

left, right = st.columns([1, 3])
with left:
    path, model, meta = choose_checkpoint(key="xcc_checkpoint", where=is_xcit, container=st)
    picked = choose_image(meta, key="xcc_image")
if picked is None:
    st.stop()
image, caption, _ = picked
with left:
    st.image(image, caption=caption, width=160)
art = captured(path, image, ["xca", "temperatures"])
matrices = xca_matrices(art)
temperatures = paper_tau(art["temperatures"])
layers, heads = matrices.shape[:2]


def layer_view():
    st.subheader("One layer")
    st.caption("Drag the layer slider under the figure: every layer is already in the browser, so switching "
               "is instant.")
    shared = st.checkbox("Shared colour scale (over all layers and heads)", value=True, key="xcc_shared")
    show_figure(figures.matrix_explorer(matrices, temperatures=temperatures, shared_scale=shared,
                                        title=f"{heads} heads, {matrices.shape[-1]} x {matrices.shape[-1]} "
                                              "channels"),
                "xca_layers", key="xcc_layer_fig")


with right:
    layer_view()
    st.subheader("All layers")
    average = st.checkbox("Average over heads", value=False, key="xcc_average")
    overview = xca_matrices(art, average_heads=True) if average else matrices
    st.caption("Every layer and head at once, on one shared colour scale (hover: layer L, row r, head h, column "
               "c). Their temperatures τ are in the table below and in the one-layer figure's titles.")
    show_figure(figures.matrix_mosaic(overview, col_labels=["head mean"] if average else None,
                                      title="layers x " + ("head mean" if average else "heads") + " (shared scale)"),
                "xca_overview", key="xcc_overview")
    st.subheader("Temperatures τ (paper convention, τ = 1/t)")
    show_table(temperature_table(temperatures), "xca_temperatures", key="xcc_temperatures")
