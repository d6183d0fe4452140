"""Switch latency in the browser (issue 12: <= 100 ms): the layer on the Attention and Cross-covariance pages,
and the Attention page's rollout and relevance (Chefer) controls.

python bench/client_switch_latency.py [--checkpoint-dir checkpoints] [--repeats 9] [--part layers|explain|all]

Drives `streamlit run app.py` with headless Chromium (Debian's package) via Playwright. For each page it
clicks the layer slider of the explorer figure (every layer, head and query token is in that one figure)
and measures, inside the browser, from the mousedown to the animation frame after plotly has applied the
step (its `plotly_restyle` / `plotly_update` event, or the trace data showing the clicked layer, polled
every frame), i.e. until the new layer is painted; "applied" is the time until plotly has redrawn. It also checks
that the click started no Streamlit rerun (the script-run status widget never appears) and that the
visible traces afterwards belong to the clicked layer. Appends a section to bench/RESULTS.md.

--part explain: on the Attention page (vit_softmax_32, a digit) it switches the rollout's setting and the class
that the relevance explains, whichever way the page offers them: Streamlit widgets (a selectbox: timed from
the mousedown on the option until the figure with the new title is shown and the page is idle, i.e. the
rerun has finished) or controls inside the plotly figure (a slider step or a dropdown item: timed from the
mousedown until the figure shows the chosen traces, painted). Reruns are counted by the status widget.
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

from browser_idle import DRAWN, NAV_LINKS  # noqa: E402

# installs listeners on the explorer figure: the time of the last mousedown, of the step applied, and of
# the next animation frame; also whether Streamlit's status widget (a rerun) showed up meanwhile
ARM = """([index, target]) => {
  const el = document.querySelectorAll('.js-plotly-plot')[index];
  window.__switch = {down: null, applied: null, painted: null, rerun: false};
  const s = window.__switch;
  const shows = () => (el._fullData || []).some(t => t.opacity > 0 && t.visible !== false && t.type === 'heatmap'
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
  return el._fullData.filter(t => t.opacity > 0 && t.visible !== false && t.type === 'heatmap').map(t => t.name);
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


# a Streamlit control: from the mousedown (on the option) until a figure has the expected title and the page is idle
ARM_RERUN = """([title]) => {
  window.__switch = {down: null, applied: null, painted: null, rerun: false};
  const s = window.__switch;
  const done = () => Array.from(document.querySelectorAll('.js-plotly-plot')).some(el => el.layout && el.layout.title
        && String(el.layout.title.text || '').replace(/<[^>]*>/g, '') === title)
    && document.querySelectorAll('[data-stale="true"]').length === 0
    && !document.querySelector('[data-testid="stStatusWidget"]');
  const poll = () => {
    if (s.applied !== null) return;
    if (done()) { s.applied = performance.now(); requestAnimationFrame(() => { s.painted = performance.now(); }); }
    else requestAnimationFrame(poll);
  };
  document.addEventListener('mousedown', () => { s.down = performance.now(); requestAnimationFrame(poll); },
                            {capture: true, once: true});
  const obs = new MutationObserver(() => {
    if (document.querySelector('[data-testid="stStatusWidget"]')) s.rerun = true; });
  obs.observe(document.body, {childList: true, subtree: true});
  window.__obs = obs;
}"""

# a control inside a plotly figure (found by its title's start): until its visible heatmaps all carry `target`
ARM_FIGURE = """([prefix, target]) => {
  const el = Array.from(document.querySelectorAll('.js-plotly-plot')).find(e => e.layout && e.layout.title
        && String(e.layout.title.text || '').replace(/<[^>]*>/g, '').startsWith(prefix));
  window.__switch = {down: null, applied: null, painted: null, rerun: false};
  const s = window.__switch;
  const shows = () => { const on = (el._fullData || []).filter(t => t.opacity > 0 && t.visible !== false
                                                                && t.type === 'heatmap');
                        return on.length && on.every(t => String(t.name).includes(target)); };
  const applied = () => { if (s.applied !== null) return; s.applied = performance.now();
                          requestAnimationFrame(() => { s.painted = performance.now(); }); };
  const poll = () => { if (shows()) applied(); else if (s.applied === null) requestAnimationFrame(poll); };
  document.addEventListener('mousedown', () => { s.down = performance.now(); requestAnimationFrame(poll); },
                            {capture: true, once: true});
  const obs = new MutationObserver(() => {
    if (document.querySelector('[data-testid="stStatusWidget"]')) s.rerun = true; });
  obs.observe(document.body, {childList: true, subtree: true});
  window.__obs = obs;
}"""

FIGURE_STEPS = """([prefix]) => {
  const el = Array.from(document.querySelectorAll('.js-plotly-plot')).find(e => e.layout && e.layout.title
        && String(e.layout.title.text || '').replace(/<[^>]*>/g, '').startsWith(prefix));
  if (!el) return null;
  const sliders = (el.layout.sliders || []).map(s => s.steps.map(t => t.label));
  const menus = (el.layout.updatemenus || []).map(m => m.buttons.map(b => b.label));
  return {sliders, menus, index: Array.from(document.querySelectorAll('.js-plotly-plot')).indexOf(el)};
}"""


def _summary(label: str, how: str, times: list, applied: list, reruns: int, misses: int) -> dict:
    return {"page": label, "how": how, "median_ms": float(np.median(times)) if times else float("nan"),
            "applied_median_ms": float(np.median(applied)) if applied else float("nan"),
            "max_ms": float(np.max(times)) if times else float("nan"), "clicks": len(times), "reruns": reruns,
            "missed_clicks": misses}


def _finish_switch(page, timeout_ms: int = 60_000) -> dict:
    page.wait_for_function("window.__switch.painted !== null", timeout=timeout_ms)
    page.wait_for_timeout(300)  # would a rerun start after the click?
    return page.evaluate("window.__obs.disconnect(); window.__switch")


def widget_switch_times(page, select_label: str, options: list[str], titles: list[str], repeats: int,
                        label: str) -> dict:
    """A Streamlit selectbox: choose options in turn; until the figure with the matching title shows."""
    times, applied, reruns = [], [], 0
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=select_label).first
    box.scroll_into_view_if_needed()
    for i in range(repeats + 1):
        k = (i + 1) % len(options)
        box.click()
        option = page.get_by_role("option").filter(has_text=options[k]).first
        option.wait_for()
        page.evaluate(ARM_RERUN, [titles[k]])
        option.click()
        s = _finish_switch(page)
        reruns += bool(s["rerun"])
        if i:  # the first switch warms the code path
            times.append(s["painted"] - s["down"])
            applied.append(s["applied"] - s["down"])
    return _summary(label, "Streamlit widget (rerun)", times, applied, reruns, 0)


def figure_slider_times(page, prefix: str, repeats: int, label: str) -> dict:
    """Click the steps of the slider in the figure whose title starts with `prefix`."""
    found = page.evaluate(FIGURE_STEPS, [prefix])
    steps = found["sliders"][0]
    plot = page.locator(".js-plotly-plot").nth(found["index"])
    plot.scroll_into_view_if_needed()
    labels = plot.locator(".slider-label")
    times, applied, reruns, misses = [], [], 0, 0
    for i in range(repeats + 1):
        target = steps[(i + 1) % len(steps)]
        texts = [(t or "").strip() for t in labels.all_text_contents()]
        page.evaluate(ARM_FIGURE, [prefix, f" {target} ·"])
        box = labels.nth(texts.index(target)).bounding_box()
        rail = plot.locator(".slider-rail-rect").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, rail["y"] + rail["height"] / 2)
        try:
            s = _finish_switch(page, 10_000)
        except Exception:  # noqa: BLE001 - the click did not land on the step
            misses += 1
            page.evaluate("window.__obs.disconnect()")
            continue
        reruns += bool(s["rerun"])
        if i:
            times.append(s["painted"] - s["down"])
            applied.append(s["applied"] - s["down"])
    return _summary(label, "slider in the figure", times, applied, reruns, misses)


