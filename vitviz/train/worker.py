"""One fine-tune job in its own process: python -m vitviz.train.worker RUNS_DIR JOB_ID.

Reports progress and per-epoch metrics into the job store, stops before the next step when
cancelled, writes the checkpoint atomically when done, and starts the next queued job on exit.
"""
from __future__ import annotations

import sys
import time
import traceback

from .jobs import JobStore

PROGRESS_INTERVAL = 0.5  # seconds between progress writes
CANCEL_INTERVAL = 0.25   # seconds between cancel-flag reads


class _Reporter:
    def __init__(self, store: JobStore, job_id: str):
        self.store, self.job_id = store, job_id
        self.last_progress = self.last_cancel_check = 0.0
        self.cancelled = False

    def __call__(self, event, state):
        now = time.monotonic()
        if event == "step" and (now - self.last_progress > PROGRESS_INTERVAL or state["step"] == state["total_steps"]):
            loss = state["loss"] if state["loss"] == state["loss"] else None
            self.store.report_progress(self.job_id, state["step"], state["total_steps"], loss)
            self.last_progress = now
        elif event == "epoch":
            self.store.report_epoch(self.job_id, state)

    def cancel(self) -> bool:
        now = time.monotonic()
        if now - self.last_cancel_check > CANCEL_INTERVAL:
            self.last_cancel_check = now
            self.cancelled = self.store.cancel_requested(self.job_id)
        return self.cancelled


def _failure_message(exc: BaseException, spec: dict) -> str:
    import torch
    from ..checkpoints import CheckpointError
    from ..data import DatasetNotFoundError, DatasetFormatError
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return (f"out of memory with batch size {spec['batch_size']}: try a smaller batch "
                f"(e.g. {max(1, spec['batch_size'] // 4)}) or a smaller model")
    if isinstance(exc, (DatasetNotFoundError, DatasetFormatError, CheckpointError, ValueError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run(runs_dir: str, job_id: str) -> int:
    store = JobStore(runs_dir)
    job = store.get(job_id)
    spec = job.spec
    reporter = _Reporter(store, job_id)
    try:
        from . import TrainConfig, finetune, save_run
        from .engine import TrainingCancelled
        config = TrainConfig(epochs=spec["epochs"] or 1.0, steps=spec["steps"], lr=spec["lr"],
                             batch_size=spec["batch_size"], trainable=spec["trainable"],
                             warmup_epochs=spec["warmup_epochs"], seed=spec["seed"], eval_every=1,
                             extra={"job": job_id, **spec.get("extra", {})})
        command = f"python -m vitviz jobs (job {job_id})"
        try:
            run_ = finetune(spec["checkpoint"], spec["dataset"], config, data_root=spec["data_root"],
                            device=spec["device"], callbacks=[reporter], cancel=reporter.cancel, command=command)
        except TrainingCancelled as exc:
            store.finish(job_id, "cancelled", f"{exc}; nothing was written")
            return 0
        path = save_run(run_, spec["out"])
        acc = run_.meta["metrics"].get("test_accuracy")
        store.finish(job_id, "done", f"test accuracy {acc:.4f}" if acc is not None else "done", str(path))
        return 0
    except BaseException as exc:  # report every failure, then exit non-zero
        traceback.print_exc()
        store.finish(job_id, "failed", _failure_message(exc, spec))
        return 1
    finally:
        store.poll()  # start the next queued job


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
