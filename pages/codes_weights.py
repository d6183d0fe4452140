"""Q/K/V codes & weights: how alike the q, k and v pathways are in what they compute (CKA on real images) across
XCiT variants, how much weight they share, the Q/K/V weight statistics, drift after fine-tuning, and F-SNE's
codes as the network sees them."""
from pathlib import Path

import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.checkpoints import CheckpointError
from vitviz.inspect import code_drift
from vitviz.compare.pathways import DEFAULT_PROBE_IMAGES
from vitviz.compare.side_by_side import (STATISTIC_HELP, STATISTICS, block_count, block_spectra, block_values,
                                            cka_at_block, cka_long, cka_summary, overlap_long, stat_lines)
from vitviz.ui import checkpoints_table, choose_checkpoint, choose_checkpoints, load_model, show_figure, show_table
from vitviz.ui.analysis_cache import (drift_table, fsne_code_contributions, fsne_code_similarity, fsne_codes,
                                      fsne_contribution_similarity, overlap_table, parent_checkpoint,
                                      pathway_similarity, pathways, weight_table)
from vitviz.ui.on_demand import asked_for

IMAGE_COUNTS = (32, 64, 128, 256, 512, 1000)
DEFAULT_IMAGES = DEFAULT_PROBE_IMAGES


def is_fsne(row) -> bool:
    return row["variant"].endswith("fsne")


def is_xcit(row) -> bool:
    return "xcit" in row["variant"]


def images_note(sources: dict) -> str:
    if len(set(sources.values())) == 1:
        return f"{next(iter(sources.values()))} for every checkpoint"
    return "; ".join(f"{name}: {source}" for name, source in sources.items())


TABS = ("Pathway similarity (CKA)", "Q/K/V weights", "F-SNE codes")


def stat_help() -> str:
    return "  \n".join(f"**{name}** — {text}" for name, text in STATISTIC_HELP.items())


# --------------------------------------------------------------------------- pathways (function)

def similarity_section(names, variants):
    st.header("How alike are q, k and v? What the pathways compute")
    count = st.select_slider("Test images", IMAGE_COUNTS, value=DEFAULT_IMAGES, key="cw_images",
                             help="How many of each checkpoint's test images (spread over the set) the CKA rests on.")
    st.caption(
        "Linear CKA (Kornblith et al. 2019) between the q, k and v that each block's Q/K/V embedding hands to XCA, "
        "with every token of every image as one example: CKA = ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F) for centred X, Y. "
        "1 = the two pathways compute the same up to rotation and scale; near 0 = unrelated. q and k are compared "
        "after XCA's own L2 normalisation of each channel over an image's tokens (the only form XCA uses), so "
        "re-parametrisations that leave the model's function alone — permuting hidden units, rescaling q's "
        "channels — leave it unchanged.")
    results = {p: pathway_similarity(p, count, compute=False) for p in names}  # what the disk cache holds
    missing = [p for p, found in results.items() if found is None]
    label = f"Compute the pathway CKA ({len(missing)} checkpoint{'s' * (len(missing) > 1)}, {count} images each)"
    note = (f"Not computed yet for {', '.join(names[p] for p in missing)} with {count} images: it runs the test "
            "images through each model (about a second per XCiT-N12 checkpoint and 64 images on a 2-core CPU). "
            "Results are kept on disk, so the next visit shows them at once.")
    if missing and not asked_for("cw_cka_compute", (count, tuple(missing)), label, note):
        return
    for i, p in enumerate(missing, 1):
        with st.spinner(f"Pathway CKA {i} of {len(missing)}: running {count} test images through {names[p]} and "
                        "comparing what its q, k and v compute in every block ..."):
            results[p] = pathway_similarity(p, count)
    results = {names[p]: found for p, found in results.items()}
    ckas = {name: result for name, (result, _) in results.items()}
    sources = {name: source for name, (_, source) in results.items()}
    st.caption("Images: " + images_note(sources) + ".")
    long = cka_long(ckas, variants)
    counts = " / ".join(str(n) for n in sorted({result.images for result in ckas.values()}))
    show_figure(figures.cka_by_depth(long, "checkpoint", title=f"linear CKA between pathways over depth "
                                                              f"({counts} images per checkpoint)"),
                "qkv_pathway_cka", key="cw_cka_depth")
    depth = max(result.matrices.shape[0] for result in ckas.values())
    block = st.selectbox("Block", list(range(depth)), key="cw_cka_block")
    shown, matrices = cka_at_block(ckas, block)
    show_figure(figures.cka_grid(matrices, [f"{name} ({variants[name].rsplit('_', 1)[-1]})" for name in shown],
                                 title=f"q, k, v CKA in block {block}"),
                f"qkv_cka_block{block}", key="cw_cka_grid")
    summary = cka_summary(ckas, variants, sources)
    st.caption("Mean CKA over blocks per checkpoint:")
    show_table(summary, "qkv_pathway_cka_summary", key="cw_cka_summary")
    with st.expander("CKA per block (table)"):
        show_table(long, "qkv_pathway_cka", key="cw_cka_table")