def figure_menu_times(page, prefix: str, repeats: int, label: str) -> dict:
    """Open the dropdown in the figure whose title starts with `prefix` and click its items in turn."""
    found = page.evaluate(FIGURE_STEPS, [prefix])
    items = found["menus"][0][:4]  # items a long list scrolls out of the figure are not clicked
    plot = page.locator(".js-plotly-plot").nth(found["index"])
    plot.scroll_into_view_if_needed()
    times, applied, reruns, misses = [], [], 0, 0
    for i in range(repeats + 1):
        target = items[(i + 1) % len(items)]
        plot.locator(".updatemenu-header-group").first.click()
        item = plot.locator(".updatemenu-dropdown-button-group .updatemenu-dropdown-button").filter(
            has=page.locator(".updatemenu-item-text", has_text=target)).first
        item.wait_for()
        page.evaluate(ARM_FIGURE, [prefix, f"{target.split(' (')[0]} ·"])
        item.click()
        try:
            s = _finish_switch(page, 10_000)
        except Exception:  # noqa: BLE001
            misses += 1
            page.evaluate("window.__obs.disconnect()")
            continue
        reruns += bool(s["rerun"])
        if i:
            times.append(s["painted"] - s["down"])
            applied.append(s["applied"] - s["down"])
    return _summary(label, "dropdown in the figure", times, applied, reruns, misses)


