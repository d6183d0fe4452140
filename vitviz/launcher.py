"""`python -m vitviz app`: start the Streamlit app with everything slow done before the first visit.

`streamlit run app.py` imports torch, timm, plotly and the pages' modules, counts every variant's
parameters and reads the checkpoint table on the first page view, and each page's first view loads plotly's
figure classes and the checkpoints' models it shows. The launcher does that first, in the server's own process
(Streamlit runs the app's scripts in it, so they find it all imported and cached): imports, tables, one small
figure of each kind, and the models of the first `PRELOAD_MODELS` listed checkpoints; then it starts the server.
`streamlit run app.py` keeps working as before, only its first views are slower.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"
PRELOAD_MODELS = 16  # the app's model cache (`ui.state._load`) holds 16
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
        import captum.attr  # noqa: F401  (about 2 s, else paid by the Attributions page's first view)
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

    def figures():
        from .figures.warm import warm_up as warm_figures
        for failure in warm_figures():
            log(f"warm-up: a figure failed to build ({failure})")

    def models():
        from .ui.state import checkpoints_table, load_model
        table, _ = checkpoints_table()
        for path in list(table["path"])[:PRELOAD_MODELS] if not table.empty else []:
            try:
                load_model(path)
            except Exception as exc:  # noqa: BLE001 - the page that opens it says why
                log(f"warm-up: cannot load {Path(path).name}: {exc}")

    step("imports", imports)
    step("variant and checkpoint tables", tables)
    step("figure classes", figures)
    step("models of the listed checkpoints", models)
    return seconds


def launch(port: int = 8501, address: str = "localhost", extra=()) -> int:
    """Warm up, then run `streamlit run app.py` in this process (the repository's .streamlit/config.toml applies)."""
    warm_up(log=lambda text: print(text, file=sys.stderr, flush=True))
    from streamlit.web import cli as streamlit_cli
    sys.argv = ["streamlit", "run", str(APP), *config_flags(), "--server.port", str(port),
                "--server.address", address, *extra]
    return streamlit_cli.main()
