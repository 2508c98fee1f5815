"""How much of the machine a cell used: analytic FLOPs, GFLOP/s and share of the matmul peak.

A steady epoch time alone says which backend is faster, not how far from the
hardware each one is.  Two numbers make that a figure:

* :func:`epoch_flops`: the floating-point operations one training epoch must
  do, from the model and the data alone (the same count for every backend);
* :func:`measure_matmul_peak`: what a large float32 matrix product reaches on
  this machine at the run's thread count, measured in a fresh process.

A cell's GFLOP/s is ``epoch_flops / steady_epoch_s / 1e9``; its share of the
peak is that divided by the peak (:func:`share_of_peak`).

The count (multiply-add counted as 2 operations; backward taken as twice the
forward, so a training step is 3 forward passes)::

    recurrent block: 3 * samples * steps * 2 * gates * h * (in + h)
    dense head:      3 * samples * 2 * h * directions * outputs

with ``gates`` the number of gate blocks of the kind (RNN 1, GRU 3, LSTM 4,
from :data:`seqbench.contract.KINDS`), ``h`` the units and ``in`` the input
features.  It counts the matrix products only: element-wise gate arithmetic,
the loss and the optimiser are O(samples * steps * h) or O(params) and small
next to them from a few dozen units on.  LSTM 128, 50 steps, 1 feature, 8192
samples: 162 GFLOP per epoch.

A stacked or bidirectional model has one block per layer and direction
(:meth:`~seqbench.contract.ModelSpec.blocks`): layer 1's blocks read the
features, the blocks above read ``h * directions``.

Variable-length sequences (``-P min_steps``) count the **real** steps only:
``steps`` above is the mean length of the training samples.  That is the
work the model needs; a backend that also computes over the padding (the
NumPy reference, or a loop that masks rather than skips) does more than is
counted, so its GFLOP/s and share of peak are lower than a path that skips
the padding (cuDNN's packed sequences) for the same useful work.
"""

from __future__ import annotations

import subprocess
import sys

from seqbench.contract import ModelSpec
from seqbench.errors import SeqbenchError
from seqbench.threads import thread_env

# Run in a fresh interpreter so the measurement owns its BLAS thread pool (a pool
# another library already started in the parent would fight it for the cores).
_PEAK_SCRIPT = """
import sys, time
import numpy as np
n, seconds = int(sys.argv[1]), float(sys.argv[2])
gen = np.random.default_rng(0)
a = gen.standard_normal((n, n), dtype=np.float32)
b = gen.standard_normal((n, n), dtype=np.float32)
c = np.empty((n, n), np.float32)
np.matmul(a, b, out=c)  # warm-up: thread pool start, page faults
best, end = 0.0, time.perf_counter() + seconds
while time.perf_counter() < end or best == 0.0:
    t0 = time.perf_counter()
    np.matmul(a, b, out=c)
    best = max(best, 2.0 * n**3 / (time.perf_counter() - t0) / 1e9)
print(best)
"""


def recurrent_flops(spec: ModelSpec, samples: int, mean_steps: float | None = None) -> float:
    """FLOPs of the recurrent layers (every layer and direction) over one training epoch of ``samples``
    (forward + backward); ``mean_steps``: the mean real length of variable-length samples (else ``steps``)."""
    h = spec.units
    steps = spec.steps if mean_steps is None else mean_steps
    widths = sum(spec.block_shapes(layer)["kernel"][0] for layer, _ in spec.blocks())
    blocks = len(spec.blocks())
    return 3.0 * samples * steps * 2 * spec.gates * h * (widths + blocks * h)


def head_flops(spec: ModelSpec, samples: int) -> float:
    """FLOPs of the dense head over one training epoch (forward + backward)."""
    return 3.0 * samples * 2 * spec.units * spec.directions * spec.outputs


def epoch_flops(spec: ModelSpec, samples: int, mean_steps: float | None = None) -> float:
    """Analytic FLOPs of one training epoch of ``spec`` on ``samples`` (see the module docstring)."""
    return recurrent_flops(spec, samples, mean_steps) + head_flops(spec, samples)


def gflops_per_s(flops: float, seconds: float | None) -> float | None:
    """``flops / seconds`` in GFLOP/s; None without a positive time."""
    if seconds is None or seconds <= 0:
        return None
    return flops / seconds / 1e9


def share_of_peak(gflops: float | None, peak_gflops: float | None) -> float | None:
    """The fraction of the matmul peak a cell reached; None if either is unknown."""
    if gflops is None or not peak_gflops or peak_gflops <= 0:
        return None
    return gflops / peak_gflops


def measure_matmul_peak(threads: int, size: int = 2048, seconds: float = 1.0, timeout: float = 120.0) -> float:
    """The float32 matrix-product peak (GFLOP/s) of NumPy with ``threads`` threads.

    Runs ``size x size`` products for about ``seconds`` in a fresh Python
    process whose BLAS is limited to ``threads`` through the usual
    environment variables, and returns the best one.  Measured here with 2
    threads: about 240-350 GFLOP/s (docs/measurement.md).  Raises
    :class:`SeqbenchError` if the measurement fails.
    """
    if threads <= 0 or size <= 0 or seconds < 0:
        raise ValueError(f"threads and size must be positive, seconds non-negative: {threads}, {size}, {seconds}")
    env = thread_env(threads)  # the cells' own thread environment: their share of this peak is like for like
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_SCRIPT, str(size), str(seconds)],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise SeqbenchError(f"the matmul peak measurement took longer than {timeout:g} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SeqbenchError(f"the matmul peak measurement failed (exit {done.returncode}): {last}")
    return float(done.stdout.strip())
