"""Where one thread stops being enough: steady epoch time at 1 thread and at every core, by model size.

For each size it runs ``seqbench run --threads 1`` and ``--threads <cores>``
side by side (interleaved, each repeat in its own process), on a quiet machine
and, with ``--neighbour``, with one CPU-bound process running throughout.  It
prints the step size in FLOP (``2 x batch x gates x units x (features +
units)``, what the ``auto`` policy in seqbench/threads.py decides by), both
times and their ratio, so the policy's threshold can be checked on this
machine.  Run it alone on the machine::

    python benchmarks/bench_threads.py --backend torch --neighbour
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = [  # (units, batch, extra task parameters)
    (10, 32, []),
    (32, 32, []),
    (64, 32, []),
    (64, 64, ["-P", "steps=20"]),
    (128, 64, ["-P", "steps=50", "-P", "samples=8192"]),
]


def _spin(stop: mp.synchronize.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _steady_ms(args: argparse.Namespace, units: int, batch: int, extra: list[str], threads: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "seqbench", "run", "--backends", args.backend, "--models", args.model,
               "--units", str(units), "--batch-size", str(batch), "--activation", "tanh", *extra,
               "--epochs", str(args.epochs), "--seeds", str(args.seeds), "--threads", str(threads),
               "--retries", "0", "--no-calibration", "-q", "--results-dir", tmp]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        if done.returncode != 0:
            sys.exit(f"seqbench run failed: {done.stderr.strip()[-400:]}")
        rows = [json.loads(line) for line in (Path(done.stdout.split()[-1]) / "cells.jsonl").read_text().split("\n")
                if line.strip()]  # fmt: skip
        values = sorted(r["steady_epoch_s"] * 1e3 for r in rows)
        return values[len(values) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="torch", help="backend[:implementation] (default: torch)")
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--neighbour", action="store_true", help="also measure with one busy neighbour")
    parser.add_argument("--largest", type=int, default=len(SIZES), help="measure only the first N sizes")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[args.model]
    print(f"bench_threads: {args.backend} {args.model}, tanh, {args.epochs} epochs, median of {args.seeds} "
          f"processes; 1 thread vs {cores}")  # fmt: skip
    print(f"{'condition':<10} {'units':>5} {'batch':>5} {'step FLOP':>10} {'1 thread ms':>12} "
          f"{f'{cores} threads ms':>13} {'1/N':>6}")  # fmt: skip
    for condition in ["quiet", "neighbour"] if args.neighbour else ["quiet"]:
        stop = mp.Event()
        spinner = mp.Process(target=_spin, args=(stop,), daemon=True) if condition == "neighbour" else None
        if spinner:
            spinner.start()
        try:
            for units, batch, extra in SIZES[: args.largest]:
                flops = 2 * batch * gates * units * (1 + units)
                one = _steady_ms(args, units, batch, extra, 1)
                many = _steady_ms(args, units, batch, extra, cores)
                print(f"{condition:<10} {units:>5} {batch:>5} {flops:>10,} {one:>12.2f} {many:>13.2f} "
                      f"{one / many:>6.2f}", flush=True)  # fmt: skip
        finally:
            stop.set()
            if spinner:
                spinner.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
