"""Running a study's arm x seed runs, and following them.

Two ways, one result (the runs' checkpoints in the study folder, then `study.write_result`):

- **The app's job queue** (`vitviz.train.jobs`, the Fine-tune page's): `submit_study` queues one "train" job per
  pending run (at most one job runs at a time, each in its own worker process, so a crashed run fails alone and
  the queue goes on); `study_status` follows them (runs done / total, the running run's progress, an ETA);
  `cancel_study` stops them; `run_with_queue` submits and waits (the CLI's `study run`).
- **submitit** (`run_with_submitit`): one submitit job per pending run, each calling `train_run` in its own
  process: on a SLURM cluster (`submitit.AutoExecutor`), or on this machine (`LocalExecutor`, `DebugExecutor`).
  A run that needs several GPUs is started with `torchrun ... -m vitviz train` instead (vitviz.train.distributed).

Either way a run writes its resume state beside its checkpoint (`StudySpec.state_path`), so a run stopped in one
way continues in the other, and a finished run is never trained again.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .study import StudySpec, check_spec, load_spec, pending_runs, write_result

STATE_EVERY_SECONDS = 120.0


def _run_key(spec: StudySpec) -> str:
    return str(spec.folder.resolve())


def job_spec(spec: StudySpec, arm: str, seed: int):
    """The queue's job for one run: train the arm's variant from the seed's initialisation into the study folder."""
    from ..train.jobs import JobSpec
    recipe = spec.recipe_config(seed)
    a = spec.arms[arm]
    return JobSpec(checkpoint="", dataset=spec.dataset, epochs=recipe.epochs, lr=recipe.lr,
                   batch_size=recipe.batch_size, warmup_epochs=recipe.warmup_epochs, seed=seed,
                   data_root=spec.data_root, out=str(spec.run_path(arm, seed)), kind="train", variant=a["variant"],
                   variant_kwargs=dict(a.get("variant_kwargs") or {}), state_path=str(spec.state_path(arm, seed)),
                   extra={**recipe.extra, "study": _run_key(spec), "arm": arm})


def study_jobs(spec: StudySpec, store) -> dict:
    """{(arm, seed): the newest queue job of that run}."""
    key, jobs = _run_key(spec), {}
    for job in reversed(store.list()):  # oldest first, so the newest wins
        extra = job.spec.get("extra") or {}
        if job.spec.get("kind") == "train" and extra.get("study") == key:
            jobs[(extra.get("arm"), job.spec.get("seed"))] = job
    return jobs


def submit_study(spec: StudySpec, store) -> list[str]:
    """Queue every pending run that has no active job (checked first: `check_spec`); a failed run with a resume
    state is resumed, not restarted. Returns the job ids queued."""
    check_spec(spec)
    jobs, queued = study_jobs(spec, store), []
    for arm, seed in pending_runs(spec):
        job = jobs.get((arm, seed))
        if job is not None and job.state in ("queued", "running"):
            continue
        if job is not None and job.resumable:
            store.resume(job.id)
            queued.append(job.id)
        else:
            queued.append(store.submit(job_spec(spec, arm, seed)))
    return queued


def cancel_study(spec: StudySpec, store) -> int:
    """Cancel the study's queued and running jobs; how many."""
    active = [j for j in study_jobs(spec, store).values() if j.state in ("queued", "running")]
    for job in active:
        store.cancel(job.id)
    return len(active)


@dataclass
class StudyStatus:
    total: int
    done: int
    running: list = field(default_factory=list)   # [(arm, seed, progress 0-1)]
    queued: list = field(default_factory=list)    # [(arm, seed)]
    failed: list = field(default_factory=list)    # [(arm, seed, message, log path)]
    eta_seconds: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.running or self.queued)

    def line(self) -> str:
        text = f"{self.done}/{self.total} runs done"
        if self.running:
            text += "; running " + ", ".join(f"{a} seed {s} ({p:.0%})" for a, s, p in self.running)
        if self.queued:
            text += f"; {len(self.queued)} queued"
        if self.failed:
            text += f"; {len(self.failed)} failed"
        if self.eta_seconds is not None:
            text += f"; ETA {_duration(self.eta_seconds)}"
        return text


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min" if seconds >= 90 \
        else f"{seconds:.0f} s"


