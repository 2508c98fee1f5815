"""Expand a run configuration into cells, run them, and record everything.

``plan`` validates and expands (raising :class:`UsageError` before any work)
into cells in an *interleaved* order: repeat 1 of every row, then repeat 2
of every row, and so on, so that load that comes and goes on the machine
lands on every backend alike rather than on whichever ran during it.

In an A/B run (``--env NAME=EXECUTABLE``, repeated) every row and seed runs
once in each environment, side by side, in ABBA order across seeds (A B for
seed 0, B A for seed 1, ...), so that load and linear drift hit both sides
alike (the duet rule, docs/measurement.md).

``execute`` runs each cell in a fresh worker process (the process is the
unit of repetition), streams every record to the run directory as it
arrives, and measures a repeat again (at the end of the queue, up to
``retries`` times, within a budget of ``retry_budget`` of the planned
processes) when its threads waited for a CPU in most of its epochs
(:mod:`seqbench.interference`); an A/B pair is measured again together.
With ``--seeds auto`` (``adaptive``) it then adds repeats to the rows that
are still undecided, until each is decided or has ``max_seeds``.  SIGINT, SIGTERM and SIGHUP stop the run
alike: finished cells are kept, the run is marked ``interrupted`` and the
exit code is 128 + the signal's number.
"""

from __future__ import annotations

import itertools
import math
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import seqbench
from seqbench import grid
from seqbench import threads as thread_policy
from seqbench.attempts import counted_rows
from seqbench.budget import check_memory
from seqbench.calibration import run_calibration
from seqbench.config import RunConfig
from seqbench.contract import ACTIVATIONS, MODEL_KINDS, Backend, default_order, refusal
from seqbench.efficiency import measure_matmul_peak, share_of_peak
from seqbench.errors import ResultsError, SeqbenchError, UsageError
from seqbench.harness import INFERENCE, model_spec
from seqbench.keys import COMPLETED, RowKey, RunStatus, entrant_name
from seqbench.machine import git_commit, machine_id, machine_info, package_versions
from seqbench.plugins import Registry, filter_hint
from seqbench.results import CellConfig, CellRecord, EpochRecord, RunMeta, RunWriter, run_meta
from seqbench.stats import FASTER, SAME, SLOWER, judge_paired, precise_enough
from seqbench.tasks import Task, data_shape, param_names
from seqbench.worker import Ahead, Callbacks, probe_env, run_in_worker, start_worker

DEVICE_CHOICES = ("cpu", "gpu", "auto")
ENV_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # a cancelled CI job sends SIGINT, then SIGTERM
# The most a plan may ask for: each seed is a worker process (a second or more), each epoch a pass over the
# data, each thread a thread in every worker's pools.  Above these a run cannot end in a working day or
# fit the machine (--seeds 1000000000 grew the planner to gigabytes before anything ran), and an epoch count
# beyond 64 bits would make the run unreadable: a typo, refused before any work like --units 1000000.
MAX_SEEDS = 1000
MAX_EPOCHS = 100_000
MAX_THREADS = 1024


class Progress(Protocol):
    def note(self, message: str) -> None: ...
    def cell_started(self, cell: CellConfig, done: int, total: int) -> None: ...
    def epoch(self, record: EpochRecord) -> None: ...
    def cell_finished(self, record: CellRecord, done: int, total: int) -> None: ...


@dataclass
class RunResult:
    path: Path
    status: RunStatus
    cells: list[CellRecord]
    signal: int | None = None  # the signal that stopped the run

    @property
    def exit_code(self) -> int:
        if self.status == RunStatus.INTERRUPTED:
            return 128 + (self.signal or signal.SIGINT)
        return 0 if all(c.status in COMPLETED for c in self.cells) else 1


# Workers started ahead of their turn (seqbench.worker.Ahead), all at once while no cell is measured.  Three
# rather than two: three start-ups share 2 cores with less idle time than two of unequal length (the default
# run, quiet: 63.4 s with 2, 57.0 s with 3, 56.8 s with 4, the same times measured); each idle worker holds its
# framework's memory (Keras on TensorFlow: about 0.6 GB).
START_AHEAD = 3


