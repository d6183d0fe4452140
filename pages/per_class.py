"""Per-class: two checkpoints compared class by class on the same test samples (paired bootstrap, McNemar,
Holm), their confusion matrices, the images in a confusion cell and the samples only one of them gets right."""
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures, metrics
from vitviz.overview import default_pair
from vitviz.ui import checkpoints_table, choose_checkpoint, show_figure, show_table
from vitviz.ui.export_buttons import collect, report_download, start_report
from vitviz.ui.evaluations import comparison, in_words, paired_predictions, parent_pairs
from vitviz.ui.widgets import checkpoint_options

MAX_IMAGES = 32

ensure_app_navigation()
st.title("Per-class comparison")
start_report()
options = checkpoint_options()
label_of = {path: label for label, path in options.items()}
if len(options) < 2:
    st.info("Comparing needs at least two checkpoints. Train some with `python -m vitviz train-zoo` or on the "
            "Fine-tune page.")
    st.stop()


def select_pair(a_path, b_path):
    st.session_state["pc_a"], st.session_state["pc_b"] = label_of[a_path], label_of[b_path]


# Presets: ?checkpoint=<name> on the URL selects that checkpoint as B (and its parent as A, if listed);
# the buttons select a fine-tuned checkpoint (B) and the checkpoint it was fine-tuned from (A).
listed = checkpoints_table()[0]
pairs = parent_pairs(listed)
default_a, default_b = default_pair(listed)
parent_of = dict(pairs)
wanted = st.query_params.get("checkpoint")
if wanted and st.session_state.get("pc_query") != wanted:
    st.session_state["pc_query"] = wanted
    match = [p for p in options.values() if Path(p).stem == wanted or p == wanted]
    if match:
        if match[0] in parent_of:
            select_pair(parent_of[match[0]], match[0])
        else:
            st.session_state["pc_b"] = label_of[match[0]]

if pairs:
    st.caption("Fine-tuned checkpoints whose parent is listed: compare one with its parent (A = parent, "
               "B = fine-tuned).")
    cols = st.columns(min(len(pairs), 4))
    for i, (child, parent) in enumerate(pairs[:8]):
        cols[i % len(cols)].button(f"Fine-tune vs parent: {Path(child).stem} vs {Path(parent).stem}",
                                   key=f"pc_preset_{i}", on_click=select_pair, args=(parent, child))

left, right = st.columns(2)
path_a, _, meta_a = choose_checkpoint("Checkpoint A", key="pc_a", container=left, default=default_a)
path_b, _, meta_b = choose_checkpoint("Checkpoint B", key="pc_b", container=right, default=default_b)
name_a, name_b = Path(path_a).stem, Path(path_b).stem
report_download(f"Per-class comparison: {name_a} (A) vs {name_b} (B)", f"per_class_report_{name_a}_vs_{name_b}",
                {name_a: meta_a, name_b: meta_b}, "pc_", key="pc_report")
if path_a == path_b:
    st.info("A and B are the same checkpoint; choose another B to see differences.")
level = st.select_slider("Confidence level", [0.9, 0.95, 0.99], value=0.95, key="pc_level")

paired = paired_predictions(path_a, meta_a, path_b, meta_b)
if isinstance(paired, str):
    st.warning(paired)
    st.stop()
classes = paired.classes
labels, pred_a, pred_b, images = paired.labels, paired.pred_a, paired.pred_b, paired.images
overall, table, cm_a, cm_b = comparison(labels, pred_a, pred_b, tuple(classes), level)
st.caption(f"{overall['n']} test samples; predictions: {paired.source}.")
for note in paired.notes:
    st.info(note)

cols = st.columns(4)
cols[0].metric(f"A: {name_a}", f"{overall['accuracy_a']:.2%}")
cols[1].metric(f"B: {name_b}", f"{overall['accuracy_b']:.2%}")
cols[2].metric("B − A", f"{overall['difference']:+.2%}",
               help=f"paired bootstrap {level:.0%} interval of the accuracy difference")
