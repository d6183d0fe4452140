"""Load benchmark (issue 12): 8 concurrent browser sessions clicking through Attention and Compare, and every
page's first view (target <= 2 s).

python bench/app_load.py [--sessions 8] [--rounds 3] [--checkpoint-dir checkpoints] [--part both|load|pages] [--dwell S]
                         [--server streamlit|launcher] [--app-root DIR]

Starts the app with the README's command (`streamlit run app.py`, on 127.0.0.1 and a free port; `--server
launcher`: `python -m vitviz app`) on the shipped checkpoints, from this repository or from `--app-root` (another
checkout, e.g. a git worktree of an older commit, for a before/after with this same script), drives it with one
headless Chromium (Debian's package) via Playwright's async API; only
127.0.0.1 traffic, a bounded number of rounds and a wall-clock budget (--budget-s), then it stops.

* pages: a fresh server, one session visits every page of the app in turn (the sidebar order), then every
  page a second time; each view is timed from the click on the sidebar link until the page is idle.
* load: a fresh server, N sessions (one browser context each) at once; each round of each session:
  Attention (navigate, choose a checkpoint, choose Digits images, change the digit, move the layer slider of
  the explorer figure) then Compare (navigate, change the checkpoints, change the image).

"Idle": Streamlit's app root reports a script run that started after the action and has finished
(`data-test-script-state`), no element is stale and the status widget is gone; the layer slider is
client-side (no rerun), so it is timed until plotly shows the clicked layer. An error is a Streamlit
exception element (`[data-testid="stException"]`) on the page after an interaction, or a timeout.
Appends a section to bench/RESULTS.md and writes bench/results/app-load-<date>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402

from browser_idle import DRAWN_JS, NAV_LINKS  # noqa: E402
from test_browser import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy  # noqa: E402

PAGE_TITLES = ["Zoo", "Attention", "Cross-covariance", "Q/K/V codes & weights", "Per-class", "Compare",
               "Representations", "Attributions", "Faithfulness", "Efficiency", "Fine-tune", "Studies"]
ATTENTION_CHECKPOINTS = ["vit_softmax_32", "xcit_n12_p4_32_fsne", "cvt_32", "vit_performer_32_conv_rope"]
COMPARE_EXTRA = ["vit_softmax_32", "cvt_32", "xcit_n12_p4_32_linear", "vit_nystrom_32_conv_rope"]
TIMEOUT_MS = 60_000

# before an action: watch the app root for a script run that starts after it
ARM = """() => {
  const root = document.querySelector('[data-testid="stApp"]');
  window.__ran = false;
  if (!root) return;
  if (window.__obs) window.__obs.disconnect();
  window.__obs = new MutationObserver(() => {
    if (root.getAttribute('data-test-script-state') === 'running') window.__ran = true; });
  window.__obs.observe(root, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
# the script run has finished and its output is drawn (browser_idle.DRAWN_JS: no skeleton, charts and images drawn)
IDLE = """() => {
  const root = document.querySelector('[data-testid="stApp"]');
  const state = root && root.getAttribute('data-test-script-state');
  return state !== 'running' && state !== 'rerunRequested' && state !== 'initial' && """ + DRAWN_JS + """;
}"""
# the layer shown by the explorer figure (the first plot with a slider): names of its visible heatmaps
VISIBLE = """() => {
  const el = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .find(e => e.layout && e.layout.sliders && e.layout.sliders.length);
  return el ? (el._fullData || []).filter(t => t.opacity > 0 && t.visible !== false && t.type === 'heatmap')
    .map(t => String(t.name)) : null;
}"""


class Timed:
    """Latency per interaction kind, errors and notes of one or many sessions."""

    def __init__(self):
        self.times: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.no_rerun: dict[str, int] = {}

    def add(self, kind, seconds):
        self.times.setdefault(kind, []).append(seconds)


async def settle(page, grace_ms: int = 3000, timeout_ms: int = TIMEOUT_MS) -> bool:
    """Wait until a script run started after ARM has finished (or none starts within grace_ms); idle after.
    Returns whether a run was seen."""
    start = time.perf_counter()
    try:
        await page.wait_for_function("() => window.__ran", timeout=grace_ms)
        ran = True
    except Exception:  # noqa: BLE001 - no rerun within the grace period
        ran = False
    left = max(1000, timeout_ms - int(1000 * (time.perf_counter() - start)))
    await page.wait_for_function(IDLE, timeout=left)
    return ran


async def exceptions(page) -> list[str]:
    texts = await page.locator('[data-testid="stException"]').all_inner_texts()
    return [t.strip().splitlines()[0] if t.strip() else "exception" for t in texts]


async def timed(page, out: Timed, kind: str, action, expect=None, rerun: bool = True, label: str = ""):
    """Run the action, wait until idle (and the expected condition), record seconds and errors."""
    await page.evaluate(ARM)
    start = time.perf_counter()
    try:
        await action()
        if rerun:
            ran = await settle(page)
            if not ran:
                out.no_rerun[kind] = out.no_rerun.get(kind, 0) + 1
        if expect is not None:
            await expect()
        out.add(kind, time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a timeout or a failed action is an error
        out.errors.append(f"{label}{kind}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        if os.environ.get("APP_LOAD_SHOTS"):
            await page.screenshot(path=f"{os.environ['APP_LOAD_SHOTS']}/{label.strip(': ')}-{len(out.errors)}.png")
        return
    found = await exceptions(page)
    if found:
        out.errors += [f"{label}{kind}: stException: {t[:200]}" for t in found]


async def nav(page, title):
    await page.locator(NAV_LINKS).get_by_text(title, exact=True).first.click()


async def choose_option(page, label, name):
    await page.get_by_label(label).first.click()
    await page.keyboard.type(name)  # filters the list, so the option is rendered however long the list is
    await page.get_by_role("option").filter(has_text=name + " ").first.click()


async def current_select(page, label) -> str:
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    return await box.inner_text()


async def choose_digits(page, container=None):
    scope = container or page
    radio = scope.locator('[data-testid="stRadio"]').filter(has_text="Image source").first
    await radio.get_by_text("Digits", exact=True).click()


async def digit_step(page):
    """Move the digit slider one step right (or left at its end); returns the expected new index."""
    thumb = page.locator('[data-testid="stSlider"]').filter(has_text="Digit image").first.locator(
        'input[type="range"]')
    now, top = await thumb.evaluate("e => [Number(e.value), Number(e.max)]")
    await thumb.focus()
    if now < top:
        await page.keyboard.press("ArrowRight")
        return now + 1
    await page.keyboard.press("ArrowLeft")
    return now - 1


async def attention_round(page, out: Timed, session: int, rnd: int, label: str):
    await timed(page, out, "attention: open page", lambda: nav(page, "Attention"),
                expect=lambda: page.get_by_role("heading", name="Attention").first.wait_for(), label=label)
    now = await current_select(page, "Checkpoint")
    order = ATTENTION_CHECKPOINTS[(session + rnd) % 4:] + ATTENTION_CHECKPOINTS[:(session + rnd) % 4]
    name = next(n for n in order if n + " " not in now + " ")
    await timed(page, out, "attention: choose checkpoint", lambda: choose_option(page, "Checkpoint", name),
                label=label)
    await timed(page, out, "attention: choose Digits images", lambda: choose_digits(page),
                expect=lambda: page.locator('[data-testid="stSlider"]').filter(has_text="Digit image")
                .first.wait_for(), label=label)
    expected = {}

    async def step():
        expected["i"] = await digit_step(page)
    await timed(page, out, "attention: change image", step,
                expect=lambda: page.get_by_text(f"digits test image #{expected['i']} ").first.wait_for(),
                label=label)
    await move_layer(page, out, label)


async def move_layer(page, out: Timed, label: str):
    """Click a step of the explorer's layer slider (client-side) and wait until that layer is shown."""
    plot = page.locator(".js-plotly-plot").filter(has=page.locator(".slider-label")).first
    try:
        await plot.wait_for(timeout=TIMEOUT_MS)
        await plot.scroll_into_view_if_needed()
        labels = plot.locator(".slider-label")
        texts = [(t or "").strip() for t in await labels.all_text_contents()]
        steps = [t for t in texts if t.isdigit()]
        shown = await page.evaluate(VISIBLE) or []
        target = next(t for t in reversed(steps) if not any(f" {t} ·" in n for n in shown))
        box = await labels.nth(texts.index(target)).bounding_box()
        rail = await plot.locator(".slider-rail-rect").first.bounding_box()
    except Exception as exc:  # noqa: BLE001
        first = str(exc).splitlines()[0][:200]
        out.errors.append(f"{label}attention: move layer slider: {type(exc).__name__}: {first}")
        return

    async def click():
        await page.mouse.click(box["x"] + box["width"] / 2, rail["y"] + rail["height"] / 2)

    async def shows():
        await page.wait_for_function(
            "(t) => { const n = (" + VISIBLE + ")(); "
            "return n && n.length && n.every(x => x.includes(' ' + t + ' ·')); }",
            arg=target, timeout=10_000)
    await timed(page, out, "attention: move layer slider", click, expect=shows, rerun=False, label=label)


async def compare_round(page, out: Timed, session: int, rnd: int, label: str):
    await timed(page, out, "compare: open page", lambda: nav(page, "Compare"),
                expect=lambda: page.get_by_role("heading", name="Compare").first.wait_for(), label=label)
    box = page.locator('[data-testid="stMultiSelect"]').first
    chosen = await box.inner_text()
    names = [f.stem for f in Path(os.environ.get("VITVIZ_CHECKPOINT_DIR", ROOT / "checkpoints")).glob("*.json")]
    count = sum(f"{n} (" in chosen for n in names)  # the chosen tags read "<name> (<dataset> · <accuracy>)"

    async def change():
        if count >= 3:  # drop the last one
            await box.locator("input").click()
            await page.keyboard.press("Backspace")
            await page.keyboard.press("Escape")
        else:
            name = next(n for n in COMPARE_EXTRA[session % 4:] + COMPARE_EXTRA[:session % 4] if n + " " not in chosen)
            await box.locator("input").click()
            # typed, so the option is rendered: the list shows only its first entries (15 checkpoints since stop 20)
            await box.locator("input").fill(name)
            await page.get_by_role("option").filter(has_text=name + " ").first.click()
            await page.keyboard.press("Escape")
        await page.get_by_role("heading", name="Compare").first.click()  # closes the list if still open
    await timed(page, out, "compare: change checkpoints", change, label=label)
    source = page.locator('[data-testid="stRadio"]').filter(has_text="Image source").first
    try:
        digits = await source.locator('[data-testid="stRadioOption"]').filter(has_text="Digits").first \
            .get_attribute("data-selected", timeout=10_000) == "true"
    except Exception:  # noqa: BLE001 - not found: click it (an error is counted if that fails too)
        digits = False
    if not digits:
        await timed(page, out, "compare: choose Digits images", lambda: choose_digits(page),
                    expect=lambda: page.locator('[data-testid="stSlider"]').filter(has_text="Digit image")
                    .first.wait_for(), label=label)
    expected = {}

    async def step():
        expected["i"] = await digit_step(page)
    await timed(page, out, "compare: change image", step,
                expect=lambda: page.get_by_text(f"digits test image #{expected['i']} ").first.wait_for(),
                label=label)


SERVER = {"kind": "streamlit", "root": ROOT}  # set by main(): which command starts the app, from which checkout


def server_command(port: int) -> list[str]:
    if SERVER["kind"] == "launcher":
        return [sys.executable, "-m", "vitviz", "app", "--address", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1", "--server.port",
            str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]


def start_server(directory: Path):
    port = free_port()
    root = Path(SERVER["root"])
    env = dict(os.environ, VITVIZ_CHECKPOINT_DIR=str(directory), PYTHONPATH=str(root))
    started = time.perf_counter()
    proc = subprocess.Popen(server_command(port), cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    return proc, url, time.perf_counter() - started


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def first_load(page, url, out: Timed, label=""):
    async def loaded():
        await page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=TIMEOUT_MS)
        await page.wait_for_function(IDLE, timeout=TIMEOUT_MS)
    await timed(page, out, "first load (Zoo)", lambda: page.goto(url), expect=loaded, rerun=False, label=label)


async def run_pages(directory: Path, dwell_s: float = 0.0) -> dict:
    from playwright.async_api import async_playwright
    proc, url, up = start_server(directory)
    visits = []
    out = Timed()
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(url)
            await page.locator(NAV_LINKS).first.wait_for()
            await settle(page, grace_ms=100)
            await page.wait_for_timeout(int(1000 * dwell_s))  # a user reading the opening page first
            for visit in (1, 2):
                for title in PAGE_TITLES:
                    before = len(out.errors)
                    await timed(page, out, f"{title} #{visit}", lambda t=title: nav(page, t), label="")
                    seconds = out.times.get(f"{title} #{visit}", [None])[-1]
                    visits.append({"page": title, "visit": visit, "seconds": seconds,
                                   "errors": out.errors[before:]})
            await browser.close()
    finally:
        stop_server(proc)
    return {"server_up_s": up, "dwell_s": dwell_s, "visits": visits, "errors": out.errors}


async def run_load(directory: Path, sessions: int, rounds: int, budget_s: float) -> dict:
    from playwright.async_api import async_playwright
    proc, url, up = start_server(directory)
    out = Timed()
    deadline = time.perf_counter() + budget_s
    done_rounds = []
    started = time.perf_counter()
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

            async def session(i):
                context = await browser.new_context(viewport={"width": 1400, "height": 1000})
                page = await context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                label = f"s{i}: "
                await first_load(page, url, out, label)
                n = 0
                for rnd in range(rounds):
                    if time.perf_counter() > deadline:
                        break  # the budget is spent: no new round (reported as rounds_done)
                    await attention_round(page, out, i, rnd, label)
                    await compare_round(page, out, i, rnd, label)
                    n += 1
                done_rounds.append(n)
                await context.close()

            await asyncio.wait_for(asyncio.gather(*(session(i) for i in range(sessions))),
                                   timeout=budget_s + 120)
            await browser.close()
    finally:
        stop_server(proc)
    stats = {kind: {"n": len(v), "p50_ms": 1000 * float(np.percentile(v, 50)),
                    "p95_ms": 1000 * float(np.percentile(v, 95)), "max_ms": 1000 * float(np.max(v))}
             for kind, v in out.times.items()}
    every = [t for kind, v in out.times.items() if not kind.startswith("first load") for t in v]
    return {"server_up_s": up, "sessions": sessions, "rounds": rounds, "rounds_done": done_rounds,
            "wall_s": time.perf_counter() - started, "interactions": stats,
            "all_interactions": {"n": len(every), "p50_ms": 1000 * float(np.percentile(every, 50)),
                                 "p95_ms": 1000 * float(np.percentile(every, 95))} if every else {},
            "errors": out.errors, "no_rerun": out.no_rerun, "raw_s": out.times}


def analyses_on_disk(directory: Path) -> int:
    """How many CKA results the on-demand sections find cached (`vitviz.result_cache`)."""
    return sum(1 for _ in (directory / "runs" / "analyses").rglob("*.analysis"))


def report(result: dict) -> str:
    load = result.get("loadavg", {})
    lines = [f"## App load and per-page first view — {result['date']} — {result['machine']}, headless Chromium", "",
             f"`{result['command']}`", ""]
    if load:
        lines += [f"Machine load (1-minute load average, shared with other workers): {load['start']:.1f} at the "
                  f"start, {load['end']:.1f} at the end. CKA results cached on disk at the start: "
                  f"{result.get('analyses_cached', 0)}.", ""]
    load = result.get("load")
    if load:
        lines += [f"Load: {load['sessions']} concurrent browser sessions (one Chromium, one context each), "
                  f"{load['rounds']} rounds each (rounds done per session: {load['rounds_done']}; no new round starts "
                  f"after the --budget-s) of Attention (open, choose checkpoint, choose Digits, change "
                  f"image, move layer slider) and Compare (open, change checkpoints, change image); server "
                  f"`{result.get('server', 'python -m vitviz app')}` on 127.0.0.1; {load['wall_s']:.0f} s in all. "
                  "Latency: from the "
                  "action until the rerun it started has finished and its output is drawn (bench/browser_idle.py; "
                  "the layer slider is client-side: until plotly shows the layer).", "",
                  "| interaction | n | p50 | p95 | max |", "|---|---|---|---|---|"]
        for kind, s in load["interactions"].items():
            lines.append(f"| {kind} | {s['n']} | {s['p50_ms']:.0f} ms | {s['p95_ms']:.0f} ms | {s['max_ms']:.0f} ms |")
        a = load["all_interactions"]
        if a:
            lines.append(f"| **all interactions** (first load excluded) | {a['n']} | {a['p50_ms']:.0f} ms | "
                         f"{a['p95_ms']:.0f} ms | |")
        lines += ["", f"Errors (exception elements or timeouts): **{len(load['errors'])}** (target 0)"
                  + ("" if not load["errors"] else ": " + "; ".join(load["errors"][:10]))
                  + (f". Interactions whose rerun was not observed: {load['no_rerun']}" if load["no_rerun"] else "")
                  + ".", ""]
    pages = result.get("pages")
    if pages:
        lines += ["Per-page first view: a fresh server, one session, every page in sidebar order, then all again; "
                  "from the click on the sidebar link until the page is drawn (the script run has finished, no "
                  "skeleton or stale element is left, every plotly chart and image is drawn: bench/browser_idle.py). "
                  + (f"The tour starts {pages['dwell_s']:g} s after the opening page (the Zoo) was drawn. "
                     if pages.get("dwell_s") else "The tour starts as soon as the opening page (the Zoo) is drawn. ")
                  + "Target ≤ 2 s.", "",
                  f"Server: `{result.get('server', 'python -m vitviz app')}`"
                  + (f", from `{result['app_root']}`" if result.get("app_root") else "") + ".", "",
                  "| page | first view | second view | ≤ 2 s? |", "|---|---|---|---|"]
        by = {(v["page"], v["visit"]): v for v in pages["visits"]}
        for title in PAGE_TITLES:
            a, b = by.get((title, 1), {}), by.get((title, 2), {})
            fmt = lambda v: "error" if v.get("seconds") is None else f"{v['seconds']:.2f} s"  # noqa: E731
            ok = a.get("seconds") is not None and a["seconds"] <= 2 and not a.get("errors")
            lines.append(f"| {title} | {fmt(a)} | {fmt(b)} | {'yes' if ok else '**no**'} |")
        missed = [t for t in PAGE_TITLES if not (by.get((t, 1), {}).get("seconds") or 99) <= 2]
        lines += ["", "Zoo's first view is the click back to it after the Zoo opened the app (the app's first "
                  "render is in the app latency section).",
                  f"Pages missing the 2 s first-view target: {', '.join(missed) if missed else 'none'}. "
                  f"Errors: {len(pages['errors'])}"
                  + ("" if not pages["errors"] else ": " + "; ".join(pages["errors"][:5]))
                  + ".", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints"))
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=420, help="no new round starts after this many seconds")
    parser.add_argument("--part", choices=["both", "load", "pages"], default="both")
    parser.add_argument("--no-results", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--dwell", type=float, default=0.0,
                        help="pages: seconds on the opening page before the tour (a user reading the Zoo)")
    parser.add_argument("--server", choices=["streamlit", "launcher"], default="streamlit",
                        help="streamlit: the README's `streamlit run app.py`; launcher: `python -m vitviz app`")
    parser.add_argument("--app-root", default=None, help="run the app from this checkout (default: this one)")
    args = parser.parse_args()
    SERVER.update(kind=args.server, root=Path(args.app_root).resolve() if args.app_root else ROOT)
    if CHROMIUM is None:
        print("chromium not installed")
        return 1
    directory = Path(args.checkpoint_dir)
    os.environ["VITVIZ_CHECKPOINT_DIR"] = str(directory)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"CPU, {os.cpu_count()} cores",
              "command": "python bench/app_load.py " + " ".join(sys.argv[1:])}
    result["server"] = "streamlit run app.py" if args.server == "streamlit" else "python -m vitviz app"
    if args.app_root:
        result["app_root"] = args.app_root
    result["analyses_cached"] = analyses_on_disk(directory)
    result["loadavg"] = {"start": os.getloadavg()[0]}
    if args.part in ("both", "pages"):
        result["pages"] = asyncio.run(run_pages(directory, args.dwell))
    if args.part in ("both", "load"):
        result["load"] = asyncio.run(run_load(directory, args.sessions, args.rounds, args.budget_s))
    result["loadavg"]["end"] = os.getloadavg()[0]
    text = report(result)
    print(text)
    if not args.no_results:
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"app-load-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=1))
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write(text)
    errors = len(result.get("load", {}).get("errors", [])) + len(result.get("pages", {}).get("errors", []))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
