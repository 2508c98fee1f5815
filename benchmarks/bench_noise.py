"""How well the A/B regression gate (``seqbench run --env``, then ``compare``) works: quiet and loaded.

Each *trial* is ONE A/B run: two environments run the same matrix side by side
(ABBA order), then ``seqbench compare RUN --base base --new head --format json``
judges it.  Both environments are this Python, started through a wrapper
script in a temporary folder:

* ``base.sh`` exports ``SEQBENCH_BENCH_SLOWDOWN=0``;
* ``head.sh`` exports ``SEQBENCH_BENCH_SLOWDOWN=<s>`` (``--slowdowns``).

The ``slowed`` rows (benchmarks/plugins/seqbench_slowed.py: the NumPy reference
plus ``s`` times the epoch's CPU time of extra busy work) are the A/B rows:
their true change is ``s``.  The ``numpy`` rows are A/A controls inside the
same run (true change 0); with ``s = 0`` every row is A/A.  For ``s = 0.1`` the
same run is judged a second time with ``--threshold 0.05`` ("+10% @5%").

Every (condition, slowdown, seeds mode) gets ``--trials`` runs:

* conditions: ``quiet``, and ``loaded``: ``--busy`` CPU-bound neighbours busy
  all along plus ``--load`` neighbours that switch on and off for random spells
  of 0.1 to 3 s, started before the run and stopped after it;
* seeds modes (``--modes``): ``3`` (``--seeds 3``) and ``auto`` (``--seeds
  auto``: repeats are added until each row is decided, at most --max-seeds).

It prints a line per trial, then one table line per (condition, seeds mode,
change), as text and as Markdown for docs/measurement.md: rows judged; false
regressions (A/A rows judged ``slower``); caught (A/B rows judged ``slower``);
not judged (``disturbed``, ``undecided``, ``too few processes``, ``n/a``);
wrong (A/B rows judged ``same`` or ``faster``); the mean wall time of a run.
A/A lines count the ``s = 0`` runs and the ``numpy`` rows of every run.

Targets (checked and printed at the end):

* A/A: no false regression, quiet or loaded;
* +20%: caught in at least 9 rows in 10 quiet, 8 in 10 loaded;
* +10% with ``--threshold 0.05``: caught in at least 8 rows in 10 quiet;
* under load, at most 10% of the rows not judged;
* a slowdown never called ``same`` or ``faster`` (not judged is the honest
  answer when the machine cannot tell);
* ``--seeds auto`` decides at least as many rows as ``--seeds 3``, within
  twice its wall time.

It is a measurement: run it alone on the machine (under load it makes its own
neighbours), from the repository root, e.g.::

    python benchmarks/bench_noise.py --trials 2

The defaults make 2 conditions x 4 slowdowns x 2 modes x 2 trials = 32 A/B runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).parent
PLUGINS = HERE / "plugins"  # a .dist-info there registers the "slowed" backend through an entry point
AB_BACKEND = "slowed"  # its rows are the A/B rows; every other backend's rows are A/A controls
FINE_SLOWDOWN, FINE_THRESHOLD = 0.1, 0.05  # the +10% runs are judged again at this threshold
DECIDED = ("slower", "faster", "same")
QUIET_PRESSURE = 5.0  # /proc/pressure/cpu "some avg10" above this: someone else is using the CPU


def _neighbour(stop: mp.synchronize.Event, seed: int) -> None:
    """A CPU-bound process that switches on and off for random spells of 0.1 to 3 s."""
    gen = random.Random(seed)
    while not stop.is_set():
        until = time.monotonic() + gen.uniform(0.1, 3.0)
        while time.monotonic() < until and not stop.is_set():
            sum(i * i for i in range(10_000))
        stop.wait(gen.uniform(0.1, 3.0))


def _busy(stop: mp.synchronize.Event, seed: int) -> None:
    """A CPU-bound process that is busy all along."""
    while not stop.is_set():
        sum(i * i for i in range(10_000))


class Load:
    """``busy`` always-on neighbours and ``onoff`` neighbours that come and go, while in the ``with``."""

    def __init__(self, busy: int, onoff: int, seed: int) -> None:
        self.stop = mp.Event()
        self.procs = [mp.Process(target=_busy, args=(self.stop, seed), daemon=True) for _ in range(busy)]
        self.procs += [mp.Process(target=_neighbour, args=(self.stop, seed + i), daemon=True) for i in range(onoff)]

    def __enter__(self) -> Load:
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()


class Failed(Exception):
    """A run or a compare that gave no usable answer: the benchmark stops and prints what it has."""


def _pressure() -> float | None:
    """/proc/pressure/cpu "some avg10" (percent of the last 10 s some task waited for a CPU), or None."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some "):
                return float(dict(f.split("=") for f in line.split()[1:])["avg10"])
    except (OSError, ValueError, KeyError):
        pass
    return None


