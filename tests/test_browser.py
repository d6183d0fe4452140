"""End to end in a real browser: `streamlit run app.py` driven by headless Chromium (Debian's package)
through Playwright. Screenshots land in artifacts/browser/.

Skipped only when Chromium is not installed (CI installs it: see .ci/run).
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from app_fixtures import write_tiny_checkpoints

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    checkpoint_dir = tmp_path_factory.mktemp("browser_checkpoints")
    write_tiny_checkpoints(checkpoint_dir)
    port = free_port()
    env = dict(os.environ, VITVIZ_CHECKPOINT_DIR=str(checkpoint_dir),
               VITVIZ_DATA_DIR=str(tmp_path_factory.mktemp("data")), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1500, "height": 1100})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def open_page(page, server, title: str):
    page.goto(server)
    page.get_by_role("heading", name="Model zoo").wait_for()
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for()


def wait_idle(page):
    """Wait until streamlit has finished the current run (status widget gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=90_000)
    page.wait_for_function("document.querySelectorAll('[data-stale=\"true\"]').length === 0", timeout=90_000)


def choose_option(page, label: str, option: str):
    page.get_by_label(label).first.click()
    page.get_by_role("option").filter(has_text=option).first.click()
    wait_idle(page)


def png_bytes() -> bytes:
    from PIL import Image
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_zoo_lists_the_checkpoints(page, server):
    page.goto(server)
    page.get_by_role("heading", name="Model zoo").wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    assert page.get_by_text("Device:").count() >= 1
    page.screenshot(path=str(SHOTS / "zoo.png"), full_page=True)


def test_attention_heatmap_for_a_chosen_checkpoint_and_image(page, server):
    open_page(page, server, "Attention")
    choose_option(page, "Checkpoint", "tiny_vit_softmax")
    page.get_by_text("Digits", exact=True).click()
    wait_idle(page)
    page.get_by_text("digits test image #0").wait_for()
    heatmaps = page.locator(".js-plotly-plot .heatmaplayer, .js-plotly-plot .imagelayer image")
    heatmaps.first.wait_for()
    assert heatmaps.count() > 0
    assert page.get_by_text("Softmax attention").count() >= 1
    page.screenshot(path=str(SHOTS / "attention.png"), full_page=True)


def test_upload_an_image_and_a_bad_file(page, server, tmp_path):
    open_page(page, server, "Attention")
    page.get_by_text("Upload", exact=True).click()
    wait_idle(page)
    good = tmp_path / "photo.png"
    good.write_bytes(png_bytes())
    page.locator('input[type="file"]').set_input_files(str(good))
    wait_idle(page)
    page.get_by_text("upload 'photo.png'").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.screenshot(path=str(SHOTS / "upload.png"), full_page=True)

    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    page.locator('input[type="file"]').set_input_files(str(bad))
    wait_idle(page)
    page.get_by_text("not an image").wait_for()
    page.screenshot(path=str(SHOTS / "bad_upload.png"), full_page=True)


def test_per_class_with_two_variants(page, server):
    open_page(page, server, "Per-class")
    wait_idle(page)
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.locator(".js-plotly-plot").count() >= 2
    page.screenshot(path=str(SHOTS / "per_class.png"), full_page=True)


def test_finetune_job_runs_to_done_in_the_browser(page, server):
    open_page(page, server, "Fine-tune")
    choose_option(page, "Checkpoint", "tiny_vit_softmax")
    choose_option(page, "Dataset", "Handwritten digits")
    page.get_by_text("steps", exact=True).click()
    page.get_by_label("Epochs or steps").fill("3")
    page.get_by_label("Batch size").fill("32")
    page.get_by_role("button", name="Start fine-tune").click()
    page.get_by_text("test accuracy", exact=False).first.wait_for(timeout=180_000)
    page.get_by_role("button", name="Compare with its parent on Per-class").first.wait_for()
    page.screenshot(path=str(SHOTS / "finetune_done.png"), full_page=True)
    page.get_by_role("button", name="Compare with its parent on Per-class").first.click()
    page.get_by_role("heading", name="Per-class comparison").wait_for()
    wait_idle(page)
    page.screenshot(path=str(SHOTS / "finetune_vs_parent.png"), full_page=True)