# --------------------------------------------------------------------------- weights

def overlap_section(names, variants):
    st.subheader("Weight overlap (secondary)")
    st.caption(
        "How much weight the pathways share, not what they compute. shared_fraction: the share of a pathway's "
        "weight-matrix entries that q, k and v use in common (1 for F-SNE by construction, ½ for P-SNE, 0 for linear "
        "and SNE). cosine: the cosine of the flattened weights of two pathways (shared layers included; "
        "cosine_unshared leaves them out, nothing is left for F-SNE). These cosines are **not invariant to "
        "hidden-unit permutations or channel rescaling** that leave the model's function unchanged, and unshared "
        "random-like weights give ≈ 0 whatever the pathways compute: for similarity read the CKA (first tab).")
    show_table(overlap_long({names[p]: overlap_table(p) for p in names}, variants), "qkv_weight_overlap",
               key="cw_similarity")


def statistics_section(names, variants):
    st.subheader("Weight statistics")
    stats = {names[p]: weight_table(p) for p in names}
    weights = {names[p]: pathways(p) for p in names}
    stat = st.selectbox("Statistic", STATISTICS, key="cw_stat", help=stat_help())
    st.caption(f"**{stat}** — {STATISTIC_HELP[stat]}")
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


def drift_section(chosen):
    st.subheader("Drift after fine-tuning")
    parents = {path: parent_checkpoint(meta, path) for path, _, meta in chosen if meta.get("parent")}
    found = {path: parent for path, parent in parents.items() if parent}
    if not found:
        missing = [Path(p).stem for p in parents]
        st.caption("None of the chosen checkpoints was fine-tuned from a checkpoint that is here"
                   + (f" (parents of {', '.join(missing)} not found)" if missing else "") + ", so there is no drift.")
        return
    path = st.selectbox("Fine-tuned checkpoint", list(found), format_func=lambda p: Path(p).stem, key="cw_drift_child")
    count = st.session_state.get("cw_images", DEFAULT_IMAGES)
    child, parent = Path(path).stem, Path(found[path]).stem
    try:
        cached = drift_table(path, found[path], count, compute=False)
        if cached is None and not asked_for(
                "cw_drift_compute", (path, found[path], count), f"Compute the drift of {child} from {parent}",
                note=f"Function drift: runs {count} test images through both models (not computed yet)."):
            return
        if cached is None:
            with st.spinner(f"Function drift: running {count} test images through {parent} and {child} and "
                            "comparing each pathway's outputs block by block ..."):
                cached = drift_table(path, found[path], count)
        table, source = cached
    except (CheckpointError, ValueError) as exc:
        st.warning(f"Cannot compare with the parent `{Path(found[path]).stem}`: {exc}")
        return
    st.caption(f"From `{Path(found[path]).stem}` to `{Path(path).stem}` on the same {source}. function_cka: "
               "linear CKA between the parent's and the fine-tune's output of each pathway (1 = unchanged up to "
               "rotation and scale; invariant to re-parametrisations). weight_relative_change = ‖W_child − "
               "W_parent‖_F / ‖W_parent‖_F and weight_cosine: weight-space drift of the pathway's matrices (not "
               "invariant).")
    left, right = st.columns(2)
    with left:
        show_figure(figures.stat_by_block(table, "block", "function_cka", "pathway",
                                          title="function: CKA parent vs fine-tune"),
                    "qkv_drift_function", key="cw_drift_function")
    with right:
        show_figure(figures.stat_by_block(table, "block", "weight_relative_change", "pathway",
                                          title="weights: relative change"),
                    "qkv_drift_weights", key="cw_drift_weights")
    show_table(table, "qkv_drift", key="cw_drift_table")


# --------------------------------------------------------------------------- F-SNE codes

