"""Compare: 2-4 checkpoints side by side on one image: rollout / class attention, last-layer attention, saliency."""
from pathlib import Path

import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.data.images import prepare
from vitviz.inspect.compare_views import CAPTURE_WANT, VIEWS, attention_view, top_predictions
from vitviz.inspect.compare_views import preferred_defaults
from vitviz.ui import captured, checkpoints_table, choose_checkpoints, choose_image, show_figure
from vitviz.ui.analysis_cache import saliency_heat
from vitviz.ui.export_buttons import report_download, start_report

ensure_app_navigation()
st.title("Compare")
start_report()
chosen = choose_checkpoints("Checkpoints (2-4)", key="cmp_checkpoints", min_count=2, max_count=4,
                            default=preferred_defaults(checkpoints_table()[0]))
report_download("Compare: " + ", ".join(Path(p).stem for p, _, _ in chosen), "compare_report",
                {Path(p).stem: m for p, _, m in chosen}, "cmp_", key="cmp_report")
controls = st.columns([3, 1])
with controls[0]:
    picked = choose_image(chosen[0][2], key="cmp_image")
with controls[1]:
    view = st.radio("View", VIEWS, key="cmp_view")
if picked is None:
    st.stop()
image, caption, true_class = picked
st.caption(f"Image: {caption}" + (f" · true class: {true_class}" if true_class else ""))

for i, (column, (path, _, meta)) in enumerate(zip(st.columns(len(chosen)), chosen)):
    name = Path(path).stem
    own = image if meta["img_size"] == image.shape[0] else prepare(image, meta["img_size"])
    art = captured(path, own, CAPTURE_WANT)
    with column:
        st.subheader(name)
        st.caption(meta["variant"])
        if view == VIEWS[2]:
            heat, note = saliency_heat(path, own), "saliency of the predicted class"
        else:
            heat, note = attention_view(art, view)
        if heat is None:
            st.info(note)
        else:
            show_figure(figures.attention_overlay(own, heat, title=name, height=320), f"compare_{name}",
                        key=f"cmp_fig_{i}")
            st.caption(note)
        st.markdown("  \n".join(f"**{c}** {p:.1%}" for c, p in top_predictions(art["logits"], meta["classes"])))

# Gradient-weighted relevance (Chefer et al. 2021) of the same class, side by side: a self-contained fragment.
from vitviz.ui.explain_views import relevance_row  # noqa: E402

relevance_row(chosen, image)
