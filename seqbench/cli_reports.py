"""The reading commands: ``report``, ``compare``, ``history``, ``merge`` and ``export``.

:func:`add_commands` adds their parsers to the CLI's subparsers and returns
their handlers.  This module is imported when the CLI starts, so it imports
nothing heavy at the top: pandas and matplotlib load inside the handlers.

Exit codes: 0 done; 1 ``compare`` found a regression; 2 unusable input
(not a run, a newer results format, a damaged file, no matching cells).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from seqbench.measures import MEASURE_NAMES
from seqbench.output import write_file, write_stdout, writing

EXIT_OK, EXIT_REGRESSION = 0, 1
REPORT_FORMATS = ("text", "md", "csv", "json", "html")
COMPARE_FORMATS = ("text", "md", "json")
EXPORT_FORMATS = ("pytest-benchmark", "github-action-benchmark")
MEASURE_HELP = ("what is timed, one value per worker process: epoch (the steady epoch, default) or latency (the "
                "median one-sample predict call of the inference phase, seqbench run --inference)")
MAX_THRESHOLD = 100.0  # a row 101 times slower and still "no regression": surely a typo


def fraction(high: float) -> Callable[[str], float]:
    """An argparse type: 0.10 or 10%, finite, from 0 to ``high``."""

    def parse(value: str) -> float:
        text = value.strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a fraction like 0.10 or 10%, got {value!r}") from None
        if not math.isfinite(number):  # nan would switch the gate off without a word
            raise argparse.ArgumentTypeError(f"must be a finite number, got {value!r}")
        if not 0 <= number <= high:
            raise argparse.ArgumentTypeError(f"must be from 0 to {high:g} ({high:.0%}), got {value!r}")
        return number

    return parse


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _emit(text: str, output: str | None) -> None:
    """Print ``text``, or write it to ``output`` (``-`` is stdout), by :mod:`seqbench.output`'s rule."""
    if not text.endswith("\n"):
        text += "\n"
    if output in (None, "-"):
        write_stdout(text)
        return
    print(f"wrote {write_file(output, text)}", file=sys.stderr)


def terminal_width() -> int | None:
    """The width text tables must fit on a terminal (``$COLUMNS`` overrides it); None for a file or a pipe.

    Only a terminal counts: ``COLUMNS`` alone is no sign of one (some libraries export it into every
    child process), and a file or a pipe gets every column.
    """
    import shutil

    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _warn(message: str) -> None:
    from seqbench.escape import one_line

    print(f"seqbench: WARNING: {one_line(message)}", file=sys.stderr)


# ------------------------------------------------------------------ handlers


def _cmd_report(args: argparse.Namespace) -> int:
    import seqbench
    from seqbench.report import render

    run = seqbench.load_run(args.run_dir, results_dir=args.results_dir)  # a directory, a run id, or the newest
    if args.plots:
        from seqbench.plots import save_run_plots

        with writing(args.plots):  # it creates the folder and its parents itself
            written = save_run_plots(run, args.plots, args.plot_format)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    width = terminal_width() if args.format == "text" and args.output in (None, "-") else None
    _emit(render(run, args.format, plots=not args.no_plots, width=width), args.output)
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    import seqbench
    from seqbench.compare_report import render
    from seqbench.comparison import compare_envs, compare_runs, env_names
    from seqbench.errors import UsageError

    options = dict(threshold=args.threshold, accuracy_tolerance=args.accuracy_tolerance, normalize=args.normalize,
                   strict=args.strict, measure=args.measure)  # fmt: skip
    if args.new is None:  # one A/B run: its environments, paired
        run = seqbench.load_run(args.base)
        names = env_names(run)
        base_env = args.base_env or (names[0] if len(names) == 2 else None)
        new_env = args.new_env or (names[1] if len(names) == 2 else None)
        if base_env is None or new_env is None:
            have = f"its environments are {', '.join(names)}" if names else "it is not an A/B run"
            raise UsageError(f"compare: give two runs, or one A/B run with --base ENV --new ENV ({have})")
        result = compare_envs(run, base_env, new_env, **options)
    else:
        if args.base_env or args.new_env:
            raise UsageError("compare: --base and --new name the environments of one A/B run; with two runs, "
                             "give just BASE and NEW")  # fmt: skip
        result = compare_runs(seqbench.load_run(args.base), seqbench.load_run(args.new), **options)
    if args.output or args.format != "text":  # the output may not be read by a person: say it here too
        for warning in result.warnings:
            _warn(warning)
    _emit(render(result, args.format), args.output)
    return EXIT_REGRESSION if result.exit_code else EXIT_OK


