"""Combine runs (typically the shards of one CI job matrix) into one run directory.

Each input's cells and epochs are copied unchanged except that every cell
carries the id of the machine it ran on (``cells.machine``); ``run.json``
lists those machines (with their calibration and package versions) under
``machines`` and every input under ``merged_from``.  Inputs must describe the
same experiment (task, task parameters, epochs, batch size, units,
activation) and must not hold the same cell twice.

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

import seqbench
from seqbench.calibration import machines
from seqbench.errors import ResultsError
from seqbench.loader import read_run
from seqbench.results import CELL_COLUMNS, CELLS_FILE, EPOCHS_FILE, FORMAT_VERSION, LOGS_DIR, RUN_FILE

EXPERIMENT_FIELDS = ("task", "task_params", "epochs", "batch_size", "units", "activation")
CELL_KEY = ("task", "model", "backend", "implementation", "device", "seed")
STATUS_COMPLETE, STATUS_PARTIAL = "complete", "partial"


@dataclass
class MergeResult:
    path: Path
    status: str
    cells: int
    warnings: list[str] = field(default_factory=list)
    inputs: int = 0
    shard_count: int = 0  # N when the inputs are shards I/N, else 0


def _part(path: Path) -> dict[str, Any]:
    data = read_run(path)  # checks every file, with an error that names it
    meta: dict[str, Any] = dict(data.meta)
    known = machines(meta)
    default = next(iter(known))
    for row in data.cells:
        row["machine"] = row.get("machine") or default
    return {"path": path, "meta": meta, "cells": data.cells, "epochs": data.epochs, "machines": known,
            "notes": data.notes}  # fmt: skip


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


def merge_runs(inputs: list[str | Path], output: str | Path) -> MergeResult:
    """Merge the run directories ``inputs`` into the new run directory ``output``."""
    paths = [Path(p) for p in inputs]
    if len(paths) < 1:
        raise ResultsError("merge needs at least one run directory")
    if len({p.resolve() for p in paths}) < len(paths):
        raise ResultsError("the same run directory is given twice")
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise ResultsError(f"{out} already exists and is not empty: choose a new output directory")
    parts = [_part(p) for p in paths]
    warnings: list[str] = []

    first = parts[0]["meta"].get("config") or {}
    for part in parts[1:]:
        config = part["meta"].get("config") or {}
        for name in EXPERIMENT_FIELDS:
            if config.get(name) != first.get(name):
                raise ResultsError(
                    f"cannot merge {paths[0]} and {part['path']}: they ran different experiments "
                    f"({name} {first.get(name)!r} vs {config.get(name)!r})"
                )

    seen: dict[tuple[Any, ...], Path] = {}
    for part in parts:
        for row in part["cells"]:
            key = (*(row.get(k) for k in CELL_KEY), row.get("attempt", 1))  # a repeat may be measured again
            if key in seen:
                raise ResultsError(
                    f"cannot merge: cell {'/'.join(map(str, key))} is in both {seen[key]} and {part['path']} "
                    "(the same shard twice?)"
                )
            seen[key] = part["path"]

    for part in parts:
        warnings += [f"{part['path']}: {note}" for note in part["notes"]]
    shards = [p["meta"].get("shard") for p in parts]
    status = STATUS_COMPLETE
    missing: list[int] = []
    count = 0
    if any(shards):
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
            status = STATUS_PARTIAL
            more = ", ..." if count - len(present) > len(missing) else ""
            shown = ", ".join(f"{i}/{count}" for i in missing) + more
            warnings.append(f"{count - len(present)} shard(s) missing ({shown}): the merged run is partial")
    for part in parts:
        if part["meta"].get("status") != "complete":
            status = STATUS_PARTIAL
            warnings.append(f"{part['path']} is {part['meta'].get('status')}: the merged run is partial")
    commits = {(p["meta"].get("git") or {}).get("commit") for p in parts}
    if len(commits) > 1:
        warnings.append(f"the inputs ran different code (git commits {', '.join(sorted(map(str, commits)))})")

    all_machines: dict[str, dict[str, Any]] = {}
    for part in parts:
        for mid, info in part["machines"].items():
            all_machines.setdefault(mid, info)
    packages: dict[str, str] = {}
    for part in parts:
        for name, version in (part["meta"].get("packages") or {}).items():
            if packages.setdefault(name, version) != version:
                warnings.append(f"inputs differ in {name} version ({packages[name]} vs {version})")

    config = dict(first)
    config["shard"] = None
    for name in ("backends", "models"):
        merged: list[Any] = []
        for part in parts:
            for value in (part["meta"].get("config") or {}).get(name) or []:
                if value not in merged:
                    merged.append(value)
        config[name] = merged
    single = next(iter(all_machines.values())) if len(all_machines) == 1 else None
    starts = [p["meta"].get("started") for p in parts if p["meta"].get("started")]
    ends = [p["meta"].get("ended") for p in parts if p["meta"].get("ended")]
    meta = {
        "format_version": FORMAT_VERSION,
        "seqbench_version": seqbench.__version__,
        "status": status,
        "started": min(starts) if starts else None,
        "ended": max(ends) if len(ends) == len(parts) else None,
        "merged": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config,
        "machine": single["machine"] if single else None,
        "machine_id": next(iter(all_machines)) if single else None,
        "machines": all_machines,
        "packages": packages,
        "git": parts[0]["meta"].get("git") if len(commits) == 1 else None,
        "shard": None,
        "calibration": single.get("calibration") if single else None,
        # a missing shard's cells were never planned here: the total is unknown
        "cells_planned": None if missing else sum(int(p["meta"].get("cells_planned") or 0) for p in parts),
        "cells_done": sum(len(p["cells"]) for p in parts),
        "merged_from": [
            {
                "run_id": p["path"].name,
                "path": str(p["path"]),
                "status": p["meta"].get("status"),
                "shard": p["meta"].get("shard"),
                "machines": list(p["machines"]),
                "git": p["meta"].get("git"),
                "started": p["meta"].get("started"),
            }
            for p in parts
        ],
    }

    try:
        (out / LOGS_DIR).mkdir(parents=True, exist_ok=True)
        with open(out / CELLS_FILE, "w", encoding="utf-8") as f:
            for part in parts:
                for row in part["cells"]:
                    ordered = {k: row.get(k) for k in CELL_COLUMNS} | {k: v for k, v in row.items()
                                                                        if k not in CELL_COLUMNS}  # fmt: skip
                    f.write(json.dumps(ordered, allow_nan=False) + "\n")
        with open(out / EPOCHS_FILE, "w", encoding="utf-8") as f:
            for part in parts:
                for row in part["epochs"]:
                    f.write(json.dumps(row, allow_nan=False) + "\n")
        for part in parts:
            logs = part["path"] / LOGS_DIR
            if logs.is_dir() and not logs.is_symlink():
                left_out = copy_regular_files(logs, out / LOGS_DIR / part["path"].name)
            else:
                left_out = [logs] if logs.is_symlink() else []
            warnings += [f"{p} is not a regular file (a link?): not copied" for p in left_out]
        tmp = out / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out / RUN_FILE)
    except OSError as e:
        raise ResultsError(f"cannot write {out}: {e.strerror or e}") from e
    return MergeResult(out, status, sum(len(p["cells"]) for p in parts), warnings, len(parts), count)


__all__ = ["MergeResult", "merge_runs"]