def study_status(spec: StudySpec, store=None) -> StudyStatus:
    """Runs done (their checkpoints exist) out of all; with the queue's store, what runs, waits and failed, and an
    ETA: the running run's own estimate plus the queued runs at the mean duration of the study's finished runs
    (or of the running one, from its progress)."""
    pending = pending_runs(spec)
    status = StudyStatus(total=len(spec.runs()), done=len(spec.runs()) - len(pending))
    if store is None:
        return status
    store.poll()
    jobs = study_jobs(spec, store)
    durations = [j.finished - j.started for j in jobs.values() if j.state == "done" and j.started and j.finished]
    running_eta = 0.0
    for arm, seed in pending:
        job = jobs.get((arm, seed))
        if job is None:
            continue
        if job.state == "running":
            status.running.append((arm, seed, job.progress))
            if job.eta_seconds is not None:
                running_eta += job.eta_seconds
                if not durations and job.progress > 0:
                    durations.append(((job.updated or time.time()) - job.started) / job.progress)
        elif job.state == "queued":
            status.queued.append((arm, seed))
        elif job.state in ("failed", "cancelled"):
            status.failed.append((arm, seed, f"{job.state}: {job.message or ''}".strip(),
                                  str(store.runs_dir / f"{job.id}.log")))
    if durations and (status.running or status.queued):
        status.eta_seconds = running_eta + len(status.queued) * sum(durations) / len(durations)
    return status


def run_with_queue(spec: StudySpec, store, progress=print, poll_seconds: float = 2.0) -> dict:
    """Queue the pending runs, wait for the study's jobs to end (a failed run is reported with its log and does
    not stop the others), then write and return the result."""
    submit_study(spec, store)
    last = None
    while True:
        status = study_status(spec, store)
        line = status.line()
        if line != last:
            progress(line)
            last = line
        if not status.active:
            break
        time.sleep(poll_seconds)
    for arm, seed, message, log in status.failed:
        progress(f"run {arm} seed {seed} {message} (log: {log})")
    return write_result(spec)


def train_run(spec_path: str, arm: str, seed: int, device: str | None = None) -> str:
    """Train one run in this process (submitit's job function): the arm's variant from the seed's initialisation,
    resumed from its state if one was left; writes the run's checkpoint and returns its path."""
    from ..train.finetune import save_run, train_from_scratch
    spec = load_spec(spec_path)
    a = spec.arms[arm]
    state = spec.state_path(arm, seed)
    run = train_from_scratch(a["variant"], spec.dataset, spec.recipe_config(seed, arm=arm),
                             variant_kwargs=a.get("variant_kwargs") or {}, data_root=spec.data_root, device=device,
                             command=f"python -m vitviz study run {spec_path} (run {arm}, seed {seed})",
                             resume=state if state.exists() else None, state_path=state,
                             state_every=STATE_EVERY_SECONDS)
    path = save_run(run, spec.run_path(arm, seed))
    state.unlink(missing_ok=True)
    return str(path)


def submitit_executor(kind: str, folder, **parameters):
    """A submitit executor: "slurm" (AutoExecutor; parameters such as slurm_partition, gpus_per_node,
    timeout_min), "local" (LocalExecutor: one process per job on this machine) or "debug" (in this process)."""
    import submitit
    folder = Path(folder)
    if kind == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    elif kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
    elif kind == "debug":
        executor = submitit.DebugExecutor(folder=folder)
    else:
        raise ValueError(f"executor must be slurm, local or debug, got {kind!r}")
    if parameters:
        executor.update_parameters(**parameters)
    return executor


def run_with_submitit(spec: StudySpec, executor, progress=print) -> dict:
    """One submitit job per pending run (checked first); waits for all, reports each failure with its log (the
    others go on), then writes and returns the result."""
    check_spec(spec)
    pending = pending_runs(spec)
    jobs = [((arm, seed), executor.submit(train_run, str(spec.path), arm, seed)) for arm, seed in pending]
    total, done = len(spec.runs()), len(spec.runs()) - len(pending)
    for (arm, seed), job in jobs:
        try:
            job.result()
            done += 1
            progress(f"[{done}/{total}] {arm}, seed {seed}: done")
        except Exception as exc:  # noqa: BLE001 - a failed run is reported; the others stand
            log = getattr(job.paths, "stderr", None)
            progress(f"run {arm} seed {seed} failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}"
                     + (f" (log: {log})" if log else ""))
    return write_result(spec)
