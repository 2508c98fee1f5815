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
import math
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.errors import ResultsError

if TYPE_CHECKING:
    import pandas as pd

# Format history (bump on any change a reader must know about):
#   1  run.json + cells.jsonl + epochs.jsonl (seqbench 0.1)
#      compatible additions (older readers ignore them, newer readers accept
#      files without them): cells.machine; run.json machine_id, calibration,
#      shard, and for merged runs machines and merged_from; cells.task_params, metrics,
#      primary_metric, higher_is_better, baseline, flops, gflops_per_s,
#      peak_share (seqbench 0.2).
#      docs/results-format.md describes every file and column.
FORMAT_VERSION = 1

RUN_FILE, CELLS_FILE, EPOCHS_FILE, LOGS_DIR = "run.json", "cells.jsonl", "epochs.jsonl", "logs"

STATUS_OK, STATUS_DIVERGED, STATUS_ERROR, STATUS_TIMEOUT = "ok", "diverged", "error", "timeout"
COMPLETED = (STATUS_OK, STATUS_DIVERGED)


@dataclass(frozen=True)
class CellConfig:
    """Everything that defines one cell: task × model spec × backend × device × seed."""

    task: str
    model: str
    backend: str
    implementation: str
    device: str
    seed: int
    units: int
    activation: str
    epochs: int
    batch_size: int
    threads: int
    task_params: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.implementation}/{self.device} {self.model} seed={self.seed}"


@dataclass(frozen=True)
class EpochRecord:
    task: str
    model: str
    backend: str
    implementation: str
    device: str
    seed: int
    epoch: int
    loss: float
    wall_s: float
    cpu_s: float
    gpu_s: float | None


@dataclass(frozen=True)
class CellRecord:
    task: str
    model: str
    backend: str
    implementation: str
    device: str
    seed: int
    status: str
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
    cpu_s: float | None = None
    gpu_s: float | None = None
    samples_per_s: float | None = None
    peak_rss_mb: float | None = None
    build_s: float | None = None
    details: dict[str, str] | None = None
    machine: str | None = None  # id of the machine it ran on: a key of run.json's machines
    # Added in 0.2 (read as null from older files).  ``metrics`` holds every metric the task
    # returned (accuracy/mse/mae above stay for older readers); ``primary_metric`` names the one
    # reports use and ``higher_is_better`` its direction; ``baseline`` is that metric for the
    # trivial model that ignores its input.
    task_params: dict[str, int] | None = None  # the task parameters of the cell's grid point
    metrics: dict[str, float] | None = None
    primary_metric: str | None = None
    higher_is_better: bool | None = None
    baseline: float | None = None
    # Efficiency (seqbench.efficiency): analytic FLOPs of one training epoch, their rate over
    # the steady epoch, and that rate's share of run.json's matmul peak (set by the runner).
    flops: float | None = None
    gflops_per_s: float | None = None
    peak_share: float | None = None


CELL_COLUMNS = [f.name for f in fields(CellRecord)]
EPOCH_COLUMNS = [f.name for f in fields(EpochRecord)]
# Columns added to format 1 after its first files were written: read as null when absent.
ADDED_COLUMNS = frozenset({"machine", "task_params", "metrics", "primary_metric", "higher_is_better", "baseline",
                           "flops", "gflops_per_s", "peak_share"})


def failed_cell(cell: CellConfig, status: str, error: str, **extra: Any) -> CellRecord:
    """A record for a cell that did not complete."""
    return CellRecord(**cell_fields(cell), status=status, error=error, **extra)


def cell_fields(cell: CellConfig) -> dict[str, Any]:
    """The CellRecord fields that come straight from the cell's configuration."""
    keys = ("task", "model", "backend", "implementation", "device", "seed",
            "units", "activation", "epochs", "batch_size", "threads")  # fmt: skip
    return {**{k: getattr(cell, k) for k in keys}, "task_params": dict(cell.task_params)}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def as_row(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict (non-finite floats become None)."""
    return _clean(asdict(record))


def to_json(record: Any) -> str:
    return json.dumps(as_row(record), allow_nan=False)


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
        self._cells = open(self.path / CELLS_FILE, "a", encoding="utf-8")
        self._epochs = open(self.path / EPOCHS_FILE, "a", encoding="utf-8")

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Replace run.json atomically, so a reader never sees half of it."""
        tmp = self.path / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(_clean(meta), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path / RUN_FILE)

    def add_epoch(self, record: EpochRecord) -> None:
        self._epochs.write(to_json(record) + "\n")
        self._epochs.flush()

    def add_cell(self, record: CellRecord) -> None:
        self._cells.write(to_json(record) + "\n")
        self._cells.flush()

    def log_path(self, name: str) -> Path:
        return self.path / LOGS_DIR / f"{name}.log"

    def close(self) -> None:
        self._cells.close()
        self._epochs.close()


# ---------------------------------------------------------------- reading


@dataclass
class Run:
    """A loaded run: ``meta`` from run.json, ``cells`` and ``epochs`` DataFrames."""

    path: Path
    meta: dict[str, Any]
    cells: pd.DataFrame
    epochs: pd.DataFrame

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "unknown"))


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ResultsError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ResultsError(f"{path}: line {lineno} is not a JSON object")
            yield row


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    run_file = path / RUN_FILE
    if not run_file.is_file():
        raise ResultsError(f"{path} is not a seqbench run: no {RUN_FILE}")
    try:
        meta = json.loads(run_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"{run_file}: not valid JSON ({e})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int):
        raise ResultsError(f"{run_file}: no integer format_version")
    if version > FORMAT_VERSION:
        raise ResultsError(
            f"{path} has results format {version}; this seqbench reads up to {FORMAT_VERSION}: upgrade seqbench"
        )
    return meta


def load_run(path: str | os.PathLike[str]) -> Run:
    import pandas as pd

    path = Path(path)
    meta = read_meta(path)
    frames = {}
    for name, columns in ((CELLS_FILE, CELL_COLUMNS), (EPOCHS_FILE, EPOCH_COLUMNS)):
        rows = list(_read_jsonl(path / name))
        missing = sorted({c for row in rows for c in columns if c not in row} - ADDED_COLUMNS)
        if missing:
            raise ResultsError(f"{path / name}: rows lack column(s) {', '.join(missing)}")
        frames[name] = pd.DataFrame(rows, columns=columns)
    return Run(path, meta, frames[CELLS_FILE], frames[EPOCHS_FILE])
