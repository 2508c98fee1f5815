"""Run a grid as jobs on a Slurm cluster (or locally, one job at a time) through submitit, then merge them.

``seqbench run ... --executor slurm --jobs N`` splits the run's rows into N shards (the split of
``--shard I/N``: :func:`seqbench.runner.select_shard`, whole rows, so a row's repeats share one machine)
and submits them as one job array.  Each job runs ``seqbench run ... --shard I/N`` in a process of its
own and writes a run directory of its own, which records the machine it landed on (its GPUs too). This
module, the parent, watches the jobs and re-submits one that failed or was killed, up to
``--job-retries`` times; a pre-empted job is requeued by submitit itself.  When every job has ended it
merges the shards that completed with :func:`seqbench.merge.merge_runs`; a shard that never did makes the
merged run ``partial``, named in run.json's ``missing_shards`` and ``cluster``.

A cluster run's directory (``--results-dir``/RUN)::

    RUN/jobs/cluster.json                   what was asked (the run's arguments, N, the executor's
                                            settings) and each shard's jobs; --resume reads it
    RUN/jobs/shards/I/attempt-K/<run-id>/   shard I's K-th job: a plain run directory
    RUN/jobs/submitit/                      submitit's job files and each job's output
    RUN/run.json, cells.jsonl, ...          the merged run, written when every job has ended

SIGINT, SIGTERM and SIGHUP cancel every job this parent submitted (and, locally, wait until their
processes are gone); the run is left unmerged, and ``--resume RUN`` submits the shards that have no
complete run, keeping the others.

``--executor local`` runs the same path through submitit's LocalExecutor.  Its jobs start at once, all
of them, so the parent submits them one at a time (``--parallel``, default 1): jobs beside each other
on one machine would disturb each other's timings.  On Slurm the whole array is submitted at once and
``--parallel`` (default N) becomes the array's limit (``--array=0-N%P``).

submitit is imported here only, when a cluster run starts: the core install does not need it.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from seqbench.config import RunConfig
from seqbench.console import RunClock, clock
from seqbench.errors import ResultsError, SeqbenchError, UsageError
from seqbench.escape import one_line
from seqbench.keys import RunStatus
from seqbench.loader import read_meta
from seqbench.merge import merge_runs
from seqbench.output import replace_file, writing
from seqbench.plugins import Registry
from seqbench.results import CELLS_FILE, CLUSTER_FILE, EPOCHS_FILE, JOBS_DIR, LOGS_DIR, RUN_FILE, new_run_id
from seqbench.runner import STOP_SIGNALS, select_shard, shard_rows, validate
from seqbench.worker import signal_when_parent_dies

EXECUTORS = ("none", "local", "slurm")
INSTALL_HINT = "pip install 'seqbench[cluster]'"
DEFAULT_TIME_LIMIT_MIN = 24 * 60  # a day: most clusters allow it; a longer shard is a hint to use more jobs
DEFAULT_JOB_RETRIES = 2
SLURM_ONLY = ("partition", "cpus_per_job", "exclusive", "sbatch")
STATE_VERSION = 1
PID_FILE = "job.pid"  # in each attempt's folder: the pid of its `seqbench run`, so that a local cancel can wait
STOP_GRACE_S = 20.0  # how long a cancelled job's `seqbench run` may take to stop its worker and write run.json
POLL_S = {"local": 0.5, "slurm": 10.0}  # Slurm: each look is a sacct call (submitit also caches them)
# cluster.json's states.  A shard: pending (to submit), submitted, done (it has a complete run) or failed (its
# jobs ran out of retries).  A shard's job (an attempt): submitted, ended, failed (ended with no complete
# run), cancelled, or not submitted (sbatch refused it).
PENDING, SUBMITTED, DONE, FAILED, ENDED, CANCELLED = "pending", "submitted", "done", "failed", "ended", "cancelled"


@dataclass(frozen=True)
class ClusterOptions:
    """``seqbench run``'s cluster options as given; None: not given (defaults are resolved in
    :func:`settings`, so that an error about a bad combination names only what was given)."""

    executor: str = "none"
    jobs: int | None = None
    parallel: int | None = None
    partition: str | None = None
    time_limit: int | None = None  # minutes
    cpus_per_job: int | None = None
    gpus_per_job: int | None = None
    exclusive: bool | None = None
    sbatch: list[tuple[str, str | bool]] | None = None
    job_retries: int | None = None
    resume: str | None = None


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_usage(options: ClusterOptions, shard: tuple[int, int] | None) -> None:
    """Refuse a bad combination of options before anything runs (one line, exit 2)."""
    given = [f.name for f in fields(options) if f.name != "executor" and getattr(options, f.name) is not None]
    if options.executor == "none":
        if given:
            raise UsageError(f"{flag(given[0])} needs --executor local or --executor slurm")
        return
    if options.executor not in EXECUTORS:
        raise UsageError(f"unknown executor {options.executor!r}; valid: {', '.join(EXECUTORS)}")
    if shard is not None:
        raise UsageError("--shard does not go with --executor: the executor splits the run into --jobs shards itself")
    if options.jobs is None and options.resume is None:
        raise UsageError(f"--executor {options.executor} needs --jobs N (the number of jobs to split the run into), "
                         "or --resume RUN")  # fmt: skip
    for name in ("jobs", "parallel", "time_limit", "cpus_per_job"):
        value = getattr(options, name)
        if value is not None and not value >= 1:
            raise UsageError(f"{flag(name)} must be 1 or more, got {value}")
    for name in ("gpus_per_job", "job_retries"):
        value = getattr(options, name)
        if value is not None and not value >= 0:
            raise UsageError(f"{flag(name)} must be 0 or more, got {value}")
    if options.executor == "local":
        for name in SLURM_ONLY:
            if getattr(options, name) is not None:
                shown = "--no-exclusive" if name == "exclusive" and options.exclusive is False else flag(name)
                raise UsageError(f"{shown} is a Slurm option: it needs --executor slurm")


def settings(options: ClusterOptions, jobs: int, device: str, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """The executor's settings: each option as given, else as a resumed run stored it, else its default."""
    defaults: dict[str, Any] = {
        "parallel": 1 if options.executor == "local" else jobs,  # locally one at a time: timings stay clean
        "partition": None, "time_limit": DEFAULT_TIME_LIMIT_MIN, "cpus_per_job": None,
        "gpus_per_job": 1 if device == "gpu" else 0,  # --device auto asks for none: say --gpus-per-job
        "exclusive": True,  # a benchmark must not share its node
        "sbatch": {}, "job_retries": DEFAULT_JOB_RETRIES,
    }  # fmt: skip
    out = {"executor": options.executor, "jobs": jobs}
    for name, default in defaults.items():
        value = getattr(options, name)
        if name == "sbatch" and value is not None:
            value = dict(value)
        out[name] = value if value is not None else (stored or {}).get(name, default)
    return out


