"""Heavy sections on demand (issue 12: every page's first view in <= 2 s): a page first asks the disk cache
(`vitviz.result_cache`) for what it would show; whatever is missing is computed only after a button
press, under a spinner that names what is being computed."""
from __future__ import annotations

import streamlit as st

__all__ = ["asked_for"]


def asked_for(key: str, request, label: str, note: str | None = None) -> bool:
    """Whether to compute `request` (a hashable description of what is missing: settings and checkpoints) now.

    True when the button `key` is pressed, and on every later run of this session while the page asks for the
    same request (so its other widgets keep the result on screen even where the disk cache cannot be written:
    the computation then hits Streamlit's in-memory cache). Otherwise it shows `note` and the button, and
    returns False: the page shows its cheap content only.
    """
    remembered = f"{key}__asked"
    if st.session_state.get(remembered) == request:
        return True
    slot = st.empty()
    with slot.container():
        if note:
            st.caption(note)
        pressed = st.button(label, key=key, type="primary")
    if pressed:
        slot.empty()  # the computation's spinner and then its result take the button's place
        st.session_state[remembered] = request
        return True
    return False