def _wrappers(folder: Path, slowdown: float) -> dict[str, Path]:
    """base.sh and head.sh: this Python, with SEQBENCH_BENCH_SLOWDOWN 0 and ``slowdown``."""
    folder.mkdir(parents=True, exist_ok=True)
    scripts = {}
    for name, value in (("base", 0.0), ("head", slowdown)):
        path = folder / f"{name}.sh"
        path.write_text("#!/bin/sh\n"
                        f"export SEQBENCH_BENCH_SLOWDOWN={value:g}\n"
                        f"export PYTHONPATH={shlex.quote(str(PLUGINS.resolve()))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
                        "export TF_CPP_MIN_LOG_LEVEL=3\n"
                        f'exec {shlex.quote(sys.executable)} "$@"\n')  # fmt: skip
        path.chmod(0o755)
        scripts[name] = path
    return scripts


def _run(args: argparse.Namespace, results: Path, scripts: dict[str, Path], mode: str) -> tuple[Path, float, dict]:
    """One A/B run; its directory, its wall seconds and what --seeds auto added (run.json's "adaptive")."""
    env = dict(os.environ, SEQBENCH_BENCH_SLOWDOWN="0", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS.resolve()), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "seqbench", "run", "--backends", args.backends, "--models", args.models,
           "--units", args.units, "--epochs", str(args.epochs), "--seeds", mode, "--no-calibration", "-q",
           "--env", f"base={scripts['base']}", "--env", f"head={scripts['head']}",
           "--results-dir", str(results)]  # fmt: skip
    if mode == "auto" and args.max_seeds:
        cmd += ["--max-seeds", str(args.max_seeds)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise Failed(f"seqbench run failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    path = Path(done.stdout.strip().splitlines()[-1])
    try:
        adaptive = json.loads((path / "run.json").read_text()).get("adaptive") or {}
    except (OSError, ValueError):
        adaptive = {}
    return path, wall, adaptive


def _compare(run: Path, threshold: float | None = None) -> tuple[int, list[dict]]:
    cmd = [sys.executable, "-m", "seqbench", "compare", str(run), "--base", "base", "--new", "head", "--format", "json"]
    if threshold is not None:
        cmd += ["--threshold", str(threshold)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise Failed(f"seqbench compare {run} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.returncode, json.loads(done.stdout)["rows"]


def _label(slowdown: float, threshold: float | None = None) -> str:
    change = "A/A" if slowdown == 0 else f"+{slowdown:.0%}"
    return change if threshold is None else f"{change} @{threshold:.0%}"


class Tally:
    """Verdicts per (condition, mode, change) and the wall time of every run."""

    def __init__(self) -> None:
        self.verdicts: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
        self.walls: dict[tuple[str, str, float], list[float]] = defaultdict(list)
        self.slowdown: dict[str, float] = {}  # change label -> true change

    def add(self, condition: str, mode: str, slowdown: float, rows: list[dict], threshold: float | None) -> str:
        """Count ``rows`` of one compare; return a short account of them for the progress line."""
        seen: dict[str, Counter] = defaultdict(Counter)
        for row in rows:
            verdict = row.get("verdict") or "n/a"
            ab = str(row.get("backend", "")).split(":")[0] == AB_BACKEND and slowdown != 0
            change = _label(slowdown if ab else 0.0, threshold)
            self.slowdown[change] = slowdown if ab else 0.0
            self.verdicts[(condition, mode, change)][verdict] += 1
            seen[change][verdict] += 1
        return "; ".join(f"{c}: " + ", ".join(f"{v} {n}" for v, n in sorted(k.items())) for c, k in seen.items())

    def lines(self) -> list[dict]:
        """One line per (condition, mode, change), in the order they were met, A/A first, then by change."""
        keys = sorted(self.verdicts, key=lambda k: (k[0] != "quiet", k[0], k[1] != "3", k[1], self.slowdown[k[2]],
                                                    "@" in k[2]))  # fmt: skip
        out = []
        for condition, mode, change in keys:
            v = self.verdicts[(condition, mode, change)]
            rows = sum(v.values())
            aa = change.startswith("A/A")
            # A/A rows come from every run of this condition and mode, A/B rows from the runs of their slowdown
            walls = [w for (c, m, s), ws in self.walls.items()
                     if (c, m) == (condition, mode) and (aa or s == self.slowdown[change]) for w in ws]  # fmt: skip
            out.append({
                "condition": condition, "mode": mode, "change": change, "rows": rows, "aa": aa,
                "false": v["slower"] if aa else None, "caught": None if aa else v["slower"],
                "unjudged": rows - sum(v[d] for d in DECIDED),
                "wrong": None if aa else v["same"] + v["faster"], "decided": sum(v[d] for d in DECIDED),
                "wall": sum(walls) / len(walls) if walls else float("nan"), "runs": len(walls), "verdicts": dict(v),
            })  # fmt: skip
        return out


def _pct(n: int | None, of: int) -> str:
    return "-" if n is None else f"{n} ({n / of:.0%})" if of else f"{n}"


COLUMNS = ("condition", "seeds", "change", "rows", "false regressions", "caught", "not judged", "wrong",
           "wall s/run")  # fmt: skip


def _cells(line: dict) -> list[str]:
    return [line["condition"], line["mode"], line["change"], str(line["rows"]),
            "-" if line["false"] is None else str(line["false"]), _pct(line["caught"], line["rows"]),
            _pct(line["unjudged"], line["rows"]), "-" if line["wrong"] is None else str(line["wrong"]),
            f"{line['wall']:.0f}"]  # fmt: skip


def _tables(lines: list[dict]) -> None:
    table = [list(COLUMNS)] + [_cells(line) for line in lines]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    print()
    for i, r in enumerate(table):
        text = "  ".join(c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True)))
        print(text + ("  verdicts" if i == 0 else f"  {lines[i - 1]['verdicts']}"))
    print("\nMarkdown (for docs/measurement.md):\n")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "|".join("---" if j < 3 else "---:" for j in range(len(COLUMNS))) + "|")
    for line in lines:
        print("| " + " | ".join(_cells(line)) + " |")


def _targets(lines: list[dict]) -> list[str]:
    """Each target: met, NOT met, or not measured (its condition, mode or change was not run)."""
    by = {(x["condition"], x["mode"], x["change"]): x for x in lines}
    out = []

    def check(what: str, found: list[dict], ok: bool) -> None:
        out.append(f"  {'not measured' if not found else 'met' if ok else 'NOT met':<12}  {what}")

    for condition in ("quiet", "loaded"):
        aa = [x for x in lines if x["condition"] == condition and x["change"] == "A/A"]
        check(f"A/A {condition}: no false regression ({sum(x['false'] for x in aa)} in "
              f"{sum(x['rows'] for x in aa)} rows)", aa, all(x["false"] == 0 for x in aa))  # fmt: skip
    for condition, need in (("quiet", 0.9), ("loaded", 0.8)):
        for mode in sorted({x["mode"] for x in lines}):
            x = by.get((condition, mode, "+20%"))
            check(f"+20% {condition}, seeds {mode}: caught >= {need:.0%}"
                  + (f" ({x['caught'] / x['rows']:.0%})" if x else ""), [x] if x else [],
                  bool(x) and x["caught"] >= need * x["rows"])  # fmt: skip
    for mode in sorted({x["mode"] for x in lines}):
        x = by.get(("quiet", mode, _label(FINE_SLOWDOWN, FINE_THRESHOLD)))
        check(f"{_label(FINE_SLOWDOWN, FINE_THRESHOLD)} quiet, seeds {mode}: caught >= 80%"
              + (f" ({x['caught'] / x['rows']:.0%})" if x else ""), [x] if x else [],
              bool(x) and x["caught"] >= 0.8 * x["rows"])  # fmt: skip
        loaded = [x for x in lines if x["condition"] == "loaded" and x["mode"] == mode and "@" not in x["change"]]
        rows, unjudged = sum(x["rows"] for x in loaded), sum(x["unjudged"] for x in loaded)
        check(f"loaded, seeds {mode}: not judged <= 10%" + (f" ({unjudged / rows:.0%})" if rows else ""), loaded,
              unjudged <= 0.1 * rows)  # fmt: skip
    ab = [x for x in lines if not x["aa"]]
    check(f"a slowdown never called same or faster ({sum(x['wrong'] for x in ab)} times)", ab,
          all(x["wrong"] == 0 for x in ab))  # fmt: skip
    for condition in dict.fromkeys(x["condition"] for x in lines):
        per = {}
        for mode in ("3", "auto"):
            mine = [x for x in lines if x["condition"] == condition and x["mode"] == mode and "@" not in x["change"]]
            aa = [x for x in mine if x["aa"]]
            if mine and aa:
                per[mode] = (sum(x["decided"] for x in mine) / max(sum(x["rows"] for x in mine), 1), aa[0]["wall"])
        if len(per) == 2:
            (d3, w3), (da, wa) = per["3"], per["auto"]
            check(f"{condition}: seeds auto decides >= seeds 3 ({da:.0%} vs {d3:.0%} of rows) within 2x its "
                  f"wall time ({wa:.0f} s vs {w3:.0f} s per run, x{wa / w3:.2f})", [1],
                  da >= d3 and wa <= 2 * w3)  # fmt: skip
        else:
            check(f"{condition}: seeds auto vs seeds 3 (needs --modes 3,auto)", [], False)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2, help="A/B runs per condition, slowdown and mode (default: 2)")
    parser.add_argument("--conditions", default="quiet,loaded", help="quiet, loaded or both (default)")
    parser.add_argument("--slowdowns", default="0,0.1,0.2,0.3", help="extra work in head, comma list; 0 is an "
                        "A/A run (default: 0,0.1,0.2,0.3)")  # fmt: skip
    parser.add_argument("--modes", default="3,auto", help="--seeds values, comma list (default: 3,auto)")
    parser.add_argument("--max-seeds", type=int, default=None, help="--max-seeds for auto (default: seqbench's)")
    parser.add_argument("--busy", type=int, default=1, help="always-busy neighbours when loaded (default: 1)")
    parser.add_argument("--load", type=int, default=2, help="on/off CPU-bound neighbours when loaded (default: 2)")
    parser.add_argument("--backends", default=f"{AB_BACKEND},numpy", help=f"default: {AB_BACKEND},numpy")
    parser.add_argument("--models", default="rnn,lstm,gru", help="default: rnn,lstm,gru")
    parser.add_argument("--units", default="32,64", help="default: 32,64")
    parser.add_argument("--epochs", type=int, default=8, help="default: 8")
    parser.add_argument("--results-dir", metavar="DIR", help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if any(c not in ("quiet", "loaded") for c in conditions):
        parser.error(f"--conditions: quiet and/or loaded, got {args.conditions!r}")
    slowdowns = [float(s) for s in args.slowdowns.split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    pressure = _pressure()
    total = args.trials * len(conditions) * len(slowdowns) * len(modes)
    print(f"bench_noise: {total} A/B runs ({args.trials} trials x conditions {','.join(conditions)} x slowdowns "
          f"{args.slowdowns} x seeds {args.modes}); --backends {args.backends} --models {args.models} --units "
          f"{args.units} --epochs {args.epochs}; '{AB_BACKEND}' rows are A/B, the others A/A; loaded = {args.busy} "
          f"busy + {args.load} on/off neighbours; {FINE_SLOWDOWN:.0%} also judged at --threshold "
          f"{FINE_THRESHOLD}", flush=True)  # fmt: skip
    print("CPU pressure before the start: "
          + ("not available (no /proc/pressure/cpu)" if pressure is None else f"some avg10={pressure:.2f}"
             + (f" > {QUIET_PRESSURE:g}: machine was not quiet" if pressure > QUIET_PRESSURE else " (quiet)")),
          flush=True)  # fmt: skip
    tally = Tally()
    started, failure, n = time.perf_counter(), None, 0
    with tempfile.TemporaryDirectory(prefix="seqbench-noise-") as tmp:
        root = Path(args.results_dir) if args.results_dir else Path(tmp) / "results"
        scripts = {s: _wrappers(Path(tmp) / f"env-{s:g}", s) for s in slowdowns}
        try:
            for trial in range(args.trials):  # trials outermost: a drift of the machine spreads over every cell
                for condition in conditions:
                    for s in slowdowns:
                        for mode in modes:
                            n += 1
                            loaded = condition == "loaded"
                            with Load(args.busy, args.load, seed=1000 * n) if loaded else Load(0, 0, 0):
                                run, wall, adaptive = _run(args, root / condition, scripts[s], mode)
                            tally.walls[(condition, mode, s)].append(wall)
                            code, rows = _compare(run)
                            line = tally.add(condition, mode, s, rows, None)
                            if s == FINE_SLOWDOWN:
                                _, fine = _compare(run, FINE_THRESHOLD)
                                line += " | " + tally.add(condition, mode, s, fine, FINE_THRESHOLD)
                            added = f", +{adaptive.get('repeats_added', 0)} repeats" if mode == "auto" else ""
                            print(f"  [{n}/{total}] trial {trial + 1} {condition} {_label(s)} seeds {mode}: "
                                  f"{wall:.0f} s{added}, exit {code}; {line}", flush=True)  # fmt: skip
        except Failed as e:
            failure = str(e)
            print(f"  [{n}/{total}] FAILED: {failure}", flush=True)
        except KeyboardInterrupt:
            failure = "interrupted"
            print(f"  [{n}/{total}] interrupted", flush=True)
    elapsed = time.perf_counter() - started
    lines = tally.lines()
    _tables(lines)
    print("\nTargets:")
    print("\n".join(_targets(lines)))
    if pressure is not None and pressure > QUIET_PRESSURE:
        print(f"\nNote: machine was not quiet before the start (CPU pressure some avg10={pressure:.2f}).")
    hours, rest = divmod(round(elapsed), 3600)
    print(f"\ntotal wall time: {hours}:{rest // 60:02d}:{rest % 60:02d} ({elapsed:.0f} s)"
          + (f"; stopped early: {failure}" if failure else ""))  # fmt: skip
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
