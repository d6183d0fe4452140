"""`python -m vitviz app`: start the Streamlit app with everything slow done before the first visit.

`streamlit run app.py` imports torch, timm, plotly and the pages' modules, counts every variant's
parameters and reads the checkpoint table on the first page view. The launcher does that first, in the
server's own process (Streamlit runs the app's scripts in it, so they find it all imported and cached),
then starts the server. `streamlit run app.py` keeps working as before, only its first view is slower.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"
CONFIG = APP.parent / ".streamlit" / "config.toml"


def config_flags(path: Path = CONFIG) -> list[str]:
    """The repository's Streamlit config as command-line flags (Streamlit reads the file only from the cwd)."""
    import tomllib
    if not path.is_file():
        return []
    flags = []
    for section, options in tomllib.loads(path.read_text()).items():
        for name, value in options.items():
            if isinstance(value, list):  # (folderWatchBlacklist) read from the file by Streamlit itself
                continue
            flags += [f"--{section}.{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def warm_up(log=print) -> dict:
    """Import what the pages import and fill the process-wide caches; returns seconds per step."""
    seconds = {}

    def step(name, fn):
        start = time.perf_counter()
        fn()
        seconds[name] = time.perf_counter() - start
        log(f"warm-up: {name} {seconds[name]:.1f} s")

    def imports():
        import plotly.graph_objects  # noqa: F401
        import streamlit  # noqa: F401

        import vitviz.figures  # noqa: F401
        import vitviz.inspect  # noqa: F401
        import vitviz.models  # noqa: F401
        import vitviz.ui  # noqa: F401
        import vitviz.ui.evaluations  # noqa: F401
        import vitviz.ui.jobs_view  # noqa: F401

    def tables():
        from vitviz.overview import variant_table
        from vitviz.ui.state import checkpoints_table, device
        device()
        variant_table()  # builds every variant on the meta device once (cached) for its parameter count
        checkpoints_table()

    step("imports", imports)
    step("variant and checkpoint tables", tables)
    return seconds


def launch(port: int = 8501, address: str = "localhost", extra=()) -> int:
    """Warm up, then run `streamlit run app.py` in this process (the repository's .streamlit/config.toml applies)."""
    warm_up(log=lambda text: print(text, file=sys.stderr, flush=True))
    from streamlit.web import cli as streamlit_cli
    sys.argv = ["streamlit", "run", str(APP), *config_flags(), "--server.port", str(port),
                "--server.address", address, *extra]
    return streamlit_cli.main()
