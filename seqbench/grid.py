"""Grids: comma lists on the command line expand into every combination in one run.

``--units 16,64,256 --batch-size 32,128 --activation relu,tanh -P steps=10,50,200``
is 3 x 2 x 2 x 3 = 36 experiment points; each point then runs every requested
backend x model x seed as usual.  A parameter given once stays a plain value
(``units=10``, ``task_params={"steps": 50}``), so a run without lists records
the same configuration as before; a list is a tuple.

This module only parses and expands.  The runner turns each :class:`Point`
into cells (``CellConfig`` carries units, activation, batch size and task
parameters per cell), and reports group rows by :func:`varied` parameters.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

# RunConfig fields that take a comma list, in the order points are enumerated
# after the task parameters (the outermost loop is the first task parameter).
GRID_FIELDS = ("units", "batch_size", "activation", "layers")


def values(value: T | tuple[T, ...] | list[T]) -> tuple[T, ...]:
    """A grid value as a tuple: ``10 -> (10,)``, ``(16, 64) -> (16, 64)``."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def collapse(items: tuple[T, ...]) -> T | tuple[T, ...]:
    """One value stays a plain value, several a tuple (the inverse of :func:`values`)."""
    return items[0] if len(items) == 1 else items


def parse_list(text: str, kind: type = str) -> Any:
    """``"16,64"`` -> ``(16, 64)``; ``"16"`` -> ``16``.  ``ValueError`` naming the bad item.

    Duplicates are dropped, keeping the first; an empty item is an error.
    """
    items = [part.strip() for part in text.split(",")]
    if not items or any(not part for part in items):
        raise ValueError(f"expected a value or a comma list, got {text!r}")
    parsed = []
    for part in items:
        try:
            value = kind(part)
        except ValueError:
            raise ValueError(f"{part!r} in {text!r} is not {'an integer' if kind is int else 'valid'}") from None
        if value not in parsed:
            parsed.append(value)
    return collapse(tuple(parsed))


@dataclass(frozen=True)
class Point:
    """One experiment of a grid: a value for every gridded parameter."""

    units: int
    batch_size: int
    activation: str
    task_params: dict[str, int] = field(default_factory=dict)
    layers: int = 1


def expand(config: Any) -> list[Point]:
    """Every combination of ``config``'s grid values, task parameters outermost, in the order given.

    ``config`` is anything with ``units``, ``batch_size``, ``activation``, ``layers`` and
    ``task_params`` attributes (a RunConfig).
    """
    params: Mapping[str, Any] = config.task_params
    keys = list(params)
    axes = [values(params[k]) for k in keys] + [values(getattr(config, f)) for f in GRID_FIELDS]
    points = []
    for combo in itertools.product(*axes):
        task_values, (units, batch_size, activation, layers) = combo[: len(keys)], combo[len(keys) :]
        points.append(Point(units, batch_size, activation, dict(zip(keys, task_values, strict=True)), layers))
    return points


def varied(config: Any) -> list[str]:
    """The parameters that take more than one value: ``units``, ``batch_size``, ``activation``, ``layers`` or
    ``task.KEY``."""
    out = [f"task.{k}" for k, v in config.task_params.items() if len(values(v)) > 1]
    return out + [f for f in GRID_FIELDS if len(values(getattr(config, f))) > 1]