def _cmd_history(args: argparse.Namespace) -> int:
    from seqbench.history import gather, parse_since, render, save_plot

    since = parse_since(args.since) if args.since else None
    h = gather(args.dirs or ["results"], since=since, backends=args.backend, models=args.model, tasks=args.task)
    for message in h.skipped:
        _warn(f"skipped {message}")
    if args.plot and not h.long.empty:
        print(f"wrote {save_plot(h, args.plot, args.normalize, measure=args.measure)}", file=sys.stderr)
    _emit(render(h, args.format, normalize=args.normalize, last=args.last or None, measure=args.measure),
          args.output)  # fmt: skip
    return EXIT_OK


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from seqbench.dashboard import build
    from seqbench.history import parse_since

    since = parse_since(args.since) if args.since else None
    page, h = build(args.dirs or ["results"], title=args.title, normalize=args.normalize, since=since)
    for message in h.skipped:
        _warn(f"skipped {message}")
    _emit(page, args.output)
    return EXIT_OK


def _cmd_merge(args: argparse.Namespace) -> int:
    from seqbench.merge import merge_runs

    result = merge_runs(args.runs, args.output)
    for warning in result.warnings:
        _warn(warning)
    what = f"{result.inputs} of {result.shard_count} shards" if result.shard_count else f"{result.inputs} runs"
    count = f"{result.cells} of {result.planned} cells" if result.planned is not None else f"{result.cells} cells"
    print(f"merged {what}: {count}, status {result.status}", file=sys.stderr)  # counted as the report counts
    write_stdout(f"{result.path}\n")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    import seqbench
    from seqbench.export import export

    _emit(export(seqbench.load_run(args.run_dir), args.format, normalize=args.normalize, measure=args.measure),
          args.output)  # fmt: skip
    return EXIT_OK


