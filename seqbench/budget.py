"""Refuse, before any work, a run whose data or model cannot fit in memory.

``-P samples=1000000000`` used to grow the parent to 8 GB (the plan makes the
task's data once) before anything failed.  :func:`check_memory` estimates the
bytes a cell needs from the parameters alone, and when that is more than
:data:`MEMORY_FRACTION` of the machine's memory it raises a
:class:`~seqbench.errors.UsageError` that names the parameter to change.  The
estimate is deliberately rough (a factor of 2 either way): it is there to stop
a typo in milliseconds, not to plan a tight run.

What is counted, per cell:

* the task's data: a task may say how much with the optional method
  ``data_bytes(**params) -> int`` (:class:`~seqbench.tasks.ArithmeticTask`
  does); a task without it counts nothing here;
* the model: its parameters in float32, times :data:`STATE_COPIES` (weights,
  gradients, Adam's two moments, the canonical copy and a framework's own);
* the activations kept for backpropagation and prediction: for the larger
  of a batch and the test set (predicted in one call), every step's gates
  and states.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from seqbench.errors import UsageError

MEMORY_FRACTION = 0.5  # a benchmark that needs more than half of the machine measures the swap
STATE_COPIES = 8
ACTIVATION_COPIES = 6  # gates, pre-activations, states and their gradients per step
FLOAT32 = 4
GATES = {"rnn": 1, "lstm": 4}


def memory_total() -> int | None:
    """Physical memory in bytes, or None where it cannot be told."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


@dataclass(frozen=True)
class Estimate:
    data: int
    model: int

    @property
    def total(self) -> int:
        return self.data + self.model


def estimate(task: object, params: Mapping[str, int], units: int, batch_size: int, models: Iterable[str],
             blocks: int = 1) -> Estimate:  # fmt: skip
    """Bytes one cell needs, roughly; ``params`` are the task's parameters over its defaults; ``blocks`` the
    recurrent layers times directions (each keeps its own weights and activations)."""
    defaults = dict(getattr(task, "defaults", {}))
    p = {**defaults, **params}
    data_bytes = getattr(task, "data_bytes", None)
    data = int(data_bytes(**p)) if callable(data_bytes) else 0
    steps, features = int(p.get("steps", 1)), int(p.get("features", 1))
    rows = max(batch_size, int(p.get("test_samples", 0)))
    model = 0
    for kind in models:
        gates = GATES.get(kind, 4)
        weights = gates * units * (features + units + 1) + units + 1
        activations = rows * steps * gates * units * ACTIVATION_COPIES
        model = max(model, (weights * STATE_COPIES + activations) * FLOAT32 * blocks)
    return Estimate(data, model)


def _gb(n: float) -> str:
    return f"{n / 1024**3:.1f} GB" if n >= 1024**3 / 10 else f"{n / 1024**2:.0f} MB"


def check_memory(task: object, params: Mapping[str, int], units: int, batch_size: int, models: Iterable[str],
                 total: int | None = None, blocks: int = 1) -> None:  # fmt: skip
    """Raise :class:`UsageError` naming the parameter when a cell would need too much memory."""
    models = tuple(models)
    total = memory_total() if total is None else total
    if not total:
        return
    need = estimate(task, params, units, batch_size, models, blocks)
    budget = total * MEMORY_FRACTION
    if need.total <= budget:
        return
    # Name what the user set that, put back to its default, saves the most.
    defaults = dict(getattr(task, "defaults", {}))
    candidates = {f"-P {k}={v}": estimate(task, {**params, k: defaults[k]}, units, batch_size, models, blocks)
                  for k, v in params.items() if k in defaults}  # fmt: skip
    candidates[f"--units {units}"] = estimate(task, params, 10, batch_size, models, blocks)
    candidates[f"--batch-size {batch_size}"] = estimate(task, params, units, 32, models, blocks)
    if blocks > 1:
        candidates["--layers/--bidirectional"] = estimate(task, params, units, batch_size, models)
    culprit = min(candidates, key=lambda name: candidates[name].total)
    raise UsageError(
        f"{culprit}: a cell would need about {_gb(need.total)} of memory (data {_gb(need.data)}, model "
        f"{_gb(need.model)}), more than {MEMORY_FRACTION:.0%} of this machine's {_gb(total)}; choose a smaller value"
    )


__all__ = ["Estimate", "check_memory", "estimate", "memory_total"]
