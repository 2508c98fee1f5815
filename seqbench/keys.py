"""One name for each identity and status: what a measurement is of, and how it ended.

:class:`RowKey` is a row of every report, comparison, history series,
merge check and export: a backend's implementation of a model on a device,
in one experiment.  The experiment (:func:`experiment_label`) is everything
else that makes two times comparable: the task's parameters, units,
activation, epochs, batch size, threads and dtype, and the model's layers
and directions where they are not one of each (docs/measurement.md).  A row's
repeats add the seed (:data:`REPEAT_FIELDS`), and a repeat measured again
after a disturbance adds its attempt (:data:`ATTEMPT_FIELDS`).

:class:`Status` is how a cell ended, :class:`RunStatus` how a run did.  Both
are ``str`` enums: they are written to JSON and compared with the strings
read back as they are.

Standard library only: the worker, the loader and the CLI import it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


class Status(str, enum.Enum):
    """How a cell ended: ``cells.status``."""

    OK = "ok"
    DIVERGED = "diverged"  # it ran, but its loss became non-finite: times and scores are still recorded
    ERROR = "error"
    TIMEOUT = "timeout"

    # A str enum is the string it stands for: equal, hashed alike (Python 3.10's Enum hashes the name), printed alike.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value


# Cells that ran every epoch they could: they have times and scores.
COMPLETED = (Status.OK, Status.DIVERGED)


class RunStatus(str, enum.Enum):
    """How a run ended: run.json's ``status``."""

    RUNNING = "running"  # not ended: still running, or killed before it could say so
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"  # a stop signal: the finished cells are kept
    FAILED = "failed"  # an error stopped it
    PARTIAL = "partial"  # a merge that lacks some of its parts

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value


# Runs whose last row of a table may be half-written.
UNFINISHED = frozenset({RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.FAILED})

# Settings of the model's shape (0.4) with their defaults: part of the experiment, named in its label only
# when not at the default, so that a single unidirectional layer keeps the label it had before they existed.
SHAPE_FIELDS: dict[str, Any] = {"layers": 1, "bidirectional": False}
# The settings besides the task that make up an experiment, in the order labels list them.
EXPERIMENT_FIELDS = ("task_params", "units", "activation", "epochs", "batch_size", "threads", "dtype", *SHAPE_FIELDS)


def experiment_label(values: Mapping[Any, Any]) -> str:
    """The experiment of a cell as one stable, readable string (its identity in history and compare)."""

    def text(value: Any) -> str:  # 32 and 32.0 (a column that also holds nulls) are one value
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)

    params = values.get("task_params") or {}
    parts = [f"{k}={text(params[k])}" for k in sorted(params)] if isinstance(params, dict) else [str(params)]
    for name in EXPERIMENT_FIELDS[1:]:
        value = values.get(name)
        if name in SHAPE_FIELDS and (value is None or value != value or value == SHAPE_FIELDS[name]):
            continue  # at its default, or absent (None, NaN: a row older than the field): not named
        parts.append(f"{name}={text(value)}")
    return " ".join(parts)


def experiment_differences(a: str, b: str) -> list[str]:
    """What differs between two experiment labels, as ``name A -> B``."""
    da = dict(p.partition("=")[::2] for p in a.split())
    db = dict(p.partition("=")[::2] for p in b.split())
    return [f"{k} {da.get(k, 'absent')} -> {db.get(k, 'absent')}" for k in sorted(set(da) | set(db))
            if da.get(k) != db.get(k)]  # fmt: skip


def entrant_name(row: Mapping[Any, Any]) -> str:
    """``backend:implementation/device``, then ``@env`` in an A/B run: the entrant, what ran the code, as tables,
    plot legends, race sentences and progress lines name it.  (A *series* is something else: one row's values
    over runs, in history, the dashboard and exports.)"""
    env = row.get("env")
    at = f"@{env}" if isinstance(env, str) and env else ""
    return f"{row['backend']}:{row['implementation']}/{row['device']}{at}"


@dataclass(frozen=True, order=True)
class RowKey:
    """A row: a backend's implementation of a model on a device, in one experiment (its seeds are its repeats)."""

    task: str
    experiment: str
    backend: str
    implementation: str
    model: str
    device: str
    env: str = ""  # the environment of an A/B run (--env NAME=...); "" in a run of one

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> RowKey:
        """The key of a cell, epoch or summary row (a mapping; the experiment is derived when it has none)."""
        experiment = row.get("experiment") or experiment_label(row)
        env = row.get("env")
        values = {name: str(row[name]) for name in KEY_FIELDS if name not in ("experiment", "env")}
        return cls(experiment=experiment, env=env if isinstance(env, str) else "", **values)

    @property
    def entrant(self) -> str:
        """``backend:implementation/device``: a line in a plot, a backend in a table (:func:`entrant_name`)."""
        return entrant_name(vars(self))

    @property
    def label(self) -> str:
        """``task backend:implementation/device model [experiment]``: a history series, whole."""
        return f"{self.task} {self.entrant} {self.model} [{self.experiment}]"

    def slug(self, with_experiment: bool = False) -> str:
        """``task-model-backend-implementation-device`` (then ``-experiment``): an exported benchmark's name."""
        name = "-".join((self.task, self.model, self.backend, self.implementation, self.device))
        name = f"{name}-{self.env}" if self.env else name
        return f"{name}-{self.experiment}" if with_experiment else name

    def describe(self) -> str:
        """``task/backend/implementation/model/device[@env]`` for messages (the experiment said apart)."""
        name = "/".join((self.task, self.backend, self.implementation, self.model, self.device))
        return f"{name}@{self.env}" if self.env else name

    def without_env(self) -> RowKey:
        """The row with its environment left out: what the environments of an A/B run are compared on."""
        return dataclasses.replace(self, env="")


CellKey = RowKey  # its name before 0.3: a row is a group of repeats, not a cell


KEY_FIELDS = tuple(f.name for f in fields(RowKey))
# What ran, apart from its experiment: rows of two runs with these alike must share the experiment to compare.
CODE_FIELDS = tuple(name for name in KEY_FIELDS if name != "experiment")
REPEAT_FIELDS = (*KEY_FIELDS, "seed")  # one repeat of a row: a process of its own
ATTEMPT_FIELDS = (*REPEAT_FIELDS, "attempt")  # one measurement of a repeat (a disturbed one is measured again)
RACE_FIELDS = ("task", "experiment", "model")  # rows that race each other: backends and devices differ

__all__ = ["ATTEMPT_FIELDS", "CODE_FIELDS", "COMPLETED", "EXPERIMENT_FIELDS", "KEY_FIELDS", "RACE_FIELDS",
           "REPEAT_FIELDS", "SHAPE_FIELDS", "UNFINISHED", "CellKey", "RowKey", "RunStatus", "Status",
           "experiment_differences", "experiment_label", "entrant_name"]  # fmt: skip
