"""The job store as the pages see it, and the jump from a finished fine-tune to its comparison with the parent."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ..locations import default_runs_dir
from ..train.jobs import Job, JobStore


@st.cache_resource
def _store(runs_dir: str) -> JobStore:
    return JobStore(runs_dir)


def job_store() -> JobStore:
    return _store(str(default_runs_dir()))


def compare_with_parent(job: Job) -> None:
    """Open the Per-class page with the job's parent as A and its new checkpoint as B (?checkpoint=<stem>)."""
    st.switch_page("pages/per_class.py", query_params={"checkpoint": Path(job.checkpoint).stem})


@st.cache_data(show_spinner=False, max_entries=64)
def _dataset_sizes(dataset: str, root: str | None, img_size: int) -> tuple[int, int]:
    from ..data import load_dataset
    return tuple(len(load_dataset(dataset, split, root=root, img_size=img_size).labels) for split in ("train", "test"))


@st.cache_data(show_spinner="Measuring this device's training speed (once per model and setting) ...",
               max_entries=256)
def _speed(variant: str, kwargs_json: str, num_classes: int, trainable: str, batch: int, img_size: int,
           runs_dir: str) -> float:
    import json

    from ..train.plan import measure_train_speed
    from .state import device
    return measure_train_speed(variant, json.loads(kwargs_json), num_classes, trainable, batch, device(),
                               img_size=img_size, runs_dir=runs_dir)


@st.cache_data(show_spinner=False, max_entries=256)
def _has_qkv(variant: str, kwargs_json: str) -> bool:
    import json

    from ..train.plan import has_qkv_embeddings
    return has_qkv_embeddings(variant, json.loads(kwargs_json))


def finetune_plan(meta: dict, picked: dict, preset: str):
    """The preset's settings and expected seconds for this checkpoint and dataset, from the measured speed."""
    import json

    from ..train.plan import FULL_BATCH, QUICK_BATCH, plan_finetune, quick_scope
    kwargs_json = json.dumps(meta["variant_kwargs"], sort_keys=True)
    train_images, test_images = _dataset_sizes(picked["dataset"], picked["root"], meta["img_size"])
    has_qkv = _has_qkv(meta["variant"], kwargs_json)
    scope, batch = (quick_scope(has_qkv), QUICK_BATCH) if preset == "quick" else ("all", FULL_BATCH)
    speed = _speed(meta["variant"], kwargs_json, meta["num_classes"], scope, min(batch, train_images),
                   meta["img_size"], str(default_runs_dir()))
    return plan_finetune(preset, images_per_second=speed, train_images=train_images, test_images=test_images,
                         has_qkv=has_qkv)
