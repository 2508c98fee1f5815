"""Sequence tasks: seeded NumPy data and the metrics computed on predictions.

A task is a small object the harness asks for data (:meth:`Task.make`) and
metrics (:meth:`Task.metrics`).  Built-in tasks are registered through the
same ``seqbench_register_tasks`` hook that a plugin would use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from seqbench.hookspecs import hookimpl

# Independent random streams derived from one seed, so that changing how many
# numbers one stream draws never shifts another (see harness.rng).
STREAM_TRAIN, STREAM_TEST, STREAM_WEIGHTS, STREAM_ORDER = 1, 2, 3, 4


def rng(seed: int, stream: int) -> np.random.Generator:
    """The random generator of ``stream`` for ``seed``."""
    return np.random.default_rng([seed, stream])


@dataclass(frozen=True)
class TaskData:
    """Float32 arrays: ``x (n, steps, features)`` and ``y (n,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    probe_x: np.ndarray
    probe_y: float

    @property
    def steps(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def features(self) -> int:
        return int(self.x_train.shape[2])


@runtime_checkable
class Task(Protocol):
    """A registered task.

    Attributes:
        name: used on the command line (``--task``).
        description: one line for ``seqbench list``.
        defaults: the parameters :meth:`make` accepts, with their defaults.
    """

    name: str
    description: str
    defaults: dict[str, int]

    def make(self, seed: int, **params: int) -> TaskData:
        """Generate train, test and probe data from ``seed``."""

    def metrics(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Score test-set predictions (shape ``(n,)``)."""

    # Optional: ``data_bytes(**params) -> int``, the peak bytes make() needs, so that a run with an
    # absurd size is refused before make() runs (seqbench.budget). versionadded: 0.1


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """MSE, MAE and accuracy: the fraction within 0.5 of the integer target."""
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    err = p - t
    return {
        "mse": float(np.mean(err**2)),
        "mae": float(np.mean(np.abs(err))),
        "accuracy": float(np.mean(np.abs(err) < 0.5)),
    }


class ArithmeticTask:
    """Predict the next number of ``start, start+1, ..., start+steps-1``.

    The seed notebook's experiment: 1000 training samples, ``start`` drawn
    from [0, 100), 3 steps of 1 feature, unscaled, and the probe
    ``[10, 11, 12] -> 13``.
    """

    name = "arithmetic"
    description = "next number of an arithmetic sequence (the seed notebook)"
    defaults = {"samples": 1000, "test_samples": 200, "steps": 3, "max_start": 100}

    def _sequences(self, starts: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
        x = starts[:, None] + np.arange(steps)
        return x[:, :, None].astype(np.float32), (starts + steps).astype(np.float32)

    def make(self, seed: int, **params: int) -> TaskData:
        p = {**self.defaults, **params}
        unknown = sorted(set(p) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) for task {self.name!r}: {', '.join(unknown)}")
        for key, value in p.items():
            if int(value) <= 0:
                raise ValueError(f"task parameter {key} must be positive, got {value}")
        steps = int(p["steps"])
        x_train, y_train = self._sequences(
            rng(seed, STREAM_TRAIN).integers(0, p["max_start"], p["samples"]), steps
        )
        x_test, y_test = self._sequences(
            rng(seed, STREAM_TEST).integers(0, p["max_start"], p["test_samples"]), steps
        )
        probe_x, probe_y = self._sequences(np.array([10]), steps)
        return TaskData(x_train, y_train, x_test, y_test, probe_x, float(probe_y[0]))

    def metrics(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        return regression_metrics(predictions, targets)

    def data_bytes(self, **params: int) -> int:
        """Peak bytes :meth:`make` needs (see :mod:`seqbench.budget`): int64 sequences, then float32 copies."""
        p = {**self.defaults, **params}
        n = int(p["samples"]) + int(p["test_samples"])
        return n * int(p["steps"]) * (8 + 4) + n * (8 + 4)


@hookimpl
def seqbench_register_tasks(register: Callable[[Task], None]) -> None:
    register(ArithmeticTask())
