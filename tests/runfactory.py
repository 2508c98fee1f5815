"""Write real run directories fast, through RunWriter, with timings chosen by the test.

Used by the report, compare, history, merge and export tests: every file is
written by the same writer ``seqbench run`` uses, so what the tests read is
what a run writes.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqbench.config import RunConfig
from seqbench.keys import experiment_label
from seqbench.machine import machine_id
from seqbench.results import CellRecord, EpochRecord, RunWriter, run_meta

MACHINE = {
    "hostname": "box-a", "cpu": "Test CPU 3000", "cores": 2, "memory_gb": 8.0, "os": "Linux-test",
    "machine": "x86_64", "python": "3.11.7", "python_implementation": "CPython",
}  # fmt: skip
PACKAGES = {"seqbench": "0.1.0", "numpy": "2.4.6", "pandas": "3.1.1"}


@dataclass
class Row:
    """One (backend, implementation, model) row and how its cells behave."""

    backend: str = "numpy"
    implementation: str = "reference"
    model: str = "rnn"
    steady_s: float = 0.005  # typical steady epoch
    first_s: float = 0.05
    accuracy: list[float] = field(default_factory=lambda: [0.4, 0.8, 0.9])
    params: int = 131
    failed_seeds: tuple[int, ...] = ()  # these seeds end in status error
    gpu_s: float | None = None
    device: str = "cpu"
    task: str = "arithmetic"
    disturbed_seeds: tuple[int, ...] = ()  # these repeats ran while other processes took CPU
    units: int = 10
    latency_s: float | None = None  # the inference phase's median batch-1 call; None: the phase was off


def make_run(root: Path, name: str, rows: list[Row], *, seeds: int = 3, epochs: int = 10, noise: float = 0.01,
             started: str = "2026-01-01T10:00:00+0000", status: str = "complete", machine: dict | None = None,
             calibration_s: float | None = 0.01, packages: dict | None = None, commit: str = "a" * 40,
             planned: int | None = None, seed: int = 0, shard: tuple[int, int] | None = None,
             config: dict | None = None, process_noise: float = 0.0) -> Path:  # fmt: skip
    """A run directory ``root/name`` whose cells follow ``rows``."""
    gen = np.random.default_rng(seed)
    writer = RunWriter(root, name)
    machine = copy.deepcopy(machine or MACHINE)
    config_values = dict(backends=tuple(sorted({r.backend for r in rows})),
                         models=tuple(sorted({r.model for r in rows})), epochs=epochs, seeds=seeds, threads=2,
                         results_dir=str(root), shard=shard) | (config or {})  # fmt: skip
    cfg = asdict(RunConfig(**config_values))  # every field a run records, as `seqbench run` writes it
    meta: dict[str, Any] = run_meta(
        cfg, machine=machine, machine_id=machine_id(machine), packages=packages or PACKAGES,
        git={"commit": commit, "dirty": False}, cells_planned=planned if planned is not None else len(rows) * seeds,
        started=started, status=status, thread_policy={"policy": "fixed", "threads": 2, "cores": 2},
    )  # fmt: skip
    meta.update(ended=started, calibration=None if calibration_s is None else
                {"version": 1, "score_s": calibration_s, "threads": 1})  # fmt: skip
    done = 0
    for row in rows:
        for s in range(seeds):
            ident = dict(task=row.task, model=row.model, backend=row.backend, implementation=row.implementation,
                         device=row.device, seed=s)  # fmt: skip
            process = row.steady_s * (1 + process_noise * gen.standard_normal())  # varies between processes
            walls = [row.first_s] + list(process * (1 + noise * gen.standard_normal(epochs - 1)))
            if s in row.failed_seeds:
                for e in range(3):
                    writer.add_epoch(EpochRecord(**ident, epoch=e + 1, loss=100.0 / (e + 1), wall_s=walls[e],
                                                 cpu_s=walls[e], gpu_s=None))  # fmt: skip
                writer.add_cell(CellRecord(**ident, status="error", epochs=epochs, epochs_run=3,
                                           error="Traceback (most recent call last):\n  ...\nValueError: boom",
                                           machine=meta["machine_id"]))  # fmt: skip
                done += 1
                continue
            experiment = experiment_label({"task_params": {}, "units": row.units, "activation": "relu",
                                           "epochs": epochs, "batch_size": 32, "threads": 2, "dtype": "float32"})
            for e, wall in enumerate(walls, 1):
                writer.add_epoch(EpochRecord(**ident, epoch=e, loss=1000.0 / e**2, wall_s=wall, cpu_s=wall * 0.98,
                                             gpu_s=row.gpu_s, experiment=experiment))  # fmt: skip
            steady = float(np.median(walls[1:]))
            latency = {}
            if row.latency_s is not None:
                p50 = row.latency_s * (1 + process_noise * gen.standard_normal()) * (1 + noise * gen.standard_normal())
                latency = dict(latency_first_s=p50 * 20, latency_p50_s=p50, latency_p90_s=p50 * 1.2,
                               latency_p99_s=p50 * 2, throughput_per_s=50 / p50)  # fmt: skip
            writer.add_cell(CellRecord(
                **ident, status="ok", implementation_path=f"{row.backend}-path", units=row.units, activation="relu",
                epochs=epochs, epochs_run=epochs, batch_size=32, threads=2, params=row.params,
                final_loss=1000.0 / epochs**2, accuracy=row.accuracy[s % len(row.accuracy)], mse=0.5, mae=0.5,
                probe_prediction=12.5, probe_target=13.0, first_epoch_s=walls[0], steady_epoch_s=steady,
                cpu_s=steady * 0.98, gpu_s=row.gpu_s, samples_per_s=1000 / steady if steady else None, peak_rss_mb=40.0,
                build_s=0.001, details={"dtype": "float32"}, machine=meta["machine_id"], cold=True,
                disturbed=s in row.disturbed_seeds, interference=0.9 if s in row.disturbed_seeds else 0.01,
                **latency,
            ))  # fmt: skip
            done += 1
    meta["cells_done"] = done
    writer.write_meta(meta)
    writer.close()
    return writer.path


@dataclass
class Invoked:
    returncode: int
    stdout: str
    stderr: str


def invoke(*args: str) -> Invoked:
    """The CLI in this process (fast); the slow tests run it in a subprocess as a user would."""
    import contextlib
    import io

    from seqbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Invoked(code, out.getvalue(), err.getvalue())
