"""What a comparison, a history or an export can time: each measure's columns, in one table.

A measure is one value per process (a repeat): the steady epoch (each process's median of epochs 2..N) or
the latency at batch 1 (each process's median call of the inference phase, :func:`seqbench.harness.
measure_inference`).  :func:`seqbench.views.summary` gives its median, min and max over processes, and its
median in calibration units; :mod:`seqbench.comparison`, :mod:`seqbench.history` and :mod:`seqbench.export`
take the measure by name (``--measure``) and read the columns named here, so a time flows through one path
whichever it is.

Standard library only: the CLI reads the names at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    name: str  # on the command line: --measure NAME
    cell: str  # the cell column: seconds, one value per process
    median: str  # the summary's columns: median, min and max over processes, in ms
    low: str
    high: str
    cal: str  # the summary's median over processes in calibration units
    title: str  # in words, in headings and series names
    slug: str  # the benchmark name in exports: SLUG[TASK-MODEL-...]


MEASURES: dict[str, Measure] = {
    "epoch": Measure("epoch", "steady_epoch_s", "steady_epoch_ms", "steady_min_ms", "steady_max_ms", "steady_cal",
                     "steady epoch", "steady_epoch"),
    "latency": Measure("latency", "latency_p50_s", "latency_p50_ms", "latency_min_ms", "latency_max_ms",
                       "latency_cal", "latency p50 at batch 1", "latency_p50"),
}  # fmt: skip
MEASURE_NAMES = tuple(MEASURES)
DEFAULT = MEASURES["epoch"]


def measure(name: str | Measure) -> Measure:
    """The measure called ``name``; ``ValueError`` naming the valid ones for another."""
    if isinstance(name, Measure):
        return name
    try:
        return MEASURES[name]
    except KeyError:
        raise ValueError(f"unknown measure {name!r}; valid: {', '.join(MEASURES)}") from None
