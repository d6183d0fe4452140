"""The job store as the pages see it, and the jump from a finished fine-tune to its comparison with the parent."""
from __future__ import annotations

import streamlit as st

from ..train.jobs import Job, JobStore
from .state import checkpoint_dir

PER_CLASS_PAIR = "per_class_pair"  # session key: (checkpoint A path, checkpoint B path) preset for Per-class


@st.cache_resource
def _store(runs_dir: str) -> JobStore:
    return JobStore(runs_dir)


def job_store() -> JobStore:
    return _store(str(checkpoint_dir() / "runs"))


def compare_with_parent(job: Job) -> None:
    """Open the Per-class page with the job's parent as A and its new checkpoint as B."""
    st.session_state[PER_CLASS_PAIR] = (job.spec["checkpoint"], job.checkpoint)
    st.switch_page("pages/per_class.py")
