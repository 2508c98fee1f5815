"""The ``seqbench`` command: parse, call the library, print, map errors to exit codes.

Exit codes: 0 every cell completed (ok or diverged); 1 some cell errored or
timed out (results are still written); 2 bad usage or configuration
(nothing ran), or unusable results; 3 seqbench itself failed (a bug: one line,
``--debug`` for the traceback); 128+N stopped by signal N (130 for Ctrl-C).
Exit 1 never means a crash, because ``compare`` uses it for "regression" alone.

Heavy imports (pandas, any framework) are deferred to the commands that need
them, so ``seqbench --help`` and ``seqbench list`` stay fast.
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import seqbench
from seqbench import grid
from seqbench.cli_reports import (  # light: pandas only inside its handlers
    _csv,
    add_commands,
    terminal_width,
)
from seqbench.config import INFERENCE_SETTINGS, RunConfig
from seqbench.errors import SeqbenchError, UsageError
from seqbench.escape import one_line
from seqbench.keys import RunStatus
from seqbench.output import flush_stdout, silence_stdout, write_stdout

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a writer killed by SIGPIPE
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # a cell that may run longer than a week is a typo


def _task_param(value: str) -> tuple[str, int | tuple[int, ...]]:
    from seqbench.grid import parse_list

    key, sep, numbers = value.partition("=")
    try:
        if not sep or not key.strip():
            raise ValueError
        return key.strip(), parse_list(numbers, int)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY=INTEGER or KEY=N1,N2,..., got {value!r}") from None


def _grid(kind: type):  # noqa: ANN202 - an argparse type
    """An argparse type for a value or a comma list (a grid, see seqbench.grid)."""
    from seqbench.grid import parse_list

    def parse(value: str):  # noqa: ANN202
        try:
            return parse_list(value, kind)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = "integer list" if kind is int else "list"  # argparse names the type in its error
    return parse


def _env(value: str) -> tuple[str, str]:
    name, sep, executable = value.partition("=")
    if not sep or not name.strip() or not executable.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=EXECUTABLE, e.g. base=venv-a/bin/python, got {value!r}")
    return name.strip(), executable.strip()


def _shard(value: str) -> tuple[int, int]:
    """``I/N`` as two integers; their range (1 <= I <= N) is the runner's one check of any RunConfig."""
    index, sep, count = value.partition("/")
    try:
        if not sep:
            raise ValueError
        return int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, e.g. 1/3, got {value!r}") from None


def _sbatch(value: str) -> tuple[str, str | bool]:
    """``KEY=VALUE`` (``--KEY=VALUE`` in the job script), or ``KEY`` alone for a flag (``--KEY``)."""
    key, sep, text = value.partition("=")
    key = key.strip().removeprefix("--")
    if not key or (sep and not text.strip()):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE or KEY, e.g. account=bench or mem=0, got {value!r}")
    return key, text.strip() if sep else True


def _number_or_auto(what: str, auto: object):  # noqa: ANN202 - an argparse type
    """An argparse type: an integer, or ``auto`` (which parses as ``auto``)."""

    def parse(value: str):  # noqa: ANN202
        if value == "auto":
            return auto
        try:
            return int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {what} or 'auto', got {value!r}") from None

    return parse


_threads = _number_or_auto("threads", None)  # auto: the thread policy (seqbench.threads)
_seeds = _number_or_auto("seeds", "auto")  # auto: repeat until decided

