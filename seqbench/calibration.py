"""A short, fixed calibration workload, and the identity of a machine.

Every run measures this workload once, in a child process pinned to one
thread, before its first cell, and records the result in ``run.json`` under
``calibration``.  Reports can then show times in
*calibration units*: a cell's steady-epoch seconds divided by the machine's
calibration score, so that a history gathered across changing CI runners
stays readable.

The workload is three parts, each a fixed amount of work, timed as the best
of a few repeats:

``python``
    a pure-Python loop: interpreter speed, which dominates small models in
    frameworks that dispatch each operation from Python;
``small_ops``
    2,000 steps of ``tanh(x @ W + h @ U)`` on a 32 x 10 float32 batch: the
    per-operation overhead of NumPy on tiny arrays, like the seed task;
``matmul``
    float32 384 x 384 matrix products: single-core BLAS throughput.

The score is the geometric mean of the three times, in seconds.  It corrects
for a machine being uniformly faster or slower (a faster CPU, a busier
runner).  It does not correct for what it does not measure: the number of
cores (it is single-threaded on purpose: a multi-threaded measurement on a
shared runner was found to swing tenfold), GPUs, a framework that got faster
or slower, memory bandwidth on large models, a different BLAS, or noise that
happens during the run but not during the calibration.

This module imports only NumPy (in the child) and the standard library.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from seqbench.machine import machine_id

if TYPE_CHECKING:
    from seqbench.results import MachineEntry

CALIBRATION_VERSION = 1
_REPEATS = 5
_PY_ITERATIONS = 150_000
_SMALL_STEPS = 1_500
_MATMUL_SIZE, _MATMUL_COUNT = 384, 8


def _best(fn: Any, repeats: int = _REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure() -> dict[str, Any]:
    """Run the workload in this process and return what run.json records."""
    import numpy as np

    def python_loop() -> int:
        total = 0
        for i in range(_PY_ITERATIONS):
            total += (i * i) % 7
        return total

    gen = np.random.default_rng(0)
    x = gen.standard_normal((32, 10)).astype(np.float32)
    w = (gen.standard_normal((10, 10)) * 0.3).astype(np.float32)
    u = (gen.standard_normal((10, 10)) * 0.3).astype(np.float32)

    def small_ops() -> None:
        h = np.zeros((32, 10), np.float32)
        for _ in range(_SMALL_STEPS):
            h = np.tanh(x @ w + h @ u)

    a = gen.standard_normal((_MATMUL_SIZE, _MATMUL_SIZE)).astype(np.float32)

    def matmul() -> None:
        for _ in range(_MATMUL_COUNT):
            a @ a

    t0 = time.perf_counter()
    matmul()  # start the BLAS thread pool outside the measurement
    parts = {"python_s": _best(python_loop), "small_ops_s": _best(small_ops), "matmul_s": _best(matmul)}
    score = math.exp(sum(math.log(v) for v in parts.values()) / len(parts))
    flops = 2 * _MATMUL_SIZE**3 * _MATMUL_COUNT
    return {
        "version": CALIBRATION_VERSION,
        "score_s": score,
        **parts,
        "matmul_gflops": flops / parts["matmul_s"] / 1e9,
        "wall_s": time.perf_counter() - t0,
    }


def run_calibration(timeout: float = 60.0) -> dict[str, Any]:
    """Measure the workload in a fresh child process with one thread.

    Never raises: a failure is recorded as ``{"error": ...}`` and the run goes on
    (reports then simply have no calibrated figures).
    """
    from seqbench.threads import thread_env

    try:
        proc = subprocess.run(
            [sys.executable, "-m", "seqbench.calibration"],
            capture_output=True, text=True, timeout=timeout, env=thread_env(1),
        )  # fmt: skip
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return {"version": CALIBRATION_VERSION, "error": f"exit code {proc.returncode}: {tail}"}
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["threads"] = 1
        return result
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        return {"version": CALIBRATION_VERSION, "error": f"{type(e).__name__}: {e}"}


def calibration_seconds(calibration: Any) -> float | None:
    """The usable score (seconds) of a recorded calibration, or None."""
    if not isinstance(calibration, dict) or calibration.get("version") != CALIBRATION_VERSION:
        return None
    value = calibration.get("score_s")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def machines(meta: Mapping[str, Any]) -> dict[str, MachineEntry]:
    """Every machine of a run: ``{machine id: {"machine", "calibration", "packages"}}``.

    A run made by ``seqbench run`` has one; a run made by ``seqbench merge`` lists
    each shard's machine under ``machines``.
    """
    found = meta.get("machines")
    if isinstance(found, dict) and found:
        return {str(k): cast("MachineEntry", dict(v)) for k, v in found.items() if isinstance(v, dict)}
    found_info = meta.get("machine")
    info: dict[str, Any] = found_info if isinstance(found_info, dict) else {}
    mid = meta.get("machine_id") or machine_id(info)
    return {str(mid): {"machine": info, "calibration": meta.get("calibration"), "packages": meta.get("packages", {})}}


def main() -> int:
    print(json.dumps(measure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