def slurm_parameters(chosen: dict[str, Any]) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters (the sbatch options) for :func:`settings`."""
    params: dict[str, Any] = {"job_name": "seqbench", "time": chosen["time_limit"],
                              "array_parallelism": chosen["parallel"]}  # fmt: skip
    if chosen["partition"]:
        params["partition"] = chosen["partition"]
    if chosen["cpus_per_job"]:
        params["cpus_per_task"] = chosen["cpus_per_job"]
    if chosen["gpus_per_job"]:
        params["gpus_per_node"] = chosen["gpus_per_job"]
    if chosen["exclusive"]:
        params["exclusive"] = True
    if chosen["sbatch"]:
        params["additional_parameters"] = dict(chosen["sbatch"])
    return params


def run_arguments(config: RunConfig) -> list[str]:
    """``seqbench run`` options that reproduce ``config`` (all but ``--shard`` and ``--results-dir``, which
    each job sets): what every job runs.  tests/test_cluster.py parses them back to the same config."""

    def text(value: Any) -> str:  # a grid's comma list, or one value
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    args = ["--backends", ",".join(config.backends), "--models", ",".join(config.models), "--task", config.task]
    for key, value in config.task_params.items():
        args += ["-P", f"{key}={text(value)}"]
    args += ["--epochs", str(config.epochs), "--batch-size", text(config.batch_size), "--units", text(config.units),
             "--activation", text(config.activation), "--seeds", "auto" if config.adaptive else str(config.seeds),
             "--max-seeds", str(config.max_seeds), "--threshold", repr(config.threshold)]  # fmt: skip
    for name, executable in config.envs.items():
        args += ["--env", f"{name}={executable}"]
    args += ["--device", config.device, "--threads", "auto" if config.threads is None else str(config.threads),
             "--timeout", repr(config.timeout), "--startup-timeout", repr(config.startup_timeout),
             "--retries", str(config.retries), "--inference", config.inference]  # fmt: skip
    if not config.calibrate:
        args.append("--no-calibration")
    return args


# ------------------------------------------------------------------ a job


def _stop_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux: SIGTERM this `seqbench run` when the job process that started it dies, however it dies (not
    Linux: a cancel still stops the run through its job process)."""
    signal_when_parent_dies(signal.SIGTERM)


