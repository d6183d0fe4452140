"""Background fine-tune jobs: lifecycle, cancel, SIGKILL, queueing, persistence, the CLI (real worker processes)."""
import json
import os
import signal
import time

import pytest
import timm
import torch

from vitviz import checkpoints
from vitviz.cli import main as cli_main
from vitviz.train.jobs import JobSpec, JobStore

from tiny import tiny_kwargs

LONG = 1_000_000  # steps: a job that runs until it is stopped


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    torch.manual_seed(0)
    kwargs = dict(tiny_kwargs("vitviz_vit_softmax_32"), depth=1)
    model = timm.create_model("vitviz_vit_softmax_32", num_classes=10, **kwargs)
    meta = dict(variant="vitviz_vit_softmax_32", variant_kwargs=kwargs, classes=[str(i) for i in range(10)],
                img_size=32, mean=[0.3, 0.3, 0.3], std=[0.3, 0.3, 0.3], dataset="digits")
    return checkpoints.save(model, tmp_path_factory.mktemp("parent") / "tiny", meta)


def wait_for(store, job_id, predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        store.poll()
        job = store.get(job_id)
        if predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out; job is {store.get(job_id)}")


def checkpoint_files(directory):
    return sorted(p.name for p in directory.iterdir() if p.suffix in (".json", ".safetensors"))


def test_job_runs_to_a_checkpoint_linked_to_its_parent(parent, tmp_path):
    store = JobStore(tmp_path)
    job_id = store.submit(JobSpec(checkpoint=str(parent), dataset="digits", epochs=None, steps=12, batch_size=64))
    job = wait_for(store, job_id, lambda j: j.state not in ("queued", "running"))
    assert job.state == "done", job.message
    assert job.progress == 1.0 and job.step == 12 and job.total_steps == 12
    assert job.history and "test_accuracy" in job.history[-1]
    model, meta = checkpoints.load(job.checkpoint)
    assert meta["parent"] == str(parent) and meta["train_config"]["steps_done"] == 12
    assert meta["metrics"]["num_test_samples"] > 0 and len(meta["metrics"]["test_predictions"]) > 0
    assert JobStore(tmp_path).get(job_id).state == "done"  # a fresh store (app restart) sees the same
    log = (tmp_path / f"{job_id}.log").read_text()  # the worker's own output, as it ran
    assert "fine-tune" in log and "step 12/12" in log and "saving the checkpoint" in log and "done: " in log


def test_cancel_stops_a_running_job_and_writes_nothing(parent, tmp_path):
    store = JobStore(tmp_path)
    job_id = store.submit(JobSpec(checkpoint=str(parent), dataset="digits", epochs=None, steps=LONG, batch_size=16))
    wait_for(store, job_id, lambda j: j.state == "running" and j.step > 0)
    asked = time.time()
    store.cancel(job_id)
    job = wait_for(store, job_id, lambda j: j.state != "running", timeout=30)
    assert job.state == "cancelled" and time.time() - asked < 10
    assert checkpoint_files(tmp_path) == []


def test_sigkilled_worker_is_marked_failed_on_the_next_poll(parent, tmp_path):
    store = JobStore(tmp_path)
    job_id = store.submit(JobSpec(checkpoint=str(parent), dataset="digits", epochs=None, steps=LONG, batch_size=16))
    job = wait_for(store, job_id, lambda j: j.state == "running" and j.step > 0)
    os.kill(job.pid, signal.SIGKILL)
    job = wait_for(store, job_id, lambda j: j.state != "running", timeout=30)
    assert job.state == "failed" and "killed" in job.message
    assert checkpoint_files(tmp_path) == []


def test_two_submissions_queue_in_order(parent, tmp_path):
    store = JobStore(tmp_path)
    first = store.submit(JobSpec(checkpoint=str(parent), dataset="digits", epochs=None, steps=LONG, batch_size=16))
    second = store.submit(JobSpec(checkpoint=str(parent), dataset="digits", epochs=None, steps=LONG, batch_size=16))
    wait_for(store, first, lambda j: j.state == "running")
    assert store.get(second).state == "queued"
    assert [j.id for j in store.list()] == [second, first]  # newest first
    store.cancel(first)
    wait_for(store, second, lambda j: j.state == "running", timeout=60)
    assert store.get(first).state == "cancelled"
    store.cancel(second)
    assert wait_for(store, second, lambda j: j.state != "running", timeout=30).state == "cancelled"


def test_cancel_a_queued_job_never_starts_it(parent, tmp_path):
    store = JobStore(tmp_path)
    first = store.submit(JobSpec(checkpoint=str(parent), dataset="digits", epochs=None, steps=LONG, batch_size=16))
    second = store.submit(JobSpec(checkpoint=str(parent), dataset="digits", epochs=None, steps=5))
    assert store.cancel(second).state == "cancelled"
    store.cancel(first)
    wait_for(store, first, lambda j: j.state == "cancelled", timeout=60)
    assert store.get(second).started is None


def test_missing_dataset_fails_clearly(parent, tmp_path):
    store = JobStore(tmp_path / "runs")
    job_id = store.submit(JobSpec(checkpoint=str(parent), dataset="cifar10", data_root=str(tmp_path / "nowhere"),
                                  epochs=1))
    job = wait_for(store, job_id, lambda j: j.state not in ("queued", "running"))
    assert job.state == "failed" and "nowhere" in job.message


def test_bad_spec_is_refused_at_submit(parent, tmp_path):
    store = JobStore(tmp_path)
    with pytest.raises(ValueError, match="checkpoint not found"):
        store.submit(JobSpec(checkpoint=str(tmp_path / "missing.safetensors"), dataset="digits"))
    with pytest.raises(ValueError, match="trainable"):
        store.submit(JobSpec(checkpoint=str(parent), dataset="digits", trainable="everything"))
    assert store.list() == []


def test_cli_submit_show_list_cancel(parent, tmp_path, capsys):
    runs = str(tmp_path)
    assert cli_main(["jobs", "--runs-dir", runs, "submit", "--checkpoint", str(parent), "--dataset", "digits",
                     "--steps", "4", "--batch-size", "32", "--json"]) == 0
    job_id = json.loads(capsys.readouterr().out)["id"]
    wait_for(JobStore(runs), job_id, lambda j: j.state not in ("queued", "running"))
    assert cli_main(["jobs", "--runs-dir", runs, "show", job_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "done" and shown["progress"] == 1.0 and shown["checkpoint"].endswith(".safetensors")
    assert shown["history"] and checkpoints.read_meta(shown["checkpoint"])["parent"] == str(parent)
    assert cli_main(["jobs", "--runs-dir", runs, "list"]) == 0
    assert job_id in capsys.readouterr().out
    assert cli_main(["jobs", "--runs-dir", runs, "cancel", "nope"]) == 2


def test_a_job_whose_worker_died_resumes_from_its_state(parent, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITVIZ_JOB_STATE_EVERY", "0")  # the worker saves its state after every step
    store = JobStore(tmp_path)
    job_id = store.submit(JobSpec(checkpoint=str(parent), dataset="digits", epochs=None, steps=400, batch_size=16))
    job = wait_for(store, job_id, lambda j: j.state == "running" and j.step >= 3 and j.resume_state)
    with pytest.raises(ValueError, match="cannot be resumed"):
        store.resume(job_id)  # a running job is not resumed
    os.kill(job.pid, signal.SIGKILL)
    job = wait_for(store, job_id, lambda j: j.state != "running", timeout=30)
    assert job.state == "failed" and job.resumable
    from vitviz.train.resume import read_state
    saved_step = read_state(job.resume_state).step
    assert 3 <= saved_step < 400
    assert cli_main(["jobs", "--runs-dir", str(tmp_path), "resume", job_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] in ("queued", "running")
    job = wait_for(store, job_id, lambda j: j.state not in ("queued", "running"), timeout=240)
    assert job.state == "done", job.message
    assert job.resume_state is None  # removed once the checkpoint is written
    log = (tmp_path / f"{job_id}.log").read_text()
    assert "resuming from" in log
    _, meta = checkpoints.load(job.checkpoint)
    assert meta["train_config"]["steps_done"] == 400
    assert meta["train_config"]["resumed"][0]["step"] == saved_step
    with pytest.raises(ValueError, match="cannot be resumed"):
        store.resume(job_id)  # done: nothing to resume
