"""App latency on this machine (issue targets on a 2-core CPU: first render <= 5 s, layer/head change
<= 300 ms, all attention maps of one model for one image <= 150 ms, a 4-variant compare <= 2 s).

python bench/app_latency.py [--checkpoint-dir checkpoints] [--repeats 7] [--first-render-only] [--no-results]

The first page render is measured twice: with `streamlit run app.py` and with `python -m vitviz app` (the
launcher, which warms imports and tables before the server accepts the first session).

Library timings call what the pages call (warm caches excluded: every capture is computed afresh);
browser timings drive `streamlit run app.py` with headless Chromium (Debian's package) via Playwright.
Appends a section to bench/RESULTS.md and writes bench/results/app-latency-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from browser_idle import DRAWN, NAV_LINKS  # noqa: E402
from vitviz import checkpoints, figures  # noqa: E402
from vitviz.data import load_dataset  # noqa: E402
from vitviz.data.images import to_input  # noqa: E402
from vitviz.inspect import capture  # noqa: E402
from vitviz.inspect.compare_views import CAPTURE_WANT, VIEWS, attention_view, top_predictions  # noqa: E402

ATTENTION_WANT = ["attention", "implied_attention", "projected_attention", "class_attention", "grids", "token_mixing"]


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def library_timings(directory: Path, repeats: int) -> dict:
    paths = checkpoints.list_checkpoints(directory)
    image = load_dataset("digits", "test", img_size=32).images[0]
    loaded = {p.stem: checkpoints.load(p, device="cpu") for p in paths}
    maps = {}
    for name, (model, meta) in loaded.items():
        x = to_input(image, meta["mean"], meta["std"])
        maps[name] = median_ms(lambda: capture(model, x, want=ATTENTION_WANT), repeats)

    def compare(names):  # what pages/compare.py does for its default view, uncached
        for name in names:
            model, meta = loaded[name]
            art = capture(model, to_input(image, meta["mean"], meta["std"]), want=CAPTURE_WANT)
            heat, _ = attention_view(art, VIEWS[0])
            if heat is not None:
                figures.attention_overlay(image, heat, height=320).to_json()
            top_predictions(art["logits"], meta["classes"])

    four = [n for n in ("xcit_n12_p4_32_fsne", "vit_softmax_32", "vit_performer_32_conv_rope", "cvt_32")
            if n in loaded] or list(loaded)[:4]
    return {"attention_maps_ms": maps, "compare_4_ms": median_ms(lambda: compare(four), repeats),
            "compare_4_checkpoints": four}


SERVERS = {  # how the app is started: name -> command (the port is appended)
    "streamlit run app.py": lambda port: [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                                          "--server.headless", "true", "--browser.gatherUsageStats", "false",
                                          "--server.port", str(port)],
    "python -m vitviz app": lambda port: [sys.executable, "-m", "vitviz", "app", "--port", str(port)],
}


def browser_timings(directory: Path, repeats: int, server: str = "streamlit run app.py",
                    interactions: bool = True) -> dict:
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy
    if CHROMIUM is None:
        return {"skipped": "chromium not installed"}
    port = free_port()
    env = dict(os.environ, VITVIZ_CHECKPOINT_DIR=str(directory), PYTHONPATH=str(ROOT))
    url = f"http://127.0.0.1:{port}"
    out = {}
    proc = None
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # before the launch: not timed
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(120_000)
            started = time.perf_counter()  # the user's command
            proc = subprocess.Popen(SERVERS[server](port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.STDOUT)
            wait_healthy(url, proc, poll=0.05)
            out["server_start_s"] = time.perf_counter() - started
            start = time.perf_counter()
            page.goto(url)
            page.locator('[data-testid="stDataFrame"]').first.wait_for()
            out["launch_to_zoo_table_s"] = time.perf_counter() - started  # launch -> the Zoo's table drawn
            page.wait_for_function(DRAWN)  # lazily loaded widgets and charts drawn too (bench/browser_idle.py)
            out["first_render_s"] = time.perf_counter() - start
            if not interactions:
                browser.close()
                return out

            def idle():
                page.wait_for_timeout(50)
                page.wait_for_function(DRAWN)

            page.locator(NAV_LINKS).get_by_text("Attention", exact=True).click()
            page.get_by_label("Checkpoint").first.click()
            page.get_by_role("option").filter(has_text="vit_softmax_32 ").first.click()
            idle()
            page.get_by_text("Digits", exact=True).click()
            idle()
            page.locator(".js-plotly-plot").first.wait_for()
            layers = page.get_by_role("radiogroup", name="Layer")
            if not layers.count():  # layer, head and query are switched in the browser since issue 12
                out["interactions"] = "client-side: see bench/client_switch_latency.py"
                browser.close()
                return out
            times = []
            for i in range(repeats):
                option = layers.get_by_text(str(i % 2), exact=True)
                start = time.perf_counter()
                option.click()
                idle()
                times.append(time.perf_counter() - start)
            out["layer_change_ms"] = 1000 * float(np.median(times))
            head_times = []
            head = page.get_by_label("Head", exact=True)
            for i in range(min(repeats, 3)):
                head.focus()
                page.keyboard.press("ArrowDown")  # opens the list
                page.get_by_role("option").first.wait_for()
                start = time.perf_counter()
                page.keyboard.press("ArrowDown" if i % 2 == 0 else "ArrowUp")
                page.keyboard.press("Enter")
                idle()
                head_times.append(time.perf_counter() - start)
            out["head_change_ms"] = 1000 * float(np.median(head_times))
            browser.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--first-render-only", action="store_true",
                        help="only the first page render of both servers (no library or interaction timings)")
    parser.add_argument("--no-results", action="store_true",
                        help="print the section without appending it to bench/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    directory = Path(args.checkpoint_dir)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu_threads": torch.get_num_threads(),
              "command": "python bench/app_latency.py " + " ".join(sys.argv[1:]),
              "library": {} if args.first_render_only else library_timings(directory, args.repeats),
              "browser": browser_timings(directory, args.repeats, interactions=not args.first_render_only),
              "launcher": browser_timings(directory, args.repeats, "python -m vitviz app", interactions=False)}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"app-latency-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=1))
    lib, web, launched = result["library"], result["browser"], result["launcher"]
    lines = [f"## App latency — {result['date']} — CPU, {result['cpu_threads']} threads", "",
             f"`{result['command']}`", "", "| measure | target | measured |", "|---|---|---|"]
    for name, timing in (("streamlit run app.py", web), ("python -m vitviz app", launched)):
        if "first_render_s" in timing:
            lines.append(f"| launch to the Zoo's table drawn, `{name}` | ≤ 5 s | "
                         f"{timing['launch_to_zoo_table_s']:.2f} s |")
            lines.append(f"| first page render, `{name}` (server up after {timing['server_start_s']:.1f} s) | ≤ 3 s | "
                         f"{timing['first_render_s']:.2f} s |")
    if "launch_to_zoo_table_s" in web and "launch_to_zoo_table_s" in launched:
        lines.append(f"| launch to Zoo, `python -m vitviz app` / `streamlit run app.py` | | "
                     f"{launched['launch_to_zoo_table_s'] / web['launch_to_zoo_table_s']:.2f} |")
    if "layer_change_ms" in web:
        lines += [f"| layer change (Attention, vit_softmax_32) | ≤ 300 ms | {web['layer_change_ms']:.0f} ms |",
                  f"| head change (Attention, vit_softmax_32) | ≤ 300 ms | {web['head_change_ms']:.0f} ms |"]
    if lib:
        lines.append(f"| 4-variant compare ({', '.join(lib['compare_4_checkpoints'])}) | ≤ 2 s | "
                     f"{lib['compare_4_ms']:.0f} ms |")
        lines += [f"| all attention maps, {name} | ≤ 150 ms | {ms:.0f} ms |"
                  for name, ms in lib["attention_maps_ms"].items()]
    text = "\n".join(lines) + "\n\n"
    if not args.no_results:
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