cols[2].caption(f"{level:.0%} CI [{overall['diff_ci_low']:+.2%}, {overall['diff_ci_high']:+.2%}]")
cols[3].metric("McNemar p", f"{overall['mcnemar_p']:.3g}",
               help="exact two-sided McNemar test over all samples")
cols[3].caption(f"only A right: {overall['b_only_a_right']}, only B right: {overall['c_only_b_right']}"
                + (" · significant" if overall["significant"] else ""))
collect("table", pd.DataFrame([overall]), "Overall (A vs B)")

st.subheader("Per class")
worded = in_words(table)
show_table(worded, f"per_class_{name_a}_vs_{name_b}", key="pc_table",
           column_config={c: st.column_config.NumberColumn(format="%.3f") for c in worded.columns
                          if c.startswith(("accuracy", "A CI", "B CI", "difference"))})
show_figure(figures.per_class_bars(table, names=(name_a, name_b)), "per_class_bars", key="pc_bars")
show_figure(figures.difference_bars(table, names=(name_a, name_b)), "difference_bars", key="pc_diff")

st.subheader("Confusion matrices")
st.caption("Hover a cell for its count and row fraction; pick a cell below to see its images (Streamlit "
           "returns no click selection for heatmaps).")
cols = st.columns(2)
for col, tag, name, cm in ((cols[0], "a", name_a, cm_a), (cols[1], "b", name_b, cm_b)):
    with col:
        show_figure(figures.confusion_heatmap(cm, classes, title=f"{tag.upper()}: {name}"), f"confusion_{name}",
                    key=f"pc_cm_{tag}")

st.subheader("Samples in a confusion cell")
cols = st.columns(3)
which = cols[0].radio("Confusion matrix of", ["A", "B"], horizontal=True, key="pc_cell_model",
                      format_func=lambda t: f"{t}: {name_a if t == 'A' else name_b}")
if any(st.session_state.get(k) not in classes for k in ("pc_true", "pc_pred")):
    off = np.where(np.eye(len(classes), dtype=bool), -1, cm_a)
    t, p = np.unravel_index(int(off.argmax()), off.shape)
    st.session_state.update(pc_true=classes[t], pc_pred=classes[p])
true_class = cols[1].selectbox("True class", classes, key="pc_true")
pred_class = cols[2].selectbox("Predicted class", classes, key="pc_pred")
predictions = pred_a if which == "A" else pred_b
cell = metrics.confusion_cell_indices(labels, predictions, classes.index(true_class), classes.index(pred_class))
st.write(f"{len(cell)} test samples of class **{true_class}** predicted as **{pred_class}** by {which}"
         + (f" (showing the first {MAX_IMAGES})" if len(cell) > MAX_IMAGES and images is not None else "") + ".")
if images is None:
    st.caption("The test images are not available, so only the counts are shown.")
elif len(cell):
    shown = cell[:MAX_IMAGES]
    show_figure(figures.image_grid(images[shown], titles=[f"#{i}" for i in shown]), "confusion_cell",
                key="pc_cell_grid")

st.subheader("Samples only one model gets right")
if st.session_state.get("pc_dis_class") not in classes:
    st.session_state["pc_dis_class"] = classes[0]
chosen = st.selectbox("Class", classes, key="pc_dis_class")
k = classes.index(chosen)
split = metrics.disagreements(labels, pred_a, pred_b, k)
cols = st.columns(2)
for col, key, title, other in ((cols[0], "a_right_b_wrong", "A right, B wrong", pred_b),
                               (cols[1], "b_right_a_wrong", "B right, A wrong", pred_a)):
    idx = split[key]
    with col:
        st.markdown(f"**{title}**: {len(idx)} samples of class {chosen}")
        if images is not None and len(idx):
            shown = idx[:MAX_IMAGES]
            wrong = "B" if key == "a_right_b_wrong" else "A"
            show_figure(figures.image_grid(images[shown], cols=4,
                                           titles=[f"#{i}: {wrong} said {classes[other[i]]}" for i in shown]),
                        f"{key}_{chosen}", key=f"pc_{key}")
        elif len(idx):
            st.caption("indices: " + ", ".join(str(i) for i in idx[:MAX_IMAGES]))
