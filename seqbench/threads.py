"""The default thread policy: one thread for small steps, every core for large ones.

Measured on this kind of machine (2 cores), torch LSTM, tanh, steady ms per
epoch through ``seqbench run``, ``python benchmarks/bench_threads.py --neighbour``
(a quiet machine, then one CPU-bound neighbour running throughout):

=====  =====  ==========  ==============  ==============  =======================
units  batch  step FLOP   1 thread quiet  2 threads quiet  2 threads, neighbour
=====  =====  ==========  ==============  ==============  =======================
10     32     28,160      11.2            13.0            1,011 (1 thread: 11.8)
32     32     270,336     11.8            11.8            4,233 (1 thread: 12.1)
64     32     1,064,960   13.4            25.8            2,724 (1 thread: 14.8)
64     64     2,129,920   20.7            28.4            7,795 (1 thread: 20.5)
128    64     8,454,144   1,177           877             224,000 (first epoch)
=====  =====  ==========  ==============  ==============  =======================

Parallel regions whose threads spin-wait collapse when a neighbour takes a
core, by a factor of 100 to 400 and more.  Up to about 2 MFLOP a step one
thread is also the faster choice on a quiet machine; at the larger
configuration (LSTM 128, 50 steps, batch 64) the second thread is worth 1.34x
quiet.  ``OMP_WAIT_POLICY=PASSIVE`` does not rescue it: 2.35-2.77 s per epoch
quiet against 0.69-0.71 s.  So no setting both keeps the larger configuration
within 5% of its quiet speed and survives a neighbour: below
:data:`SMALL_STEP_FLOPS` a worker gets one thread, above it every core, and a
large model that a neighbour collapses is caught by the interference meter
(:mod:`seqbench.interference`), flagged, measured again and never judged by
``compare``.  Workers are not pinned (a pinned worker cannot move away from a
neighbour) and the wait policy is left alone.

``--threads N`` overrides the policy; the chosen count is recorded per cell
and is part of the experiment's identity, and the policy is recorded in
run.json.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # no NumPy at import: a script sets THREAD_ENV_VARS from here before NumPy loads
    from seqbench.contract import ModelSpec

# Below this one thread is as fast or faster on a quiet machine, and a second
# one collapses under load (the module doc's table).
SMALL_STEP_FLOPS = 4_000_000
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


# Every thread pool a worker's libraries may read its size from, at import: OpenMP (torch, TensorFlow's
# oneDNN, OpenBLAS builds with OpenMP), OpenBLAS, MKL, BLIS and numexpr.  The one list: workers, the
# calibration and the matmul peak all run under it, so a cell's share of the peak compares like with like.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                   "NUMEXPR_NUM_THREADS")  # fmt: skip


def thread_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process limited to ``threads`` threads (``base``: this process's)."""
    env = dict(os.environ if base is None else base)
    env.update({name: str(threads) for name in THREAD_ENV_VARS})
    env["PYTHONUNBUFFERED"] = "1"
    return env
