"""Fine-tune: start a background job on a checkpoint + dataset, watch it live, cancel it, compare it with its parent."""
import pandas as pd
import streamlit as st

from vitviz.ui.navigation import ensure_app_navigation
from vitviz import figures
from vitviz.data import DATASETS, DownloadError, download_dataset
from vitviz.overview import finetune_datasets
from vitviz.train.jobs import JobSpec
from vitviz.checkpoints import CheckpointError, read_meta
from vitviz.ui import device_label, pick_checkpoint
from vitviz.ui.jobs_view import compare_with_parent, finetune_plan, job_store

ensure_app_navigation()
st.title("Fine-tune")
store = job_store()
path = pick_checkpoint("Checkpoint", key="ft_checkpoint")
try:
    meta = read_meta(path)
except CheckpointError as exc:
    st.error(f"Cannot read this checkpoint: {exc}")
    st.stop()
options = finetune_datasets(meta)
labels = [o["label"] + ("" if o["available"] else " — not downloaded") for o in options]
first_available = next((i for i, o in enumerate(options) if o["available"]), 0)
picked = options[labels.index(st.selectbox("Dataset", labels, index=first_available, key="ft_dataset"))]
if not picked["available"]:
    info = DATASETS[picked["dataset"]]
    st.warning(f"{info.title} is not in the data directory.")
    if not info.downloadable:
        st.info(info.no_download or "This dataset has no download: place its files in the data directory.")
    elif st.button(f"Download {info.title} ({picked['download_mb']} MB)", key="ft_download"):
        try:
            with st.spinner(f"Downloading {info.title} ..."):
                download_dataset(picked["dataset"])
            st.rerun()
        except (DownloadError, OSError) as exc:
            st.error(f"Download failed: {exc}")

PRESETS = {"Quick (about a minute on a CPU)": "quick", "Full (every weight, 3 epochs)": "full", "Custom": "custom"}
preset = PRESETS[st.radio("Preset", list(PRESETS), horizontal=True, key="ft_preset",
                          help="Quick and Full are sized from this device's measured training speed")]
plan = finetune_plan(meta, picked, preset) if preset != "custom" and picked["available"] else None
with st.form("ft_form"):
    if plan is not None:
        st.markdown(f"**{plan.note}** · batch {plan.batch_size} · lr {plan.lr:.0e} · "
                    f"expected **≈ {plan.expected_seconds:.0f} s** on {device_label()}")
    else:
        cols = st.columns(4)
        budget = cols[0].radio("Budget", ["epochs", "steps"], horizontal=True, key="ft_budget")
        amount = cols[0].number_input("Epochs or steps", min_value=1, value=3, step=1, key="ft_amount")
        lr = cols[1].number_input("Learning rate", min_value=1e-6, max_value=1e-1, value=5e-4, format="%.1e",
                                  key="ft_lr", help="between 1e-6 and 1e-1")
        batch = cols[2].number_input("Batch size", min_value=1, max_value=4096, value=128, step=16,
                                     key="ft_batch")
        trainable = cols[3].radio("Train", ["all", "qkv", "head"], key="ft_trainable",
                                  help="all: every weight; qkv: only the Q/K/V embeddings and the head; "
                                       "head: only the head")
    submitted = st.form_submit_button(f"Start fine-tune on {device_label()}", disabled=not picked["available"])
if submitted and plan is not None:
    spec = JobSpec(checkpoint=path, dataset=picked["dataset"], data_root=picked["root"], epochs=None,
                   steps=plan.steps, lr=plan.lr, batch_size=plan.batch_size, trainable=plan.trainable,
                   extra={"preset": plan.preset, "expected_seconds": round(plan.expected_seconds, 1)})
elif submitted:
    spec = JobSpec(checkpoint=path, dataset=picked["dataset"], data_root=picked["root"],
                   epochs=float(amount) if budget == "epochs" else None,
                   steps=int(amount) if budget == "steps" else None, lr=float(lr), batch_size=int(batch),
                   trainable=trainable)
if submitted:
    try:
        st.session_state["ft_last_job"] = store.submit(spec)
        st.toast(f"Job {st.session_state['ft_last_job']} queued")
    except ValueError as exc:
        st.error(str(exc))


def _eta(seconds):
    return "" if seconds is None else f" · ETA {seconds:.0f} s"


@st.fragment(run_every=1.0)
def jobs_panel():
    store.poll()
    jobs = store.list()
    st.subheader(f"Jobs ({sum(j.state in ('queued', 'running') for j in jobs)} active)")
    if not jobs:
        st.caption("No jobs yet.")
    for job in jobs[:20]:
        with st.container(border=True):
            st.markdown(f"**{job.id}** · `{job.state}` · {job.label}")
            if job.state in ("queued", "running"):
                st.progress(job.progress, text=f"step {job.step}/{job.total_steps or '?'}{_eta(job.eta_seconds)}"
                            + (f" · loss {job.loss:.3f}" if job.loss is not None else ""))
                if st.button("Cancel", key=f"cancel_{job.id}", disabled=job.cancel_requested):
                    store.cancel(job.id)
            elif job.message:
                (st.error if job.state == "failed" else st.info)(job.message)
            if job.state == "done" and job.finished and job.started:
                expected = job.spec.get("extra", {}).get("expected_seconds")
                st.caption(f"took {job.finished - job.created:.0f} s from submission"
                           + (f" (expected ≈ {expected:.0f} s)" if expected else ""))
            if job.resumable and st.button("Resume from its last saved step", key=f"resume_{job.id}",
                                           help="the worker saved its progress every minute; the job continues "
                                                "from there with the same data order and optimiser state"):
                try:
                    store.resume(job.id)
                except ValueError as exc:
                    st.error(str(exc))
            if job.history:
                history = pd.DataFrame(job.history)
                long = history.melt(id_vars=["epoch"], value_vars=[c for c in ("train_loss", "train_accuracy",
                                                                                "test_accuracy") if c in history],
                                    var_name="metric")
                st.plotly_chart(figures.efficiency_curves(long, x="epoch", y="value", color="metric", log_x=False,
                                                          log_y=False), key=f"curve_{job.id}_{len(job.history)}")
            if job.state == "done" and job.checkpoint:
                st.caption(f"checkpoint: {job.checkpoint}")
                is_finetune = job.spec.get("kind", "finetune") == "finetune"  # a study's run has no parent
                if is_finetune and st.button("Compare with its parent on Per-class", key=f"compare_{job.id}"):
                    compare_with_parent(job)


jobs_panel()
