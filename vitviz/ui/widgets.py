"""Shared widgets: checkpoint and image pickers, figures and tables with export buttons."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from ..checkpoints import CheckpointError, checkpoint_files_exist
from ..data import load_dataset
from ..data.images import ACCEPTED_FORMATS, ImageError, prepare, read_image, sample_photos
from ..overview import preferred_checkpoint
from .export_buttons import collect, static_downloads
from .state import load_model, test_set, test_set_missing_note
from .tables import checkpoints_table, show_table  # noqa: F401  (show_table re-exported)

IMAGE_SOURCES = ("Test set", "Sample photo", "Digits", "Upload")


def _label(row) -> str:
    acc = row.get("test_accuracy")
    acc = f" · {acc:.1%}" if isinstance(acc, float) and acc == acc else ""
    return f"{row['checkpoint']} ({row['dataset']}{acc})"


def _checkpoint_rows(where=None) -> pd.DataFrame:
    table, _ = checkpoints_table()
    if where is not None and not table.empty:
        table = table[table.apply(where, axis=1)]
    return table


def checkpoint_options(where=None, table: pd.DataFrame | None = None) -> dict:
    """{picker label: path} of the checkpoints, in the order the pickers list them."""
    table = _checkpoint_rows(where) if table is None else table
    return {} if table.empty else {_label(r): r["path"] for r in table.to_dict("records")}


def _missing_label(path: str) -> str:
    return f"{Path(path).stem} (missing: deleted or renamed)"


def _vanished_note(paths) -> str:
    names = ", ".join(f"`{Path(p).stem}`" for p in paths)
    return (f"The selected checkpoint {names} is no longer available: its files were deleted or renamed. "
            "Nothing else was substituted; choose a checkpoint from the list.")


def pick_checkpoint(label: str = "Checkpoint", key: str = "checkpoint", where=None, default=None,
                    container=st) -> str:
    """A checkpoint picker that returns the chosen path; stops the page with a message when there is none.

    The chosen path is remembered per key (also across pages). If its files vanish, the picker keeps it
    selected, labelled as missing, says so and stops: it never silently switches to another checkpoint.
    `default` (a path) is the first choice; else an XCiT, else a ViT, else the first checkpoint.
    """
    rows = _checkpoint_rows(where)
    by_label = checkpoint_options(table=rows)
    label_of = {path: text for text, path in by_label.items()}
    remembered = st.session_state.get(f"{key}__path")
    moved_on = st.session_state.get(key) in by_label  # the user has just chosen a listed checkpoint
    if remembered and not moved_on and remembered not in label_of and not checkpoint_files_exist(remembered):
        by_label[_missing_label(remembered)] = remembered
        label_of[remembered] = _missing_label(remembered)
    if not by_label:
        container.info("No suitable checkpoint found. Train one with `python -m vitviz train` or on the "
                       "Fine-tune page.")
        st.stop()
    if st.session_state.get(key) not in by_label:
        first = remembered if remembered in label_of else default
        if first not in label_of:
            first = preferred_checkpoint(rows)
        st.session_state[key] = label_of[first]
    path = by_label[container.selectbox(label, list(by_label), key=key)]
    st.session_state[f"{key}__path"] = path
    if not checkpoint_files_exist(path):
        container.error(_vanished_note([path]))
        st.stop()
    return path


def choose_checkpoint(label: str = "Checkpoint", key: str = "checkpoint", where=None, container=st, default=None):
    """A checkpoint picker (see pick_checkpoint); returns (path, model, meta) or stops the page with a message."""
    path = pick_checkpoint(label, key, where, default, container)
    try:
        model, meta = load_model(path)
    except CheckpointError as exc:
        container.error(f"Cannot load this checkpoint: {exc}")
        st.stop()
    return path, model, meta


def choose_checkpoints(label: str = "Checkpoints", key: str = "checkpoints", min_count: int = 2,
                       max_count: int = 4, where=None, default=None):
    """Several checkpoints; returns a list of (path, model, meta) (stops the page if too few).

    Like pick_checkpoint, a chosen checkpoint whose files vanished stays in the selection, marked missing,
    and the page says so and stops instead of going on without it.
    """
    by_label = checkpoint_options(where)
    paths = list(by_label.values())
    remembered = st.session_state.get(f"{key}__paths") or []
    current = st.session_state.get(key)
    # a label that is no longer listed is a selection whose files vanished (or its missing label)
    stale = current is None or any(text not in by_label for text in current)
    for path in remembered:
        if stale and path not in paths and not checkpoint_files_exist(path):
            by_label[_missing_label(path)] = path
    label_of = {path: text for text, path in by_label.items()}
    if key not in st.session_state or any(text not in by_label for text in st.session_state[key]):
        first = [p for p in remembered if p in label_of] or [p for p in (default or paths[:min_count])
                                                             if p in paths]
        st.session_state[key] = [label_of[p] for p in first[:max_count]]
    chosen = st.multiselect(label, list(by_label), key=key, max_selections=max_count)
    chosen = [by_label[c] for c in chosen]
    st.session_state[f"{key}__paths"] = chosen
    vanished = [p for p in chosen if not checkpoint_files_exist(p)]
    if vanished:
        st.error(_vanished_note(vanished))
        st.stop()
    if len(chosen) < min_count:
        st.info(f"Choose at least {min_count} checkpoint{'s' if min_count != 1 else ''}.")
        st.stop()
    loaded = []
    for path in chosen:
        try:
            loaded.append((path, *load_model(path)))
        except CheckpointError as exc:
            st.error(f"Cannot load {Path(path).name}: {exc}")
    if len(loaded) < min_count:
        st.stop()
    return loaded


@st.cache_data(show_spinner=False)
def _digits(size: int):
    ds = load_dataset("digits", "test", img_size=size)
    return ds.images, ds.labels, ds.classes


@st.cache_data(show_spinner=False)
def _photos():
    return sample_photos()


def choose_image(meta: dict, key: str = "image", container=None):
    """Pick an image for a checkpoint: its test set (by class), a sample photo, digits, or an upload.

    Returns (image uint8 (S, S, 3) at the model's input size, caption, true class name or None),
    or None when no usable image is chosen (a bad upload shows why).
    """
    box = container or st
    size = meta["img_size"]
    source = box.radio("Image source", IMAGE_SOURCES, horizontal=True, key=f"{key}_source")
    if source == "Test set":
        data = test_set(meta)
        if data is None:
            box.info(test_set_missing_note(meta) + " Showing the digits instead.")
            source = "Digits"
        else:
            images, labels, classes = data
            cls = box.selectbox("Class", classes, key=f"{key}_class")
            members = np.flatnonzero(labels == classes.index(cls))
            i = box.slider("Image of this class", 0, max(len(members) - 1, 0), 0, key=f"{key}_index")
            index = int(members[i])
            return images[index], f"test image #{index} ({cls})", cls
    if source == "Digits":
        images, labels, classes = _digits(size)
        index = box.slider("Digit image", 0, len(images) - 1, 0, key=f"{key}_digit")
        return images[index], f"digits test image #{index} (a {classes[labels[index]]})", None
    if source == "Sample photo":
        photos = _photos()
        name = box.selectbox("Photo", list(photos), key=f"{key}_photo")
        return prepare(photos[name], size), f"scikit-learn sample photo '{name}'", None
    # no `type=` filter: the browser would reject other files with a note shown only on hover; here every
    # file reaches read_image, whose reason (e.g. "SVG images are not supported") is shown as an error
    upload = box.file_uploader(f"Upload an image ({', '.join(ACCEPTED_FORMATS)})", key=f"{key}_upload")
    if upload is None:
        box.caption("Choose a file to upload.")
        return None
    try:
        return prepare(read_image(upload.getvalue(), upload.name), size), f"upload '{upload.name}'", None
    except ImageError as exc:
        box.error(str(exc))
        return None


def show_figure(fig, name: str, key: str | None = None, **kwargs):
    """Plotly chart plus HTML, SVG, PDF and PNG downloads (static formats rendered on click)."""
    st.plotly_chart(fig, key=key, **kwargs)
    st.download_button("Download figure (HTML)", lambda: fig.to_html(include_plotlyjs="cdn"), f"{name}.html",
                       "text/html", key=None if key is None else f"{key}_html")
    static_downloads(fig, name, key)  # SVG / PDF / PNG, rendered on click (or why not available)
    collect("figure", fig, name)  # for the page's HTML report, if it makes one
