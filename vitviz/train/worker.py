"""One training job (a fine-tune, or a run from scratch) in its own process:
python -m vitviz.train.worker RUNS_DIR JOB_ID.

Reports progress and per-epoch metrics into the job store, stops before the next step when
cancelled, writes the checkpoint atomically when done, and starts the next queued job on exit.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

from .jobs import RESUME_EVERY_SECONDS, JobStore

PROGRESS_INTERVAL = 0.5  # seconds between progress writes
CANCEL_INTERVAL = 0.25   # seconds between cancel-flag reads
LOG_INTERVAL = 5.0       # seconds between progress lines in the job's .log
FINISHING = "training finished: evaluating on the test set and saving the checkpoint"
EPOCH_FIELDS = ("epoch", "step", "train_loss", "train_accuracy", "test_accuracy")


def log(text: str) -> None:
    """One line of the job's .log (the worker's stdout)."""
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


class _Reporter:
    def __init__(self, store: JobStore, job_id: str):
        self.store, self.job_id = store, job_id
        self.last_progress = self.last_cancel_check = self.last_log = 0.0
        self.cancelled = False

    def __call__(self, event, state):
        now = time.monotonic()
        last = event == "step" and state["step"] == state["total_steps"]
        if event == "step" and (now - self.last_progress > PROGRESS_INTERVAL or last):
            loss = state["loss"] if state["loss"] == state["loss"] else None
            self.store.report_progress(self.job_id, state["step"], state["total_steps"], loss)
            self.last_progress = now
            if now - self.last_log > LOG_INTERVAL or last:
                log(f"step {state['step']}/{state['total_steps']} loss {loss if loss is None else round(loss, 4)}")
                self.last_log = now
            if last:
                self.store.report_phase(self.job_id, FINISHING)
                log(FINISHING)
        elif event == "epoch":
            self.store.report_epoch(self.job_id, state)
            log("epoch " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in state.items() if k in EPOCH_FIELDS))

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


def accuracy_message(meta: dict, parent_path: str) -> str:
    """The fine-tune's test accuracy, and its change from the parent's when both saw the same test images."""
    metrics = meta.get("metrics") or {}
    acc = metrics.get("test_accuracy")
    if acc is None:
        return "done"
    text = f"test accuracy {acc:.4f}"
    try:
        from ..checkpoints import read_meta
        parent = read_meta(parent_path).get("metrics") or {}
    except Exception:  # noqa: BLE001  (the parent may have moved; the job's own result stands)
        parent = {}
    same = metrics.get("test_set_sha256") and parent.get("test_set_sha256") == metrics.get("test_set_sha256")
    if same and parent.get("test_accuracy") is not None:
        delta = 100 * (acc - parent["test_accuracy"])
        text += f" (parent {parent['test_accuracy']:.4f} on the same test images: {delta:+.1f} points)"
    else:
        text += " (the parent was not evaluated on these test images)"
    return text


def run(runs_dir: str, job_id: str) -> int:
    store = JobStore(runs_dir)
    job = store.get(job_id)
    spec = job.spec
    reporter = _Reporter(store, job_id)
    log(f"job {job_id}: {job.label} ({spec['steps'] or spec['epochs']} {'steps' if spec['steps'] else 'epochs'}, "
        f"lr {spec['lr']:g}, batch {spec['batch_size']}, train {spec['trainable']})")
    try:
        from .config import TrainConfig
        from .finetune import finetune, save_run, train_from_scratch
        from .engine import TrainingCancelled
        config = TrainConfig(epochs=spec["epochs"] or 1.0, steps=spec["steps"], lr=spec["lr"],
                             batch_size=spec["batch_size"], trainable=spec["trainable"],
                             warmup_epochs=spec["warmup_epochs"], seed=spec["seed"], eval_every=1,
                             extra={"job": job_id, **spec.get("extra", {})})
        command = f"python -m vitviz jobs (job {job_id})"
        state = store.state_path(job_id, spec)
        resume = state if state.exists() else None  # a resumed job: continue from its last saved step
        if resume is not None:
            log(f"resuming from {state}")
        common = dict(data_root=spec["data_root"], device=spec["device"], callbacks=[reporter],
                      cancel=reporter.cancel, command=command, resume=resume, state_path=state,
                      state_every=float(os.environ.get("VITVIZ_JOB_STATE_EVERY", RESUME_EVERY_SECONDS)))
        try:
            if spec.get("kind", "finetune") == "train":
                run_ = train_from_scratch(spec["variant"], spec["dataset"], config,
                                          variant_kwargs=spec.get("variant_kwargs") or {}, **common)
            else:
                run_ = finetune(spec["checkpoint"], spec["dataset"], config, **common)
        except TrainingCancelled as exc:
            state.unlink(missing_ok=True)
            store.finish(job_id, "cancelled", f"{exc}; nothing was written")
            log(f"cancelled: {exc}; nothing was written")
            return 0
        path = save_run(run_, spec["out"])
        state.unlink(missing_ok=True)  # done: nothing left to resume
        acc = run_.meta["metrics"].get("test_accuracy")
        message = (accuracy_message(run_.meta, spec["checkpoint"]) if spec.get("kind", "finetune") == "finetune"
                   else f"test accuracy {run_.meta['metrics'].get('test_accuracy', float('nan')):.4f}")
        store.finish(job_id, "done", message, str(path))
        log(f"done: {path}" + (f", test accuracy {acc:.4f}" if acc is not None else ""))
        return 0
    except BaseException as exc:  # report every failure, then exit non-zero
        traceback.print_exc()
        store.finish(job_id, "failed", _failure_message(exc, spec))
        log(f"failed: {_failure_message(exc, spec)}")
        return 1
    finally:
        store.poll()  # start the next queued job


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
