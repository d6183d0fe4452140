"""Background training jobs: a queue on disk (SQLite) and one worker process per job.

A job is a fine-tune of a checkpoint (`kind="finetune"`, the Fine-tune page's) or a run trained from a variant's
seeded initialisation (`kind="train"`, one arm x seed of a study, `vitviz.studies`).

- `JobStore(runs_dir)` opens (or creates) `runs_dir/jobs.sqlite`. Every method is a short
  transaction, so the app, the CLI and workers can use the store concurrently, and a browser
  refresh, a second tab or an app restart sees the same jobs.
- `submit(spec)` queues a job and starts the queue: at most one job runs at a time (one GPU, or
  the CPU), the others wait in submission order. The worker (`python -m vitviz.train.worker ID`)
  is its own process, never the caller's thread; when it ends it starts the next queued job.
- A worker reports progress and per-epoch metrics into the store and checks the cancel flag
  before every optimiser step. Its checkpoint is written atomically (weights, then JSON), so no
  partial checkpoint is ever visible.
- `poll()` (called by every reader) marks a running job whose process is gone (killed, crashed)
  as failed, then starts the next queued job.
- A worker keeps a resume state (`resume/<id>.resume.safetensors`, every `RESUME_EVERY_SECONDS`), so a
  job whose worker died can be `resume`d: it is queued again and its next worker continues from the
  state's step (vitviz.train.resume); a finished job's state is removed.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
DB_NAME = "jobs.sqlite"
WORKER_MODULE = "vitviz.train.worker"
FINISHING_PROGRESS = 0.99  # the most a job that is not done shows
RESUME_EVERY_SECONDS = 60.0  # a killed fine-tune loses at most this much work
RESUME_SUBDIR = "resume"

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    pid INTEGER,
    started REAL,
    finished REAL,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER,
    loss REAL,
    message TEXT,
    checkpoint TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    updated REAL
);
CREATE TABLE IF NOT EXISTS history (
    job_id TEXT NOT NULL,
    epoch REAL NOT NULL,
    step INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_job ON history(job_id);
"""


KINDS = ("finetune", "train")