@dataclass(frozen=True)
class ShardJob:
    """What one job runs (pickled by submitit): ``seqbench run ... --shard I/N`` in a process of its own,
    so that a kill is a real kill; its output goes to the job's log.  Returns its exit code."""

    command: tuple[str, ...]
    folder: str  # the attempt's folder: the run directory is made inside it

    def __call__(self) -> int:
        proc = subprocess.Popen(self.command, preexec_fn=_stop_with_parent)  # the job process has one thread
        Path(self.folder, PID_FILE).write_text(str(proc.pid))
        try:
            return proc.wait()
        finally:  # cancelled (SIGINT) or pre-empted: stop the run, which stops its worker and says so in run.json
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def run_shard(job: ShardJob) -> int:
    return job()


# ------------------------------------------------------------------ the parent


@contextmanager
def _stop_requests() -> Iterator[list[int]]:
    """SIGINT, SIGTERM and SIGHUP ask the parent to stop: recorded, never raised, so that a submission is
    never cut in half (every job submitted is known, and can be cancelled)."""
    asked: list[int] = []
    previous = {}
    for name in STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, lambda signum, frame: asked.append(signum))
    try:
        yield asked
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@dataclass
class ClusterResult:
    path: Path
    status: RunStatus
    exit_code: int


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise UsageError(f"--executor needs submitit, which is not installed: {INSTALL_HINT}") from None
    return submitit


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with writing(path):
        replace_file(path, json.dumps(data, indent=2) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ClusterRun:
    """One cluster run: its folder, its shards' jobs, and the loop that watches them (see the module doc)."""

    def __init__(self, path: Path, state: dict[str, Any], progress: Any) -> None:
        self.path, self.state, self.progress = path, state, progress
        self.jobs_dir = path / JOBS_DIR
        self.count = int(state["jobs"])
        self.chosen = state["settings"]
        self.session_attempts: collections.Counter[int] = collections.Counter()  # retries count per parent
        self.active: dict[int, Any] = {}  # shard -> its submitit job
        self.queue: collections.deque[int] = collections.deque()
        self.clock = RunClock()
        self.cells_at_start: int | None = None
        self.last_counts: tuple[int, ...] = ()

    # ---------------------------------------------------------------- starting and resuming

    @classmethod
    def start(cls, config: RunConfig, options: ClusterOptions, registry: Registry, progress: Any) -> ClusterRun:
        validate(config)  # the run's own checks, before anything is written
        jobs = int(options.jobs or 0)
        rows = sorted(set(shard_rows(config, registry)))
        if jobs > len(rows):
            raise UsageError(f"--jobs {jobs}: the run has {len(rows)} row(s) (backend x model) and a job runs whole "
                             f"rows: use --jobs {len(rows)} or fewer")  # fmt: skip
        for index in range(1, jobs + 1):
            owned = select_shard(rows, (index, jobs))
            if not any(registry.backend(b).availability().available for b, _, _ in owned):
                raise UsageError(f"--jobs {jobs}: shard {index}/{jobs} would hold only backends that are not available "
                                 f"({', '.join(sorted({b for b, _, _ in owned}))}): use fewer jobs")  # fmt: skip
        path = Path(config.results_dir).absolute() / new_run_id()
        state = {
            "version": STATE_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": sys.executable,
            "arguments": run_arguments(config), "device": config.device, "jobs": jobs,
            "settings": settings(options, jobs, config.device),
            "shards": {str(i): {"status": PENDING, "run": None, "attempts": []} for i in range(1, jobs + 1)},
        }  # fmt: skip
        try:
            (path / JOBS_DIR).mkdir(parents=True)
        except OSError as e:
            raise ResultsError(f"cannot write results to {path}: {e.strerror or e}") from e
        run = cls(path, state, progress)
        run.queue.extend(range(1, jobs + 1))
        run.save()
        return run

    @classmethod
    def resume(cls, options: ClusterOptions, results_dir: str, submitit: Any, progress: Any) -> ClusterRun:
        given = Path(str(options.resume))
        path = (given if given.exists() else Path(results_dir) / given).absolute()
        state_file = path / JOBS_DIR / CLUSTER_FILE
        if not state_file.is_file():
            raise UsageError(f"--resume {options.resume}: not a cluster run (no {JOBS_DIR}/{CLUSTER_FILE} in {path})")
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ResultsError(f"{state_file}: cannot read it: {e}") from e
        if state.get("version") != STATE_VERSION:
            raise ResultsError(f"{state_file}: version {state.get('version')!r}; this seqbench reads {STATE_VERSION}")
        if options.jobs is not None and options.jobs != state["jobs"]:
            raise UsageError(f"--jobs {options.jobs}: {path.name} was split into {state['jobs']} jobs; leave --jobs "
                             "out to resume it")  # fmt: skip
        if (path / RUN_FILE).is_file():
            if read_meta(path).get("status") == RunStatus.COMPLETE:
                raise UsageError(f"--resume {options.resume}: the run is complete and merged; nothing to resume")
            for name in (RUN_FILE, CELLS_FILE, EPOCHS_FILE):  # a partial merge: merged again with what is added
                (path / name).unlink(missing_ok=True)
            _remove_tree(path / LOGS_DIR)
        state["settings"] = settings(options, state["jobs"], state["device"], state["settings"])
        run = cls(path, state, progress)
        for index in range(1, run.count + 1):
            shard = run.shard(index)
            shard["run"] = run.complete_run(index)
            last = shard["attempts"][-1] if shard["attempts"] else None
            if shard["run"] is not None:  # its job completed, perhaps after the parent died
                shard["status"] = DONE
                if last and last.get("status") == SUBMITTED:
                    last["status"] = ENDED
                continue
            if last and last.get("status") == SUBMITTED:  # the dead parent's job
                run.stop_stale(submitit, last)
            shard["status"] = PENDING
            run.queue.append(index)
        done = run.count - len(run.queue)
        progress.note(f"resuming {path.name}: {done} of {run.count} shard(s) complete, submitting {len(run.queue)}")
        run.save()
        return run

    def stop_stale(self, submitit: Any, attempt: dict[str, Any]) -> None:
        """Cancel a job the dead parent submitted, which may still run: a shard runs in one job at a time."""
        attempt["status"], attempt["reason"] = CANCELLED, "its parent died; resumed"
        if attempt.get("job_id") is None:
            return
        if self.state["settings"]["executor"] == "slurm":
            submitit.SlurmJob(self.jobs_dir / "submitit" / "%j", attempt["job_id"]).cancel(check=False)
            return
        pid = self._pid_of(attempt)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGTERM)  # the run stops its worker and marks itself interrupted
            self._wait_gone([pid])

    # ---------------------------------------------------------------- state

    def shard(self, index: int) -> dict[str, Any]:
        shard: dict[str, Any] = self.state["shards"][str(index)]
        return shard

    def save(self) -> None:
        _write_json(self.jobs_dir / CLUSTER_FILE, self.state)

    def complete_run(self, index: int) -> str | None:
        """The shard's complete run directory (relative to RUN/jobs), if any of its attempts made one."""
        for run_file in sorted((self.jobs_dir / "shards" / str(index)).glob(f"attempt-*/*/{RUN_FILE}")):
            try:
                if read_meta(run_file.parent).get("status") == RunStatus.COMPLETE:
                    return str(run_file.parent.relative_to(self.jobs_dir))
            except ResultsError:  # a run cut short while writing its first run.json
                continue
        return None

    def _pid_of(self, attempt: dict[str, Any]) -> int | None:
        try:
            return int((self.jobs_dir / attempt["folder"] / PID_FILE).read_text())
        except (OSError, ValueError):
            return None

    def _wait_gone(self, pids: list[int]) -> None:
        deadline = time.monotonic() + STOP_GRACE_S + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)

    # ---------------------------------------------------------------- the loop

    def execute(self, submitit: Any) -> ClusterResult:
        executor = self._executor(submitit)
        poll = POLL_S[self.chosen["executor"]]
        with _stop_requests() as asked:
            try:
                while (self.queue or self.active) and not asked:
                    self._submit(executor)
                    for index, job in list(self.active.items()):
                        if job.done():
                            del self.active[index]
                            self._ended(index, job)
                    self.save()
                    self._show()
                    deadline = time.monotonic() + poll
                    while (self.queue or self.active) and not asked and time.monotonic() < deadline:
                        time.sleep(0.1)  # a stop request is answered within a tenth of a second
            except BaseException:  # an error here (a disk, sbatch refusing a re-submission) leaves no job behind
                self._cancel()
                raise
            if asked:
                self._cancel()
                self.progress.note(f"stopped by {signal.Signals(asked[0]).name}: every job cancelled, finished shards "
                                   f"kept; resume with: seqbench run --resume {self.path}")  # fmt: skip
                return ClusterResult(self.path, RunStatus.INTERRUPTED, 128 + asked[0])
            return self._merge()

    def _executor(self, submitit: Any) -> Any:
        folder = self.jobs_dir / "submitit" / "%j"
        if self.chosen["executor"] == "slurm":
            try:
                executor = submitit.SlurmExecutor(folder=folder)
            except RuntimeError as e:  # no srun here
                raise UsageError(f"--executor slurm: {e}") from None
            executor.update_parameters(**slurm_parameters(self.chosen))
        else:
            executor = submitit.LocalExecutor(folder=folder)
            executor.update_parameters(timeout_min=self.chosen["time_limit"], gpus_per_node=self.chosen["gpus_per_job"])
        return executor

    def _submit(self, executor: Any) -> None:
        """Submit queued shards: on Slurm all at once (one array; the array's limit throttles them), locally
        up to --parallel at a time (the local executor starts every job it is given at once)."""
        room = len(self.queue) if self.chosen["executor"] == "slurm" else self.chosen["parallel"] - len(self.active)
        batch = [self.queue.popleft() for _ in range(max(0, min(room, len(self.queue))))]
        if not batch:
            return
        specs = []
        for index in batch:
            shard = self.shard(index)
            number = len(shard["attempts"]) + 1
            folder = Path("shards") / str(index) / f"attempt-{number}"
            (self.jobs_dir / folder).mkdir(parents=True, exist_ok=True)
            command = (self.state["python"], "-m", "seqbench", "run", *self.state["arguments"],
                       "--shard", f"{index}/{self.count}", "--results-dir", str(self.jobs_dir / folder))  # fmt: skip
            specs.append(ShardJob(command, str(self.jobs_dir / folder)))
            shard["attempts"].append({"attempt": number, "folder": str(folder), "status": SUBMITTED, "job_id": None,
                                      "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z")})  # fmt: skip
            shard["status"] = SUBMITTED
            self.session_attempts[index] += 1
        try:
            jobs = executor.map_array(run_shard, specs)
        except Exception as e:  # sbatch refused (a bad partition or --sbatch option): nothing was submitted
            for index in batch:
                self.shard(index)["attempts"][-1].update(status="not submitted", reason=one_line(e)[:300])
                self.shard(index)["status"] = PENDING
            self.save()
            raise UsageError(f"the jobs could not be submitted: {one_line(e).strip().splitlines()[-1][:300]}") from None
        for index, job in zip(batch, jobs, strict=True):
            self.active[index] = job
            self.shard(index)["attempts"][-1]["job_id"] = str(job.job_id)
        self.save()

    def _ended(self, index: int, job: Any) -> None:
        """A job ended: its shard is done when it left a complete run; else it is submitted again, or failed."""
        shard, attempt = self.shard(index), self.shard(index)["attempts"][-1]
        code: int | None = None
        try:
            code = int(job.result())
            why = f"exit code {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"
        except Exception as e:  # killed, cancelled, or submitit could not run it
            why = "ended without a result: " + (one_line(e).strip().splitlines() or ["?"])[0][:200]
        attempt.update(status=ENDED, exit_code=code, reason=why, ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        shard["run"] = self.complete_run(index)
        name = f"shard {index}/{self.count} (job {job.job_id})"
        if shard["run"] is not None:
            shard["status"] = DONE
            return
        attempt["status"] = FAILED
        if self.session_attempts[index] <= self.chosen["job_retries"]:
            self.progress.note(f"{name}: {why}, no complete run: submitting it again "
                               f"(retry {self.session_attempts[index]} of {self.chosen['job_retries']})")  # fmt: skip
            shard["status"] = PENDING
            self.queue.append(index)
        else:
            shard["status"] = FAILED
            self.progress.note(f"{name}: {why}, no complete run after {self.session_attempts[index]} job(s): shard "
                               f"{index}/{self.count} failed; its output: {self.jobs_dir / 'submitit'}")  # fmt: skip

    def _cancel(self) -> None:
        """Cancel every job still queued or running, and locally wait until their processes are gone."""
        for index, job in self.active.items():
            job.cancel(check=False)
            attempt = self.shard(index)["attempts"][-1]
            attempt.update(status=CANCELLED, reason="the parent was stopped")
            self.shard(index)["status"] = PENDING
        if self.chosen["executor"] == "local":
            deadline = time.monotonic() + STOP_GRACE_S + 5
            while not all(job.done() for job in self.active.values()) and time.monotonic() < deadline:
                time.sleep(0.1)
            self._wait_gone([p for i in self.active if (p := self._pid_of(self.shard(i)["attempts"][-1]))])
        self.active.clear()
        self.save()

    def _show(self) -> None:
        """Jobs pending, running, done and failed, and cells done with an ETA, on the progress line."""
        states = [str(job.state).upper() for job in self.active.values()]
        running = sum(s.startswith(("RUNNING", "COMPLETING")) for s in states)
        shards = [self.shard(i)["status"] for i in range(1, self.count + 1)]
        counts = (len(self.queue) + len(states) - running, running, shards.count(DONE), shards.count(FAILED))
        done, planned, known = 0, 0, 0
        for index in range(1, self.count + 1):
            run = self._latest_run(index)
            if run is None:
                continue
            done += _lines(run / CELLS_FILE)
            try:
                planned += int(read_meta(run).get("cells_planned") or 0)
                known += 1
            except ResultsError:
                continue
        if self.cells_at_start is None:
            self.cells_at_start = done
        if done > self.cells_at_start and self.clock.first_cell is None:
            self.clock.first_cell = self.clock.start
        total = round(planned * self.count / known) if known else None  # shards not started: like the others
        text = f"{clock(self.clock.elapsed())} elapsed"
        if total is not None:
            self.clock.epochs_done, self.clock.epochs_total = done - self.cells_at_start, total - self.cells_at_start
            eta = self.clock.eta()
            text += f", ETA {clock(eta)}" if eta is not None else ""
        text += "  jobs: {} pending, {} running, {} done, {} failed".format(*counts)
        text += f"  cells {done}/{total if known == self.count else f'~{total}' if total else '?'}"
        self.progress.status(text, changed=counts != self.last_counts)
        self.last_counts = counts

    def _latest_run(self, index: int) -> Path | None:
        shard = self.shard(index)
        if shard["run"]:
            return self.jobs_dir / shard["run"]
        if not shard["attempts"]:
            return None
        runs = sorted(p.parent for p in (self.jobs_dir / shard["attempts"][-1]["folder"]).glob(f"*/{RUN_FILE}"))
        return runs[-1] if runs else None

    # ---------------------------------------------------------------- the end

    def _merge(self) -> ClusterResult:
        done = [i for i in range(1, self.count + 1) if self.shard(i)["status"] == DONE]
        failed = [i for i in range(1, self.count + 1) if self.shard(i)["status"] == FAILED]
        self.save()
        if not done:
            raise SeqbenchError(f"every job failed, so there is nothing to merge: see the jobs' output in "
                                f"{self.jobs_dir / 'submitit'}; then: seqbench run --resume {self.path}")  # fmt: skip
        cluster = {key: self.state[key] for key in ("jobs", "settings", "shards")}
        result = merge_runs([self.jobs_dir / self.shard(i)["run"] for i in done], self.path, extra={"cluster": cluster},
                            existing_ok=(JOBS_DIR,))  # fmt: skip
        for warning in result.warnings:
            self.progress.note(warning)
        codes = [a.get("exit_code") for i in done for a in self.shard(i)["attempts"][-1:]]
        if failed:
            self.progress.note(f"the merged run is partial: shard(s) {', '.join(f'{i}/{self.count}' for i in failed)} "
                               f"failed; resume with: seqbench run --resume {self.path}")  # fmt: skip
        some_cell_failed = any(code not in (0, None) for code in codes)
        return ClusterResult(self.path, result.status, 1 if failed or some_cell_failed else 0)


def _lines(path: Path) -> int:
    """Finished rows of a table being appended to (a line is whole once its newline is written)."""
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def run_on_cluster(config: RunConfig, options: ClusterOptions, registry: Registry | None,
                   progress: Any) -> ClusterResult:  # fmt: skip
    """``seqbench run --executor local|slurm``: submit, watch, re-submit, merge (see the module doc).
    ``registry``: the run's plugins, to check the split before submitting; None with --resume."""
    check_usage(options, config.shard)
    submitit = _submitit()
    if options.resume is not None:
        run = ClusterRun.resume(options, config.results_dir, submitit, progress)
    else:
        assert registry is not None
        run = ClusterRun.start(config, options, registry, progress)
    progress.note(f"{run.count} job(s) on {run.chosen['executor']}: {run.jobs_dir}")
    return run.execute(submitit)


__all__ = ["EXECUTORS", "ClusterOptions", "ClusterResult", "ShardJob", "check_usage", "run_arguments", "run_on_cluster",
           "settings", "slurm_parameters"]  # fmt: skip
