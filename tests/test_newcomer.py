"""Newcomer polish (issue 12, part 3): light CLI, job logs and states, offline config, packaging, defaults,
portable metadata, wording."""
import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from vitviz.cli import build_parser
from vitviz.data.images import ImageError, read_image
from vitviz.locations import portable_command, portable_path, resolve_stored_path
from vitviz.overview import default_pair, preferred_checkpoint
from vitviz.train.jobs import FINISHING_PROGRESS, JobSpec, JobStore

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "vitviz", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_jobs_show_and_list_import_no_torch(tmp_path):
    store = JobStore(tmp_path)
    job_id = store.submit(JobSpec(checkpoint=__file__, dataset="digits"), start=False)
    for args in (["list"], ["show", job_id], ["list", "--json"]):
        done = run_cli("jobs", "--runs-dir", str(tmp_path), *args)
        assert done.returncode == 0, done.stderr[-2000:]
        assert job_id in done.stdout
        imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                    if line.startswith("import time:")}
        assert not imported & {"torch", "timm", "pandas", "numpy", "streamlit"}, sorted(imported)


def test_help_lists_every_command_and_submit_shows_defaults(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    registered = set(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)
    assert {"app", "variants", "checkpoints", "download", "train", "finetune", "eval", "train-zoo", "jobs",
            "export-hub", "faithfulness", "representations"} <= registered
    for command in registered:  # every command, with its one-line help
        assert f"\n    {command} " in text or f"\n    {command}\n" in text, command
    assert "|" not in parser.description  # no hand-written (and so incomplete) list of commands
    with pytest.raises(SystemExit):
        parser.parse_args(["jobs", "submit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in (("--epochs", "3.0"), ("--lr", "0.0005"), ("--batch-size", "128"), ("--trainable", "all")):
        assert option in text and f"(default: {default})" in text, option
    assert "AdamW peak learning rate" in text and "images per optimiser step" in text


def test_a_running_job_at_its_last_step_is_not_shown_complete(tmp_path):
    store = JobStore(tmp_path)
    job_id = store.submit(JobSpec(checkpoint=__file__, dataset="digits"), start=False)
    with store._transaction() as db:
        db.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (job_id,))
    store.report_progress(job_id, 12, 12, 0.5)
    store.report_phase(job_id, "training finished: evaluating on the test set and saving the checkpoint")
    job = store.get(job_id)
    assert job.state == "running" and job.progress == FINISHING_PROGRESS < 1
    assert "saving the checkpoint" in job.message
    store.finish(job_id, "done", "test accuracy 0.5", "x.safetensors")
    job = store.get(job_id)
    assert job.state == "done" and job.progress == 1.0
    store.report_phase(job_id, "late")  # a phase never touches a finished job
    assert store.get(job_id).message == "test accuracy 0.5"


def test_streamlit_config_is_offline_and_does_not_watch_files():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["fileWatcherType"] == "none" and ".venv" in config["server"]["folderWatchBlacklist"]
    from vitviz.launcher import config_flags
    flags = config_flags()
    assert flags[flags.index("--browser.gatherUsageStats") + 1] == "false"


def requirement_names(lines):
    return sorted(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def test_pyproject_matches_requirements_and_has_the_console_script():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    meta = project["project"]
    required = requirement_names((ROOT / "requirements.txt").read_text().splitlines())
    assert sorted(meta["dependencies"] + meta["optional-dependencies"]["test"]) == required
    assert meta["scripts"]["vitviz"] == "vitviz.cli:main"
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["vitviz", "vitviz.*"]
    assert project["tool"]["ruff"]["line-length"] == 120
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("ruff check .") < ci.index("-m pytest -q")


def table(rows):
    return pd.DataFrame([dict(zip(("checkpoint", "variant", "family", "path"), r)) for r in rows])


def test_pickers_open_on_the_papers_models():
    rows = table([("cvt", "vitviz_cvt_32", "CvT", "c"), ("vit", "vitviz_vit_softmax_32", "ViT", "v"),
                  ("fsne", "vitviz_xcit_n12_p4_32_fsne", "XCiT", "f"),
                  ("linear", "vitviz_xcit_n12_p4_32_linear", "XCiT", "l")])
    assert preferred_checkpoint(rows) == "f"
    assert preferred_checkpoint(rows[rows["family"] != "XCiT"]) == "v"
    assert default_pair(rows) == ("l", "f")
    assert default_pair(rows.iloc[:2]) == ("c", "v")


def test_paths_in_metadata_are_portable(tmp_path):
    repo = tmp_path / "clone" / "repo"
    (repo.parent / "shared" / "data" / "cifar10-mini").mkdir(parents=True)
    assert portable_path(repo / "checkpoints" / "a.safetensors", repo) == "checkpoints/a.safetensors"
    assert portable_path(repo.parent / "shared" / "data" / "cifar10-mini", repo) == "../shared/data/cifar10-mini"
    # anything else beside the repository stays absolute (a clone in /tmp: pytest's /tmp folders are not ours)
    assert portable_path(repo.parent / "pytest-of-root" / "p.safetensors", repo) == str(repo.parent / "pytest-of-root"
                                                                                       / "p.safetensors")
    command = f"python -m vitviz train --data-dir {repo.parent}/shared/data/cifar10-mini --out={repo}/checkpoints/x"
    assert portable_command(command, repo) == ("python -m vitviz train --data-dir ../shared/data/cifar10-mini "
                                               "--out=checkpoints/x")
    # reading: relative paths from the repository, old absolute paths of another machine re-anchored
    assert resolve_stored_path("../shared/data/cifar10-mini", repo) == repo.parent / "shared" / "data" / "cifar10-mini"
    assert resolve_stored_path("/elsewhere/shared/data/cifar10-mini", repo) == (repo.parent / "shared" / "data"
                                                                                / "cifar10-mini")


def test_new_training_runs_store_portable_paths(tmp_path):
    from vitviz.train.finetune import _run_meta
    from vitviz.train.config import TrainConfig
    from types import SimpleNamespace
    result = SimpleNamespace(final_eval=None, device="CPU", seconds=1.0, steps=1, epochs=1.0, images_per_second=1.0,
                             history=[])
    data = ROOT.parent / "shared" / "data" / "cifar10-mini"
    meta = _run_meta(None, {}, "cifar10", ["a"], TrainConfig(), result,
                     f"python -m vitviz finetune --checkpoint {ROOT}/checkpoints/a.safetensors --data-dir {data}",
                     str(ROOT / "checkpoints" / "a.safetensors"), data)
    assert meta["parent"] == "checkpoints/a.safetensors"
    assert meta["train_config"]["data_root"] == "../shared/data/cifar10-mini"
    assert str(ROOT) not in json.dumps(meta)


def test_svg_upload_is_refused_with_a_reason():
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>'
    for name in ("drawing.svg", "upload"):
        with pytest.raises(ImageError, match="SVG"):
            read_image(svg, name)