def _check_choices(kind: str, values: tuple[str, ...], valid: tuple[str, ...]) -> None:
    for value in values:
        if value not in valid:
            raise UsageError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")


def validate(config: RunConfig) -> None:
    for name in ("epochs", "batch_size", "units", "layers", "seeds", "threads", "timeout", "startup_timeout"):
        for value in grid.values(getattr(config, name)):
            if value is not None and not value > 0:  # "not >" also refuses NaN
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    for name, value, most, cost in (
        ("seeds", config.seeds, MAX_SEEDS, "each seed is a worker process of its own"),
        ("max-seeds", config.max_seeds, MAX_SEEDS, "each seed is a worker process of its own"),
        ("epochs", config.epochs, MAX_EPOCHS, "each epoch is a pass over the data"),
        ("threads", config.threads, MAX_THREADS, "each worker would start that many threads"),
    ):
        if value is not None and value > most:
            raise UsageError(f"--{name} must be at most {most:,}, got {value:,}: {cost}")
    if not config.retries >= 0:
        raise UsageError(f"--retries must be 0 or more, got {config.retries}")
    if not 0 <= config.retry_budget <= 10:
        raise UsageError(f"the re-measurement budget must be from 0 to 10 times the plan, got {config.retry_budget}")
    if config.adaptive and not config.max_seeds >= max(config.seeds, 2):
        raise UsageError(f"--max-seeds must be at least 2 (and not below --seeds), got {config.max_seeds}")
    if not (math.isfinite(config.threshold) and 0 < config.threshold <= 100):
        raise UsageError(f"--threshold must be above 0 and at most 100, got {config.threshold}")
    for name, executable in config.envs.items():
        if not ENV_NAME.fullmatch(name):
            raise UsageError(f"--env name {name!r}: use up to 32 letters, digits, '.', '_' or '-'")
        if not executable:
            raise UsageError(f"--env {name}=: give the executable that starts that environment's Python")
    if not config.models:
        raise UsageError(f"no model given; valid: {', '.join(MODEL_KINDS)}")
    _check_choices("model", config.models, MODEL_KINDS)
    _check_choices("activation", grid.values(config.activation), ACTIVATIONS)
    _check_choices("device", (config.device,), DEVICE_CHOICES)
    _check_choices("inference setting", (config.inference,), tuple(INFERENCE))
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
    chosen: list[tuple[Backend, str | None, bool]] = []
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


def shard_rows(config: RunConfig, registry: Registry) -> list[tuple[str, str, str]]:
    """The rows (backend, implementation asked for, model) that ``--shard`` splits: the requested matrix,
    before anything is dropped as unavailable (:func:`select_shard`)."""
    return [(b.name, i or "", m) for b, i, _ in _requested(config, registry) for m in config.models]


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


def side_by_side(cell: CellConfig, envs: list[str] | tuple[str, ...]) -> list[CellConfig]:
    """One repeat in every environment, next to each other: A B for even seeds, B A for odd (ABBA order,
    so that a linear drift cancels); the cell alone in a run without environments."""
    if not envs:
        return [cell]
    order = list(envs) if cell.seed % 2 == 0 else list(reversed(envs))
    return [replace(cell, env=name) for name in order]


def interleave(rows: list[list[CellConfig]], envs: list[str] | tuple[str, ...] = ()) -> list[CellConfig]:
    """Repeat 1 of every row, then repeat 2 of every row, ...: drift in load lands on all rows alike.
    With ``envs``, each repeat runs in every environment side by side (:func:`side_by_side`)."""
    depth = max((len(r) for r in rows), default=0)
    return [c for i in range(depth) for r in rows if i < len(r) for c in side_by_side(r[i], envs)]


@dataclass(frozen=True)
class Plan:
    cells: list[CellConfig]  # in the order they run
    notes: list[str]  # what was skipped, and why
    plugins: dict[tuple[str, str], tuple[str, ...]]  # (backend, task) -> the plugins its worker loads
    rows: list[CellConfig] = field(default_factory=list)  # each row's first repeat (seed 0, no environment)


