"""Layer switch latency in the browser (issue 12: <= 100 ms), on the Attention and Cross-covariance pages.

python bench/client_switch_latency.py [--checkpoint-dir checkpoints] [--repeats 9]

Drives `streamlit run app.py` with headless Chromium (Debian's package) via Playwright. For each page it
clicks the layer slider of the explorer figure (every layer, head and query token is in that one figure)
and measures, inside the browser, from the mousedown to the animation frame after plotly has applied the
step (its `plotly_restyle` / `plotly_update` event, or the trace data showing the clicked layer, polled
every frame), i.e. until the new layer is painted; "applied" is the time until plotly has redrawn. It also checks
that the click started no Streamlit rerun (the script-run status widget never appears) and that the
visible traces afterwards belong to the clicked layer. Appends a section to bench/RESULTS.md.
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

# installs listeners on the explorer figure: the time of the last mousedown, of the step applied, and of
# the next animation frame; also whether Streamlit's status widget (a rerun) showed up meanwhile
ARM = """([index, target]) => {
  const el = document.querySelectorAll('.js-plotly-plot')[index];
  window.__switch = {down: null, applied: null, painted: null, rerun: false};
  const s = window.__switch;
  const shows = () => (el._fullData || []).some(t => t.opacity > 0 && t.type === 'heatmap'
                                                 && String(t.name).includes(' ' + target + ' ·'));
  const applied = () => { if (s.applied !== null) return; s.applied = performance.now();
                          requestAnimationFrame(() => { s.painted = performance.now(); }); };
  const poll = () => { if (shows()) applied(); else if (s.applied === null) requestAnimationFrame(poll); };
  el.once('plotly_restyle', () => { if (shows()) applied(); });
  el.once('plotly_update', () => { if (shows()) applied(); });
  document.addEventListener('mousedown', () => { s.down = performance.now(); requestAnimationFrame(poll); },
                            {capture: true, once: true});
  const obs = new MutationObserver(() => {
    if (document.querySelector('[data-testid="stStatusWidget"]')) s.rerun = true; });
  obs.observe(document.body, {childList: true, subtree: true});
  window.__obs = obs;
}"""

VISIBLE = """([index]) => {
  const el = document.querySelectorAll('.js-plotly-plot')[index];
  return el._fullData.filter(t => t.opacity > 0 && t.type === 'heatmap').map(t => t.name);
}"""


def explorer_index(page) -> int:
    """Index of the first plot on the page that has a slider (the explorer)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
                             .findIndex(el => el.layout && el.layout.sliders && el.layout.sliders.length)""")


def switch_times(page, repeats: int, label: str) -> dict:
    index = explorer_index(page)
    assert index >= 0, "no explorer figure with a slider on the page"
    plot = page.locator(".js-plotly-plot").nth(index)
    plot.scroll_into_view_if_needed()
    labels = plot.locator(".slider-label")
    texts = [(t or "").strip() for t in labels.all_text_contents()]
    layers = sum(t.isdigit() for t in texts)
    assert layers >= 2, f"{layers} slider steps"
    times, applied, reruns, misses = [], [], 0, 0
    for i in range(repeats + 1):
        target = i % layers if i % 2 == 0 else layers - 1 - (i % layers)
        page.evaluate(ARM, [index, target])
        # the step labels are the layer numbers (the current-value text, "layer L", is a label too)
        box = labels.nth(texts.index(str(target))).bounding_box()
        rail = plot.locator(".slider-rail-rect").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, rail["y"] + rail["height"] / 2)
        page.wait_for_function("window.__switch.painted !== null || window.__switch.rerun", timeout=10_000)
        page.wait_for_timeout(300)  # would a rerun start after the click?
        s = page.evaluate("window.__obs.disconnect(); window.__switch")
        reruns += bool(s["rerun"])
        names = page.evaluate(VISIBLE, [index])
        if not (names and all(f" {target} ·" in n for n in names)):
            misses += 1  # the click did not land on the step (reported, not timed)
            print(f"click for layer {target} missed: {s}, showing {names[:1]}", file=sys.stderr)
        elif i:  # the first click warms the code path
            times.append(s["painted"] - s["down"])
            applied.append(s["applied"] - s["down"])
    return {"page": label, "layers": layers, "median_ms": float(np.median(times)),
            "applied_median_ms": float(np.median(applied)),
            "max_ms": float(np.max(times)), "clicks": len(times), "reruns": reruns, "missed_clicks": misses}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints"))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-results", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy
    if CHROMIUM is None:
        print("chromium not installed")
        return 1
    port = free_port()
    env = dict(os.environ, VITVIZ_CHECKPOINT_DIR=str(args.checkpoint_dir), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
                             "--server.port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    results = []
    try:
        wait_healthy(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(120_000)

            def idle():
                page.wait_for_timeout(300)
                page.wait_for_function("document.querySelectorAll('[data-stale=\"true\"]').length === 0 && "
                                       "!document.querySelector('[data-testid=\"stStatusWidget\"]')")

            for title, checkpoint in (("Attention", "vit_softmax_32 "), ("Cross-covariance", "xcit_n12_p4_32_fsne")):
                page.goto(url)
                page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=False).first.click()
                idle()
                page.get_by_label("Checkpoint").first.click()
                page.get_by_role("option").filter(has_text=checkpoint).first.click()
                idle()
                page.get_by_text("Digits", exact=True).first.click()
                idle()
                page.locator(".js-plotly-plot .slider-label").first.wait_for()
                results.append(dict(switch_times(page, args.repeats, f"{title}, {checkpoint.strip()}")))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    command = "python bench/client_switch_latency.py " + " ".join(sys.argv[1:])
    lines = [f"## Layer switch in the browser (client-side slider) — {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"`{command}` — headless Chromium, mousedown on the slider step to the next frame after plotly "
             "has redrawn it (painted: the next frame); a Streamlit rerun would be counted.", "",
             "| page | layers | median (painted) | max | median (redrawn) | clicks | reruns | target |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['page']} | {r['layers']} | {r['median_ms']:.0f} ms | {r['max_ms']:.0f} ms | "
              f"{r['applied_median_ms']:.0f} ms | {r['clicks']} | "
              f"{r['reruns']} | ≤ 100 ms |" for r in results]
    text = "\n".join(lines) + "\n\n"
    print(json.dumps(results, indent=1))
    print(text)
    if not args.no_results:
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
