"""The default thread policy: one thread for small steps, every core for large ones.

Measured through ``seqbench run`` on this kind of machine (2 cores, torch,
steady ms per epoch; DESIGN.md and benchmarks/bench_threads.py):

* seed task, 32 units: with 2 threads torch ran 5.1 / 11.3 ms (RNN / LSTM)
  on a quiet machine and **587 / 2394 ms** with one busy neighbour: tiny
  parallel regions whose threads spin collapse when a core is taken.  With
  one thread: 5.7 / 10.9 quiet, 4.7 / 10.6 with the neighbour.
* LSTM 128, 50 steps, batch 64: 0.75 s with 2 threads and 1.21 s with one,
  quiet; 0.98 s with 2 threads and a neighbour (large regions only share the
  core, they do not collapse).
* ``OMP_WAIT_POLICY=PASSIVE`` trades the collapse for a 3x to 5x loss on the
  small model, quiet, and was slower with a neighbour on the large one, so
  the wait policy is left alone.  Workers are not pinned to cores: with a
  neighbour, a pinned worker cannot move away from it.

So the thread count follows the size of one time step's matrix work,
``2 * batch * gates * units * (features + units)`` FLOP: below
:data:`SMALL_STEP_FLOPS` a worker gets one thread, otherwise every core.
``--threads N`` overrides the policy; the chosen count is recorded per cell
and is part of the experiment's identity, and the policy is recorded in
run.json.
"""

from __future__ import annotations

import os
from typing import Any

from seqbench.contract import ModelSpec

# Below this a step's products take microseconds: a second thread saves less
# than its fork/join costs, and collapses under load (see the module doc).
SMALL_STEP_FLOPS = 1_000_000
POLICY_AUTO = "auto"


def cores() -> int:
    """The cores this process may run on (affinity), else the CPU count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def step_flops(spec: ModelSpec, batch_size: int) -> int:
    """FLOP of the matrix products of one recurrent time step of one batch (forward)."""
    return 2 * batch_size * spec.gates * spec.units * (spec.features + spec.units)


def choose(spec: ModelSpec, batch_size: int, available: int) -> int:
    """The policy's thread count for a worker that trains ``spec``."""
    return 1 if step_flops(spec, batch_size) < SMALL_STEP_FLOPS else available


def describe(requested: int | None, available: int) -> dict[str, Any]:
    """What run.json records about the policy."""
    if requested is not None:
        return {"policy": "fixed", "threads": requested, "cores": available}
    return {
        "policy": POLICY_AUTO,
        "cores": available,
        "rule": f"1 thread when a time step's matrix work (2 x batch x gates x units x (features + units)) is "
        f"below {SMALL_STEP_FLOPS:,} FLOP, else {available}",
        "wait_policy": os.environ.get("OMP_WAIT_POLICY", "library default"),
        "pinning": "none",
    }
