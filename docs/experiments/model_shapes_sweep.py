"""The size sweep of docs/experiments/model-shapes.md: stacked, bidirectional, variable-length LSTMs and GRUs.

    python docs/experiments/model_shapes_sweep.py run --out results/model-shapes [--device gpu] [--dry-run]
    python docs/experiments/model_shapes_sweep.py table results/model-shapes [--plots docs/experiments/model-shapes]

``run`` makes one seqbench run per sweep below, each a grid around one base point (units 256, 100 steps,
2 layers, bidirectional, fixed length; the adding task, tanh, 512 samples in batches of 64, 4 epochs, 2 seeds,
every backend's default implementation, 2 threads on the CPU):

* ``units``: 128, 256, 512;
* ``steps``: 50, 100, 200, 500 (fixed length);
* ``steps-varlen``: the same lengths as the longest, each sample's drawn from 10 to ``steps`` (``min_steps``);
* ``layers-bi``: 1, 2, 4 layers, bidirectional;
* ``layers-uni``: 1, 2, 4 layers, one direction.

A run per sweep because ``--bidirectional`` and ``min_steps`` are settings of a whole run; the grid inside a run
is seqbench's own (``--units 128,256,512``).  ``table`` reads the runs back and prints, per sweep, the steady
epoch time, GFLOP/s, share of the matmul peak and peak memory of every backend and model, and draws seqbench's
own figures of each run (``seqbench report RUN --plots``: the log-log ``scaling`` figure among them).

On 2 CPU cores the sweeps take hours (the largest cells, 512 units or 500 steps with 2 bidirectional layers, run
minutes per epoch on the loop-based paths); ``--dry-run`` prints the commands and ``--sweeps units,steps`` runs
some of them (``table`` reads whatever is there).  Run it on a quiet machine: the
runs record interference, and disturbed repeats are measured again (``--retries``).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

BASE = ["--task", "adding", "--models", "lstm,gru", "--activation", "tanh", "--batch-size", "64",
        "--epochs", "4", "--seeds", "2", "-P", "samples=512", "-P", "test_samples=256"]  # fmt: skip
SWEEPS: dict[str, list[str]] = {
    "units": ["--units", "128,256,512", "--layers", "2", "--bidirectional", "-P", "steps=100"],
    "steps": ["--units", "256", "--layers", "2", "--bidirectional", "-P", "steps=50,100,200,500"],
    "steps-varlen": ["--units", "256", "--layers", "2", "--bidirectional", "-P", "steps=50,100,200,500",
                     "-P", "min_steps=10"],
    "layers-bi": ["--units", "256", "--layers", "1,2,4", "--bidirectional", "-P", "steps=100"],
    "layers-uni": ["--units", "256", "--layers", "1,2,4", "-P", "steps=100"],
}  # fmt: skip
# --size small: the same sweeps at half the size, LSTM alone, one seed: minutes rather than hours on 2 cores.
SMALL_BASE = ["--task", "adding", "--models", "lstm", "--activation", "tanh", "--batch-size", "64",
              "--epochs", "3", "--seeds", "1", "-P", "samples=256", "-P", "test_samples=128",
              "--inference", "off"]  # fmt: skip
SMALL_SWEEPS: dict[str, list[str]] = {
    "units": ["--units", "64,128,256", "--layers", "2", "--bidirectional", "-P", "steps=50"],
    "steps": ["--units", "128", "--layers", "2", "--bidirectional", "-P", "steps=25,50,100"],
    "steps-varlen": ["--units", "128", "--layers", "2", "--bidirectional", "-P", "steps=25,50,100",
                     "-P", "min_steps=5"],
    "layers-bi": ["--units", "128", "--layers", "1,2,4", "--bidirectional", "-P", "steps=50"],
    "layers-uni": ["--units", "128", "--layers", "1,2,4", "-P", "steps=50"],
}  # fmt: skip
SIZES = {"full": (BASE, SWEEPS), "small": (SMALL_BASE, SMALL_SWEEPS)}


def commands(out: Path, device: str, size: str = "full") -> dict[str, list[str]]:
    """The ``seqbench run`` command of every sweep."""
    threads = ["--threads", "2"] if device == "cpu" else []
    base, sweeps = SIZES[size]
    return {name: [sys.executable, "-m", "seqbench", "run", "--backends", "all", "--device", device, *threads,
                   "--results-dir", str(out / f"{name}-{device}"), "--quiet", *base, *extra]
            for name, extra in sweeps.items()}  # fmt: skip


def run(out: Path, device: str, dry_run: bool, only: list[str], size: str = "full") -> None:
    for name, command in commands(out, device, size).items():
        if only and name not in only:
            continue
        print(f"# {name}: {shlex.join(command)}", flush=True)
        if not dry_run:
            subprocess.run(command, check=False)  # a failed cell is recorded in its run; go on with the next


def _point(label: str) -> dict[str, str]:
    """The settings in an experiment label (``units=256 ... layers=2 bidirectional=True``)."""
    return dict(part.partition("=")[::2] for part in label.split())


def table(out: Path, plots: Path | None) -> None:
    import seqbench

    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        for run_dir in sorted(p for p in folder.iterdir() if (p / "run.json").exists()):
            summary = seqbench.summary(run_dir)
            print(f"\n### {folder.name} ({run_dir.name})\n")
            print("| model | units | steps | min_steps | layers | directions | backend:implementation | steady ms "
                  "| GFLOP/s | share of peak | peak MB | path |")
            print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
            rows = summary[summary["steady_epoch_ms"].notna()].to_dict("records")
            rows.sort(key=lambda r: (r["model"], r["experiment"], r["steady_epoch_ms"]))
            for r in rows:
                p = _point(r["experiment"])
                share = f"{r['peak_share']:.1%}" if r["peak_share"] == r["peak_share"] else ""
                print(f"| {r['model']} | {p.get('units')} | {p.get('steps')} | {p.get('min_steps', '')} "
                      f"| {p.get('layers', 1)} | {2 if p.get('bidirectional') == 'True' else 1} "
                      f"| {r['backend']}:{r['implementation']} | {r['steady_epoch_ms']:,.0f} "
                      f"| {r['gflops_per_s']:.1f} | {share} | {r['peak_rss_mb']:,.0f} "
                      f"| {r['implementation_path']} |")
            if plots is not None:
                target = plots / folder.name
                subprocess.run([sys.executable, "-m", "seqbench", "report", str(run_dir), "--plots", str(target)],
                               check=True, stdout=subprocess.DEVNULL)  # fmt: skip
                print(f"\nFigures: {target}/ (scaling.png is the log-log one)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run every sweep")
    r.add_argument("--out", type=Path, default=Path("results/model-shapes"))
    r.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    r.add_argument("--dry-run", action="store_true", help="print the commands only")
    r.add_argument("--size", choices=tuple(SIZES), default="full",
                   help="small: the same sweeps at half the size, LSTM alone, one seed (minutes on 2 cores)")
    r.add_argument("--sweeps", default="", help=f"a comma list of {', '.join(SWEEPS)} (default: all)")
    t = sub.add_parser("table", help="print the tables of the runs under OUT and draw their figures")
    t.add_argument("out", type=Path)
    t.add_argument("--plots", type=Path, default=None)
    args = parser.parse_args()
    if args.command == "run":
        only = [s for s in args.sweeps.split(",") if s]
        unknown = sorted(set(only) - set(SWEEPS))
        if unknown:
            parser.error(f"unknown sweep {unknown[0]!r}; valid: {', '.join(SWEEPS)}")
        run(args.out, args.device, args.dry_run, only, args.size)
    else:
        table(args.out, args.plots)


if __name__ == "__main__":
    main()
