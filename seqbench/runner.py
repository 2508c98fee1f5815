"""Expand a run configuration into cells, run them, and record everything.

``plan`` validates and expands (raising :class:`UsageError` before any work);
``execute`` runs the groups one after another, each in its own worker, and
streams every record to the run directory as it arrives.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import seqbench
from seqbench import grid
from seqbench.calibration import machine_id, run_calibration
from seqbench.contract import ACTIVATIONS, MODEL_KINDS, Backend, default_order
from seqbench.errors import UsageError
from seqbench.harness import model_spec
from seqbench.machine import git_commit, machine_info, package_versions
from seqbench.plugins import Registry
from seqbench.results import (
    COMPLETED,
    FORMAT_VERSION,
    CellConfig,
    CellRecord,
    EpochRecord,
    RunWriter,
)
from seqbench.tasks import Task
from seqbench.worker import Callbacks, Group, run_group

DEVICE_CHOICES = ("cpu", "gpu", "auto")
RUN_COMPLETE, RUN_INTERRUPTED, RUN_RUNNING, RUN_FAILED = "complete", "interrupted", "running", "failed"


@dataclass(frozen=True)
class RunConfig:
    backends: tuple[str, ...] = ("all",)
    models: tuple[str, ...] = ("rnn", "lstm")
    task: str = "arithmetic"
    # units, batch_size, activation and each task parameter take one value or a tuple: a grid (seqbench.grid)
    task_params: dict[str, int | tuple[int, ...]] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int | tuple[int, ...] = 32
    units: int | tuple[int, ...] = 10
    activation: str | tuple[str, ...] = "relu"
    seeds: int = 3
    device: str = "cpu"
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout: float = 600.0
    results_dir: str = "results"
    shard: tuple[int, int] | None = None  # (I, N): run only the I-th of N deterministic parts (1-based)
    calibrate: bool = True  # measure the calibration workload before the cells


class Progress(Protocol):
    def note(self, message: str) -> None: ...
    def cell_started(self, cell: CellConfig, done: int, total: int) -> None: ...
    def epoch(self, record: EpochRecord) -> None: ...
    def cell_finished(self, record: CellRecord, done: int, total: int) -> None: ...


@dataclass
class RunResult:
    path: Path
    status: str
    cells: list[CellRecord]

    @property
    def exit_code(self) -> int:
        if self.status == RUN_INTERRUPTED:
            return 130
        return 0 if all(c.status in COMPLETED for c in self.cells) else 1


def _check_choices(kind: str, values: tuple[str, ...], valid: tuple[str, ...]) -> None:
    for value in values:
        if value not in valid:
            raise UsageError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")


def validate(config: RunConfig) -> None:
    for name in ("epochs", "batch_size", "units", "seeds", "threads", "timeout"):
        for value in grid.values(getattr(config, name)):
            if value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if not config.models:
        raise UsageError(f"no model given; valid: {', '.join(MODEL_KINDS)}")
    _check_choices("model", config.models, MODEL_KINDS)
    _check_choices("activation", grid.values(config.activation), ACTIVATIONS)
    _check_choices("device", (config.device,), DEVICE_CHOICES)
    if config.shard is not None:
        index, count = config.shard
        if not 1 <= index <= count:
            raise UsageError(f"--shard must be I/N with 1 <= I <= N, got {index}/{count}")


def _install_note(backend: Backend) -> str:
    a = backend.availability()
    hint = f" (install: {a.install_hint})" if a.install_hint else ""
    return f"backend {backend.name!r} is not available: {a.reason}{hint}"


def _requested(config: RunConfig, registry: Registry) -> list[tuple[Backend, str | None, bool]]:
    """(backend, implementation or None for its default, explicitly asked for)."""
    chosen = []
    for item in config.backends:
        if item == "all":
            chosen += [(b, None, False) for _, b in sorted(registry.backends.items())]
            continue
        name, _, impl = item.partition(":")
        backend = registry.backend(name)
        if impl and impl not in backend.implementations:
            raise UsageError(
                f"backend {name!r} has no implementation {impl!r}; valid: {', '.join(backend.implementations)}"
            )
        chosen.append((backend, impl or None, True))
    return chosen


def select_shard(rows: list[tuple[str, str, str]], shard: tuple[int, int] | None) -> set[tuple[str, str, str]]:
    """The rows (backend, implementation asked for, model) that shard ``(I, N)`` runs.

    Round-robin over the sorted rows of the requested matrix, before anything is
    dropped as unavailable: every job of a CI matrix computes the same split, and
    all seeds of a row run on one machine, so their spread stays meaningful.
    """
    ordered = sorted(set(rows))
    if shard is None:
        return set(ordered)
    index, count = shard
    return {row for position, row in enumerate(ordered) if position % count == index - 1}


def plan(config: RunConfig, registry: Registry) -> tuple[list[Group], list[str]]:
    """Expand ``config`` into worker groups; return them and notes on what was skipped."""
    validate(config)
    task = registry.task(config.task)
    unknown = sorted(set(config.task_params) - set(task.defaults))
    if unknown:
        raise UsageError(
            f"task {task.name!r} has no parameter {unknown[0]!r}; valid: {', '.join(task.defaults)}"
        )
    notes: list[str] = []
    groups: dict[tuple[str, str, str], list[CellConfig]] = {}
    requested = _requested(config, registry)
    owned = select_shard([(b.name, i or "", m) for b, i, _ in requested for m in config.models], config.shard)
    # ---- grid: every combination of list values is one experiment point (seqbench.grid)
    for point in grid.expand(config):
        _plan_point(replace(config, **point.overrides()), task, requested, owned, groups, notes)
    notes = list(dict.fromkeys(notes))  # a skipped backend is noted once, not once per point
    # ---- end grid
    if not groups:
        where = f" in shard {config.shard[0]}/{config.shard[1]}" if config.shard else ""
        raise UsageError(f"nothing to run{where}: " + ("; ".join(notes) or "no backend selected"))
    return [Group(b, i, d, tuple(cells)) for (b, i, d), cells in groups.items()], notes


def _plan_point(
    config: RunConfig,
    task: Task,
    requested: list[tuple[Backend, str | None, bool]],
    owned: set[tuple[str, str, str]],
    groups: dict[tuple[str, str, str], list[CellConfig]],
    notes: list[str],
) -> None:
    """Add the cells of one grid point (``config`` holds single values) to ``groups``."""
    try:
        data = task.make(0, **config.task_params)
    except ValueError as e:
        raise UsageError(str(e)) from None
    for backend, impl, explicit in requested:
        if not backend.availability().available:
            if explicit:
                raise UsageError(_install_note(backend))
            notes.append(_install_note(backend) + ": skipped")
            continue
        for model in config.models:
            if (backend.name, impl or "", model) not in owned:
                continue
            probe = CellConfig(config.task, model, backend.name, "", "", 0, config.units, config.activation,
                               config.epochs, config.batch_size, config.threads, config.task_params)  # fmt: skip
            spec = model_spec(probe, data)
            devices = ["gpu", "cpu"] if config.device == "auto" else [config.device]
            choice, reasons = None, []
            for device in devices:
                if device not in backend.devices:
                    reasons.append(f"{device}: not supported")
                    continue
                for candidate in [impl] if impl else default_order(backend, spec, device):
                    why = backend.supports(candidate, spec, device)
                    if why is None:
                        choice = (candidate, device)
                        break
                    reasons.append(f"{candidate}/{device}: {why}")
                if choice:
                    break
            if choice is None:
                message = (
                    f"{backend.name}{':' + impl if impl else ''} cannot run {model} "
                    f"({config.activation}, {config.units} units): {'; '.join(reasons)}"
                )
                if explicit:
                    raise UsageError(message)
                notes.append(message + ": skipped")
                continue
            key = (backend.name, *choice)
            for seed in range(config.seeds):
                cell = CellConfig(**{**asdict(probe), "implementation": choice[0], "device": choice[1], "seed": seed})
                if cell not in groups.setdefault(key, []):
                    groups[key].append(cell)


def run_metadata(config: RunConfig, registry: Registry, groups: list[Group]) -> dict[str, object]:
    versions = package_versions(["seqbench", "numpy", "pandas", "pluggy"])
    for name in dict.fromkeys(g.backend for g in groups):
        versions.update(registry.backend(name).versions())
    return {
        "format_version": FORMAT_VERSION,
        "seqbench_version": seqbench.__version__,
        "status": RUN_RUNNING,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ended": None,
        "config": asdict(config),
        "machine": (machine := machine_info()),
        "machine_id": machine_id(machine),
        "shard": {"index": config.shard[0], "count": config.shard[1]} if config.shard else None,
        "calibration": None,
        "packages": versions,
        "git": git_commit(Path(seqbench.__file__).parent),
        "cells_planned": sum(len(g.cells) for g in groups),
        "cells_done": 0,
    }


def execute(config: RunConfig, registry: Registry, progress: Progress) -> RunResult:
    """Run the plan.  Ctrl-C stops cleanly: finished cells are kept, the run is marked interrupted."""
    groups, notes = plan(config, registry)
    for note in notes:
        progress.note(note)
    writer = RunWriter(config.results_dir)  # fails before any work if it cannot write
    meta = run_metadata(config, registry, groups)
    writer.write_meta(meta)
    if config.calibrate:  # before any cell, in its own process, so that it measures an idle machine
        meta["calibration"] = run_calibration()
        writer.write_meta(meta)
    total = meta["cells_planned"]
    cells: list[CellRecord] = []

    def finished(record: CellRecord) -> None:
        record = replace(record, machine=meta["machine_id"])
        writer.add_cell(record)
        cells.append(record)
        progress.cell_finished(record, len(cells), total)  # type: ignore[arg-type]

    def epoch(record: EpochRecord) -> None:
        writer.add_epoch(record)
        progress.epoch(record)

    def started(cell: CellConfig) -> None:
        progress.cell_started(cell, len(cells), total)  # type: ignore[arg-type]

    status = RUN_FAILED
    try:
        for group in groups:
            run_group(group, config.threads, config.timeout, writer.log_path(group.name),
                      Callbacks(started, epoch, finished))  # fmt: skip
        status = RUN_COMPLETE
    except KeyboardInterrupt:
        status = RUN_INTERRUPTED
    finally:  # whatever happened, the record says how far the run got
        meta.update(status=status, ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"), cells_done=len(cells))
        writer.write_meta(meta)
        writer.close()
    return RunResult(writer.path, status, cells)