def plan(config: RunConfig, registry: Registry) -> Plan:
    """Expand ``config`` into cells in interleaved order, with notes on what was skipped.

    A grid (comma lists: :mod:`seqbench.grid`) is every combination of its
    values; each combination is one experiment, and each row of each
    experiment is one row of the interleaved schedule.
    """
    validate(config)
    task = registry.task(config.task)
    unknown = sorted(set(config.task_params) - set(param_names(task)))
    if unknown:
        raise UsageError(
            f"task {task.name!r} has no parameter {unknown[0]!r}; valid: {', '.join(param_names(task))}"
        )
    notes: list[str] = []
    if config.epochs < 2:  # accepted (a smoke test), but the table then has no steady time to rank by
        notes.append(f"--epochs {config.epochs}: steady times come from epochs 2..N, so this run records the first "
                     "epoch only: no steady ms and no 'x vs fastest' (use --epochs 3 or more to compare speed)")
    rows: dict[tuple[object, ...], list[CellConfig]] = {}
    requested = _requested(config, registry)
    owned = select_shard(shard_rows(config, registry), config.shard)
    for point in grid.expand(config):
        _plan_point(config, point, task, requested, owned, rows, notes)
    if config.threads is not None and config.threads > thread_policy.cores():
        notes.append(f"--threads {config.threads} is more than the {thread_policy.cores()} core(s) this process may "
                     "use: threads will wait for a CPU, and the times measure that wait")  # fmt: skip
    notes = list(dict.fromkeys(notes))  # a skipped backend is noted once, not once per point
    if not rows:
        where = f" in shard {config.shard[0]}/{config.shard[1]}" if config.shard else ""
        raise UsageError(f"nothing to run{where}: " + ("; ".join(notes) or "no backend selected" + filter_hint()))
    plugins = {(c.backend, task.name): registry.plugins_for(c.backend, task.name) for r in rows.values() for c in r}
    return Plan(interleave(list(rows.values()), list(config.envs)), notes, plugins, [r[0] for r in rows.values()])


def _plan_point(
    config: RunConfig,
    point: grid.Point,
    task: Task,
    requested: list[tuple[Backend, str | None, bool]],
    owned: set[tuple[str, str, str]],
    rows: dict[tuple[object, ...], list[CellConfig]],
    notes: list[str],
) -> None:
    """Add the rows of one grid ``point`` of ``config`` (the whole grid: its gridded fields may be lists) to
    ``rows``."""
    units, batch_size, activation, layers = point.units, point.batch_size, point.activation, point.layers
    blocks = layers * (2 if config.bidirectional else 1)
    check_memory(task, point.task_params, units, batch_size, config.models, blocks=blocks)  # before make()
    task_params = {**task.defaults, **point.task_params}  # a cell records its whole experiment
    try:
        data = data_shape(task, task_params)  # the workers make the data; the plan needs only its shape
    except ValueError as e:
        raise UsageError(str(e)) from None
    available = thread_policy.cores()
    for backend, impl, explicit in requested:
        if not backend.availability().available:
            if explicit:
                raise UsageError(_install_note(backend))
            notes.append(_install_note(backend) + ": skipped")
            continue
        for model in config.models:
            if (backend.name, impl or "", model) not in owned:
                continue
            probe = CellConfig(task=config.task, model=model, backend=backend.name, implementation="", device="",
                               seed=0, units=units, activation=activation, epochs=config.epochs,
                               batch_size=batch_size, threads=config.threads or available,
                               task_params=task_params, inference=config.inference,
                               layers=layers, bidirectional=config.bidirectional)  # fmt: skip
            spec = model_spec(probe, data)
            if config.threads is None:
                probe = replace(probe, threads=thread_policy.choose(spec, batch_size, available))
            devices = ["gpu", "cpu"] if config.device == "auto" else [config.device]
            choice, reasons = None, []
            for device in devices:
                if device not in backend.devices:
                    reasons.append(f"{device}: not supported")
                    continue
                for candidate in [impl] if impl else default_order(backend, spec, device):
                    why = refusal(backend, candidate, spec, device)
                    if why is None:
                        choice = (candidate, device)
                        break
                    reasons.append(f"{candidate}/{device}: {why}")
                if choice:
                    break
            if choice is None:
                message = (
                    f"{backend.name}{':' + impl if impl else ''} cannot run {model} "
                    f"({activation}, {units} units): {'; '.join(reasons)}"
                )
                if explicit:
                    raise UsageError(message)
                notes.append(message + ": skipped")
                continue
            key = (backend.name, *choice, model, units, batch_size, activation, tuple(sorted(task_params.items())),
                   layers, config.bidirectional)
            if key in rows:  # the same row asked for twice (e.g. "torch,torch:fused")
                continue
            rows[key] = [replace(probe, implementation=choice[0], device=choice[1], seed=seed)
                         for seed in range(config.seeds)]  # fmt: skip


