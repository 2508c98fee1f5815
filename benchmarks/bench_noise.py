"""How often ``seqbench compare`` cries wolf, and how often it catches a real slowdown: quiet and loaded.

Each *pair* is two real runs of the same matrix, A then B, compared with
``seqbench compare A B --format json``:

* the ``numpy`` and ``torch`` rows are A/A comparisons: nothing changed;
* the ``slowed`` row (benchmarks/plugins/seqbench_slowed.py: the NumPy
  reference plus CPU work after each epoch) is an A/B comparison: in B it
  does ``--slowdown`` (default 30%) more CPU work per epoch.

Pairs run on a quiet machine and under background load that comes and goes:
``--load`` CPU-bound processes, each switching on and off for random spells
of 0.1 to 3 s.  It prints, per condition, the verdicts of every row kind and
the rates the goals are stated in:

* false regressions: A/A rows judged ``slower`` (goal: none);
* detection: A/B rows judged ``slower`` (goal: at least 9 in 10, quiet);
* wrong answers: A/B rows judged ``same`` or ``faster`` (goal: none; under
  load, ``disturbed`` and ``undecided`` are the honest answers).

Run it alone on the machine: it is a measurement (and under load it makes
its own neighbours)::

    python benchmarks/bench_noise.py --pairs 10
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
PLUGINS = HERE / "plugins"  # a .dist-info there registers the "slowed" backend through an entry point


def _neighbour(stop: mp.synchronize.Event, seed: int) -> None:
    """A CPU-bound process that switches on and off for random spells of 0.1 to 3 s."""
    gen = random.Random(seed)
    while not stop.is_set():
        until = time.monotonic() + gen.uniform(0.1, 3.0)
        while time.monotonic() < until and not stop.is_set():
            sum(i * i for i in range(10_000))
        stop.wait(gen.uniform(0.1, 3.0))


class Load:
    def __init__(self, processes: int, seed: int) -> None:
        self.stop = mp.Event()
        self.procs = [mp.Process(target=_neighbour, args=(self.stop, seed + i), daemon=True) for i in range(processes)]

    def __enter__(self) -> Load:
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for p in self.procs:
            p.join(10)


def _run(args: argparse.Namespace, root: Path, slowdown: float) -> Path:
    env = dict(os.environ, SEQBENCH_BENCH_SLOWDOWN=str(slowdown), TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "seqbench", "run", "--backends", args.backends, "--models", args.models,
           "--units", str(args.units), "--epochs", str(args.epochs), "--seeds", str(args.seeds),
           "--no-calibration", "-q", "--results-dir", str(root)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode not in (0, 1):
        sys.exit(f"seqbench run failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _compare(a: Path, b: Path) -> tuple[int, list[dict]]:
    done = subprocess.run([sys.executable, "-m", "seqbench", "compare", str(a), str(b), "--format", "json"],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode not in (0, 1):
        sys.exit(f"seqbench compare failed ({done.returncode}): {done.stderr.strip()}")
    return done.returncode, json.loads(done.stdout)["rows"]


def _condition(args: argparse.Namespace, name: str, load: int, root: Path) -> dict[str, Counter]:
    tally: dict[str, Counter] = {"A/A": Counter(), "A/B": Counter(), "exit": Counter()}
    started = time.perf_counter()
    for i in range(args.pairs):
        with Load(load, seed=1000 * i) if load else _Nothing():
            a = _run(args, root / name, 0.0)
            b = _run(args, root / name, args.slowdown)
        code, rows = _compare(a, b)
        tally["exit"][code] += 1
        line = []
        for row in rows:
            kind = "A/B" if row["backend"] == "slowed" else "A/A"
            tally[kind][row["verdict"]] += 1
            line.append(f"{row['backend']}:{row['model']} {row['verdict']} x{(row['ratio'] or float('nan')):.2f}")
        print(f"  {name} pair {i + 1}/{args.pairs}: exit {code}; " + "; ".join(line), flush=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    return tally


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10, help="pairs per condition (default: 10)")
    parser.add_argument("--slowdown", type=float, default=0.3, help="injected extra work in B (default: 0.3)")
    parser.add_argument("--load", type=int, default=2, help="on/off CPU-bound neighbours when loaded (default: 2)")
    parser.add_argument("--conditions", default="quiet,loaded", help="quiet, loaded or both (default)")
    parser.add_argument("--backends", default="numpy,slowed,torch", help="default: numpy,slowed,torch")
    parser.add_argument("--models", default="lstm")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(f"bench_noise: {args.pairs} pairs per condition; --backends {args.backends} --models {args.models} "
          f"--units {args.units} --epochs {args.epochs} --seeds {args.seeds}; B adds {args.slowdown:.0%} CPU work "
          f"to 'slowed'; loaded = {args.load} on/off neighbours", flush=True)  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory(prefix="seqbench-noise-") as tmp:
        for name in args.conditions.split(","):
            results[name] = _condition(args, name, args.load if name == "loaded" else 0, Path(tmp))
    print("\ncondition  A/A rows  false regressions  A/B rows  caught (slower)  undecidable  wrong (same/faster)  "
          "A/A verdicts | A/B verdicts")  # fmt: skip
    for name, t in results.items():
        aa, ab = sum(t["A/A"].values()), sum(t["A/B"].values())
        caught = t["A/B"]["slower"]
        wrong = t["A/B"]["same"] + t["A/B"]["faster"]
        print(f"{name:<9}  {aa:>8}  {t['A/A']['slower']:>17}  {ab:>8}  {caught:>9} ({caught / max(ab, 1):.0%})  "
              f"{ab - caught - wrong:>11}  {wrong:>19}  {dict(t['A/A'])} | {dict(t['A/B'])}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
