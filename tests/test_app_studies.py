"""The Studies page: every shipped-format study listed with its progress, a finished study's verdict, figure and
tables equal to its result, a report, and Start / Cancel through the job queue."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from app_fixtures import APP, TIMEOUT
from test_studies import write_tiny_study


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """A 2-arm x 2-seed tiny study on digits, trained in this process (submitit's DebugExecutor)."""
    from vitviz.studies import runner
    from vitviz.studies.study import load_spec
    directory = tmp_path_factory.mktemp("studies")
    spec = load_spec(write_tiny_study(directory / "tiny"))
    runner.run_with_submitit(spec, runner.submitit_executor("debug", directory / "submitit"), progress=lambda t: None)
    return directory


def open_studies(directory, monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("VITVIZ_STUDIES_DIR", str(directory))
    monkeypatch.setenv("VITVIZ_CHECKPOINT_DIR", str(tmp_path / "ck"))  # the job queue: <checkpoint dir>/runs
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/studies.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_finished_study_shows_its_verdict_figure_and_tables_as_computed(finished_study, monkeypatch, tmp_path):
    from vitviz.studies.study import load_spec, study_result
    result = study_result(load_spec(finished_study / "tiny" / "spec.json"))
    at = open_studies(finished_study, monkeypatch, tmp_path)
    overview = at.dataframe[0].value
    assert overview.to_dict("records") == [{"study": "tiny", "claim": "performer >= softmax in test accuracy",
                                            "runs done": "4/4", "verdict": result["verdict"]["verdict"]}]
    assert any(result["verdict"]["verdict"] in m.value and "paired seeds" in m.value for m in at.markdown)
    arms = at.dataframe[1].value.set_index("arm")
    for arm, a in result["arms"].items():
        assert arms.loc[arm, "mean (%)"] == pytest.approx(100 * a["mean"])
        assert arms.loc[arm, "seeds"] == "0, 1"
    per_class = at.dataframe[2].value
    assert len(per_class) == 10 and per_class["test samples (all seeds)"].sum() == sum(
        r["n"] for r in result["per_class"])
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    seeds = {t["name"]: t["y"] for t in fig["data"] if t["name"].endswith(": seeds")}
    assert {k: sorted(v) for k, v in seeds.items()} == {
        f"{arm}: seeds": sorted(100 * v for v in a["accuracies"]) for arm, a in result["arms"].items()}
    diffs = next(t for t in fig["data"] if t["name"] == "seeds: difference")["y"]
    assert diffs == pytest.approx([100 * d for d in result["verdict"]["differences"]])
    assert any("4/4 runs done" in p.proto.text for p in at.get("progress"))
    assert not any(b.key == "study_start" for b in at.button)  # nothing left to run


def test_the_report_is_one_offline_html_with_the_verdict_and_figure(finished_study):
    from vitviz.studies.report import study_report_html
    from vitviz.studies.study import load_spec, study_result
    path = finished_study / "tiny" / "spec.json"
    result = study_result(load_spec(path))
    page = study_report_html(result, json.loads(path.read_text()))
    assert page.startswith("<!DOCTYPE html>") and "https://" not in page.split("<body>")[1][:20000]
    assert result["verdict"]["verdict"] in page and 'id="figure-0"' in page and "a test-sized budget" in page


def test_start_queues_the_runs_and_cancel_stops_them_a_bad_study_says_why(tmp_path, monkeypatch):
    from vitviz.studies.runner import study_jobs
    from vitviz.studies.study import load_spec
    from vitviz.train.jobs import JobStore
    directory = tmp_path / "studies"
    write_tiny_study(directory / "a_tiny")
    write_tiny_study(directory / "b_missing_data", name="b_missing_data", dataset="cifar10",
                     data_dir=str(tmp_path / "nothing"))
    (directory / "c_broken").mkdir()
    (directory / "c_broken" / "spec.json").write_text("{not json")
    at = open_studies(directory, monkeypatch, tmp_path)
    assert any("c_broken" in w.value and "cannot be read" in w.value for w in at.warning)
    assert list(at.dataframe[0].value["runs done"]) == ["0/4", "0/4"]
    at.selectbox(key="study").select("b_missing_data").run()
    at.button(key="study_start").click().run()
    assert any("dataset: cifar10 is not on disk" in e.value for e in at.error)
    store = JobStore(tmp_path / "ck" / "runs")
    assert store.list() == []
    at.selectbox(key="study").select("tiny").run()
    at.button(key="study_start").click().run()
    spec = load_spec(directory / "a_tiny" / "spec.json")
    jobs = study_jobs(spec, store)
    assert sorted(jobs) == sorted(spec.runs())
    at.run()
    assert any("runs done" in p.proto.text and ("queued" in p.proto.text or "running" in p.proto.text)
               for p in at.get("progress"))
    at.button(key="study_cancel").click().run()
    assert all(j.cancel_requested or j.state == "cancelled" for j in study_jobs(spec, store).values())
