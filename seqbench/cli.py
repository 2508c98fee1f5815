"""The ``seqbench`` command: parse, call the library, print, map errors to exit codes.

Exit codes: 0 every cell completed (ok or diverged); 1 some cell errored or
timed out (results are still written); 2 bad usage or configuration
(nothing ran); 130 interrupted.

Heavy imports (pandas, any framework) are deferred to the commands that need
them, so ``seqbench --help`` and ``seqbench list`` stay fast.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

import seqbench
from seqbench.cli_reports import add_commands, parse_shard  # light: pandas only inside its handlers
from seqbench.errors import SeqbenchError, UsageError

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _task_param(value: str) -> tuple[str, int]:
    key, sep, number = value.partition("=")
    try:
        if not sep:
            raise ValueError
        return key.strip(), int(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY=INTEGER, got {value!r}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own errors become our one-line usage error (exit 2)
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="seqbench",
        description="Benchmark recurrent sequence models (RNN, LSTM) across deep-learning frameworks: "
        "the same task, the same initial weights and the same batches on every backend.",
        epilog="Exit codes: 0 all cells completed; 1 a cell errored or timed out; 2 bad usage; 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"seqbench {seqbench.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the benchmark matrix and write a run directory",
        description="Run every backend x model x seed as its own cell, each (backend, implementation, "
        "device) group in its own worker process, and write results/<run-id>/ as cells finish.",
    )
    run.add_argument("--backends", type=_csv, default=("all",), metavar="LIST",
                     help="'all' (every available backend) or a comma list of NAME or NAME:IMPLEMENTATION "
                     "(see 'seqbench list'; default: all)")
    run.add_argument("--models", type=_csv, default=("rnn", "lstm"), metavar="LIST",
                     help="comma list of rnn, lstm (default: rnn,lstm)")
    run.add_argument("--task", default="arithmetic", help="task name (default: arithmetic)")
    run.add_argument("-P", "--task-param", type=_task_param, action="append", default=[],
                     metavar="KEY=N", help="task parameter, repeatable, e.g. -P steps=50 -P samples=8192")
    run.add_argument("--epochs", type=int, default=10, help="epochs per cell (default: 10)")
    run.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    run.add_argument("--units", type=int, default=10, help="recurrent units (default: 10)")
    run.add_argument("--activation", default="relu", help="relu or tanh (default: relu)")
    run.add_argument("--seeds", type=int, default=3,
                     help="number of seeds per cell, 0..N-1 (default: 3; one seed is no accuracy figure)")
    run.add_argument("--device", default="cpu", help="cpu, gpu or auto (gpu where a backend can) (default: cpu)")
    run.add_argument("--threads", type=int, default=None, help="threads per worker (default: CPU count)")
    run.add_argument("--timeout", type=float, default=600.0, help="seconds before a cell is killed (default: 600)")
    run.add_argument("--results-dir", default="results", metavar="DIR",
                     help="where run directories go (default: results)")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the run directory")
    run.add_argument("--shard", type=parse_shard, default=None, metavar="I/N",
                     help="run only the I-th of N deterministic parts of the matrix (for a CI job matrix; "
                     "combine the parts with 'seqbench merge')")
    run.add_argument("--no-calibration", action="store_true",
                     help="skip the short calibration workload measured before the cells")

    sub.add_parser("list", help="list backends (with availability), implementations, devices and tasks",
                   description="List every registered backend and task. Imports no framework.")
    run.set_defaults(handler=_cmd_run)
    sub.choices["list"].set_defaults(handler=_cmd_list)
    for name, handler in add_commands(sub).items():  # report, compare, history, merge, export
        sub.choices[name].set_defaults(handler=handler)
    return parser


# ------------------------------------------------------------------ run


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class _ConsoleProgress:
    """Progress on stderr: one line per cell, and epochs as they pass on a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = sys.stderr.isatty()

    def _print(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        self._print(f"note: {message}")

    def cell_started(self, cell, done: int, total: int) -> None:  # noqa: ANN001
        self.prefix = f"[{done + 1}/{total}] {cell.label}"
        if self.live and not self.quiet:
            print(f"\r{self.prefix} ...", end="", file=sys.stderr, flush=True)

    def epoch(self, record) -> None:  # noqa: ANN001
        if self.live and not self.quiet:
            print(f"\r{self.prefix}  epoch {record.epoch} loss {record.loss:.4g}",
                  end="\033[K", file=sys.stderr, flush=True)  # fmt: skip

    def cell_finished(self, record, done: int, total: int) -> None:  # noqa: ANN001
        if self.live and not self.quiet:
            print("\r\033[K", end="", file=sys.stderr)
        line = f"[{done}/{total}] {record.backend}:{record.implementation}/{record.device} " \
               f"{record.model} seed={record.seed}  {record.status}"
        if record.status in ("ok", "diverged"):
            steady_ms = None if record.steady_epoch_s is None else record.steady_epoch_s * 1e3
            line += f"  acc {_fmt(record.accuracy, '.2f')}  loss {_fmt(record.final_loss, '.4g')}  " \
                    f"steady {_fmt(steady_ms, '.1f')} ms/epoch"
        elif record.error:
            line += ": " + record.error.strip().splitlines()[-1]
        self._print(line)


def _cmd_run(args: argparse.Namespace) -> int:
    from seqbench.plugins import load_registry
    from seqbench.runner import RunConfig, execute

    registry = load_registry()
    _report_plugin_failures(registry)
    config = RunConfig(
        backends=args.backends, models=args.models, task=args.task, task_params=dict(args.task_param),
        epochs=args.epochs, batch_size=args.batch_size, units=args.units, activation=args.activation,
        seeds=args.seeds, device=args.device, timeout=args.timeout, results_dir=args.results_dir,
        shard=args.shard, calibrate=not args.no_calibration,
        **({"threads": args.threads} if args.threads is not None else {}),
    )  # fmt: skip
    result = execute(config, registry, _ConsoleProgress(args.quiet))
    if not args.quiet:
        from seqbench.report import render_summary  # pandas, only now

        print(render_summary(seqbench.load_run(result.path)))
        if result.status != "complete":
            print(f"run {result.status}: {len(result.cells)} cell(s) finished and kept")
    print(result.path)
    return result.exit_code


# ------------------------------------------------------------------ list


def _report_plugin_failures(registry) -> None:  # noqa: ANN001
    for failure in registry.failures:
        print(f"warning: {failure.message}", file=sys.stderr)


def _cmd_list(args: argparse.Namespace) -> int:
    from seqbench.plugins import load_registry

    registry = load_registry()
    print("Backends:")
    for name, backend in sorted(registry.backends.items()):
        a = backend.availability()
        state = "available" if a.available else f"NOT AVAILABLE: {a.reason}"
        print(f"  {name:<11} {state}  (plugin {registry.origin[name]})")
        print(f"  {'':<11} implementations: {', '.join(backend.implementations)} (default: fastest that fits)")
        print(f"  {'':<11} devices: {', '.join(backend.devices)}")
        if not a.available and a.install_hint:
            print(f"  {'':<11} install: {a.install_hint}")
    print("Tasks:")
    for name, task in sorted(registry.tasks.items()):
        params = " ".join(f"{k}={v}" for k, v in task.defaults.items())
        print(f"  {name:<10} {task.description}  [{params}]")
    for failure in registry.failures:
        print(f"Failed plugin {failure.plugin}: {failure.message}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return EXIT_USAGE
        return args.handler(args)
    except SeqbenchError as e:
        if debug:
            traceback.print_exc()
        print(f"seqbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("seqbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
