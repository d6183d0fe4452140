"""Uploads on the Attention page (AppTest): a real file is uploaded, and the page uses it.

A good PNG is decoded and the page's figures are computed for it (they differ from the figures
for a digits image); a file that is not an image is refused with its reason and draws nothing.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app_fixtures import run_page


def png_bytes(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def texts(at) -> list[str]:
    """Visible texts, image captions included."""
    out = [e.value for kind in ("caption", "markdown", "subheader", "info", "error", "warning")
           for e in getattr(at, kind)]
    return out + [img.caption for element in at.get("image") for img in element.proto.imgs]


def chart_specs(at) -> list[str]:
    return [c.proto.spec for c in at.get("plotly_chart")]


def choose_vit(at):
    box = at.selectbox(key="checkpoint")
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith("tiny_vit_softmax"))).run()


def test_uploading_an_image_draws_its_maps_and_a_bad_file_is_refused(app_env):
    at = run_page("attention")
    choose_vit(at)
    at.radio(key="attn_image_source").set_value("Digits").run()
    digits_specs = chart_specs(at)
    assert digits_specs and not at.exception

    at.radio(key="attn_image_source").set_value("Upload").run()
    assert not at.exception
    assert not chart_specs(at), "no file yet: nothing to draw"
    assert any("Choose a file" in t for t in texts(at))

    uploader = at.file_uploader(key="attn_image_upload")
    uploader.set_value(("photo.png", png_bytes(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("upload 'photo.png'" in t for t in texts(at)), texts(at)
    upload_specs = chart_specs(at)
    assert upload_specs, "the uploaded image drew no figure"
    assert upload_specs != digits_specs  # the maps are the uploaded image's, not the previous image's

    at.file_uploader(key="attn_image_upload").set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert not at.exception
    assert any("notes.png: not an image" in e.value for e in at.error), [e.value for e in at.error]
    assert not chart_specs(at)
