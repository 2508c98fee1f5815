"""Speed checks for the harness core, printed as ratios measured side by side.

    python benchmarks/bench_core.py            # everything (about a minute)
    python benchmarks/bench_core.py --quick    # fewer repeats

Not a test: this machine is shared and noisy, so the figures are for people
to read (and for the issue notes), never asserted in the test suite.

1. CLI start: ``seqbench --help`` and ``seqbench list`` against ``python -c pass``.
2. Harness overhead: steady epoch of the NumPy LSTM at the larger
   configuration through ``harness.run_cell`` vs a bare loop calling the same
   model in the same process (target: within 3 %).
3. NumPy LSTM rate vs NumPy's own float32 matrix-product rate in this run
   (target: at least 25 %).
4. ``seqbench run --backends numpy`` with defaults (target: under 10 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from seqbench.threads import thread_env  # seqbench loads NumPy: the settings apply after the exec below

THREADS = "2"
if os.environ.get("SEQBENCH_BENCH_THREADS") != THREADS:  # thread pools read these at import: start again with them
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**thread_env(int(THREADS)), "SEQBENCH_BENCH_THREADS": THREADS})  # fmt: skip

import numpy as np  # noqa: E402  (thread count must be set first)
from seqbench_numpy import NumpyBackend  # noqa: E402

from seqbench.harness import batch_orders, initial_weights, model_spec, run_cell  # noqa: E402
from seqbench.results import CellConfig  # noqa: E402
from seqbench.tasks import ArithmeticTask  # noqa: E402

LARGE = {"steps": 50, "samples": 8192}


def lstm_train_gflop(n: int, steps: int, features: int, units: int) -> float:
    """FLOPs of one LSTM training epoch: forward, input gradient, weight gradients."""
    g = 4 * units
    per_step = 2 * (features + units) * g * 2 + 2 * g * units
    return n * steps * per_step / 1e9


def wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cli_start(repeats: int) -> None:
    base = wall([sys.executable, "-c", "pass"], repeats)
    for args in (["--help"], ["list"]):
        t = wall([sys.executable, "-m", "seqbench", *args], repeats)
        print(f"seqbench {' '.join(args):<7} {t:.3f} s  (python -c pass: {base:.3f} s; target < 0.5 s)")


def matmul_gflops(repeats: int = 5) -> float:
    """NumPy's float32 matrix-product rate: the best of two large sizes."""
    rates = []
    for size in (1024, 2048):
        a = np.random.default_rng(0).random((size, size), dtype=np.float32)
        a @ a
        t = time.perf_counter()
        for _ in range(repeats):
            a @ a
        rates.append(repeats * 2 * size**3 / (time.perf_counter() - t) / 1e9)
    return max(rates)


def overhead_and_rate(epochs: int, rounds: int) -> None:
    task = ArithmeticTask()
    cell = CellConfig(task="arithmetic", model="lstm", backend="numpy", implementation="reference", device="cpu",
                      seed=0, units=128, activation="tanh", epochs=epochs, batch_size=64, threads=2,
                      task_params=LARGE)  # fmt: skip
    data = task.make(0, **LARGE)
    spec = model_spec(cell, data)
    backend = NumpyBackend()
    harness_s, bare_s, peaks = [], [], []
    for _ in range(rounds):  # alternate, so drift on a shared machine hits both alike
        peaks.append(matmul_gflops())
        harness_s.append(run_cell(backend, cell, task).steady_epoch_s)
        model = backend.build("reference", spec, initial_weights(spec, 0), "cpu")
        model.set_train_data(data.x_train, data.y_train)
        times = []
        for order in batch_orders(0, len(data.y_train), epochs):
            t = time.perf_counter()
            model.train_epoch(order, 64)
            times.append(time.perf_counter() - t)
        bare_s.append(statistics.median(times[1:]))
    h, b = statistics.median(harness_s), statistics.median(bare_s)
    print(f"NumPy LSTM 128/tanh/50 steps/8192/batch 64: harness {h:.3f} s/epoch, bare loop {b:.3f} s/epoch, "
          f"ratio {h / b:.3f} (target <= 1.03)")
    flop = lstm_train_gflop(8192, 50, 1, 128)
    peak = statistics.median(peaks)
    print(f"NumPy LSTM rate {flop / b:.1f} GFLOP/s ({flop:.0f} GFLOP/epoch); NumPy float32 matmul "
          f"{peak:.1f} GFLOP/s; ratio {flop / b / peak:.1%} (target >= 25%)")


def default_run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = wall([sys.executable, "-m", "seqbench", "run", "--backends", "numpy", "--results-dir", tmp, "-q"], 1)
    print(f"seqbench run --backends numpy (defaults): {t:.2f} s wall (target < 10 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    quick = parser.parse_args().quick
    print(f"threads={THREADS}, numpy {np.__version__}")
    cli_start(3 if quick else 7)
    overhead_and_rate(epochs=3 if quick else 4, rounds=1 if quick else 3)
    default_run()


if __name__ == "__main__":
    main()
