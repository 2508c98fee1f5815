"""Time and peak memory of the reading commands on large synthetic results (issue 18, items 11 and 12).

    python benchmarks/bench_readers.py                      # 5,000 small runs and a 100,000-cell run
    python benchmarks/bench_readers.py --runs 5000 --cells 1000000 --data /tmp/readers
    python benchmarks/bench_readers.py --data /tmp/readers --seqbench /tmp/seqbench-old   # another checkout

Writes the runs once into ``--data`` (kept for the next call; a temporary folder without it), then runs
``seqbench history``, ``seqbench dashboard`` and ``seqbench report`` each in a fresh process and prints its
wall time and peak RSS (``getrusage`` of that process alone, taken by a wrapper process around it).
``--seqbench DIR`` runs the seqbench of another checkout (``git archive <commit> | tar -x -C DIR``), for
a before/after on the same data; ``--save DIR`` keeps each command's output so that two checkouts' outputs
can be compared byte for byte (``diff -r``).

Not a test: the machine is shared and noisy, so these figures are for people to read, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seqbench.config import RunConfig
from seqbench.keys import Status
from seqbench.machine import machine_id
from seqbench.results import CellRecord, EpochRecord, RunWriter, run_meta

MACHINE = {"hostname": "bench", "cpu": "Bench CPU", "cores": 2, "memory_gb": 8.0, "os": "Linux", "machine": "x86_64",
           "python": "3.11.7", "python_implementation": "CPython"}  # fmt: skip
ROWS = [(backend, impl, model) for backend, impl in (("numpy", "reference"), ("torch", "loop"), ("torch", "cudnn"),
                                                     ("keras", "graph"), ("jax", "scan"))
        for model in ("rnn", "lstm", "gru", "mlp")]  # fmt: skip
TASK_PARAMS = {"steps": 50, "samples": 1024, "vocab": 10, "seed_shift": 0}

# Runs a command, then prints its wall time and peak RSS: the only child of this wrapper, so RUSAGE_CHILDREN is it.
WRAPPER = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
with open(sys.argv[1], "wb") as out:
    code = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE).returncode
wall = time.perf_counter() - t
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"code": code, "wall_s": wall, "peak_mb": peak_mb}))
"""


def _meta(root: Path, started: str, commit: str, cells: int) -> dict:
    cfg = dataclasses.asdict(RunConfig(backends=("numpy", "torch"), models=("rnn", "lstm"), epochs=10, seeds=2,
                                       threads=2, results_dir=str(root)))  # fmt: skip
    meta = dict(run_meta(cfg, machine=MACHINE, machine_id=machine_id(MACHINE), packages={"seqbench": "0.3.0"},
                         git={"commit": commit, "dirty": False}, cells_planned=cells, started=started,
                         status="complete"))  # fmt: skip
    meta.update(ended=started, cells_done=cells, calibration={"version": 1, "score_s": 0.01, "threads": 1})
    return meta


def _cell(row: tuple[str, str, str], seed: int, steady: float, machine: str) -> CellRecord:
    backend, impl, model = row
    accuracy = 0.5 + (seed % 40) / 100
    return CellRecord(
        task="arithmetic", model=model, backend=backend, implementation=impl, device="cpu", seed=seed,
        status=Status.OK if seed % 97 else Status.ERROR, error=None if seed % 97 else "Traceback ...\nValueError: x",
        implementation_path=f"{backend}-{impl}", units=32, activation="tanh", epochs=10, epochs_run=10, batch_size=32,
        threads=2, params=1379, final_loss=0.01 + seed % 7 / 1000, accuracy=accuracy, mse=0.25, mae=0.4,
        probe_prediction=12.7, probe_target=13.0, first_epoch_s=steady * 9, steady_epoch_s=steady,
        cpu_s=steady * 1.9, gpu_s=None, samples_per_s=1024 / steady, peak_rss_mb=181.5, build_s=0.02,
        details={"dtype": "float32", "engine": impl}, machine=machine, task_params=TASK_PARAMS, dtype="float32",
        cold=True, interference=0.01, disturbed=False, metrics={"accuracy": accuracy, "mse": 0.25, "mae": 0.4},
        primary_metric="accuracy", higher_is_better=True, baseline=0.1, flops=3.2e9, gflops_per_s=3.2 / steady,
        peak_share=0.02, wait_share=0.001, clean_epochs=9, meter="schedstat",
    )  # fmt: skip


