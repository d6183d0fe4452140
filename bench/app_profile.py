"""Where a page's first view spends its time: each page run once through Streamlit's AppTest under cProfile.

python bench/app_profile.py [--pages cross_covariance per_class] [--checkpoint-dir checkpoints] [--top 25]
                            [--no-warm] [--out DIR]

The process is first warmed as `python -m vitviz app` warms the server (`launcher.warm_up`: imports, variant
and checkpoint tables), then it opens the Zoo and switches to each page in turn, as a first visit; each page
run is profiled in the script thread (cProfile), its wall time printed with the top functions by cumulative
time, and the stats written to --out (`<page>.prof`, readable with `python -m pstats`).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

PAGES = ["attention", "cross_covariance", "codes_weights", "per_class", "compare", "representations",
         "attributions", "faithfulness", "efficiency", "finetune"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", nargs="*", default=PAGES)
    parser.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-warm", action="store_true", help="skip the launcher's warm-up (as streamlit run)")
    parser.add_argument("--out", default=None, help="directory for <page>.prof files")
    args = parser.parse_args()
    os.environ["VITVIZ_CHECKPOINT_DIR"] = str(args.checkpoint_dir)
    from streamlit.testing.v1 import AppTest
    from streamlit.testing.v1.local_script_runner import LocalScriptRunner

    profile = {"current": None}
    original = LocalScriptRunner._run_script_thread

    def profiled(self):
        prof = profile["current"]
        if prof is None:
            return original(self)
        prof.enable()
        try:
            return original(self)
        finally:
            prof.disable()

    LocalScriptRunner._run_script_thread = profiled
    if not args.no_warm:
        from vitviz.launcher import warm_up
        warm_up()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    for page in args.pages:
        prof = cProfile.Profile()
        profile["current"] = prof
        start = time.perf_counter()
        at.switch_page(f"pages/{page}.py").run()
        seconds = time.perf_counter() - start
        profile["current"] = None
        errors = [e.value for e in at.exception]
        print(f"\n=== {page}: {seconds:.2f} s" + (f" (exceptions: {errors})" if errors else ""))
        buffer = io.StringIO()
        stats = pstats.Stats(prof, stream=buffer).sort_stats("cumulative")
        stats.print_stats(args.top)
        print("\n".join(buffer.getvalue().splitlines()[6:]))
        if out:
            stats.dump_stats(str(out / f"{page}.prof"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