@dataclass
class JobSpec:
    """What to train on what.

    kind "finetune": `checkpoint` on `dataset`; `out` defaults to runs_dir/<parent stem>_ft_<dataset>_<id>.
    kind "train": `variant` (with `variant_kwargs`) from its seeded initialisation; `out` is required, and
    `state_path` (optional) is where its resume state lives, so that a run started elsewhere (the CLI, another
    queue) and stopped continues here.
    """

    checkpoint: str
    dataset: str
    epochs: float | None = 3.0
    steps: int | None = None
    lr: float = 5e-4
    batch_size: int = 128
    trainable: str = "all"
    warmup_epochs: float = 0.5
    data_root: str | None = None
    device: str | None = None
    seed: int = 0
    out: str | None = None
    extra: dict = field(default_factory=dict)
    kind: str = "finetune"
    variant: str | None = None
    variant_kwargs: dict = field(default_factory=dict)
    state_path: str | None = None

    def validate(self) -> None:
        from .config import TrainConfig
        if self.kind not in KINDS:
            raise ValueError(f"job kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "train":
            from ..models import list_variants
            if self.variant not in list_variants():
                raise ValueError(f"variant: {self.variant!r} is not a registered variant")
            if not self.out:
                raise ValueError("a train job needs its output path (out)")
        elif not Path(self.checkpoint).exists():
            raise ValueError(f"checkpoint not found: {self.checkpoint}")
        TrainConfig(epochs=self.epochs or 1.0, steps=self.steps, lr=self.lr, batch_size=self.batch_size,
                    trainable=self.trainable)  # raises ValueError for bad numbers / freeze policy


@dataclass
class Job:
    id: str
    state: str
    spec: dict
    created: float
    started: float | None
    finished: float | None
    step: int
    total_steps: int | None
    loss: float | None
    message: str | None
    checkpoint: str | None
    cancel_requested: bool
    pid: int | None
    updated: float | None
    history: list[dict] = field(default_factory=list)
    resume_state: str | None = None  # the worker's resume state, while there is one (failed jobs resume from it)

    @property
    def label(self) -> str:
        """What the job trains, in words."""
        spec = self.spec
        if spec.get("kind", "finetune") == "train":
            kwargs = spec.get("variant_kwargs") or {}
            options = " (" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else ""
            return f"train {spec['variant']}{options}, seed {spec['seed']}, on {spec['dataset']}"
        return f"fine-tune {Path(spec['checkpoint']).name} on {spec['dataset']}"

    @property
    def resumable(self) -> bool:
        return self.state == "failed" and self.resume_state is not None

    @property
    def progress(self) -> float:
        if self.state == "done":
            return 1.0
        # a job is complete only when done: after its last step it still evaluates and saves
        return min(FINISHING_PROGRESS, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.state != "running" or not self.started or not self.step or not self.total_steps:
            return None
        elapsed = (self.updated or time.time()) - self.started
        return elapsed / self.step * (self.total_steps - self.step)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(progress=self.progress, eta_seconds=self.eta_seconds, resumable=self.resumable)
        return d


def default_runs_dir() -> Path:
    from ..locations import default_runs_dir
    return default_runs_dir()


def _pid_alive(pid: int | None, job_id: str) -> bool:
    """Whether `pid` is a live (not zombie) worker for `job_id`."""
    if not pid:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that has exited: reap it
            return False
    except ChildProcessError:
        pass
    except OSError:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            status = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return status not in ("Z", "X") and job_id in cmdline
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class JobStore:
    def __init__(self, runs_dir: str | os.PathLike | None = None):
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.runs_dir / DB_NAME
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self):
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ queue

    def submit(self, spec: JobSpec, start: bool = True) -> str:
        spec.validate()
        job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        if spec.out is None:
            stem = Path(spec.checkpoint).name.removesuffix(".safetensors").removesuffix(".json")
            spec.out = str(self.runs_dir / f"{stem}_ft_{spec.dataset}_{job_id}")
        with self._transaction() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute("INSERT INTO jobs (id, seq, created, state, spec, updated) VALUES (?, ?, ?, 'queued', ?, ?)",
                       (job_id, seq, time.time(), json.dumps(asdict(spec)), time.time()))
        if start:
            self.poll()
        return job_id

    def poll(self) -> None:
        """Fail running jobs whose worker is gone; start the next queued job when none runs."""
        with self._transaction() as db:
            for row in db.execute("SELECT id, pid FROM jobs WHERE state = 'running'").fetchall():
                if not _pid_alive(row["pid"], row["id"]):
                    db.execute("UPDATE jobs SET state = 'failed', finished = ?, message = ? WHERE id = ?",
                               (time.time(), f"the worker process (pid {row['pid']}) ended without reporting "
                                             "(killed or crashed); no checkpoint was written", row["id"]))
            if db.execute("SELECT 1 FROM jobs WHERE state = 'running'").fetchone():
                return
            nxt = db.execute("SELECT id, cancel_requested FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1"
                             ).fetchone()
            if nxt is None:
                return
            if nxt["cancel_requested"]:
                db.execute("UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ?", (time.time(), nxt["id"]))
                return
            pid = self._spawn(nxt["id"])
            db.execute("UPDATE jobs SET state = 'running', pid = ?, started = ?, updated = ? WHERE id = ?",
                       (pid, time.time(), time.time(), nxt["id"]))

    def _spawn(self, job_id: str) -> int:
        log = open(self.runs_dir / f"{job_id}.log", "ab")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
        env["PYTHONUNBUFFERED"] = "1"  # the job's .log shows the worker's output as it happens
        proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, str(self.runs_dir), job_id],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        log.close()
        return proc.pid

    def state_path(self, job_id: str, spec: dict | None = None) -> Path:
        """Where the job's worker keeps its resume state (the spec's own `state_path` when it names one)."""
        if spec is None:
            with self._connect() as db:
                row = db.execute("SELECT spec FROM jobs WHERE id = ?", (job_id,)).fetchone()
                spec = json.loads(row["spec"]) if row else {}
        if spec.get("state_path"):
            return Path(spec["state_path"])
        return self.runs_dir / RESUME_SUBDIR / f"{job_id}.resume.safetensors"

    def resume(self, job_id: str) -> Job:
        """Queue a failed job again; its worker continues from the job's resume state."""
        with self._transaction() as db:
            row = db.execute("SELECT state, spec FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(f"no job {job_id!r}")
            has_state = self.state_path(job_id, json.loads(row["spec"])).exists()
            if row["state"] != "failed" or not has_state:
                raise ValueError(f"job {job_id} cannot be resumed: only a failed job with a resume state can "
                                 f"(it is {row['state']}" + ("" if has_state else ", and has no resume state") + ")")
            db.execute("UPDATE jobs SET state = 'queued', pid = NULL, finished = NULL, cancel_requested = 0, "
                       "message = ?, updated = ? WHERE id = ?",
                       ("queued to resume from its last saved step", time.time(), job_id))
        self.poll()
        return self.get(job_id)

    def cancel(self, job_id: str) -> Job:
        """Ask a job to stop: a queued job is cancelled at once, a running one before its next step."""
        with self._transaction() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(f"no job {job_id!r}")
            if row["state"] == "queued":
                db.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished = ? WHERE id = ?",
                           (time.time(), job_id))
            elif row["state"] == "running":
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
        return self.get(job_id)

    # ------------------------------------------------------------------ reading

    def _job(self, db, row) -> Job:
        history = [json.loads(r["record"]) for r in
                   db.execute("SELECT record FROM history WHERE job_id = ? ORDER BY step", (row["id"],))]
        return Job(id=row["id"], state=row["state"], spec=json.loads(row["spec"]), created=row["created"],
                   started=row["started"], finished=row["finished"], step=row["step"],
                   total_steps=row["total_steps"], loss=row["loss"], message=row["message"],
                   checkpoint=row["checkpoint"], cancel_requested=bool(row["cancel_requested"]), pid=row["pid"],
                   updated=row["updated"], history=history,
                   resume_state=str(state) if (state := self.state_path(row["id"], json.loads(row["spec"]))).exists()
                   else None)

    def get(self, job_id: str) -> Job:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(f"no job {job_id!r}")
            return self._job(db, row)

    def list(self) -> list[Job]:
        """All jobs, newest first."""
        with self._connect() as db:
            return [self._job(db, r) for r in db.execute("SELECT * FROM jobs ORDER BY seq DESC").fetchall()]

    # ------------------------------------------------------------------ worker side

    def cancel_requested(self, job_id: str) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return bool(row and row[0])

    def report_progress(self, job_id: str, step: int, total_steps: int, loss: float | None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET step = ?, total_steps = ?, loss = ?, updated = ? WHERE id = ?",
                       (step, total_steps, loss, time.time(), job_id))

    def report_phase(self, job_id: str, message: str) -> None:
        """What a running job is doing now (e.g. evaluating and saving after its last step)."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET message = ?, updated = ? WHERE id = ? AND state = 'running'",
                       (message, time.time(), job_id))

    def report_epoch(self, job_id: str, record: dict) -> None:
        with self._transaction() as db:  # a resumed job reports its epochs again from the state's step on
            db.execute("DELETE FROM history WHERE job_id = ? AND step >= ?", (job_id, record["step"]))
            db.execute("INSERT INTO history (job_id, epoch, step, record) VALUES (?, ?, ?, ?)",
                       (job_id, record["epoch"], record["step"], json.dumps(record)))

    def finish(self, job_id: str, state: str, message: str | None = None, checkpoint: str | None = None) -> None:
        if state not in ("done", "failed", "cancelled"):
            raise ValueError(f"a job ends done, failed or cancelled, not {state!r}")
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = ?, message = ?, checkpoint = ?, finished = ?, updated = ? "
                       "WHERE id = ?", (state, message, checkpoint, time.time(), time.time(), job_id))