def explain_switch_times(page, repeats: int, idle, classes: list[str]) -> list[dict]:
    """The Attention page's rollout and relevance controls, as the page offers them."""
    out = []
    if page.locator('[data-testid="stSelectbox"]').filter(has_text="Rollout head fusion").count():
        fusions = ["mean", "max", "min"]
        out.append(widget_switch_times(page, "Rollout head fusion", fusions, [f"rollout ({f})" for f in fusions],
                                       repeats, "Attention rollout: head fusion"))
    else:
        out.append(figure_slider_times(page, "attention rollout", repeats, "Attention rollout: discard ratio"))
    page.get_by_text("Show relevance", exact=False).first.click()
    idle()
    page.locator(".js-plotly-plot").filter(has_text="relevance").first.wait_for()
    if page.locator('[data-testid="stSelectbox"]').filter(has_text="Class to explain").count():
        out.append(widget_switch_times(page, "Class to explain", classes, [f"relevance for {c}" for c in classes],
                                       repeats, "Attention relevance: class"))
    else:
        out.append(figure_menu_times(page, "relevance", repeats, "Attention relevance: class"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints"))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--part", choices=["layers", "explain", "all"], default="all")
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
                page.wait_for_function(DRAWN)

            cases = [("Attention", "vit_softmax_32 "), ("Cross-covariance", "xcit_n12_p4_32_fsne")]
            for title, checkpoint in cases if args.part != "explain" else cases[:1]:
                page.goto(url)
                page.locator(NAV_LINKS).get_by_text(title, exact=False).first.click()
                idle()
                page.get_by_label("Checkpoint").first.click()
                page.get_by_role("option").filter(has_text=checkpoint).first.click()
                idle()
                page.get_by_text("Digits", exact=True).first.click()
                idle()
                page.locator(".js-plotly-plot .slider-label").first.wait_for()
                if args.part != "explain":
                    results.append(dict(switch_times(page, args.repeats, f"{title}, {checkpoint.strip()}"),
                                        how="layer slider in the figure"))
                if args.part != "layers" and title == "Attention":
                    meta = json.loads((Path(args.checkpoint_dir) / f"{checkpoint.strip()}.json").read_text())
                    explained = explain_switch_times(page, args.repeats, idle, list(meta["classes"]))
                    for r in explained:
                        r["page"] += f", {checkpoint.strip()}"
                    results += explained
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    command = "python bench/client_switch_latency.py " + " ".join(sys.argv[1:])
    load = os.getloadavg()
    lines = [f"## Switches in the browser — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} cores, "
             f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) at the end", "",
             f"`{command}` — headless Chromium, from the mousedown to the next frame after the change is shown "
             "(painted); for a Streamlit widget, until its rerun has finished and the new figure is shown; a "
             "Streamlit rerun is counted by its status widget.", "",
             "| what | control | median (painted) | max | median (shown) | clicks | reruns | target |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['page']} | {r['how']} | {r['median_ms']:.0f} ms | {r['max_ms']:.0f} ms | "
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
