"""Where a worker's seconds go: each phase of one repeat's process, per backend, as the runner sees it.

    python benchmarks/bench_startup.py                      # every available backend, rnn and lstm, 2 seeds
    python benchmarks/bench_startup.py --backends torch,jax --seeds 3

Each repeat runs in a fresh worker process exactly as ``seqbench run`` starts it (seqbench.worker); the parent
stamps each message as it arrives:

* start-up: spawn to ``start`` (the interpreter, seqbench's imports, the plugin, the framework's import in
  ``configure``);
* first epoch: ``start`` to the first epoch (the task's data, building the model, the first epoch with its
  tracing or compiling);
* steady epochs: the first epoch to the last;
* after: the last epoch to the cell's record (evaluation, the probe, the inference phase);
* exit: the record to the process gone.

Time nothing else while it runs: it measures wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from seqbench.config import RunConfig
from seqbench.plugins import load_registry
from seqbench.runner import plan
from seqbench.worker import Callbacks, _Child, run_in_worker

PHASES = ("start-up", "first epoch", "steady epochs", "after", "exit")


def timed_repeat(cell, plugins, log: Path) -> dict[str, float]:  # noqa: ANN001 - a CellConfig and a tuple
    """One repeat in a fresh worker, with the wall time of each phase (seconds)."""
    stamps: dict[str, float] = {"spawn": time.perf_counter()}
    read = _Child.read

    def stamped(self: _Child, timeout: float):  # noqa: ANN202
        messages = read(self, timeout)
        for msg in messages or []:
            stamps.setdefault(msg["event"], time.perf_counter())
            if msg["event"] == "epoch":
                stamps["last epoch"] = time.perf_counter()
        return messages

    _Child.read = stamped  # type: ignore[method-assign]
    try:
        run_in_worker(cell, plugins, 600.0, 300.0, log, Callbacks(lambda c: None, lambda e: None))
    finally:
        _Child.read = read  # type: ignore[method-assign]
    stamps["gone"] = time.perf_counter()
    s = stamps
    return {
        "start-up": s["start"] - s["spawn"],
        "first epoch": s.get("epoch", s["gone"]) - s["start"],
        "steady epochs": s.get("last epoch", s["gone"]) - s.get("epoch", s["gone"]),
        "after": s.get("cell", s["gone"]) - s.get("last epoch", s["gone"]),
        "exit": s["gone"] - s.get("cell", s["gone"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="all", help="comma list, or all (default)")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    registry = load_registry()
    config = RunConfig(backends=tuple(args.backends.split(",")), seeds=args.seeds, calibrate=False)
    planned = plan(config, registry)
    phases: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory() as tmp:
        for cell in planned.cells:
            times = timed_repeat(cell, registry.plugins_for(cell.backend, cell.task), Path(tmp) / "worker.log")
            for phase, seconds in times.items():
                phases[cell.backend][phase].append(seconds)
            print(f"{cell.label}: " + ", ".join(f"{p} {t:.2f}" for p, t in times.items()), file=sys.stderr)
    print(f"{'backend':12} " + " ".join(f"{p:>14}" for p in PHASES) + f" {'process':>9}")
    total = 0.0
    for backend, by_phase in phases.items():
        medians = [statistics.median(by_phase[p]) for p in PHASES]
        total += sum(sum(by_phase[p]) for p in PHASES)
        print(f"{backend:12} " + " ".join(f"{m:14.2f}" for m in medians) + f" {sum(medians):9.2f}")
    print(f"median seconds per repeat; {len(planned.cells)} processes took {total:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
