"""Streamlit views for the trust features: Chefer relevance (Attention and Compare pages) and the faithfulness
results with their background computation (Faithfulness page). Library calls only; no model logic here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from .. import figures
from ..data.images import prepare, to_input
from ..explain import faithfulness as fa
from ..explain.relevance import chefer_relevance, relevance_problem
from ..explain.sweeps import RelevanceSweep, relevance_all_classes, rollout_sweep
from .state import _mtime, device, image_key, load_model
from .widgets import show_figure, show_table

PREDICTED = "predicted class"


@st.cache_data(max_entries=64, show_spinner=False)
def _relevance_all(path: str, mtime: float, key: str, _image: np.ndarray):
    model, meta = load_model(path)
    return relevance_all_classes(model, to_input(_image, meta["mean"], meta["std"], device()), len(meta["classes"]))


def relevance_all(path, image: np.ndarray) -> RelevanceSweep:
    """Chefer relevance of every class of the checkpoint for one prepared image (`relevance_all_classes`), cached
    by checkpoint and image content."""
    return _relevance_all(str(path), _mtime(path), image_key(image), image)


@st.cache_data(max_entries=64, show_spinner=False)
def _rollout_all(path: str, mtime: float, key: str, which: str, _maps, _grids, _pool):
    return rollout_sweep(_maps, _grids, pool=_pool)


def rollout_all(path, image: np.ndarray, which: str, maps: list, grids: list, pool=None):
    """`rollout_sweep` (heats[discard][fusion] over `ROLLOUT_DISCARDS` x `ROLLOUT_FUSIONS`, or None when
    rollout refuses these maps) of the maps `which` names (e.g. "attention, exact operator") of one image,
    cached by checkpoint, image content and `which`."""
    return _rollout_all(str(path), _mtime(path), image_key(image), str(which), maps, grids, pool)


@st.cache_data(max_entries=64, show_spinner=False)
def _relevance(path: str, mtime: float, key: str, _image: np.ndarray, target: int | None):
    model, meta = load_model(path)
    r = chefer_relevance(model, to_input(_image, meta["mean"], meta["std"], device()), target)
    return r.relevance[0].numpy(), int(r.target[0]), r.what, r.notes


def relevance_heat(path, image: np.ndarray, target: int | None = None):
    """(relevance (h, w), explained class, which maps, notes) for one prepared image, cached."""
    return _relevance(str(path), _mtime(path), image_key(image), image, None if target is None else int(target))


def _choose_target(classes, key: str) -> int | None:
    choice = st.selectbox("Class to explain", [PREDICTED] + list(classes), key=key,
                          help="relevance is propagated with the gradients of this class's logit")
    return None if choice == PREDICTED else list(classes).index(choice)


RELEVANCE_CAPTION = ("Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021): starting from the "
                     "identity, each block adds mean_heads((∇A ⊙ A)⁺) · R, with ∇A the gradient of the explained "
                     "class's logit with respect to the block's map A; shown is the class token's row.")


@st.fragment
def relevance_section(path, image: np.ndarray, meta: dict, key: str = "attn_relevance"):
    """Attention page: the relevance of every class for one checkpoint and image, in one figure whose menu
    switches the explained class in the browser (no rerun)."""
    st.subheader("Gradient-weighted relevance (Chefer et al. 2021)")
    classes = list(meta["classes"])
    if not st.toggle(f"Show relevance for each of the {len(classes)} classes (one batched forward and backward "
                     "pass)", key=f"{key}_on"):
        return
    problem = relevance_problem(load_model(path)[0])
    if problem is not None:
        st.info(problem)
        return
    with st.spinner(f"Chefer relevance of all {len(classes)} classes: a forward and backward pass of "
                    f"{len(classes)} copies of the image, one explained class each ..."):
        sweep = relevance_all(path, image)
    labels = [f"{name} (predicted)" if i == sweep.predicted else name for i, name in enumerate(classes)]
    show_figure(figures.attention_explorer(image, [[[heat]] for heat in sweep.heats], row_labels=["relevance"],
                                           col_labels=["explained class"], layer_labels=labels, layer_name="class",
                                           value_name="relevance", control="dropdown", active=sweep.predicted,
                                           panel_px=340,
                                           title="relevance (Chefer et al. 2021) of the class chosen in the menu"),
                "chefer_relevance", key=f"{key}_fig")
    st.caption(RELEVANCE_CAPTION + f" Every class is already in the figure: the menu switches it in the browser. "
               f"Built on {sweep.what}.")
    for note in sweep.notes:
        st.caption(note)


@st.fragment
def relevance_row(chosen, image: np.ndarray, key: str = "cmp_relevance"):
    """Compare page: relevance of the same class for each checkpoint, side by side."""
    st.subheader("Gradient-weighted relevance (Chefer et al. 2021)")
    if not st.toggle("Show relevance for each checkpoint", key=f"{key}_on"):
        return
    class_lists = {tuple(meta["classes"]) for _, _, meta in chosen}
    if len(class_lists) == 1:
        target = _choose_target(chosen[0][2]["classes"], f"{key}_target")
    else:
        st.caption("The checkpoints have different classes: each explains its own prediction.")
        target = None
    st.caption(RELEVANCE_CAPTION)
    for i, (column, (path, model, meta)) in enumerate(zip(st.columns(len(chosen)), chosen)):
        with column:
            name = Path(path).stem
            problem = relevance_problem(model)
            if problem is not None:
                st.info(f"{name}: {problem}")
                continue
            own = image if meta["img_size"] == image.shape[0] else prepare(image, meta["img_size"])
            heat, explained, what, notes = relevance_heat(path, own, target)
            show_figure(figures.attention_overlay(own, heat, title=f"{name}: {meta['classes'][explained]}",
                                                  height=320), f"relevance_{name}", key=f"{key}_fig_{i}")
            st.caption(f"Built on {what}. " + " ".join(notes))


# ------------------------------------------------------------------------------------------ faithfulness

def progress_panel(paths: list, settings: fa.Settings, key: str = "faith") -> None:
    """Per checkpoint: cached, running (progress bar, polled every 2 s) or a button that starts the
    computation in its own process (`python -m vitviz faithfulness ... --progress`)."""
    states = {p: fa.progress_of(p, settings) for p in paths}
    running = any(s and s.get("running") for s in states.values())

    @st.fragment(run_every=2.0 if running else None)
    def panel():
        still_running = False
        for i, path in enumerate(paths):
            name = Path(path).stem
            if fa.load_cached(path, settings) is not None:
                st.caption(f"{name}: results cached ({fa.cache_path(path, settings).name}).")
                continue
            state = fa.progress_of(path, settings)
            if state and state.get("running"):
                still_running = True
                st.progress(min(1.0, state["fraction"]), text=f"{name}: {state['message']}")
            else:
                if state and state.get("error"):
                    st.error(f"{name}: the last computation failed: {state['error']}")
                elif state:
                    st.warning(f"{name}: a computation stopped without finishing.")
                if st.button(f"Compute {name} ({settings.images} images)", key=f"{key}_start_{i}"):
                    fa.start_background(path, settings)
                    st.rerun(scope="app")
        if running and not still_running:
            st.rerun(scope="app")
    panel()


def results_view(results: list[dict], key: str = "faith") -> None:
    """Table (AUC and bootstrap CI per method x checkpoint), verdict sentences, curves."""
    table = fa.faithfulness_table(results)
    st.subheader("AUC per method and checkpoint (95% bootstrap CI over images)")
    st.caption("↓: lower is better (the model fails fast when the most relevant pixels go); ↑: higher is better. "
               "Perturbation test: Chefer et al. 2021 (0-90% of pixels removed in 10% steps, set to the mean "
               "colour); deletion / insertion: RISE (Petsiuk et al. 2018; insertion into a blurred copy).")
    show_table(fa.wide_table(table), "faithfulness_table", key=f"{key}_table")
    st.download_button("Download table (CSV)", table.to_csv(index=False), "faithfulness.csv", "text/csv",
                       key=f"{key}_csv")
    metric = st.selectbox("Verdict by", list(fa.METRICS), format_func=lambda m: fa.METRICS[m][0],
                          key=f"{key}_metric")
    for res in results:
        st.markdown(fa.verdict(res, metric))
        st.caption(f"{res['image_source']}; clean accuracy {res['clean_accuracy']:.1%}; {res['device']}, "
                   f"{res['seconds']} s; settings {res['settings']}")
    for i, res in enumerate(results):
        frame = fa.curves_frame(res)
        part = frame[frame["metric"] == metric]
        if part.empty:
            continue
        show_figure(figures.efficiency_curves(part, x="fraction", y="value", color="method", log_x=False,
                                              log_y=False, title=f"{res['checkpoint']}: {fa.METRICS[metric][0]}",
                                              x_title="fraction of pixels removed / inserted",
                                              y_title="accuracy" if metric.endswith("accuracy") else
                                              "probability of the explained class", height=360),
                    f"faithfulness_curves_{res['checkpoint']}", key=f"{key}_curves_{i}")