def run_metadata(config: RunConfig, registry: Registry, cells: list[CellConfig],
                 envs: dict[str, Any] | None = None) -> RunMeta:  # fmt: skip
    versions = package_versions(["seqbench", "numpy", "pandas", "pluggy"])
    for name in dict.fromkeys(c.backend for c in cells):
        versions.update(registry.backend(name).versions())
    machine = machine_info()
    return run_meta(asdict(config), machine=machine, machine_id=machine_id(machine), packages=versions,
                    git=git_commit(Path(seqbench.__file__).parent), cells_planned=len(cells),
                    thread_policy=thread_policy.describe(config.threads, thread_policy.cores()), envs=envs)  # fmt: skip


def _matmul_peaks(thread_counts: set[int]) -> dict[str, float]:
    """NumPy's float32 matrix-product peak at each thread count the cells use (GFLOP/s), each in a
    fresh process; a count whose measurement fails is left out (its cells get no share of peak)."""
    peaks = {}
    for threads in sorted(thread_counts):
        try:
            peaks[str(threads)] = measure_matmul_peak(threads)
        except SeqbenchError:
            continue
    return peaks


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived: the run ends as ``interrupted`` with exit code 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` while the run goes on.

    SIGINT is set explicitly because a shell starts a background job with it
    ignored, and such a run must still stop on it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {}
    for name in STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def _signals_blocked() -> Iterator[None]:
    """Hold stop signals while the run's last record is written (a second Ctrl-C must not cut it)."""
    numbers = {getattr(signal, n) for n in STOP_SIGNALS if hasattr(signal, n)}
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, numbers)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _row_of(cell: Any) -> RowKey:
    """A row with its environment left out, from a cell's configuration or record: A and B of a row share it."""
    return RowKey.of(cell if isinstance(cell, dict) else asdict(cell)).without_env()


def _repeat_of(cell: Any) -> tuple[RowKey, int]:
    """A repeat without its environment: the cells of one A/B pair share it."""
    return _row_of(cell), cell["seed"] if isinstance(cell, dict) else cell.seed


def undecided_rows(rows: list[CellConfig], results: list[tuple[CellConfig, CellRecord]], envs: list[str],
                   threshold: float, confidence: float = 0.95) -> list[CellConfig]:  # fmt: skip
    """The rows (:attr:`Plan.rows`) that more repeats could still decide, from the attempts that count.

    With environments, a row is decided when every environment's paired verdict against the first is
    same, slower or faster (:func:`seqbench.stats.judge_paired`); in a run of one, when its time is
    precise enough for a comparison at ``threshold`` to decide (:func:`seqbench.stats.precise_enough`).
    A row with no completed repeat is never undecided: more repeats would fail alike.
    """
    times: dict[RowKey, dict[str, dict[int, float]]] = {}
    measured = [{**asdict(r), "_row": _row_of(c)} for c, r in results]  # each record with its cell's row
    for r in counted_rows(measured, lambda m: (m["_row"], m["seed"])):
        if r["status"] in COMPLETED and not r.get("disturbed") and r.get("steady_epoch_s"):
            times.setdefault(r["_row"], {}).setdefault(r.get("env") or "", {})[r["seed"]] = r["steady_epoch_s"]
    out = []
    for row in rows:
        found = times.get(_row_of(row))
        if not found:
            continue
        if envs:
            base = found.get(envs[0], {})
            verdicts = [judge_paired([(base[s], other[s]) for s in sorted(base.keys() & other.keys())], threshold,
                                     confidence).verdict for other in (found.get(e, {}) for e in envs[1:])]  # fmt: skip
            decided = all(v in (SAME, SLOWER, FASTER) for v in verdicts)
        else:
            decided = precise_enough(list(found.get("", {}).values()), threshold, confidence)
        if not decided:
            out.append(row)
    return out


def execute(config: RunConfig, registry: Registry, progress: Progress) -> RunResult:
    """Run the plan (see the module doc); whatever happens, run.json says how far it got."""
    planned = plan(config, registry)
    for note in planned.notes:
        progress.note(note)
    envs = list(config.envs)
    facts = {}
    if envs:  # refuse an environment that cannot run our workers before anything is written or run
        progress.note(f"checking environments {', '.join(envs)}...")
        packages = ["seqbench", "numpy", "pandas", "pluggy"]
        for name in dict.fromkeys(c.backend for c in planned.cells):
            packages += [p for p in registry.backend(name).versions() if p not in packages]
        facts = {name: probe_env(name, exe, packages) for name, exe in config.envs.items()}
    writer = RunWriter(config.results_dir)  # fails before any work if it cannot write
    meta = run_metadata(config, registry, planned.cells, facts)
    cells: list[CellRecord] = []
    results: list[tuple[CellConfig, CellRecord]] = []  # each record with the cell it measured
    queue = deque(planned.cells)
    total = len(queue)
    group = max(1, len(envs))  # a repeat is measured (again) in every environment together
    budget = math.floor(config.retry_budget * len(planned.cells))
    pending: dict[tuple[RowKey, int, int], list[tuple[CellConfig, CellRecord]]] = {}
    again_groups, kept_disturbed = 0, 0
    seeds = {_row_of(r): config.seeds for r in planned.rows}
    rounds = added = 0

    def epoch(record: EpochRecord) -> None:
        writer.add_epoch(record)
        progress.epoch(record)

    def started(cell: CellConfig) -> None:
        progress.cell_started(cell, len(cells), total)

    def log_of(cell: CellConfig) -> Path:
        return writer.log_path("-".join(filter(None, (cell.backend, cell.implementation, cell.device, cell.env))))

    def spawn(cell: CellConfig) -> Any:  # a started worker (seqbench.worker.start_worker)
        return start_worker(cell, planned.plugins[cell.backend, cell.task], log_of(cell), config.envs.get(cell.env))

    # Start-ups (interpreter, imports) of the next workers run two at a time, beside each other and never beside
    # a measurement: a fresh process per repeat, at about half the waiting (benchmarks/bench_startup.py).
    ahead = Ahead(START_AHEAD if thread_policy.cores() >= 2 else 0)

    status, stopped_by = RunStatus.FAILED, None
    try:
        with _stop_signals():
            writer.write_meta(meta)
            if config.calibrate:  # before any cell, in its own process, so that it measures an idle machine
                progress.note("calibrating...")
                meta["calibration"] = run_calibration()
                meta["matmul_peak_gflops"] = _matmul_peaks({c.threads for c in planned.cells})
                writer.write_meta(meta)
            peaks = meta.get("matmul_peak_gflops") or {}
            while queue:
                cell = queue.popleft()
                child = ahead.take(cell) or spawn(cell)
                ahead.start(list(itertools.islice(queue, ahead.depth)), spawn)
                ahead.wait_ready(config.startup_timeout)  # no start-up runs beside the measurement
                record = run_in_worker(cell, planned.plugins[cell.backend, cell.task], config.timeout,
                                       config.startup_timeout, log_of(cell), Callbacks(started, epoch),
                                       config.envs.get(cell.env), child)  # fmt: skip
                peak = peaks.get(str(cell.threads))
                record = replace(record, machine=meta["machine_id"],
                                 peak_share=share_of_peak(record.gflops_per_s, peak))  # fmt: skip
                writer.add_cell(record)
                cells.append(record)
                results.append((cell, record))
                measured = _repeat_of(cell) + (cell.attempt,)  # a repeat (an A/B pair) at one attempt
                members = pending.setdefault(measured, [])
                members.append((cell, record))
                again: list[CellConfig] = []
                if len(members) == group:
                    del pending[measured]
                    if any(r.disturbed for _, r in members):
                        if cell.attempt <= config.retries and meta["retries_run"] + group <= budget:
                            again = [replace(c, attempt=c.attempt + 1) for c, _ in members]
                        else:
                            kept_disturbed += 1
                if again:  # measured again later, when the load may have gone
                    queue.extend(again)
                    total += len(again)
                    meta["retries_run"] += len(again)
                    again_groups += 1
                progress.cell_finished(record, len(cells), total)
                if again:
                    waits = [r.wait_share for _, r in members if r.disturbed and r.wait_share is not None]
                    why = (f"its threads waited for a CPU {max(waits):.0%} of the time" if waits else
                           f"other processes took {record.interference or 0:.2f} cores")  # fmt: skip
                    pair = " (with its A/B pair)" if group > 1 else ""
                    progress.note(f"{cell.label}: {why}: measuring it again{pair} at the end")
                if not queue and config.adaptive:  # --seeds auto: more repeats where a row is undecided
                    more = [c for row in undecided_rows(planned.rows, results, envs, config.threshold)
                            if seeds[_row_of(row)] < config.max_seeds
                            for c in side_by_side(replace(row, seed=seeds[_row_of(row)]), envs)]  # fmt: skip
                    if more:
                        for c in more[::group]:
                            seeds[_row_of(c)] += 1
                        rounds, added = rounds + 1, added + len(more) // group
                        queue.extend(more)
                        total += len(more)
                        meta["cells_planned"] = (meta.get("cells_planned") or 0) + len(more)
                        progress.note(f"--seeds auto: {len(more) // group} row(s) undecided; adding a repeat "
                                      f"to each (round {rounds})")  # fmt: skip
            status = RunStatus.COMPLETE
    except Interrupted as e:
        status, stopped_by = RunStatus.INTERRUPTED, e.signum
    except KeyboardInterrupt:
        status, stopped_by = RunStatus.INTERRUPTED, signal.SIGINT
    finally:  # whatever happened, the record says how far the run got
        with _signals_blocked():
            ahead.close()
            meta.update({"status": status, "ended": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cells_done": len(cells)})
            meta["remeasured"] = {
                "repeats": again_groups, "processes": meta["retries_run"], "budget_processes": budget,
                "left_disturbed": kept_disturbed,
                "why": "its threads waited for a CPU in more than half of its steady epochs (seqbench.interference)",
            }  # fmt: skip
            if config.adaptive:
                left = undecided_rows(planned.rows, results, envs, config.threshold)
                meta["adaptive"] = {"rounds": rounds, "repeats_added": added, "max_seeds": config.max_seeds,
                                    "undecided": [_describe_row(r) for r in left]}  # fmt: skip
            try:
                writer.write_meta(meta)
            except ResultsError:
                if status != RunStatus.FAILED:  # else the error that stopped the run is the one to report
                    raise
            finally:
                writer.close()
    for line in _closing_notes(dict(meta), config):
        progress.note(line)
    return RunResult(writer.path, status, cells, stopped_by)


def _describe_row(row: CellConfig) -> str:
    return f"{entrant_name(vars(row))} {row.model}"


def _closing_notes(meta: dict[str, Any], config: RunConfig) -> list[str]:
    """What the run measured again and why, and what --seeds auto added: said at the end of the run."""
    notes = []
    again = meta.get("remeasured") or {}
    if again.get("repeats"):
        notes.append(f"re-measured {again['repeats']} repeat(s) ({again['processes']} processes, budget "
                     f"{again['budget_processes']}): {again['why']}")  # fmt: skip
    if again.get("left_disturbed"):
        notes.append(f"{again['left_disturbed']} repeat(s) left disturbed (--retries {config.retries} or the "
                     f"budget of {config.retry_budget:.0%} of the plan reached); compare leaves them out")  # fmt: skip
    auto = meta.get("adaptive") or {}
    if config.adaptive:
        left = auto.get("undecided") or []
        notes.append(f"--seeds auto: {auto.get('repeats_added', 0)} repeat(s) added in {auto.get('rounds', 0)} "
                     f"round(s); " + (f"{len(left)} row(s) still undecided at --max-seeds {config.max_seeds}: "
                                      + ", ".join(left) if left else "every row decided"))  # fmt: skip
    return notes
