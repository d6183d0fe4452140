"""Efficiency: parameters, FLOPs and forward time of every checkpoint, and how the cost of one attention
operation grows with the number of tokens for each attention kind."""
import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.inspect.efficiency import SCALING_KINDS
from vitviz.ui import checkpoints_table, device, device_label, show_figure, show_table
from vitviz.ui.evaluations import attention_scaling, cost_table, token_counts

TOKEN_CHOICES = [64, 128, 256, 512, 1024, 2048, 4096]

ensure_app_navigation()
st.title("Efficiency")
on_gpu = device().type == "cuda"
st.caption(f"Timings run on **{device_label()}**. FLOPs count matrix products only (2 × multiply-accumulates); "
           "element-wise work and FFTs are not counted.")

st.subheader("Checkpoints: size, FLOPs, latency, throughput")
table, problems = checkpoints_table()
if table.empty:
    st.info("No checkpoints found. Train some with `python -m vitviz train-zoo`.")
else:
    show_figure(figures.accuracy_vs_params(table), "accuracy_params", key="eff_accuracy_params")
    st.caption("Each accuracy is on the checkpoint's own test set (`dataset`) under its own recipe (see the Zoo's "
               "`epochs` and `device`): compare points of one dataset and one recipe.")
    cols = st.columns(3)
    batch = cols[0].select_slider("Throughput batch size", [16, 32, 64, 128, 256], value=64, key="eff_batch")
    repeats = cols[1].slider("Timed repeats", 1, 20, 5, key="eff_repeats")
    also_cpu = cols[2].checkbox("Also time on the CPU", value=False, key="eff_cpu", disabled=not on_gpu)
    if st.button(f"Measure {len(table)} checkpoints", key="eff_measure"):
        st.session_state["eff_measured"] = True
    if st.session_state.get("eff_measured"):
        bar = st.progress(0.0, text="Measuring ...")
        costs = cost_table(list(table["path"]), batch=batch, repeats=repeats, also_cpu=also_cpu and on_gpu,
                           progress=lambda f: bar.progress(f, text="Measuring ..."))
        bar.empty()
        costs.insert(1, "variant", table["variant"].tolist())
        show_table(costs, "checkpoint_costs", key="eff_costs",
                   column_config={c: st.column_config.NumberColumn(format="%.2f") for c in costs.columns
                                  if c.startswith(("latency", "cpu_latency", "images_per_s", "cpu_images"))})
    else:
        st.caption("Press the button to count FLOPs and time every checkpoint (results are cached).")

st.subheader("Attention as tokens grow")
st.caption("One attention operation on random q, k, v (no projections), batch 1; explicit softmax materialises "
           "the N × N map, the others do not.")
with st.form("eff_scaling"):
    kinds = st.multiselect("Attention kinds", list(SCALING_KINDS), default=list(SCALING_KINDS), key="eff_kinds")
    cols = st.columns(3)
    max_tokens = cols[0].select_slider("Max tokens", TOKEN_CHOICES, value=4096 if on_gpu else 1024,
                                       key="eff_max_tokens")
    dim = cols[1].number_input("Embedding dim", 16, 1024, 128, 16, key="eff_dim")
    heads = cols[2].number_input("Heads", 1, 16, 4, key="eff_heads")
    submitted = st.form_submit_button("Run")
if submitted:
    if not kinds:
        st.warning("Choose at least one attention kind.")
    elif dim % heads:
        st.warning(f"The embedding dim ({dim}) must be divisible by the number of heads ({heads}).")
    else:
        st.session_state["eff_scaling_args"] = (tuple(kinds), token_counts(max_tokens), int(dim), int(heads))
args = st.session_state.get("eff_scaling_args")
if args is not None:
    with st.spinner("Timing attention ..."):
        scaling = attention_scaling(*args, str(device()))
    show_figure(figures.efficiency_curves(scaling, y="ms", title="time of one attention op vs tokens",
                                          y_title="ms (median)"), "attention_time", key="eff_time")
    if on_gpu:
        show_figure(figures.efficiency_curves(scaling, y="peak_memory_bytes", title="peak memory vs tokens",
                                              y_title="bytes"), "attention_memory", key="eff_memory")
    else:
        st.caption("Peak memory is measured on CUDA only; on the CPU it is not measured.")
    skipped = scaling[scaling["note"] != ""]
    if len(skipped):
        st.caption(f"{len(skipped)} cells skipped (see the note column).")
    show_table(scaling, "attention_scaling", key="eff_scaling_table")
