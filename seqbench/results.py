"""Run records: frozen dataclasses, written as they happen, loaded into pandas.

A run directory holds::

    run.json      configuration, machine, versions, git commit, times, status
    cells.jsonl   one CellRecord per line, appended as each cell finishes
    epochs.jsonl  one EpochRecord per line, appended as each epoch finishes
    logs/         each worker's stdout and stderr

JSON Lines are plain text that ``pandas.read_json(path, lines=True)`` reads
directly, and a line is complete or absent, so a killed run keeps every
finished row.  Non-finite floats are written as ``null``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from seqbench.config import RunConfig
from seqbench.errors import ResultsError
from seqbench.formatting import jsonable
from seqbench.keys import Status, entrant_name

if TYPE_CHECKING:
    import pandas as pd

# Format history (bump on any change a reader must know about):
#   1  run.json + cells.jsonl + epochs.jsonl (seqbench 0.1)
#      compatible additions (older readers ignore them, newer readers accept
#      files without them): cells.machine; run.json machine_id, calibration,
#      shard, and for merged runs machines and merged_from.
#      seqbench 0.2: cells.task_params, dtype, attempt, cold, interference,
#      disturbed (process per repeat), metrics, primary_metric,
#      higher_is_better, baseline, flops, gflops_per_s, peak_share;
#      epochs.other_cpu_s, attempt, experiment; run.json thread_policy,
#      schedule, retries_run, matmul_peak.
#      seqbench 0.3: cells.env, epochs.env (the environment of an A/B run; "" when there is one),
#      epochs.wait_s and disturbed, cells.wait_share, clean_epochs and meter (the run-queue meter,
#      seqbench.interference); run.json envs.
#      seqbench 0.3 (inference): cells.latency_first_s, latency_p50_s, latency_p90_s, latency_p99_s,
#      throughput_per_s (the harness's inference phase) and inference_only (a backend that does not train).
#      seqbench 0.4: cells.inference_paths (a model's other predictors, with --inference full); cells.layers and
#      bidirectional; run.json config.layers and config.bidirectional.
#      docs/results-format.md describes every file and column.
FORMAT_VERSION = 1

RUN_FILE, CELLS_FILE, EPOCHS_FILE, LOGS_DIR = "run.json", "cells.jsonl", "epochs.jsonl", "logs"
# A cluster run (seqbench.cluster) keeps its jobs, and the shards they write, in RUN/jobs/, described by
# RUN/jobs/cluster.json; the merged run's own files sit beside that folder once every job has ended.
JOBS_DIR, CLUSTER_FILE = "jobs", "cluster.json"


@dataclass(frozen=True)
class Repeat:
    """Which repeat of which row: the fields every configuration and record starts with.

    (The experiment, the rest of a row's :class:`~seqbench.keys.RowKey`, comes from the other fields.)
    """

    task: str
    model: str
    backend: str
    implementation: str
    device: str
    seed: int
    # The environment (``--env NAME=EXECUTABLE``) in an A/B run, "" otherwise.  Keyword-only, so that the
    # subclasses' positional fields keep their places.
    env: str = field(default="", kw_only=True)

    def repeat_fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Repeat)}


@dataclass(frozen=True)
class CellConfig(Repeat):
    """Everything that defines one cell: task × model spec × backend × device × seed."""

    units: int
    activation: str
    epochs: int
    batch_size: int
    threads: int
    task_params: dict[str, int] = field(default_factory=dict)  # every parameter, defaults filled in
    dtype: str = "float32"
    attempt: int = 1  # 2, 3, ... when a disturbed repeat is measured again
    inference: str = "quick"  # how long the inference phase measures: a key of seqbench.harness.INFERENCE
    layers: int = 1  # stacked recurrent layers (0.4)
    bidirectional: bool = False  # each layer runs both directions (0.4)

    @property
    def label(self) -> str:
        again = f" (attempt {self.attempt})" if self.attempt > 1 else ""
        return f"{entrant_name(vars(self))} {self.model} seed={self.seed}{again}"


@dataclass(frozen=True)
class EpochRecord(Repeat):
    epoch: int
    loss: float
    wall_s: float
    cpu_s: float
    gpu_s: float | None
    other_cpu_s: float | None = None  # CPU seconds other processes used meanwhile (seqbench.interference)
    attempt: int = 1
    experiment: str | None = None  # experiment_label of its cell
    wait_s: float | None = None  # seconds this worker's threads waited for a CPU (schedstat; None without it)
    disturbed: bool | None = None  # waited beyond seqbench.interference.WAIT_SHARE of the epoch


@dataclass(frozen=True)
class CellRecord(Repeat):
    status: Status
    error: str | None = None
    implementation_path: str | None = None
    units: int | None = None
    activation: str | None = None
    epochs: int | None = None
    epochs_run: int = 0
    batch_size: int | None = None
    threads: int | None = None
    params: int | None = None
    final_loss: float | None = None
    accuracy: float | None = None
    mse: float | None = None
    mae: float | None = None
    probe_prediction: float | None = None
    probe_target: float | None = None
    first_epoch_s: float | None = None
    steady_epoch_s: float | None = None
    cpu_s: float | None = None  # process CPU seconds per steady epoch (median of epochs 2..N), not the total
    gpu_s: float | None = None  # device seconds per steady epoch, where the backend can time its device
    samples_per_s: float | None = None
    peak_rss_mb: float | None = None
    build_s: float | None = None
    details: dict[str, str] | None = None
    machine: str | None = None  # id of the machine it ran on: a key of run.json's machines
    # Added in 0.2 (read as null from older files).  ``metrics`` holds every metric the task
    # returned (accuracy/mse/mae above stay for older readers); ``primary_metric`` names the one
    # reports use and ``higher_is_better`` its direction; ``baseline`` is that metric for the
    # trivial model that ignores its input.
    task_params: dict[str, int] | None = None  # every task parameter of the cell, defaults filled in
    dtype: str | None = None
    attempt: int = 1
    cold: bool | None = None  # the first cell of a fresh worker process (imports and caches not yet warm)
    interference: float | None = None  # cores other processes kept busy during the steady epochs
    disturbed: bool | None = None  # too few clean steady epochs (seqbench.interference.steadiness)
    metrics: dict[str, float] | None = None
    primary_metric: str | None = None
    higher_is_better: bool | None = None
    baseline: float | None = None
    # Efficiency (seqbench.efficiency): analytic FLOPs of one training epoch, their rate over
    # the steady epoch, and that rate's share of run.json's matmul peak (set by the runner).
    flops: float | None = None
    gflops_per_s: float | None = None
    peak_share: float | None = None
    # The run-queue meter (0.3): the steady epochs' wait for a CPU over their wall time, how many
    # steady epochs the times come from (the clean ones, when some were disturbed), and the meter.
    wait_share: float | None = None
    clean_epochs: int | None = None
    meter: str | None = None
    # The inference phase (seqbench.harness.measure_inference), after training: seconds per call at batch 1
    # (the first call apart, then percentiles over the timed calls) and samples per second at a large batch.
    latency_first_s: float | None = None
    latency_p50_s: float | None = None
    latency_p90_s: float | None = None
    latency_p99_s: float | None = None
    throughput_per_s: float | None = None
    inference_only: bool | None = None  # the backend does not train: no epochs, no training figures
    # 0.4: with --inference full, the model's other predictors (contract.model_predictors), timed alike:
    # "NAME/latency_first_s", "NAME/latency_p50_s", ..., "NAME/throughput_per_s", "NAME/latency_calls".
    inference_paths: dict[str, float] | None = None
    # The model's shape (0.4): stacked layers and whether each is bidirectional (null in older files: 1, false).
    layers: int | None = None
    bidirectional: bool | None = None


CELL_COLUMNS = [f.name for f in fields(CellRecord)]
EPOCH_COLUMNS = [f.name for f in fields(EpochRecord)]
# Columns added to format 1 after its first files were written: read as null when absent.
ADDED_COLUMNS = frozenset({"machine", "task_params", "dtype", "attempt", "cold", "interference", "disturbed",
                           "other_cpu_s", "experiment", "metrics", "primary_metric", "higher_is_better", "baseline",
                           "flops", "gflops_per_s", "peak_share", "env", "wait_s", "wait_share",
                           "clean_epochs", "meter", "latency_first_s", "latency_p50_s", "latency_p90_s",
                           "latency_p99_s", "throughput_per_s", "inference_only", "inference_paths", "layers",
                           "bidirectional"})  # fmt: skip

# The most a cell's error holds, in UTF-8 bytes: its first line and the end of what went wrong.  A plugin
# that writes megabytes to stderr before it dies would otherwise put them in every reader's table (the
# full output stays in logs/).
MAX_ERROR_BYTES = 8192
REASON_CHARS = 300  # the most of an error a one-line reason shows (the console, the report's failures)
_CUT = "\n[... {n} bytes left out; the worker's whole output is in the run's logs/ folder ...]\n"


def bounded_error(error: str, limit: int = MAX_ERROR_BYTES) -> str:
    """``error`` within ``limit`` bytes: its first line, then as much of its end as fits."""
    data = error.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return error
    head = data.split(b"\n", 1)[0][: limit // 4]
    cut = _CUT.format(n=len(data)).encode()  # the count shown is at most this long
    room = limit - len(head) - len(cut)
    tail = data[-room:]
    left_out = len(data) - len(head) - len(tail)
    text = head + _CUT.format(n=left_out).encode() + tail
    return text.decode("utf-8", errors="ignore")  # a character cut at either end is dropped


def error_reason(error: Any) -> str:
    """The line that says why a cell failed: a Python traceback's last line (the exception), else the
    first line (``worker killed by signal 9 (SIGKILL)``, with the worker's last output below it)."""
    if not isinstance(error, str):
        return ""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 3] + "..."


def failed_cell(cell: CellConfig, status: Status, error: str, **extra: Any) -> CellRecord:
    """A record for a cell that did not complete (its error bounded: :func:`bounded_error`)."""
    return CellRecord(**cell_fields(cell), status=status, error=bounded_error(error), **extra)


def cell_fields(cell: CellConfig) -> dict[str, Any]:
    """The CellRecord fields that come straight from the cell's configuration."""
    keys = ("units", "activation", "epochs", "batch_size", "threads", "dtype", "attempt", "layers",
            "bidirectional")  # env: a repeat field
    return {**cell.repeat_fields(), **{k: getattr(cell, k) for k in keys}, "task_params": dict(cell.task_params)}


def as_row(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict (non-finite floats become None)."""
    row: dict[str, Any] = jsonable(asdict(record))
    return row


def to_json(record: Any) -> str:
    return json.dumps(as_row(record), allow_nan=False)


# ------------------------------------------------------------------ run.json's shape (checked by seqbench.loader)


class GitInfo(TypedDict, total=False):
    commit: str | None
    dirty: bool | None
    time: str | None  # committer date, ISO 8601 (since seqbench 0.2; absent before)
    author_time: str | None
    branch: str | None  # None on a detached HEAD


class ShardInfo(TypedDict):
    index: int
    count: int


class MergedFrom(TypedDict, total=False):
    run_id: str
    path: str
    status: str | None
    shard: ShardInfo | None
    machines: list[str]
    git: GitInfo | None
    started: str | None


class MachineEntry(TypedDict, total=False):
    machine: dict[str, Any]
    calibration: dict[str, Any] | None
    packages: dict[str, str]


class RunMeta(TypedDict, total=False):
    """``run.json``.  Only ``format_version`` is required; docs/results-format.md explains each key."""

    format_version: int
    seqbench_version: str
    status: str  # a RunStatus; any string is read, so a status added later does not make a run unreadable
    started: str | None
    ended: str | None
    merged: str | None
    # The run's RunConfig as a dict; the reader checks it against RunConfig's own fields, so a setting added
    # there is read without a second spelling here.
    config: Annotated[dict[str, Any], RunConfig]
    machine: dict[str, Any] | None
    machine_id: str | None
    shard: ShardInfo | None
    calibration: dict[str, Any] | None
    packages: dict[str, str]
    git: GitInfo | None
    cells_planned: int | None
    cells_done: int | None
    machines: dict[str, MachineEntry]
    merged_from: list[MergedFrom]
    thread_policy: dict[str, Any]
    matmul_peak_gflops: dict[str, float]
    schedule: str
    retries_run: int
    envs: dict[str, dict[str, Any]]  # A/B: each environment's executable, protocol, versions and git commit
    remeasured: dict[str, Any]  # what was measured again and why, and what the budget left disturbed
    adaptive: dict[str, Any]  # --seeds auto: rounds, repeats added, rows left undecided
    missing_shards: list[int]  # a merge of shards: the first ten shards I of N it lacks (then the run is partial)
    cluster: dict[str, Any]  # a cluster run (seqbench.cluster): the executor and each shard's jobs


SCHEDULE = "interleaved: one fresh worker process per repeat"
SCHEDULE_AB = (
    "A/B: each repeat in every environment side by side, ABBA order across seeds; "
    + "one fresh worker process per repeat"
)


def run_meta(config: Mapping[str, Any], *, machine: dict[str, Any] | None, machine_id: str | None,
             packages: dict[str, str], git: Any, cells_planned: int | None, started: str | None = None,
             status: str = "running", thread_policy: dict[str, Any] | None = None,
             envs: dict[str, Any] | None = None) -> RunMeta:  # fmt: skip
    """run.json of a run as it starts: every key a run writes, in one place (docs/results-format.md).

    ``config`` is the run's :class:`~seqbench.config.RunConfig` as a dict.  The runner fills in the rest as
    the run goes (status, end, calibration, counts); the test factory writes the same keys.
    """
    import seqbench

    shard = config.get("shard")
    return {
        "format_version": FORMAT_VERSION,
        "seqbench_version": seqbench.__version__,
        "status": status,
        "started": started or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ended": None,
        "config": dict(config),  # a RunConfig as a dict
        "machine": machine,
        "machine_id": machine_id,
        "shard": {"index": shard[0], "count": shard[1]} if shard else None,
        "calibration": None,
        "thread_policy": thread_policy or {},
        "schedule": SCHEDULE_AB if envs else SCHEDULE,
        "packages": packages,
        "git": git,
        "cells_planned": cells_planned,
        "cells_done": 0,
        "retries_run": 0,
        "matmul_peak_gflops": {},
        "envs": envs or {},
    }


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class RunWriter:
    """Creates a run directory and appends rows to it as they arrive."""

    def __init__(self, root: str | os.PathLike[str], run_id: str | None = None) -> None:
        root = Path(root)
        self.path = root / (run_id or new_run_id())
        try:
            (self.path / LOGS_DIR).mkdir(parents=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise ResultsError(f"cannot write results to {root}: {e.strerror or e}") from e
        self._files = {name: self.path / name for name in (CELLS_FILE, EPOCHS_FILE)}
        self._fds = {name: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                     for name, path in self._files.items()}  # fmt: skip

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Replace run.json atomically, so a reader never sees half of it."""
        tmp = self.path / (RUN_FILE + ".tmp")
        text = json.dumps(jsonable(dict(meta)), indent=2, allow_nan=False) + "\n"
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path / RUN_FILE)
        except PermissionError as e:
            # The folder turned read-only, and run.json itself may still be writable: rewrite it in place
            # rather than leave it saying "running".  Only here: after a full disk, a rewrite cut short
            # would lose the whole run.
            self._unlink(tmp)
            try:
                (self.path / RUN_FILE).write_text(text, encoding="utf-8")
            except OSError:
                pass
            raise ResultsError(f"cannot write {self.path / RUN_FILE}: {e.strerror or e}") from e
        except OSError as e:
            self._unlink(tmp)
            raise ResultsError(f"cannot write {self.path / RUN_FILE}: {e.strerror or e}") from e
        except BaseException:  # interrupted half-way: leave no stray .tmp behind
            self._unlink(tmp)
            raise

    @staticmethod
    def _unlink(path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError:  # the folder is gone or read-only: nothing to clean up, or nothing we can
            pass

    def _append(self, name: str, record: Any) -> None:
        # One os.write per row on an O_APPEND descriptor: a concurrent reader
        # sees a line whole or not at all, and a failed write leaves at most a
        # truncated last line, which readers of an unfinished run skip.
        data = (to_json(record) + "\n").encode()
        try:
            written = os.write(self._fds[name], data)
            while written < len(data):  # a short write (rare: signals, full disk) is finished or fails
                written += os.write(self._fds[name], data[written:])
        except OSError as e:
            raise ResultsError(f"cannot write {self._files[name]}: {e.strerror or e}") from e

    def add_epoch(self, record: EpochRecord) -> None:
        self._append(EPOCHS_FILE, record)

    def add_cell(self, record: CellRecord) -> None:
        self._append(CELLS_FILE, record)

    def log_path(self, name: str) -> Path:
        return self.path / LOGS_DIR / f"{name}.log"

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}


# ---------------------------------------------------------------- reading


@dataclass
class Run:
    """A loaded run: ``meta`` from run.json, ``cells`` and ``epochs`` DataFrames.

    ``cells`` has one row per repeat, the attempt that counts (:mod:`seqbench.attempts`), and ``epochs``
    that attempt's epochs; ``attempts`` and ``attempt_epochs`` hold every measurement, re-measurements
    included (None where the run was built by hand: then ``cells`` and ``epochs`` are all there is).
    """

    path: Path
    meta: dict[str, Any]
    cells: pd.DataFrame
    epochs: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # what the reader left out (a row cut short), and why
    attempts: pd.DataFrame | None = None
    attempt_epochs: pd.DataFrame | None = None

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "unknown"))
