"""The app's background warm-up: started once per process after the first page, never before it; it fills the
caches the pages use (the listed checkpoints' models among them)."""
import pytest

from app_fixtures import run_page


def test_the_zoo_is_served_without_torch_being_needed(tmp_path):
    """The Zoo's checkpoint table comes from metadata alone: with torch unimportable, it still builds."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    code = ("import sys\nsys.modules['torch'] = None\nsys.modules['timm'] = None\nsys.argv = ['vitviz']\n"
            "from vitviz.ui.tables import checkpoints_table\nfrom vitviz.overview import checkpoint_table\n"
            "import vitviz.ui.navigation\n"
            f"table, problems = checkpoint_table({str(root / 'checkpoints')!r})\n"
            "assert len(table) >= 10 and not problems, problems\n"
            "assert {'learning_curve', 'family', 'paper', 'params'} <= set(table.columns)\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_warm_up_starts_once_after_the_first_page_and_loads_the_models(app_env, monkeypatch):
    from vitviz.ui import state, warm
    monkeypatch.delenv("VITVIZ_NO_WARM", raising=False)
    monkeypatch.setattr(warm, "_started", type(warm._started)())
    monkeypatch.setattr(warm, "_done", type(warm._done)())
    loaded = []
    real = state.load_model
    monkeypatch.setattr(state, "load_model", lambda path: loaded.append(path) or real(path))
    assert not warm._started.is_set()
    run_page("Zoo")
    assert warm._started.is_set()
    assert warm._done.wait(300), "the warm-up did not finish"
    assert len(loaded) >= 1 and {"imports", "models of the listed checkpoints"} <= set(warm.seconds)
    run_page("Zoo")  # a second page view does not start another warm-up
    assert warm._done.is_set() and len(loaded) == len(set(loaded))


@pytest.mark.parametrize("value", ["1"])
def test_warm_up_can_be_turned_off(app_env, monkeypatch, value):
    from vitviz.ui import warm
    monkeypatch.setenv("VITVIZ_NO_WARM", value)
    monkeypatch.setattr(warm, "_started", type(warm._started)())
    run_page("Zoo")
    assert not warm._started.is_set()
