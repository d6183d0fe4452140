"""The app's tables of what is available (checkpoints) and the table widget, without torch: the Zoo, the first
page, is drawn from checkpoint metadata alone, before the heavy imports (vitviz.ui.warm) have run."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from ..checkpoint_meta import checkpoint_candidates
from ..locations import default_checkpoint_dir
from ..overview import checkpoint_table


def checkpoint_dir() -> Path:
    return default_checkpoint_dir()


def _stat(path: Path) -> tuple:
    try:
        st_ = path.stat()
        return st_.st_mtime_ns, st_.st_size
    except OSError:
        return None, None


def _files_signature(directory: Path) -> tuple:
    """What the checkpoint table depends on: every candidate's metadata and weights file, with time and size."""
    return tuple((str(p), *_stat(p.with_suffix(".json")), *_stat(p))
                 for p in checkpoint_candidates(directory, recursive=True))


@st.cache_data(max_entries=8, show_spinner=False)
def _checkpoints_table(directory: str, signature: tuple):
    return checkpoint_table(directory)


def checkpoints_table():
    """(table, problems) of every checkpoint under the checkpoint directory: re-read when a file in it is added,
    removed or changed (each run only stats the files)."""
    directory = checkpoint_dir()
    return _checkpoints_table(str(directory), _files_signature(directory))


def show_table(df: pd.DataFrame, name: str, key: str | None = None, **kwargs):
    """A table with a CSV download; also collected for the page's HTML report, where a page has one."""
    from .export_buttons import collect
    st.dataframe(df, hide_index=True, key=key, **kwargs)
    collect("table", df, name)
    st.download_button("Download table (CSV)", lambda: df.to_csv(index=False), f"{name}.csv", "text/csv",
                       key=None if key is None else f"{key}_csv")
