"""Attributions: which pixels of one image a prediction depends on (captum), for 1-4 checkpoints side by side."""
from pathlib import Path

import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.explain.attributions import METHODS
from vitviz.ui import choose_checkpoints, choose_image, show_figure
from vitviz.ui.evaluations import attribution_maps

PREDICTED = "predicted class"

ensure_app_navigation()
st.title("Attributions")
left, right = st.columns([1, 3])
with left:
    chosen = choose_checkpoints("Checkpoints (1-4)", key="attr_checkpoints", min_count=1, max_count=4)
    first_meta = chosen[0][2]
    picked = choose_image(first_meta, key="attr_image")
    methods = st.multiselect("Methods", list(METHODS), default=["saliency"], key="attr_methods",
                             help="\n\n".join(METHODS.values()))
    st.caption("Saliency is one backward pass. Integrated Gradients, SmoothGrad and occlusion run tens of forward "
               "(and backward) passes per checkpoint: add them here when you want them.")
    target = st.selectbox("Target", [PREDICTED] + list(first_meta["classes"]), key="attr_target",
                          help="the class whose logit is attributed: each model's own prediction, or a fixed class")
    steps = st.slider("Integrated Gradients steps", 4, 64, 16, 4, key="attr_steps",
                      disabled="integrated_gradients" not in methods)
if picked is None:
    st.stop()
image, caption, true_class = picked
with left:
    st.image(image, caption=caption, width=160)
    if true_class:
        st.caption(f"true class: {true_class}")
if not methods:
    right.info("Choose at least one attribution method.")
    st.stop()

with right:
    for path, model, meta in chosen:
        name = Path(str(path)).stem
        with st.spinner(f"Attributing {name}'s prediction: {', '.join(methods)} ..."):
            result = attribution_maps(path, image, methods, None if target == PREDICTED else target, steps)
        st.markdown(f"**{name}** predicts **{result['predicted']}** ({result['probability']:.1%}); "
                    f"attributions of **{result['target']}**")
        if result["note"]:
            st.caption(result["note"])
        show_figure(figures.attribution_grid(result["image"], result["maps"], panel_px=180),
                    f"attributions_{name}", key=f"attr_fig_{name}")