def fsne_section():
    path, _, meta = choose_checkpoint("F-SNE checkpoint", key="cw_fsne", where=is_fsne, container=st)
    include_bias = st.checkbox("Add the shared bias", value=False, key="cw_bias",
                               help="The bias is the same for q, k and v: with it the vectors are the whole "
                                    "per-pathway input of the hidden units, and look more alike than the codes make "
                                    "them.")
    seen, formula = fsne_code_contributions(path, include_bias)
    st.caption(f"Codes as the network sees them: **{formula}** per block and pathway, i.e. what each code adds to "
               "(gate mode: multiplies into) the hidden units of the shared MLP's first layer (W_c: the code columns "
               "of fc1 in concat mode; W: fc1 in add mode; W_g: the gate layer). Unlike the raw codes this does not "
               "depend on the codes' basis.")
    cols = st.columns(2)
    with cols[0]:
        show_figure(figures.codes_heatmap(seen, title=f"{formula} ({seen.shape[-1]} hidden units)"),
                    "fsne_code_contributions", key="cw_codes")
    with cols[1]:
        show_figure(figures.code_similarity_grid(fsne_contribution_similarity(path, include_bias), cols=4,
                                                 title=f"cosine similarity of {formula}"),
                    "fsne_contribution_similarity", key="cw_code_sim")
    codes = fsne_codes(path)
    if st.toggle("Show the raw codes c_q, c_k, c_v (they depend on the codes' basis)", key="cw_raw"):
        st.caption("The trainable vectors themselves. Any invertible change of basis undone in the layer that reads "
                   "them changes these values and cosines without changing the network.")
        show_figure(figures.codes_heatmap(codes, title=f"raw codes c_q, c_k, c_v ({codes.shape[-1]} entries)"),
                    "fsne_codes", key="cw_raw_codes")
        show_figure(figures.code_similarity_grid(fsne_code_similarity(path), cols=4,
                                                 title="cosine similarity of the raw codes"),
                    "fsne_code_similarity", key="cw_raw_code_sim")
    parent = parent_checkpoint(meta, path)
    if not meta.get("parent"):
        st.caption("This checkpoint has no parent (it was not fine-tuned from another), so there is no drift.")
        return
    if parent is None:
        st.caption(f"Its parent `{meta['parent']}` is not in the checkpoint directory; no drift table.")
        return
    try:
        load_model(parent)
        drift = code_drift(fsne_code_contributions(parent, include_bias)[0], seen)
        raw_drift = code_drift(fsne_codes(parent), codes)
    except (CheckpointError, ValueError) as exc:
        st.warning(f"Cannot compare with the parent `{Path(parent).stem}`: {exc}")
        return
    st.subheader(f"Code drift from the parent `{Path(parent).stem}`")
    st.caption(f"Change of {formula} per block and pathway (norms, L2 change, cosine old vs new).")
    show_table(drift, "fsne_code_drift", key="cw_drift")
    with st.expander("Drift of the raw codes"):
        show_table(raw_drift, "fsne_raw_code_drift", key="cw_raw_drift")


TABS = ("Pathway similarity (CKA)", "Q/K/V weights", "F-SNE codes")

ensure_app_navigation()
st.title("Q/K/V codes & weights")
table, _ = checkpoints_table()
if table.empty or not table.apply(is_xcit, axis=1).any():
    st.info("No XCiT checkpoint found; the Q/K/V embedding variants (linear, SNE, P-SNE, F-SNE) are XCiT's, "
            "so there are no pathways, Q/K/V weights or F-SNE codes to show.")
    st.stop()
chosen = choose_checkpoints("XCiT checkpoints (pathway similarity and weights)", key="cw_checkpoints",
                            min_count=1, max_count=4, where=is_xcit,
                            default=list(table[table.apply(is_xcit, axis=1)]["path"])[:4])
names = {path: Path(path).stem for path, _, _ in chosen}
variants = {Path(path).stem: meta["variant"] for path, _, meta in chosen}
# only the open tab runs (choosing another reruns the page), so a view computes one section, not three
similarity_tab, weights_tab, codes_tab = st.tabs(TABS, key="cw_tab", on_change="rerun")
if similarity_tab.open:
    with similarity_tab:
        similarity_section(names, variants)
if weights_tab.open:
    with weights_tab:
        st.header("Q/K/V weights")
        overlap_section(names, variants)
        statistics_section(names, variants)
        drift_section(chosen)
if codes_tab.open:
    with codes_tab:
        st.header("F-SNE codes")
        st.caption("F-SNE computes q, k and v with one shared MLP; a trainable code per block and pathway tells it "
                   "which one to produce.")
        if table.apply(is_fsne, axis=1).any():
            fsne_section()
        else:
            st.info("No F-SNE checkpoint found (a variant whose name ends in `fsne`), so there are no codes to show.")