def write_many(root: Path, runs: int) -> None:
    """``runs`` runs of 4 cells (2 rows x 2 seeds) and 10 epochs each, a CI history."""
    for i in range(runs):
        started = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(1_760_000_000 + 3600 * i))
        writer = RunWriter(root, f"run-{i:06d}")
        meta = _meta(root, started, f"{i:040x}", 4)
        for row in ROWS[:2]:
            for seed in range(2):
                steady = 0.005 * (1 + (i % 50) / 500 + seed / 100)
                for epoch in range(1, 11):
                    writer.add_epoch(EpochRecord(task="arithmetic", model=row[2], backend=row[0],
                                                 implementation=row[1], device="cpu", seed=seed, epoch=epoch,
                                                 loss=1 / epoch, wall_s=steady, cpu_s=steady, gpu_s=None))  # fmt: skip
                writer.add_cell(_cell(row, seed + 1, steady, meta["machine_id"]))
        writer.write_meta(meta)
        writer.close()


def write_big(root: Path, cells: int) -> Path:
    """One run of ``cells`` cells (20 rows, many seeds; no epochs: the cells table is what grows)."""
    writer = RunWriter(root, "big")
    meta = _meta(root, "2026-01-01T10:00:00+0000", "b" * 40, cells)
    for i in range(cells):
        writer.add_cell(_cell(ROWS[i % len(ROWS)], i // len(ROWS) + 1, 0.004 + (i % 13) / 10_000, meta["machine_id"]))
    writer.write_meta(meta)
    writer.close()
    return writer.path


def measure(name: str, args: list[str], python: str, env: dict[str, str], save: Path | None, cwd: Path) -> dict:
    out = save / f"{name}.out" if save else Path(os.devnull)
    cmd = [python, "-c", WRAPPER, str(out), python, "-m", "seqbench", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, cwd=cwd)
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{name:<10} {result['wall_s']:7.1f} s  {result['peak_mb']:7.0f} MB  exit {result['code']}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000, help="small runs for history and dashboard (0: none)")
    parser.add_argument("--cells", type=int, default=100_000, help="cells of the big run for report (0: none)")
    parser.add_argument("--data", type=Path, help="where the runs are written (kept; default: a temporary folder)")
    parser.add_argument("--seqbench", type=Path, help="run the seqbench of this checkout instead of this one")
    parser.add_argument("--save", type=Path, help="keep each command's output in this folder")
    parser.add_argument("--only", nargs="*", default=["history", "dashboard", "report"], help="commands to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        many, big = data / f"many-{args.runs}", data / f"big-{args.cells}"
        for path, count, write in ((many, args.runs, write_many), (big, args.cells, write_big)):
            if count and not (path / ".complete").exists():
                t = time.perf_counter()
                path.mkdir(parents=True, exist_ok=True)
                write(path, count)
                (path / ".complete").write_text("")
                print(f"wrote {path} in {time.perf_counter() - t:.0f} s", flush=True)
        env = dict(os.environ)  # commands run in ``data``: a checkout's own folder would come first on sys.path
        if args.seqbench:
            env["PYTHONPATH"] = str(args.seqbench.resolve())
        where = subprocess.run([sys.executable, "-c", "import seqbench; print(seqbench.__file__)"], env=env,
                               capture_output=True, text=True, check=True, cwd=data).stdout.strip()  # fmt: skip
        print(f"seqbench from {where}")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
        if args.runs:
            print(f"{args.runs} runs of 4 cells:")
            if "history" in args.only:
                measure("history", ["history", str(many), "--format", "csv"], sys.executable, env, args.save, data)
            if "dashboard" in args.only:
                measure("dashboard", ["dashboard", str(many), "-o", "-"], sys.executable, env, args.save, data)
        if args.cells and "report" in args.only:
            size = (big / "big" / "cells.jsonl").stat().st_size
            print(f"one run of {args.cells} cells ({size / 1e9:.2f} GB of cells.jsonl):")
            for name, fmt in (("report", "text"), ("report-json", "json")):
                measure(name, ["report", str(big / "big"), "--format", fmt], sys.executable, env, args.save, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
