"""The house: the library never reaches into the app side, and no module of vitviz imports itself back.

The app side is `vitviz/ui/` (Streamlit widgets and caches), `vitviz/overview.py` (the app's tables), the
launcher and the command line (entry points that may start the app). Everything else is the library.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vitviz"
APP_SIDE = ("vitviz.ui", "vitviz.overview", "vitviz.launcher", "vitviz.cli", "vitviz.__main__")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
LIBRARY = sorted(m for m in MODULES if not m.startswith(APP_SIDE))


def imports(name: str) -> set[str]:
    """Every module `name` imports, at module level or inside functions, resolved to dotted names."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
    return found


def test_the_library_never_imports_the_app_side_or_streamlit():
    offenders = {name: sorted(i for i in imports(name) if i.startswith(APP_SIDE) or i.split(".")[0] == "streamlit"
                              or i.startswith("pages"))
                 for name in LIBRARY}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_there_is_no_import_loop_in_vitviz():
    def with_packages(targets):  # importing a.b.c runs the __init__ of a.b first
        out = set()
        for target in targets:
            parts = target.split(".")
            out |= {".".join(parts[:n]) for n in range(2, len(parts) + 1)}
        return out

    graph = {name: {i for i in with_packages(imports(name)) if i in MODULES and i != name} for name in MODULES}
    # a package's __init__ re-exporting its own submodules is not a loop back into the package
    for name in graph:
        graph[name] = {i for i in graph[name] if not (MODULES[i].name == "__init__.py" and name.startswith(i + "."))}
    loops, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                loops.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert loops == []


def test_every_library_module_imports_with_streamlit_blocked():
    code = ("import sys, importlib\nsys.modules['streamlit'] = None\n"
            f"for name in {LIBRARY!r}:\n    importlib.import_module(name)\n"
            "assert 'streamlit' not in sys.modules or sys.modules['streamlit'] is None\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


@pytest.mark.parametrize("old, new", [
    ("vitviz.train.device", "vitviz.device"), ("vitviz.overview", "vitviz.data.testsets"),
])
def test_moved_names_stay_importable_from_their_old_places(old, new):
    import importlib
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    shared = [n for n in ("resolve_device", "device_name", "autocast", "find_test_set", "test_set_roots")
              if hasattr(new_module, n)]
    assert shared and all(getattr(old_module, n) is getattr(new_module, n) for n in shared)
