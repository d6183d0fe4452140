"""Representations: at which depth do two checkpoints start to represent the same images differently? Layer x
layer linear CKA between their block outputs (minibatch unbiased HSIC), with the Q/K/V paper's preset
"baseline vs SNE / P-SNE / F-SNE"."""
from pathlib import Path

import pandas as pd
import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.checkpoints import CheckpointError
from vitviz.compare.representations import qkv_embedding_pairs
from vitviz.ui import checkpoints_table, pick_checkpoint, show_figure, show_table
from vitviz.ui.export_buttons import report_download, start_report
from vitviz.ui.on_demand import asked_for
from vitviz.ui.representations import layer_cka
from vitviz.ui.state import checkpoint_meta

IMAGE_COUNTS = (32, 64, 128, 256, 512, 1000)
BATCH_SIZES = (16, 32, 64, 128)
FEATURES = {"flatten": "all tokens, flattened per image", "mean": "mean over tokens"}
PRESET, CUSTOM = "Baseline vs SNE / P-SNE / F-SNE (XCiT)", "Any two checkpoints"
THRESHOLD = 0.9

ensure_app_navigation()
st.title("Representations: where do two checkpoints diverge?")
start_report()
st.caption(
    "Linear CKA (Kornblith et al. 2019) between the output of every block of one checkpoint and every block of "
    "another, on the same test images; each image is one example. With many images the Gram matrices are "
    "accumulated over minibatches with the unbiased HSIC estimator (Nguyen, Raghu & Kornblith, ICLR 2021): "
    "CKA = mean HSIC₁(K, L) / √(mean HSIC₁(K, K) · mean HSIC₁(L, L)). 1 = the same representation up to "
    "rotation and scale; near 0 = unrelated. Only per-image Gram matrices are compared, so the two models may "
    "differ in width and token count. XCiT's rows/columns run over its 12 blocks, then its 2 class-attention "
    "blocks (cls0, cls1).")

listed = checkpoints_table()[0]
if listed.empty:
    st.info("No checkpoints yet. Train some with `python -m vitviz train-zoo` or on the Fine-tune page.")
    st.stop()
variants = dict(zip(listed["path"], listed["variant"]))
preset = qkv_embedding_pairs(variants)

settings = st.columns(3)
count = settings[0].select_slider("Test images", IMAGE_COUNTS, value=128, key="rep_images",
                                  help="How many test images (spread over the set) both models see.")
features = settings[1].radio("Features per image", list(FEATURES), format_func=FEATURES.get, key="rep_features",
                             horizontal=True, help="Flattened tokens keep where a feature sits in the image; "
                             "the mean over tokens ignores it.")
batch_size = settings[2].select_slider("Minibatch (HSIC₁)", BATCH_SIZES, value=64, key="rep_batch")
mode = st.radio("Compare", [PRESET, CUSTOM] if preset else [CUSTOM], key="rep_mode", horizontal=True)
if not preset:
    st.caption("The preset needs an XCiT `_linear` baseline and its `_sne` / `_psne` / `_fsne` variants among "
               "the checkpoints.")

if mode == PRESET:
    pairs = [(a, b, f"{Path(a).stem} vs {Path(b).stem} ({label})") for a, b, label in preset]
else:
    left, right = st.columns(2)
    path_a = pick_checkpoint("Checkpoint A (rows)", key="rep_a", container=left)
    others = [p for p in listed["path"] if p != path_a]
    path_b = pick_checkpoint("Checkpoint B (columns)", key="rep_b", container=right,
                             default=others[0] if others else None)
    pairs = [(path_a, path_b, f"{Path(path_a).stem} vs {Path(path_b).stem}")]

used = list(dict.fromkeys(p for a, b, _ in pairs for p in (a, b)))
report_download("Representations: layer x layer linear CKA", "representations_report",
                {Path(p).stem: checkpoint_meta(p) for p in used}, "rep_", key="rep_report")
# what the disk cache holds; the rest is computed on request (it runs the test images through both models)
results = {label: layer_cka(a, b, count, batch_size, features, compute=False) for a, b, label in pairs}
missing = [(a, b, label) for a, b, label in pairs if results[label] is None]
many = len(missing) > 1
if missing and not asked_for(
        "rep_compute", (count, batch_size, features, tuple(missing)),
        f"Compute the layer x layer CKA ({len(missing)} comparison{'s' * many}, {count} images)",
        note=f"Not computed yet: {'; '.join(label for _, _, label in missing)} with these settings. Each comparison "
             f"runs {count} test images through both models. Results are kept on disk, so the next visit shows "
             "them at once."):
    st.stop()
for i, (a, b, label) in enumerate(missing, 1):
    with st.spinner(f"Layer x layer CKA {i} of {len(missing)}: running {count} test images through "
                    f"{Path(a).stem} and {Path(b).stem} and comparing every pair of block outputs ..."):
        try:
            results[label] = layer_cka(a, b, count, batch_size, features)
        except CheckpointError as exc:
            st.error(f"Cannot load a checkpoint of {label}: {exc}")
            st.stop()
sources = sorted({source for _, source in results.values()})
images = sorted({result.images for result, _ in results.values()})
st.caption(f"Images: {'; '.join(sources)}. CKA rests on {' / '.join(map(str, images))} images per comparison, "
           f"minibatches of {batch_size}, features: {FEATURES[features]}.")

# where they diverge, in words
sentences = []
for label, (result, _) in results.items():
    depth = result.divergence_depth(THRESHOLD)
    diag = result.diagonal()
    if diag["cka"].isna().all():
        sentences.append(f"**{label}**: CKA is undefined here (a constant block output).")
        continue
    low = diag.loc[diag["cka"].idxmin()]
    where = ("stays above {:.1f} at every depth".format(THRESHOLD) if depth is None
             else f"first falls below {THRESHOLD:.1f} at depth {depth} ({diag['block_a'].iloc[depth]})")
    sentences.append(f"**{label}**: CKA at matching depth {where}; lowest {low['cka']:.2f} at "
                     f"{low['block_a']}.")
st.markdown("  \n".join(sentences))

depth_rows = pd.concat([r.diagonal().assign(comparison=label, pair="block outputs at matching depth",
                                            block=lambda d: d["depth"])
                        for label, (r, _) in results.items()], ignore_index=True)
show_figure(figures.cka_by_depth(depth_rows, "comparison",
                                 title=f"linear CKA at matching depth ({' / '.join(map(str, images))} images)"),
            "representation_cka_by_depth", key="rep_depth")

fit = st.toggle("Fit the colour scale to the values", key="rep_fit",
                help="Off: [0, 1] for every heatmap. On: each heatmap's own range, to see small differences.")
cols = st.columns(min(len(results), 3))
for i, (label, (result, _)) in enumerate(results.items()):
    a, b = label.split(" vs ")[0], label.split(" vs ")[1].split(" (")[0]
    with cols[i % len(cols)]:
        show_figure(figures.layer_cka_heatmap(result.matrix, result.blocks_a, result.blocks_b, row_title=a,
                                              col_title=b, title=f"{label}, {result.images} images",
                                              fit_scale=fit),
                    f"layer_cka_{a}_vs_{b}", key=f"rep_heat_{i}")

with st.expander("CKA tables"):
    show_table(depth_rows[["comparison", "depth", "block_a", "block_b", "cka"]], "representation_cka_by_depth",
               key="rep_depth_table")
    full = pd.concat([r.table().assign(comparison=label) for label, (r, _) in results.items()], ignore_index=True)
    show_table(full[["comparison", "block_a", "block_b", "cka"]], "representation_cka_layer_by_layer",
               key="rep_full_table")
