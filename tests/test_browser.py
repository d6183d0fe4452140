"""End to end in a real browser: `streamlit run app.py` driven by headless Chromium (Debian's package)
through Playwright. Screenshots land in artifacts/browser/.

Skipped only when Chromium is not installed (CI installs it: see .ci/run).
"""
from __future__ import annotations

import contextlib
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

from app_fixtures import APP_VARIANTS, write_tiny_checkpoints

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]

SERVED: dict = {}  # what the module's server shows: its checkpoint directory

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="Debian's chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90, poll: float = 0.5) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(poll)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@contextlib.contextmanager
def streamlit_server(checkpoint_dir, data_dir, **env_extra):
    """`streamlit run app.py` from the repository (its .streamlit/config.toml applies) on a free port; the URL."""
    env = dict(os.environ, VITVIZ_CHECKPOINT_DIR=str(checkpoint_dir), VITVIZ_DATA_DIR=str(data_dir),
               PYTHONPATH=str(ROOT), **env_extra)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(free_port()), "--server.headless", "true", "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{proc.args[proc.args.index('--server.port') + 1]}"
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
def server(tmp_path_factory):
    checkpoint_dir = tmp_path_factory.mktemp("browser_checkpoints")
    write_tiny_checkpoints(checkpoint_dir)
    SERVED["checkpoints"] = checkpoint_dir
    with streamlit_server(checkpoint_dir, tmp_path_factory.mktemp("data")) as url:
        yield url


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
    page.locator('[data-testid="stSidebar"] [data-testid="stPageLink"]').get_by_text(title, exact=True).click()
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