def bounded_float(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number in (low, high]."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        if not math.isfinite(number) or not low < number <= high:
            raise argparse.ArgumentTypeError(f"must be a finite number above {low:g} and at most {high:g}{unit}, "
                                             f"got {value!r}")  # fmt: skip
        return number

    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own errors become our one-line usage error (exit 2)
        raise UsageError(f"{self.prog}: {message}")


# Every run default lives in RunConfig; the parser only shows it.
DEFAULTS = RunConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="seqbench",
        description="Benchmark recurrent sequence models (RNN, LSTM) across deep-learning frameworks: "
        "the same task, the same initial weights and the same batches on every backend.",
        epilog="Exit codes: 0 all cells completed; 1 a cell errored or timed out (compare: a regression); "
        "2 bad usage or unusable results; 3 a bug in seqbench; 128+N stopped by signal N (130 Ctrl-C, "
        "143 SIGTERM, 129 SIGHUP).",
    )
    parser.add_argument("--version", action="version", version=f"seqbench {seqbench.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the benchmark matrix and write a run directory",
        description="Run every backend x model x seed as its own cell, each repeat in a fresh worker process, "
        "and write results/<run-id>/ as cells finish. With --env NAME=PYTHON twice, an A/B run: every cell in both "
        "environments side by side, for 'seqbench compare RUN --base A --new B'. Comma lists in "
        "--units, --layers, --batch-size, --activation and -P expand into every combination (a grid).",
    )
    run.add_argument("--backends", type=_csv, default=DEFAULTS.backends, metavar="LIST",
                     help="'all' (every available backend) or a comma list of NAME or NAME:IMPLEMENTATION "
                     "(see 'seqbench list'; default: all)")
    run.add_argument("--models", type=_csv, default=DEFAULTS.models, metavar="LIST",
                     help="comma list of rnn, lstm, gru (default: rnn,lstm)")
    run.add_argument("--task", default=DEFAULTS.task, help="task name (default: %(default)s)")
    run.add_argument("-P", "--task-param", type=_task_param, action="append", default=[],
                     metavar="KEY=N", help="task parameter, repeatable, e.g. -P steps=50 -P samples=8192; "
                     "a comma list (-P steps=10,50,200) runs every value")
    run.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="epochs per cell (default: %(default)s)")
    run.add_argument("--batch-size", type=_grid(int), default=DEFAULTS.batch_size, metavar="N[,N...]",
                     help="batch size, or a comma list to run each (default: %(default)s)")
    run.add_argument("--units", type=_grid(int), default=DEFAULTS.units, metavar="N[,N...]",
                     help="recurrent units, or a comma list to run each (default: %(default)s)")
    run.add_argument("--layers", type=_grid(int), default=DEFAULTS.layers, metavar="N[,N...]",
                     help="stacked recurrent layers, or a comma list to run each (default: %(default)s)")
    run.add_argument("--bidirectional", action="store_true", default=DEFAULTS.bidirectional,
                     help="every layer runs forward and backward, their outputs concatenated (Keras's "
                     "Bidirectional(merge_mode='concat')); variable lengths: -P min_steps=K on arithmetic or adding")
    run.add_argument("--activation", type=_grid(str), default=DEFAULTS.activation, metavar="NAME[,NAME]",
                     help="relu or tanh, or relu,tanh to run both (default: %(default)s)")
    run.add_argument("--seeds", type=_seeds, default=None, metavar="N|auto",
                     help=f"repeats per row, seeds 0..N-1, each in a fresh worker process (default: {DEFAULTS.seeds}, "
                     "and auto for an A/B run; one seed is no accuracy figure, and spreads and compare intervals are "
                     "computed over processes). auto: start with 3, then add a repeat (an A/B pair with --env) to each "
                     "row still undecided at --threshold, until every row is decided or has --max-seeds")
    run.add_argument("--max-seeds", type=int, default=DEFAULTS.max_seeds, metavar="N",
                     help="with --seeds auto: the most repeats a row gets (default: %(default)s)")
    run.add_argument("--threshold", type=bounded_float(0, 100), default=DEFAULTS.threshold, metavar="X",
                     help="with --seeds auto: the change a row must be able to decide (compare's --threshold; "
                     "default: %(default)s)")
    run.add_argument("--env", type=_env, action="append", default=[], metavar="NAME=EXECUTABLE",
                     help="an A/B run: run every cell in each named environment, side by side (repeatable; "
                     "EXECUTABLE starts a Python with seqbench installed, e.g. base=../venv-main/bin/python, or a "
                     "script that sets variables and execs one); judge with 'seqbench compare RUN --base NAME "
                     "--new NAME'")
    run.add_argument("--device", default=DEFAULTS.device,
                     help="cpu, gpu or auto (gpu where a backend can) (default: %(default)s)")
    run.add_argument("--threads", type=_threads, default=DEFAULTS.threads, metavar="N|auto",
                     help="threads per worker; auto (default): 1 for small models, where a second thread "
                     "collapses under load, every core for large ones (see docs/measurement.md)")
    run.add_argument("--timeout", type=bounded_float(0, MAX_TIMEOUT_S, " seconds (a week)"), default=DEFAULTS.timeout,
                     help="seconds a cell may run, from its start, before it is killed (default: %(default)g)")
    run.add_argument("--startup-timeout", type=bounded_float(0, MAX_TIMEOUT_S, " seconds (a week)"),
                     default=DEFAULTS.startup_timeout, help="seconds a worker may take to start (interpreter, plugins, "
                     "the framework's import) before its cell counts as timed out (default: %(default)g)")
    run.add_argument("--retries", type=int, default=DEFAULTS.retries,
                     help="how many times a repeat whose threads waited for a CPU in most of its epochs is "
                     "measured again, at the end of the run, within a budget of half the planned processes "
                     "(default: %(default)s; 0 keeps every first measurement)")
    run.add_argument("--results-dir", default=DEFAULTS.results_dir, metavar="DIR",
                     help="where run directories go (default: %(default)s)")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the run directory")
    run.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                     help="run only the I-th of N deterministic parts of the matrix (for a CI job matrix; "
                     "combine the parts with 'seqbench merge')")
    run.add_argument("--no-calibration", action="store_true",
                     help="skip the short calibration workload measured before the cells")
    run.add_argument("--inference", choices=INFERENCE_SETTINGS, default=DEFAULTS.inference,
                     help="after training, time the trained model's predictions in the same worker: latency at "
                     "batch 1 (the first call apart, then p50/p90/p99) and throughput at a large batch. quick "
                     "(default): up to 300 calls or 0.1 s (at least 3), throughput at the test set's size; full: "
                     "at least 200 and up to 5000 calls or 5 s, throughput at batch 1024, and each of the "
                     "framework's other inference paths too (Keras's model.predict, torch.compile...); off: skip "
                     "it (see docs/experiments/inference.md)")

    _add_cluster_options(run)

    sub.add_parser("list", help="list backends (with availability), implementations, devices and tasks",
                   description="List every registered backend and task. Imports no framework.")
    run.set_defaults(handler=_cmd_run)
    sub.choices["list"].set_defaults(handler=_cmd_list)
    for name, handler in add_commands(sub).items():  # report, compare, history, merge, export, dashboard
        sub.choices[name].set_defaults(handler=handler)
    for command in sub.choices.values():  # also after the command; SUPPRESS keeps one given before it
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks for errors")  # fmt: skip
    return parser


