"""`python -m vitviz app`: `streamlit run app.py` from any working directory, with the repository's Streamlit
configuration passed as flags (Streamlit reads .streamlit/config.toml only from the working directory).

Both serve the first page at once: the app imports nothing heavy before its first page, then warms the rest up
in a background thread of the server's process (`vitviz.ui.warm`: imports, tables, figure classes, models).
"""
from __future__ import annotations

import sys
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


def launch(port: int = 8501, address: str = "localhost", extra=()) -> int:
    """Run `streamlit run app.py` in this process with the repository's .streamlit/config.toml from any working
    directory. The app warms itself up after its first page is served (vitviz.ui.warm)."""
    from streamlit.web import cli as streamlit_cli
    sys.argv = ["streamlit", "run", str(APP), *config_flags(), "--server.port", str(port),
                "--server.address", address, *extra]
    return streamlit_cli.main()


def warm_up(log=print) -> dict:
    """Moved to `vitviz.ui.warm.warm_up` (the app runs it after its first page); kept for one release."""
    from .ui.warm import warm_up as moved
    return moved(log)
