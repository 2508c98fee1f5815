"""A backend with a known, injected slowdown, for benchmarks/bench_noise.py.

``slowed`` is the NumPy reference with extra CPU work after every epoch:
``SEQBENCH_BENCH_SLOWDOWN`` times the epoch's own CPU time (0.3 = 30% more
work), burnt in a busy loop on the process CPU clock, so that the slowdown is
real work that a busy neighbour slows down too, not a sleep.
"""

from __future__ import annotations

import os
import time

from seqbench_numpy import NumpyBackend
from seqbench_numpy.model import NumpyModel

import seqbench


class _Slowed(NumpyModel):
    def train_epoch(self, order, batch_size):
        start = time.process_time()
        loss = super().train_epoch(order, batch_size)
        extra = (time.process_time() - start) * float(os.environ.get("SEQBENCH_BENCH_SLOWDOWN", "0"))
        until = time.process_time() + extra
        while time.process_time() < until:
            pass
        return loss


class SlowedBackend(NumpyBackend):
    name = "slowed"
    implementations = ("reference",)

    def build(self, implementation, spec, weights, device):
        return _Slowed(spec, weights)


@seqbench.hookimpl
def seqbench_register_backends(register):
    register(SlowedBackend())
