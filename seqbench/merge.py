"""Combine runs (typically the shards of one CI job matrix) into one run directory.

Each input's cells and epochs are copied unchanged except that every cell
carries the id of the machine it ran on (``cells.machine``); ``run.json``
lists those machines (with their calibration and package versions) under
``machines`` and every input under ``merged_from``.  Inputs must be
configured alike (the task and every :data:`~seqbench.keys.EXPERIMENT_FIELDS`:
task parameters, units, activation, epochs, batch size, threads, dtype) and
must not hold the same measurement twice (its row, seed and attempt).

Inputs are read and checked by :func:`seqbench.loader.read_run` (errors name
the file and line); rows are then copied as the JSON they were written as.
Only regular files are copied from each input's ``logs/``: a symbolic link
there (to ``/etc``, say) is left out with a warning, never followed, since the
merged run is what CI uploads.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.attempts import remeasurements
from seqbench.calibration import machines
from seqbench.errors import ResultsError
from seqbench.keys import EXPERIMENT_FIELDS, SHAPE_FIELDS, RowKey, RunStatus
from seqbench.loader import read_run, resolve_run
from seqbench.output import replace_file
from seqbench.results import CELL_COLUMNS, CELLS_FILE, EPOCHS_FILE, LOGS_DIR, RUN_FILE, MachineEntry, RunMeta, run_meta


@dataclass
class MergeResult:
    path: Path
    status: RunStatus
    cells: int  # repeats done (re-measurements not counted), as the report counts them
    warnings: list[str] = field(default_factory=list)
    inputs: int = 0
    shard_count: int = 0  # N when the inputs are shards I/N, else 0
    planned: int | None = None  # cells planned over every input; None when a shard is missing


@dataclass
class _Part:
    """One input run, read and checked, each cell tagged with the machine it ran on."""

    path: Path
    meta: dict[str, Any]
    cells: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    machines: dict[str, MachineEntry]
    notes: list[str]

    @classmethod
    def read(cls, path: Path) -> _Part:
        data = read_run(path)  # checks every file, with an error that names it
        meta: dict[str, Any] = dict(data.meta)
        known = machines(meta)
        default = next(iter(known))
        for row in data.cells:
            row["machine"] = row.get("machine") or default
        return cls(path, meta, data.cells, data.epochs, known, data.notes)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.meta.get("config") or {})


def copy_regular_files(source: Path, target: Path) -> list[Path]:
    """Copy the regular files under ``source`` to ``target``, keeping the layout.

    Symbolic links (to files or folders) and special files are not copied and
    never followed; they are returned so the caller can say so.
    """
    left_out = []
    for folder, dirs, files in os.walk(source, followlinks=False):
        here = Path(folder)
        for name in [*dirs, *files]:
            item = here / name
            if item.is_symlink() or not (item.is_dir() or item.is_file()):
                left_out.append(item)
            elif item.is_file():
                (target / item.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(item, target / item.relative_to(source), follow_symlinks=False)
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
    return left_out


def merge_runs(inputs: list[str | Path], output: str | Path, extra: dict[str, Any] | None = None,
               existing_ok: tuple[str, ...] = ()) -> MergeResult:  # fmt: skip
    """Merge the run directories ``inputs`` into the new run directory ``output``.

    ``extra``: keys added to the merged run.json (a cluster run's ``cluster``); ``existing_ok``: names that
    may already be in ``output`` and are left alone (a cluster run's ``jobs`` folder, which holds the inputs).
    """
    # the readers' own check (report, compare, export): a missing path or a symbolic-link loop is one clean
    # error naming it, before resolve() below would raise on the loop
    paths = [resolve_run(p) for p in inputs]
    if len(paths) < 1:
        raise ResultsError("merge needs at least one run directory")
    if len({p.resolve() for p in paths}) < len(paths):
        raise ResultsError("the same run directory is given twice")
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(p.name not in existing_ok for p in out.iterdir())):
        raise ResultsError(f"{out} already exists and is not empty: choose a new output directory")
    parts = [_Part.read(p) for p in paths]
    _check_same_experiment(parts)
    _check_each_cell_once(parts)
    _check_one_gpu_per_row(parts)
    warnings = [f"{part.path}: {note}" for part in parts for note in part.notes]
    count, missing = _check_shards(parts, warnings)
    status = RunStatus.PARTIAL if missing else RunStatus.COMPLETE
    for part in parts:
        if part.meta.get("status") != RunStatus.COMPLETE:
            status = RunStatus.PARTIAL
            warnings.append(f"{part.path} is {part.meta.get('status')}: the merged run is partial")
    meta = _merged_meta(parts, status, missing, warnings)
    meta.update(extra or {})  # type: ignore[typeddict-item]
    _write(out, parts, meta, warnings)
    rows = [c.get("attempt") for p in parts for c in p.cells]
    return MergeResult(out, status, len(rows) - remeasurements(rows), warnings, len(parts), count,
                       meta.get("cells_planned"))  # fmt: skip


def _check_same_experiment(parts: list[_Part]) -> None:
    """Refuse inputs configured for different experiments (a grid's lists must match too)."""
    first = parts[0].config
    for part in parts[1:]:
        for name in ("task", *EXPERIMENT_FIELDS):
            # a field a run is older than is at its default (SHAPE_FIELDS)
            if part.config.get(name, SHAPE_FIELDS.get(name)) != first.get(name, SHAPE_FIELDS.get(name)):
                raise ResultsError(
                    f"cannot merge {parts[0].path} and {part.path}: they ran different experiments "
                    f"({name} {first.get(name)!r} vs {part.config.get(name)!r})"
                )


def _check_each_cell_once(parts: list[_Part]) -> None:
    """Refuse a measurement found twice: the same attempt of the same repeat of the same row (and experiment)."""
    seen: dict[tuple[RowKey, Any, Any], Path] = {}
    for part in parts:
        for row in part.cells:
            key = (RowKey.of(row), row.get("seed"), row.get("attempt", 1))
            if key in seen:
                raise ResultsError(
                    f"cannot merge: cell {key[0].describe()} seed={key[1]} attempt={key[2]} [{key[0].experiment}] "
                    f"is in both {seen[key]} and {part.path} (the same shard twice?)"
                )
            seen[key] = part.path


def _check_one_gpu_per_row(parts: list[_Part]) -> None:
    """Refuse a GPU row whose repeats ran on different GPU models: a row's times are compared as one machine's
    (a cluster's shards may land on nodes of different GPU types; a shard keeps each of its rows whole)."""
    seen: dict[RowKey, tuple[Any, Path]] = {}
    for part in parts:
        for row in part.cells:
            if row.get("device") != "gpu":
                continue
            key = RowKey.of(row)
            entry = part.machines.get(row["machine"]) or {}
            gpus = (entry.get("machine") or {}).get("gpus")
            first = seen.setdefault(key, (gpus, part.path))
            if first[0] != gpus:
                raise ResultsError(
                    f"cannot merge: row {key.describe()} [{key.experiment}] ran on different GPUs ({first[0]} in "
                    f"{first[1]}, {gpus} in {part.path}): a row's repeats must share their GPU model"
                )


def _check_shards(parts: list[_Part], warnings: list[str]) -> tuple[int, list[int]]:
    """N when the inputs are shards I/N (else 0), and the first few shards missing, warned about."""
    shards = [p.meta.get("shard") for p in parts]
    if not any(shards):
        return 0, []
    counts = {s.get("count") for s in shards if isinstance(s, dict)}
    if None in shards or len(counts) != 1:
        raise ResultsError("cannot merge shards of different splits: every input must be one shard I/N "
                           "of the same N")  # fmt: skip
    count = int(counts.pop() or 0)
    present = sorted(s["index"] for s in shards if isinstance(s, dict))
    if len(set(present)) != len(present):
        raise ResultsError(f"shard given twice: {present}")
    if not all(1 <= i <= count for i in present):
        raise ResultsError(f"shard index out of range: {present} of {count}")
    # the first few missing ones, found without building range(count): N comes from a file
    missing = list(itertools.islice((i for i in range(1, count + 1) if i not in present), 10))
    if missing:
        more = ", ..." if count - len(present) > len(missing) else ""
        shown = ", ".join(f"{i}/{count}" for i in missing) + more
        warnings.append(f"{count - len(present)} shard(s) missing ({shown}): the merged run is partial")
    return count, missing


def _merged_meta(parts: list[_Part], status: RunStatus, missing: list[int], warnings: list[str]) -> RunMeta:
    """run.json of the merged run: every input's machines and packages, the union of backends and models."""
    commits = {(p.meta.get("git") or {}).get("commit") for p in parts}
    if len(commits) > 1:
        warnings.append(f"the inputs ran different code (git commits {', '.join(sorted(map(str, commits)))})")
    all_machines: dict[str, MachineEntry] = {}
    packages: dict[str, str] = {}
    for part in parts:
        for mid, info in part.machines.items():
            all_machines.setdefault(mid, info)
        for name, version in (part.meta.get("packages") or {}).items():
            if packages.setdefault(name, version) != version:
                warnings.append(f"inputs differ in {name} version ({packages[name]} vs {version})")
    config = parts[0].config | {"shard": None}
    for name in ("backends", "models"):
        config[name] = list(dict.fromkeys(v for p in parts for v in p.config.get(name) or []))
    single = next(iter(all_machines.values())) if len(all_machines) == 1 else None
    starts = [p.meta["started"] for p in parts if p.meta.get("started")]
    ends = [p.meta["ended"] for p in parts if p.meta.get("ended")]
    envs = _merged_envs(parts)
    meta = run_meta(config, machine=single["machine"] if single else None,
                    machine_id=next(iter(all_machines)) if single else None, packages=packages,
                    git=parts[0].meta.get("git") if len(commits) == 1 else None,
                    # a missing shard's cells were never planned here: the total is unknown
                    cells_planned=None if missing else sum(int(p.meta.get("cells_planned") or 0) for p in parts),
                    started=min(starts) if starts else None, status=status,
                    thread_policy=parts[0].meta.get("thread_policy"), envs=envs)  # fmt: skip
    meta.update({
        "started": min(starts) if starts else None,
        "ended": max(ends) if len(ends) == len(parts) else None,
        "merged": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "missing_shards": missing,
        "machines": all_machines,
        "calibration": single.get("calibration") if single else None,
        "cells_done": sum(len(p.cells) for p in parts),
        "retries_run": sum(int(p.meta.get("retries_run") or 0) for p in parts),
        "merged_from": [
            {"run_id": p.path.name, "path": str(p.path), "status": p.meta.get("status"), "shard": p.meta.get("shard"),
             "machines": list(p.machines), "git": p.meta.get("git"), "started": p.meta.get("started")}
            for p in parts
        ],
    })  # fmt: skip
    return meta


def _merged_envs(parts: list[_Part]) -> dict[str, Any]:
    """The environments of merged A/B parts, in the order first given (each part names its own executables)."""
    envs: dict[str, Any] = {}
    for part in parts:
        for name, facts in (part.meta.get("envs") or {}).items():
            envs.setdefault(name, facts)
    return envs


def _write(out: Path, parts: list[_Part], meta: RunMeta, warnings: list[str]) -> None:
    """The merged run's files: rows as they were written (cells in today's column order), logs, then run.json."""
    try:
        (out / LOGS_DIR).mkdir(parents=True, exist_ok=True)
        with open(out / CELLS_FILE, "w", encoding="utf-8") as f:
            for row in (row for part in parts for row in part.cells):
                extra = {k: v for k, v in row.items() if k not in CELL_COLUMNS}
                f.write(json.dumps({k: row.get(k) for k in CELL_COLUMNS} | extra, allow_nan=False) + "\n")
        with open(out / EPOCHS_FILE, "w", encoding="utf-8") as f:
            for row in (row for part in parts for row in part.epochs):
                f.write(json.dumps(row, allow_nan=False) + "\n")
        for part in parts:
            logs = part.path / LOGS_DIR
            if logs.is_dir() and not logs.is_symlink():
                left_out = copy_regular_files(logs, out / LOGS_DIR / part.path.name)
            else:
                left_out = [logs] if logs.is_symlink() else []
            warnings += [f"{p} is not a regular file (a link?): not copied" for p in left_out]
        replace_file(out / RUN_FILE, json.dumps(meta, indent=2) + "\n")  # last and whole: never half-merged
    except OSError as e:
        raise ResultsError(f"cannot write {out}: {e.strerror or e}") from e


__all__ = ["MergeResult", "merge_runs"]