# ------------------------------------------------------------------ parsers


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add the reading commands to ``sub``; return ``{name: handler}``."""
    report = sub.add_parser(
        "report", help="summarise a run: a table per task, failures, plots",
        description="Summarise a run directory: per task, one row per backend x implementation x model x device "
        "over seeds (accuracy and times with their spread, status), the cells that failed and why. A run that "
        "did not finish is reported as far as it got and marked PARTIAL.",
    )  # fmt: skip
    report.add_argument("run_dir", nargs="?", metavar="RUN",
                        help="a run directory, a run id in --results-dir, or 'latest' (default: the newest run in "
                        "--results-dir)")
    report.add_argument("--results-dir", default="results", metavar="DIR", help="where runs are (default: results)")
    report.add_argument("--format", choices=REPORT_FORMATS, default="text",
                        help="text (default), md (a PR comment or $GITHUB_STEP_SUMMARY), csv, json, or html "
                        "(one self-contained page, plots embedded)")
    report.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    report.add_argument("--plots", metavar="DIR", help="also write each plot as DIR/<name>.png (or .svg)")
    report.add_argument("--plot-format", choices=("png", "svg"), default="png",
                        help="the format of the --plots files (default: png; svg scales without blur)")
    report.add_argument("--no-plots", action="store_true", help="HTML without plots (no matplotlib needed)")

    compare = sub.add_parser(
        "compare", help="compare two runs cell by cell; exit 1 on a regression",
        description="Match the rows of two runs by (task, experiment, backend, implementation, model, device) "
        "and judge each: the steady-epoch time ratio NEW/BASE with a 95% interval computed over worker processes "
        "(one per seed; Welch's t on log times), accuracy change, parameter change, status change. Given one A/B "
        "run (seqbench run --env base=... --env head=...) and --base/--new, it judges the two environments from "
        "the per-seed ratios of processes that ran side by side (a paired t interval): the gate to use in CI. "
        "Exit 1 when a row is confidently slower beyond --threshold, lost accuracy beyond --accuracy-tolerance, "
        "or newly fails; 0 otherwise, also when a row is undecided (spread too wide) or disturbed (its processes "
        "waited for a CPU), unless --strict; 2 on unusable input, different experiments, or no matching rows.",
    )  # fmt: skip
    compare.add_argument("base", metavar="BASE", help="the reference run directory (or the A/B run)")
    compare.add_argument("new", metavar="NEW", nargs="?", help="the run to judge; leave out to compare the "
                         "environments of one A/B run (seqbench run --env ...) with --base and --new")
    compare.add_argument("--base", dest="base_env", metavar="ENV",
                         help="with one A/B run: the reference environment (default: the first of two)")
    compare.add_argument("--new", dest="new_env", metavar="ENV",
                         help="with one A/B run: the environment to judge (default: the second of two)")
    compare.add_argument("--threshold", type=fraction(MAX_THRESHOLD), default=0.10,
                         help="slowdown that counts as a regression, e.g. 0.10 or 10%% (default: 0.10)")
    compare.add_argument("--accuracy-tolerance", type=fraction(1.0), default=0.05,
                         help="drop in median accuracy that counts as a regression (default: 0.05)")
    compare.add_argument("--normalize", action="store_true",
                         help="compare times in calibration units (for runs on different machines)")
    compare.add_argument("--measure", choices=MEASURE_NAMES, default="epoch", help=MEASURE_HELP)
    compare.add_argument("--strict", action="store_true",
                         help="also exit 1 when a row cannot be judged (undecided, disturbed, too few processes)")
    compare.add_argument("--format", choices=COMPARE_FORMATS, default="text", help="text (default), md or json")
    compare.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")

    history = sub.add_parser(
        "history", help="the trend of every row over all runs found",
        description="Gather every run under the given folders (recursively), order them by start time (then "
        "git commit), and show each row's steady-epoch time and accuracy per run.",
    )  # fmt: skip
    history.add_argument("dirs", nargs="*", metavar="RESULTS_DIR", help="folders to search (default: results)")
    history.add_argument("--since", metavar="WHEN",
                         help="only runs started since a date (2026-01-31) or an age: 30m, 12h, 7d, 2w")
    # plural as on `run` (--backends, --models); the singular spellings of earlier releases still work
    history.add_argument("--backends", "--backend", dest="backend", type=_csv, metavar="LIST",
                         help="only these backends (comma list)")
    history.add_argument("--models", "--model", dest="model", type=_csv, metavar="LIST",
                         help="only these models (comma list)")
    history.add_argument("--tasks", "--task", dest="task", type=_csv, metavar="LIST",
                         help="only these tasks (comma list)")
    history.add_argument("--normalize", action="store_true", help="times in calibration units")
    history.add_argument("--measure", choices=MEASURE_NAMES, default="epoch", help=MEASURE_HELP)
    history.add_argument("--last", type=int, default=8, metavar="N",
                         help="runs shown as columns in text/md/html (default: 8; 0: all)")
    history.add_argument("--format", choices=REPORT_FORMATS, default="text",
                         help="text (default), md, csv or json (one row per run and row), html")
    history.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of standard output")
    history.add_argument("--plot", metavar="PNG", help="also draw the trend to this PNG file")

    dashboard = sub.add_parser(
        "dashboard", help="one static HTML page of every run's trend (for GitHub Pages)",
        description="Gather every run under the given folders (recursively) and write one self-contained HTML "
        "page: a trend chart per task, experiment and model, one line per backend, each point a run with its "
        "commit. Publish the file as it is, e.g. as index.html on GitHub Pages.",
    )  # fmt: skip
    dashboard.add_argument("dirs", nargs="*", metavar="RESULTS_DIR", help="folders to search (default: results)")
    dashboard.add_argument("-o", "--output", default="site/index.html", metavar="PATH",
                           help="where the page goes (default: site/index.html; - for standard output)")
    dashboard.add_argument("--title", default="seqbench dashboard", help="the page's title")
    dashboard.add_argument("--since", metavar="WHEN", help="only runs started since a date or an age (7d, 2w)")
    dashboard.add_argument("--normalize", action="store_true", help="times in calibration units")

    merge = sub.add_parser(
        "merge", help="combine runs (e.g. the shards of a CI matrix) into one run directory",
        description="Combine run directories of the same experiment, typically made with 'seqbench run --shard "
        "I/N' on several machines, into one run directory. Cells keep the machine they ran on.",
    )  # fmt: skip
    merge.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories to combine")
    merge.add_argument("-o", "--output", required=True, metavar="OUT", help="the new run directory")

    export = sub.add_parser(
        "export", help="write a run as pytest-benchmark or github-action-benchmark JSON",
        description="Write a run's steady-epoch times in the JSON that existing CI dashboards read: "
        "pytest-benchmark's saved-run file, or github-action-benchmark's customSmallerIsBetter list.",
    )  # fmt: skip
    export.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    export.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="the target tool's format")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    export.add_argument("--normalize", action="store_true", help="values in calibration units")
    export.add_argument("--measure", choices=MEASURE_NAMES, default="epoch", help=MEASURE_HELP)

    return {"report": _cmd_report, "compare": _cmd_compare, "history": _cmd_history, "merge": _cmd_merge,
            "export": _cmd_export, "dashboard": _cmd_dashboard}  # fmt: skip
