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