# Plotly keeps the decoded trace arrays in `_fullData` (the `data` it was given may be base64 "bdata")
PLOTLY_TRACES = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
  title: el.layout && el.layout.title ? (el.layout.title.text || el.layout.title) : '',
  traces: (el._fullData || []).map(t => ({name: t.name, type: t.type,
     x: t.x ? Array.from(t.x) : null, y: t.y ? Array.from(t.y) : null,
     z: t.z ? Array.from(t.z).map(r => (r && r.length !== undefined) ? Array.from(r) : r) : null}))}))"""


def plotted(page) -> list[dict]:
    return page.evaluate(PLOTLY_TRACES)


def class_token_maps(image_u8: np.ndarray, checkpoint: str) -> dict[tuple[int, int], np.ndarray]:
    """The library's own class-token attention of a checkpoint on a (S, S, 3) uint8 image, per (layer, head),
    over the patch grid (class-token column dropped)."""
    import torch
    from vitviz import checkpoints
    from vitviz.inspect import capture
    model, meta = checkpoints.load(SERVED["checkpoints"] / f"{checkpoint}.safetensors", device="cpu")
    x = torch.from_numpy(image_u8).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(1, 3, 1, 1)
    art = capture(model, x, want=["attention", "grids"])
    out = {}
    for layer, (attn, grid) in enumerate(zip(art["attention"], art["grids"])):
        for head in range(attn.shape[1]):
            out[(layer, head)] = attn[0, head, 0, 1:].reshape(grid["k"]).numpy()
    return out


def _class_token_heatmaps_match(page, expected: dict) -> None:
    import re
    matched = 0
    for fig in plotted(page):
        for trace in fig["traces"]:
            found = re.fullmatch(r"layer (\d+) · h(\d+)", str(trace["name"]))
            if trace["type"] != "heatmap" or not found:
                continue
            key = (int(found.group(1)), int(found.group(2)))
            np.testing.assert_allclose(np.array(trace["z"], dtype=float), expected[key], atol=1e-4,
                                       err_msg=f"heat map {trace['name']}")
            matched += 1
    assert matched == len(expected), f"{matched} class-token heat maps on the page, expected {len(expected)}"


def assert_class_token_heatmaps_match(page, expected: dict, settle_seconds: float = 20.0) -> None:
    """Every 'layer L · hH' heat map on the page holds the library's class-token map of that layer and head.

    Streamlit replaces a rerun's elements one by one, so right after the new image's caption appears the
    figure can still be the previous image's: the comparison is repeated until the page settles (or the
    time is up, and the last mismatch is raised)."""
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            _class_token_heatmaps_match(page, expected)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.wait_for_timeout(500)


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
    from vitviz.ui.state import device_label
    page.get_by_text(f"Device: {device_label()}", exact=True).wait_for()  # the device the app runs on
    page.get_by_role("heading", name=f"Checkpoints in {SERVED['checkpoints']}").wait_for()
    page.screenshot(path=str(SHOTS / "zoo.png"), full_page=True)
    # the checkpoint picker offers exactly the checkpoints in the served directory
    open_page(page, server, "Attention")
    page.get_by_label("Checkpoint").first.click()
    offered = sorted(t.split(" ")[0] for t in page.get_by_role("option").all_inner_texts())
    page.keyboard.press("Escape")
    assert offered == sorted(APP_VARIANTS), offered


def test_attention_heatmap_for_a_chosen_checkpoint_and_image(page, server):
    open_page(page, server, "Attention")
    choose_option(page, "Checkpoint", "tiny_vit_softmax")
    page.get_by_text("Digits", exact=True).click()
    wait_idle(page)
    page.get_by_text("digits test image #0").wait_for()
    heatmaps = page.locator(".js-plotly-plot .heatmaplayer, .js-plotly-plot .imagelayer image")
    heatmaps.first.wait_for()
    assert page.get_by_text("Softmax attention").count() >= 1
    page.screenshot(path=str(SHOTS / "attention.png"), full_page=True)
    from vitviz.data import load_dataset
    digit = load_dataset("digits", "test", img_size=32).images[0]
    assert_class_token_heatmaps_match(page, class_token_maps(digit, "tiny_vit_softmax"))


def test_upload_an_image_and_a_bad_file(page, server, tmp_path):
    open_page(page, server, "Attention")
    choose_option(page, "Checkpoint", "tiny_vit_softmax")
    page.get_by_text("Upload", exact=True).click()
    wait_idle(page)
    good = tmp_path / "photo.png"
    good.write_bytes(png_bytes())
    page.locator('input[type="file"]').set_input_files(str(good))
    wait_idle(page)
    page.get_by_text("upload 'photo.png'").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.screenshot(path=str(SHOTS / "upload.png"), full_page=True)
    # the maps shown are the uploaded photo's (as the app prepares it: decoded, resized to 32 px)
    from vitviz.data.images import prepare, read_image
    photo = prepare(read_image(png_bytes(), "photo.png"), 32)
    assert_class_token_heatmaps_match(page, class_token_maps(photo, "tiny_vit_softmax"))

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
    page.screenshot(path=str(SHOTS / "per_class.png"), full_page=True)
    # the bars are each checkpoint's per-class accuracy, recomputed from its stored test predictions
    from vitviz import checkpoints
    bars = {}
    for fig in plotted(page):
        for trace in fig["traces"]:
            if trace["type"] == "bar" and trace["name"] in APP_VARIANTS:
                bars[trace["name"]] = trace
    assert len(bars) == 2, list(bars)
    for name, trace in bars.items():
        meta = checkpoints.read_meta(SERVED["checkpoints"] / name)
        labels = np.array(meta["metrics"]["test_labels"])
        predictions = np.array(meta["metrics"]["test_predictions"])
        expected = [float((predictions[labels == k] == k).mean()) for k in range(len(meta["classes"]))]
        assert trace["x"] == [str(c) for c in meta["classes"]]
        np.testing.assert_allclose(trace["y"], expected, atol=1e-9, err_msg=name)


def test_finetune_job_runs_to_done_in_the_browser(page, server):
    open_page(page, server, "Fine-tune")
    choose_option(page, "Checkpoint", "tiny_vit_softmax")
    choose_option(page, "Dataset", "Handwritten digits")
    page.get_by_text("Custom", exact=True).click()  # the presets size themselves; this test sets the steps
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


def test_per_class_figure_downloads_as_svg_pdf_and_an_offline_report(page, server):
    from vitviz.figures.export import static_export_status
    if not static_export_status()[0]:
        pytest.skip(static_export_status()[1])
    open_page(page, server, "Per-class")
    wait_idle(page)
    page.locator(".js-plotly-plot").first.wait_for()
    downloaded = {}
    for fmt in ("svg", "pdf"):
        button = page.locator(f".st-key-pc_bars_{fmt} button").first
        button.scroll_into_view_if_needed()
        with page.expect_download(timeout=120_000) as info:
            button.click()
        downloaded[fmt] = Path(info.value.path()).read_bytes()
        assert info.value.suggested_filename == f"per_class_bars.{fmt}"
    assert downloaded["svg"].lstrip().startswith(b"<svg") and b"</svg>" in downloaded["svg"]
    assert downloaded["pdf"].startswith(b"%PDF-")
    with page.expect_download(timeout=120_000) as info:
        page.locator(".st-key-pc_report button").first.click()
    report = Path(info.value.path()).read_text()
    assert "<script src=" not in report and report.count("Plotly.newPlot") >= 4
    assert "vitviz_xcit_n12_p4_32_linear" in report and "pc_level" in report


def test_qkv_page_tabs_run_in_the_browser(page, server):
    """Q/K/V codes & weights: the pathway tab opens first (its CKA on request); the weights tab, clicked, draws the
    Frobenius norm of each block's q weights, checked against the checkpoint's own qkv matrix; the F-SNE tab draws
    the codes as the network sees them."""
    open_page(page, server, "Q/K/V codes & weights")
    wait_idle(page)
    page.get_by_role("button", name="Compute the pathway CKA", exact=False).wait_for()
    assert page.get_by_role("heading", name="Weight statistics").count() == 0  # only the open tab ran
    page.get_by_role("tab", name="Q/K/V weights").click()
    wait_idle(page)
    page.get_by_role("heading", name="Weight statistics").wait_for()
    page.screenshot(path=str(SHOTS / "qkv_weights_tab.png"), full_page=True)
    page.wait_for_function("() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(el => el.layout "
                           "&& String((el.layout.title || {}).text || '').includes('fro_norm of'))")
    figure = next(f for f in plotted(page) if "fro_norm of" in str(f["title"]))  # (the theme adds <b>)
    line = next(t for t in figure["traces"] if t["name"] == "tiny_xcit_linear · q")
    from vitviz import checkpoints
    model, _ = checkpoints.load(SERVED["checkpoints"] / "tiny_xcit_linear")
    expected = []
    for block in model.blocks:
        weight = block.attn.qkv.weight.detach()
        expected.append(float(weight[:weight.shape[1]].double().norm()))  # q: the first dim rows of qkv
    np.testing.assert_allclose(line["y"], expected, rtol=1e-6)
    assert page.get_by_role("button", name="Compute the pathway CKA", exact=False).count() == 0
    page.get_by_role("tab", name="F-SNE codes").click()
    wait_idle(page)
    page.wait_for_function("() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(el => el.layout "
                           "&& String((el.layout.title || {}).text || '').includes('W_c c_t'))")
    assert page.get_by_role("heading", name="Weight statistics").count() == 0
    page.screenshot(path=str(SHOTS / "qkv_codes_tab.png"), full_page=True)


def test_plotly_is_preloaded_once_while_the_zoo_is_idle(page, server):
    """The sidebar's preload (vitviz/ui/preload.py) imports Streamlit's own plotly chunk after the Zoo is drawn;
    the first figure page then reuses it: the chunk is requested exactly once in the tab."""
    from vitviz.ui.preload import plotly_chunk
    context = page.context.browser.new_context(viewport={"width": 1500, "height": 1100})  # a fresh tab and cache
    try:
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        requested = []
        pg.on("request", lambda r: requested.append(r.url) if "PlotlyChart" in r.url else None)
        pg.goto(server)
        pg.get_by_role("heading", name="Model zoo").wait_for()
        assert pg.locator(".js-plotly-plot").count() == 0  # the Zoo draws no figure itself
        pg.wait_for_function("() => String(window.__vitvizPlotlyPreload || '').startsWith('http')")
        preloaded = pg.evaluate("window.__vitvizPlotlyPreload")
        assert preloaded.endswith("/static/js/" + plotly_chunk()) and requested == [preloaded]
        pg.locator('[data-testid="stSidebar"] [data-testid="stPageLink"]').get_by_text("Attention", exact=True).click()
        pg.locator(".js-plotly-plot .main-svg").first.wait_for()
        assert requested == [preloaded]  # Streamlit's own import found the module already loaded
    finally:
        context.close()


LEGACY_PATHS = {"zoo": "Model zoo", "attention": "Attention", "cross_covariance": "Cross-covariance attention",
                "codes_weights": "Q/K/V codes & weights", "per_class": "Per-class comparison", "compare": "Compare",
                "representations": "Representations: where do two checkpoints diverge?",
                "attributions": "Attributions", "faithfulness": "Faithfulness", "efficiency": "Efficiency",
                "finetune": "Fine-tune", "studies": "Studies"}
RAW_LISTING = ("codes weights", "cross covariance", "per class", "finetune")  # Streamlit's names of pages/ files


def test_a_fresh_server_shows_the_apps_navigation_and_answers_every_page_path(page, tmp_path_factory):
    """The first visit of a fresh server (the first request a page path, as a bookmark would be): the sidebar is
    the app's own navigation from the first screenshot on, never the pages/ file listing; no "Page not found";
    then every path the app has shown answers with its page."""
    checkpoint_dir = tmp_path_factory.mktemp("fresh_checkpoints")
    write_tiny_checkpoints(checkpoint_dir)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server(checkpoint_dir, tmp_path_factory.mktemp("fresh_data"), VITVIZ_NO_WARM="1") as url:
        context = page.context.browser.new_context(viewport={"width": 1500, "height": 1100})  # the module's browser
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(url + "/zoo")
        sidebars = []
        deadline = time.time() + 60
        while not pg.get_by_role("heading", name="Model zoo").count():  # every state until the page is drawn
            sidebar = pg.locator('[data-testid="stSidebar"]')
            sidebars.append(sidebar.inner_text() if sidebar.count() else "")
            assert time.time() < deadline, f"no Zoo within 60 s: {pg.locator('body').inner_text()[:500]}"
            pg.wait_for_timeout(100)
        titles = ("Zoo", "Attention", "Q/K/V codes & weights", "Per-class")
        deadline = time.time() + 10  # the sidebar's links may arrive a moment after the page's heading
        while True:
            sidebar = pg.locator('[data-testid="stSidebar"]')
            sidebars.append(sidebar.inner_text() if sidebar.count() else "")
            if all(title in sidebars[-1] for title in titles) or time.time() > deadline:
                break
            pg.wait_for_timeout(100)
        pg.screenshot(path=str(SHOTS / "fresh_server_first_view.png"))
        assert all(not any(raw in text.lower() for raw in RAW_LISTING) for text in sidebars), sidebars
        assert all(title in sidebars[-1] for title in titles), sidebars[-1]
        assert not pg.get_by_text("Page not found").count()
        for path, title in [("", "Model zoo"), *LEGACY_PATHS.items()]:
            pg.goto(f"{url}/{path}")
            try:
                pg.get_by_role("heading", name=title).first.wait_for()
            except Exception:
                pg.screenshot(path=str(SHOTS / f"fresh_server_{path or 'home'}_failed.png"))
                raise AssertionError(f"/{path}: no heading {title!r}; page: {pg.locator('body').inner_text()[:800]}")
            assert not pg.get_by_text("Page not found").count(), path
        context.close()