# ------------------------------------------------------------------ run

# The run options that split a run into jobs (seqbench.cluster.ClusterOptions; None: not given).
CLUSTER_OPTIONS = ("jobs", "parallel", "partition", "time_limit", "cpus_per_job", "gpus_per_job", "exclusive",
                   "sbatch", "job_retries", "resume")  # fmt: skip


def _add_cluster_options(run: argparse.ArgumentParser) -> None:
    group = run.add_argument_group(
        "running as jobs (pip install 'seqbench[cluster]'; see docs/cluster.md)",
        "Split the run's rows into --jobs shards, run each as a job ('seqbench run --shard I/N' into RUN/jobs/), "
        "re-submit failed ones, and merge them into RUN when every job has ended.",
    )
    group.add_argument("--executor", choices=("none", "local", "slurm"), default="none",
                       help="none (default): run here, in this process; slurm: one Slurm job array through submitit; "
                       "local: the same path on this machine, one job at a time (a laptop, the tests)")
    group.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="how many jobs (shards) to split the run into; each runs whole rows (backend x model)")
    group.add_argument("--parallel", type=int, default=None, metavar="K",
                       help="jobs running at once: slurm, the array's limit (default: all); local: default 1, since "
                       "jobs side by side on one machine disturb each other's timings")
    group.add_argument("--partition", default=None, help="slurm: the partition to submit to (default: the cluster's)")
    group.add_argument("--time-limit", type=int, default=None, metavar="MINUTES",
                       help="each job's time limit in minutes (default: 1440, a day)")
    group.add_argument("--cpus-per-job", type=int, default=None, metavar="N",
                       help="slurm: CPUs per job (default: the cluster's; with --exclusive the job has the node)")
    group.add_argument("--gpus-per-job", type=int, default=None, metavar="N",
                       help="GPUs per job (default: 1 with --device gpu, else 0); each job records the GPU model it "
                       "ran on")
    group.add_argument("--exclusive", action=argparse.BooleanOptionalAction, default=None,
                       help="slurm: a job has its node to itself (default: on; a benchmark must not share its node)")
    group.add_argument("--sbatch", type=_sbatch, action="append", default=None, metavar="KEY=VALUE",
                       help="slurm: any other sbatch option, passed through (repeatable), e.g. --sbatch account=bench "
                       "--sbatch constraint=h100")
    group.add_argument("--job-retries", type=int, default=None, metavar="K",
                       help="how many times a job that fails or is killed is submitted again before its shard is "
                       "recorded as failed (the merged run is then partial; default: 2)")
    group.add_argument("--resume", default=None, metavar="RUN",
                       help="continue a cluster run whose parent died or was stopped (a directory or a run id under "
                       "--results-dir): shards with a complete run are kept, the others submitted; the run's own "
                       "options come from RUN")


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run's configuration from ``seqbench run``'s parsed options."""
    names = [name for name, _ in args.env]
    if len(set(names)) < len(names):
        raise UsageError(f"--env: the name {next(n for n in names if names.count(n) > 1)!r} is given twice")
    seeds = args.seeds if args.seeds is not None else "auto" if args.env else DEFAULTS.seeds  # A/B runs decide
    adaptive = seeds == "auto"
    return RunConfig(
        backends=args.backends, models=args.models, task=args.task, task_params=dict(args.task_param),
        epochs=args.epochs, batch_size=args.batch_size, units=args.units, activation=args.activation,
        layers=args.layers, bidirectional=args.bidirectional,
        seeds=min(3, args.max_seeds) if adaptive else int(seeds), device=args.device, threads=args.threads,
        timeout=args.timeout,
        startup_timeout=args.startup_timeout, retries=args.retries, results_dir=args.results_dir,
        shard=args.shard, calibrate=not args.no_calibration, envs=dict(args.env), adaptive=adaptive,
        max_seeds=args.max_seeds, threshold=args.threshold, inference=args.inference,
    )  # fmt: skip


def _cmd_run(args: argparse.Namespace) -> int:
    from seqbench.console import ConsoleProgress
    from seqbench.plugins import load_registry_for
    from seqbench.runner import execute

    config = run_config(args)
    if args.executor != "none" or any(getattr(args, name) is not None for name in CLUSTER_OPTIONS):
        from seqbench.cluster import ClusterOptions, check_usage, run_on_cluster  # submitit, only now

        options = ClusterOptions(args.executor, **{name: getattr(args, name) for name in CLUSTER_OPTIONS})
        check_usage(options, config.shard)
        registry = None  # a resumed run's backends come from RUN, and its jobs load their own
        if options.resume is None:
            registry = load_registry_for(args.backends, args.task)
            _report_plugin_failures(registry)
        with ConsoleProgress(args.quiet) as progress:
            done = run_on_cluster(config, options, registry, progress)
        if done.status == RunStatus.INTERRUPTED:  # nothing merged: the folder to resume
            write_stdout(f"{done.path}\n")
            return done.exit_code
        return _finish_run(args, done.path, done.status, done.exit_code, "")
    registry = load_registry_for(args.backends, args.task)
    _report_plugin_failures(registry)
    with ConsoleProgress(args.quiet, axes=tuple(grid.varied(config))) as progress:  # closing erases the live line
        result = execute(config, registry, progress)
    kept = f": {len(result.cells)} cell(s) finished and kept"
    return _finish_run(args, result.path, result.status, result.exit_code, kept)


def _finish_run(args: argparse.Namespace, path: Path, status: RunStatus, exit_code: int, kept: str) -> int:
    """The summary (unless --quiet) and the run directory, on standard output."""
    if not args.quiet:
        from seqbench.report import render_summary  # pandas, only now

        write_stdout(render_summary(seqbench.load_run(path), width=terminal_width()) + "\n")
        if status != RunStatus.COMPLETE:
            print(f"run {status}{kept}", file=sys.stderr)
    write_stdout(f"{path}\n")
    return exit_code


# ------------------------------------------------------------------ list


def _report_plugin_failures(registry) -> None:  # noqa: ANN001
    for failure in registry.failures:
        print(f"warning: {failure.message}", file=sys.stderr)


def _defaults_line(backend) -> str:  # noqa: ANN001
    """Which implementation a run picks per model (seed size, on the CPU), per activation where they differ."""
    from typing import get_args

    from seqbench.contract import ACTIVATIONS, ModelKind, ModelSpec, default_implementation

    parts = []
    for kind in get_args(ModelKind):
        chosen = {a: default_implementation(backend, ModelSpec(kind=kind, units=10, steps=3, activation=a),
                                            "cpu" if "cpu" in backend.devices else backend.devices[0])
                  for a in ACTIVATIONS}  # fmt: skip
        if len(set(chosen.values())) == 1:
            parts.append(f"{kind} {chosen[ACTIVATIONS[0]] or '-'}")
        else:
            parts.append(f"{kind} " + ", ".join(f"{impl or '-'} ({a})" for a, impl in chosen.items()))
    return "; ".join(parts)


def _devices_line(backend) -> str:  # noqa: ANN001
    from seqbench.contract import device_unavailable

    shown = []
    for device in backend.devices:
        why = device_unavailable(backend, device)
        shown.append(device if why is None else f"{device} (not here: {why})")
    return ", ".join(shown)


def _cmd_list(args: argparse.Namespace) -> int:
    from seqbench.plugins import load_registry

    registry = load_registry()
    out = ["Backends:"]
    for name, backend in sorted(registry.backends.items()):
        a = backend.availability()
        state = "available" if a.available else f"NOT AVAILABLE: {a.reason}"
        out.append(f"  {name:<11} {state}  (plugin {registry.origin[name]})")
        out.append(f"  {'':<11} implementations: {', '.join(backend.implementations)}")
        out.append(f"  {'':<11} default: {_defaults_line(backend)}")
        out.append(f"  {'':<11} devices: {_devices_line(backend)}")
        if not a.available and a.install_hint:
            out.append(f"  {'':<11} install: {a.install_hint}")
    out.append("Tasks:")
    for name, task in sorted(registry.tasks.items()):
        optional = [f"{k} (optional)" for k in getattr(task, "optional_params", ())]
        params = " ".join([*(f"{k}={v}" for k, v in task.defaults.items()), *optional])
        out.append(f"  {name:<10} {task.description}  [{params}]")
    for failure in registry.failures:
        out.append(f"Failed plugin {failure.plugin}: {failure.message}")
    write_stdout("\n".join(out) + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return EXIT_USAGE
        code = int(args.handler(args))
        flush_stdout()  # a full disk behind stdout is said here, as an error, not at exit
        return code
    except SeqbenchError as e:
        if debug:
            traceback.print_exc()
        print(f"seqbench: error: {one_line(e)}", file=sys.stderr)  # names from files may hold escapes
        return e.exit_code
    except KeyboardInterrupt:
        print("seqbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `seqbench list | head`: the reader has all it wanted
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:  # a bug; still one line, and never exit 1, which compare reserves for regressions
        if debug:
            traceback.print_exc()
        text = one_line(e)[:300]
        print(f"seqbench: internal error (a bug; --debug shows the traceback): {type(e).__name__}: {text}",
              file=sys.stderr)  # fmt: skip
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
