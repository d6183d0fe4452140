"""Q/K/V codes & weights: F-SNE's per-block codes (and their drift from a parent checkpoint), and Q/K/V weight
statistics, spectra, histograms and pathway similarity across XCiT variants."""
from pathlib import Path

import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.checkpoints import CheckpointError
from vitviz.inspect import code_drift
from vitviz.inspect.compare_weights import (STATISTICS, block_count, block_spectra, block_values, similarity_long,
                                            stat_lines)
from vitviz.ui import checkpoints_table, choose_checkpoint, choose_checkpoints, load_model, show_figure, show_table
from vitviz.ui.analysis_cache import (fsne_code_similarity, fsne_codes, parent_checkpoint, pathways,
                                      similarity_table, weight_table)


def is_fsne(row) -> bool:
    return row["variant"].endswith("fsne")


def is_xcit(row) -> bool:
    return "xcit" in row["variant"]


def fsne_section():
    path, _, meta = choose_checkpoint("F-SNE checkpoint", key="cw_fsne", where=is_fsne, container=st)
    codes = fsne_codes(path)
    cols = st.columns(2)
    with cols[0]:
        show_figure(figures.codes_heatmap(codes, title=f"codes c_q, c_k, c_v ({codes.shape[-1]} entries)"),
                    "fsne_codes", key="cw_codes")
    with cols[1]:
        show_figure(figures.code_similarity_grid(fsne_code_similarity(path), cols=4), "fsne_code_similarity",
                    key="cw_code_sim")
    parent = parent_checkpoint(meta, path)
    if not meta.get("parent"):
        st.caption("This checkpoint has no parent (it was not fine-tuned from another), so there is no drift.")
        return
    if parent is None:
        st.caption(f"Its parent `{meta['parent']}` is not in the checkpoint directory; no drift table.")
        return
    try:
        load_model(parent)
        drift = code_drift(fsne_codes(parent), codes)
    except (CheckpointError, ValueError) as exc:
        st.warning(f"Cannot compare with the parent `{Path(parent).stem}`: {exc}")
        return
    st.subheader(f"Code drift from the parent `{Path(parent).stem}`")
    show_table(drift, "fsne_code_drift", key="cw_drift")


ensure_app_navigation()
st.title("Q/K/V codes & weights")
st.header("F-SNE codes")
st.caption("F-SNE computes q, k and v with one shared MLP; a trainable code per block and pathway tells it "
           "which one to produce.")
table, _ = checkpoints_table()
if table.empty or not table.apply(is_fsne, axis=1).any():
    st.info("No F-SNE checkpoint found (a variant whose name ends in `fsne`), so there are no codes to show.")
else:
    fsne_section()

st.header("Q/K/V weights across XCiT variants")
if table.empty or not table.apply(is_xcit, axis=1).any():
    st.info("No XCiT checkpoint found; the Q/K/V embedding variants (linear, SNE, P-SNE, F-SNE) are XCiT's.")
    st.stop()
chosen = choose_checkpoints("XCiT checkpoints", key="cw_checkpoints", min_count=1, max_count=4, where=is_xcit,
                            default=list(table[table.apply(is_xcit, axis=1)]["path"])[:4])
names = {path: Path(path).stem for path, _, _ in chosen}
variants = {Path(path).stem: meta["variant"] for path, _, meta in chosen}
stats = {names[p]: weight_table(p) for p in names}
weights = {names[p]: pathways(p) for p in names}

stat = st.selectbox("Statistic", STATISTICS, key="cw_stat")
lines = stat_lines(stats, stat, variants)
show_figure(figures.stat_by_block(lines, "block", stat, "series", title=f"{stat} of the Q/K/V weights by block"),
            f"qkv_{stat}", key="cw_stat_fig")
st.caption("A layer shared by q, k and v is drawn once, as 'qkv (shared)'.")
with st.expander("Table"):
    show_table(lines, f"qkv_{stat}", key="cw_stat_table")

st.subheader("One block")
cols = st.columns(3)
block = cols[0].selectbox("Block", list(range(block_count(weights))), key="cw_block")
pathway = cols[1].radio("Pathway", ["q", "k", "v"], horizontal=True, key="cw_pathway")
normalize = cols[2].checkbox("Divide by σ₁", value=False, key="cw_normalize")
left, right = st.columns(2)
with left:
    show_figure(figures.spectrum_plot(block_spectra(weights, block, pathway), normalize=normalize,
                                      title=f"singular values, block {block}, {pathway}"),
                f"spectrum_block{block}_{pathway}", key="cw_spectrum")
with right:
    show_figure(figures.histogram_overlay(block_values(weights, block, pathway), density=True,
                                          title=f"weights, block {block}, {pathway}", x_title="weight"),
                f"histogram_block{block}_{pathway}", key="cw_histogram")

st.subheader("How alike are the pathways?")
st.caption("Cosine similarity of the flattened q, k and v weights; cosine_unshared leaves out shared layers "
           "(none are left for F-SNE, so it is empty there).")
show_table(similarity_long({names[p]: similarity_table(p) for p in names}, variants), "qkv_pathway_similarity",
           key="cw_similarity")
