"""The report of one run: its views (:mod:`seqbench.views`) as text, Markdown, CSV, JSON or one HTML page.

:func:`display_table` turns a :func:`~seqbench.views.summary` into the strings
a person reads (medians with their spread); :func:`compact` cuts it to what a
PR comment shows first; :func:`render` lays out the whole report in one of
:data:`FORMATS` with the renderers of :mod:`seqbench.tables`.

pandas is imported at the top of this module, so the CLI imports this module
only inside the commands that need it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from seqbench.calibration import calibration_seconds
from seqbench.escape import html_text, markdown, one_line, terminal
from seqbench.formatting import fmt_ms, fmt_num, fmt_range, fmt_ratio, is_number, jsonable, score_format
from seqbench.keys import COMPLETED, KEY_FIELDS, RACE_FIELDS, RowKey, RunStatus, Status, entrant_name
from seqbench.results import Run
from seqbench.stats import MIN_PROCESSES, welch_log_ratio
from seqbench.tables import (
    csv_text,
    html_page,
    html_table,
    md_table,
    png_img,
    records,
    rich_text_table,
    table_width,
    text_table,
)
from seqbench.views import by_key, cell_view, failures, run_info, summary

FORMATS = ("text", "md", "csv", "json", "html")
REPORT_VERSION = 1  # of the JSON report's layout

LEGEND = (
    "accuracy (or the task's primary metric): median (min-max) over seeds; baseline: that metric for a model "
    "that ignores its input; first: first epoch in a fresh process (imports, compile, trace), median (min-max) "
    "over processes; steady: each process's median of epochs 2..N, then the median (min-max) over processes, "
    "one per seed; cpu/gpu: process CPU and device time per steady epoch; 2.0x (1.9-2.1) under a table: a ratio "
    "of steady times and its 95% interval over processes"
)
DISTURBED_NOTE = ("DISTURBED: {n} of the measurements behind this table waited for a CPU in most of their epochs "
                  "(marked * in the steady column); their times say more about the neighbours than the code")
LEGEND_CAL = "; steady/cal: steady epoch in calibration units (see docs/reports.md)"
LEGEND_INFERENCE = ("; latency: one sample per predict call after training, each process's median call, then the "
                    "median (min-max) over processes; p99: the same for the 99th percentile; 1st call: the first "
                    "one-sample call, in cold processes; pred/s: samples per second at a large batch (the test set, "
                    "or 1024 with --inference full)")
LEGEND_ONLY = ("; inference only: a backend that does not train ran the initial weights: no epochs, loss or "
               "score, and that is not a failure")


def legend(table: pd.DataFrame) -> str:
    return (LEGEND + (LEGEND_CAL if table["steady_cal"].notna().any() else "")
            + (LEGEND_INFERENCE if _has_inference(table) else "")
            + (LEGEND_ONLY if table["inference_only"].eq(True).any() else ""))  # fmt: skip


def _has_inference(table: pd.DataFrame) -> bool:
    return bool(table["latency_p50_ms"].notna().any())


def process_times(cells: pd.DataFrame) -> dict[RowKey, np.ndarray]:
    """Each row's steady epoch times, one per completed process (seconds), from a :func:`cell_view`."""
    ok = cells[cells["status"].isin(COMPLETED)]
    return {key: part["steady_epoch_s"].dropna().to_numpy(float) for key, part in by_key(ok).items()}


def _ratio_text(ratio: float, faster: np.ndarray, slower: np.ndarray) -> tuple[str, bool]:
    """``2.0x (1.9-2.1)``, the ratio with its 95% interval over processes, and whether that interval shows a
    difference (it does not when it reaches 1: the two are within the noise)."""
    if len(faster) < MIN_PROCESSES or len(slower) < MIN_PROCESSES:
        return f"{fmt_ratio(ratio)} (too few processes for an interval)", True
    _, low, high, _ = welch_log_ratio(faster, slower, 0.95)
    return f"{fmt_ratio(ratio)} ({fmt_num(low, '.2f')}-{fmt_num(high, '.2f')})", low > 1


def race_lines(table: pd.DataFrame, times: dict[RowKey, np.ndarray] | None = None) -> list[str]:
    """One hyperfine-style sentence per model that more than one row timed, fastest first, saying how sure.

    ``numpy:reference ran 2.0x (1.9-2.1) faster than keras:graph for lstm``: the ratio of the rows' steady
    times with the 95% interval of that ratio over their processes (``times``, from :func:`process_times`).
    A row whose interval reaches 1 ran "as fast as" the fastest, within the noise.  The device is named only
    when the rows ran on more than one.
    """
    out = []
    times = times or {}
    timed = table[table["steady_epoch_ms"].notna()]
    for (_, _, model), part in timed.groupby(list(RACE_FIELDS), sort=True, dropna=False):
        if len(part) < 2:
            continue
        part = part.sort_values(["steady_epoch_ms", "backend", "implementation"])
        devices = part["device"].nunique() > 1

        def name(r: dict[str, Any], devices: bool = devices) -> str:
            env = f"@{r['env']}" if r.get("env") else ""  # an A/B run: the environment
            return f"{r['backend']}:{r['implementation']}" + (f"/{r['device']}" if devices else "") + env

        def values(r: dict[str, Any]) -> np.ndarray:
            return times.get(RowKey(*(str(r[k]) for k in KEY_FIELDS)), np.array([]))

        first, *rest = part.to_dict("records")
        against = []
        for r in rest:
            text, sure = _ratio_text(r["steady_epoch_ms"] / first["steady_epoch_ms"], values(first), values(r))
            noise = f"as fast as {name(r)} ({text}: within the noise)"
            against.append(f"{text} faster than {name(r)}" if sure else noise)
        listed = against[0] if len(against) == 1 else ", ".join(against[:-1]) + " and " + against[-1]
        out.append(f"{name(first)} ran {listed} for {model}")
    return out


def describe_machine(machine: dict[str, Any]) -> str:
    m = machine.get("machine") or {}
    parts = [str(m.get("cpu", "unknown CPU")), f"{m.get('cores', '?')} cores"]
    if m.get("memory_gb"):
        parts.append(f"{m['memory_gb']} GB")
    if m.get("gpus"):  # a list of models, one per GPU
        parts.append(", ".join(map(str, m["gpus"])) if isinstance(m["gpus"], list) else str(m["gpus"]))
    parts += [str(m.get("os", "")), f"Python {m.get('python', '?')}", f"host {m.get('hostname', '?')}"]
    cal = machine.get("calibration")
    cal_s = calibration_seconds(cal)
    if cal_s is not None:
        parts.append(f"calibration {cal_s * 1e3:.2f} ms")
    elif isinstance(cal, dict) and cal.get("error"):
        parts.append(f"calibration failed: {cal['error']}")
    return ", ".join(p for p in parts if p)


def _info_lines(info: dict[str, Any]) -> list[str]:
    lines = []
    planned = info["cells_planned"]
    count = f"{info['cells_done']} of {planned} cells" if isinstance(planned, int) else f"{info['cells_done']} cells"
    if info.get("remeasured"):
        count += f" ({info['remeasured']} re-measured after a disturbance)"
    ended = f"ended {info['ended']}" if info["ended"] else "no end time (still running, or killed)"
    lines.append(f"run {info['run_id']}: {info['status']}, {count}, started {info['started'] or '?'}, {ended}")
    for name, env in (info.get("envs") or {}).items():  # an A/B run: what each environment runs
        env = env if isinstance(env, dict) else {}
        git: dict[str, Any] = env["git"] if isinstance(env.get("git"), dict) else {}
        commit = f", git {str(git.get('commit'))[:12]}{' (dirty)' if git.get('dirty') else ''}" if git.get("commit") \
            else ""
        lines.append(f"environment {name}: {env.get('executable', '?')} (seqbench {env.get('seqbench_version', '?')}"
                     f"{commit})")  # fmt: skip
    if info["partial"]:
        why = {RunStatus.INTERRUPTED: "the run was interrupted",
               RunStatus.RUNNING: "the run never finished (still running, or killed)",
               RunStatus.FAILED: "the run stopped on an error", RunStatus.PARTIAL: "not every part was merged"}
        lines.append(f"PARTIAL: {why.get(info['status'], 'not every planned cell finished')}; "
                     f"this report shows the {count} that finished")  # fmt: skip
    for mid, machine in info["machines"].items():
        lines.append(f"machine {mid}: {describe_machine(machine)}")
    if info["packages"]:
        lines.append("packages: " + ", ".join(f"{k} {v}" for k, v in sorted(info["packages"].items())))
    if info["git"]:
        dirty = " (uncommitted changes)" if info["git"].get("dirty") else ""
        lines.append(f"git: {str(info['git'].get('commit'))[:12]}{dirty}")
    if info["shard"]:
        lines.append(f"shard {info['shard'].get('index')}/{info['shard'].get('count')} of the matrix")
    if info["merged_from"]:
        lines.append("merged from: " + ", ".join(map(str, info["merged_from"])))
    lines += [f"note: {note}" for note in info["notes"]]
    epochs = (info.get("config") or {}).get("epochs")
    if isinstance(epochs, int) and epochs < 2:
        lines.append(f"NO STEADY TIMES: the run trained {epochs} epoch per cell; steady times come from epochs 2..N, "
                     "so no row has steady ms or 'x vs fastest' (first-epoch times only)")
    return [one_line(line) for line in lines]


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The summary as the strings a person reads: medians with their spread."""
    show_gpu = table["gpu_ms"].notna().any()
    show_cal = table["steady_cal"].notna().any()
    show_machine = table["machine"].str.contains(",").any() or table["machine"].nunique() > 1
    show_baseline = table["baseline"].notna().any()
    show_flops = table["gflops_per_s"].notna().any()
    show_share = table["peak_share"].notna().any()
    show_race = bool(race_lines(table))  # some model was timed on more than one row
    show_env = "env" in table and table["env"].astype(str).ne("").any()
    show_inference = _has_inference(table)
    metrics = set(table["metric"].dropna())
    # The primary metric's own name heads the column when the table has one metric (today's "accuracy").
    score_title = next(iter(metrics)) if len(metrics) == 1 else "score"
    rows = []
    for r in table.to_dict("records"):
        f = score_format(r["metric"])
        score = fmt_range(f(r["score"]), r["score_min"], r["score_max"], f)
        row = {
            "backend": r["backend"], "impl": r["implementation"], "model": r["model"], "device": r["device"],
            "status": r["status"], "params": fmt_num(r["params"], ".0f"),
            score_title: score if len(metrics) == 1 else f"{r['metric']} {score}",
        }  # fmt: skip
        if show_env:  # an A/B run: A and B of a row side by side
            row = {"env": r["env"], **row}
        if show_baseline:
            row["baseline"] = f(r["baseline"])
        row.update({
            "final loss": fmt_num(r["final_loss"], ".4g"),
            "first ms": fmt_range(fmt_ms(r["first_epoch_ms"]), r["first_epoch_min_ms"], r["first_epoch_max_ms"],
                                  fmt_ms),
            "steady ms": fmt_range(fmt_ms(r["steady_epoch_ms"]), r["steady_min_ms"], r["steady_max_ms"], fmt_ms)
            + ("*" if r["disturbed"] else ""),
            "x vs fastest": fmt_ratio(r["vs_fastest"]),
            "cpu ms": fmt_ms(r["cpu_ms"]),
        })  # fmt: skip
        if not show_race:
            del row["x vs fastest"]
        if show_flops:
            row["GFLOP/s"] = fmt_num(r["gflops_per_s"], ".3g")
        if show_share:
            row["% peak"] = fmt_num(100 * r["peak_share"], ".0f") if is_number(r["peak_share"]) else "-"
        if show_gpu:
            row["gpu ms"] = fmt_ms(r["gpu_ms"])
        row.update({"samples/s": fmt_num(r["samples_per_s"], ",.0f"), "peak MB": fmt_num(r["peak_rss_mb"], ".0f")})
        if show_inference:
            row.update({
                "latency ms": fmt_range(fmt_ms(r["latency_p50_ms"]), r["latency_min_ms"], r["latency_max_ms"], fmt_ms),
                "p99 ms": fmt_ms(r["latency_p99_ms"]), "1st call ms": fmt_ms(r["latency_first_ms"]),
                "pred/s": fmt_num(r["throughput_per_s"], ",.0f"),
            })  # fmt: skip
        if show_cal:
            row["steady/cal"] = fmt_num(r["steady_cal"], ".3g")
        row["path"] = r["implementation_path"] or "-"
        if show_machine:
            row["machine"] = r["machine"]
        rows.append(row)
    return pd.DataFrame(rows)


COMPACT_COLUMNS = ("backend", "model", "status", "steady ms", "x vs fastest")
INFERENCE_COLUMNS = ("latency ms", "p99 ms", "1st call ms", "pred/s")


def compact(shown: pd.DataFrame) -> pd.DataFrame:
    """A :func:`display_table` cut to what a PR comment shows first.

    backend (``backend:implementation/device``), model, the primary metric's column, steady ms, x vs
    fastest, and status only when some seed did not end ok.
    """
    names = shown.rename(columns={"impl": "implementation"})
    out = pd.DataFrame({"backend": [entrant_name(r) for r in names.to_dict("records")]})
    out["model"] = list(shown["model"])
    fixed = {"env", "backend", "impl", "model", "device", "status", "params", "baseline", "final loss", "first ms",
             "steady ms", "x vs fastest", "cpu ms", "GFLOP/s", "% peak", "gpu ms", "samples/s", "peak MB",
             "steady/cal", "path", "machine", *INFERENCE_COLUMNS}  # fmt: skip
    score = next(c for c in shown.columns if c not in fixed)  # the primary metric's column (or "score")
    out[score] = list(shown[score])
    for column in ("steady ms", "x vs fastest", "latency ms"):
        if column in shown:
            out[column] = list(shown[column])
    if not shown["status"].eq(Status.OK).all():
        out["status"] = list(shown["status"])
    return out



# The columns that hold numbers: aligned right, and never wrapped.
RIGHT = {"x vs fastest", "params", "accuracy", "final loss", "first ms", "steady ms", "cpu ms", "gpu ms",
         "samples/s", "peak MB", "steady/cal", "score", "baseline", "mse", "mae", "cross_entropy", "GFLOP/s",
         "% peak", *INFERENCE_COLUMNS}  # fmt: skip


# Columns left out, in this order, when a table must fit a terminal: the least read first.  What is left
# answers "who is fastest, how sure, and did it learn": backend, model, the primary metric and the times.
DROP_ORDER = ("path", "peak MB", "samples/s", "steady/cal", "cpu ms", "% peak", "1st call ms", "params", "p99 ms",
              "final loss", "baseline", "GFLOP/s", "gpu ms", "pred/s", "device", "first ms", "latency ms",
              "status")  # fmt: skip


def fit_columns(frame: pd.DataFrame, width: int | None) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` without the fewest :data:`DROP_ORDER` columns that make its text table fit ``width``.

    Returns the table and the names of the columns left out (none when ``width`` is None).
    """
    dropped: list[str] = []
    if width is None:
        return frame, dropped
    for column in DROP_ORDER:
        if table_width(frame) <= width:
            break
        if column == "status" and not frame[column].eq(Status.OK).all():
            continue  # a failure is news: keep it
        if column == "device" and frame[column].nunique() > 1:
            continue
        if column in frame:
            frame = frame.drop(columns=[column])
            dropped.append(column)
    return frame, dropped


# The width, in characters of the text table (:func:`seqbench.tables.table_width`), of a table that the HTML
# report shows in full on a 1280 px screen: measured in Chromium, a column costs about 7.5 px a character
# with its padding and the page leaves about 1,200 px, so 140 leaves room for a wider font.
HTML_WIDTH = 140
# Text columns that can be long: cut in the HTML table, whole in the cell's tooltip.
CLIPPED = ("path", "machine", "status")


def _task_heading(task: str, experiment: str) -> str:
    return f"task {task}: {experiment}"


def _disturbed_lines(table: pd.DataFrame) -> list[str]:
    n = int(table["disturbed"].sum()) if len(table) else 0
    return [DISTURBED_NOTE.format(n=n)] if n else []


def _failure_lines(bad: pd.DataFrame) -> list[str]:
    return [
        f"{r['task']} {entrant_name(r)} {r['model']} seed={int(r['seed'])}: "
        f"{r['status']}{': ' + r['reason'] if r['reason'] else ''}"
        for r in bad.to_dict("records")
    ]


def render_summary(run: Run, width: int | None = None) -> str:
    """The terminal report: what ``seqbench run`` prints at the end, and ``seqbench report``."""
    return render(run, "text", width=width)


@dataclass
class _Views:
    """What every format of the report shows, computed once."""

    run: Run
    info: dict[str, Any]
    table: pd.DataFrame  # the summary
    bad: pd.DataFrame  # the failures
    times: dict[RowKey, np.ndarray]  # each row's steady times, one per process (the race lines' intervals)

    def experiments(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """Each experiment's heading and its rows of the summary: one table each."""
        for (task, experiment), part in self.table.groupby(["task", "experiment"], sort=True):
            yield _task_heading(str(task), str(experiment)), part


def render(run: Run, fmt: str = "text", plots: bool = True, width: int | None = None) -> str:
    """The whole report in ``fmt`` (one of :data:`FORMATS`).

    ``plots`` applies to HTML only: embed the figures (needs matplotlib).  ``width`` applies to text only:
    the terminal's width, which every table is fitted to (:func:`fit_columns`, then laid out by rich);
    None (a file, a pipe) keeps every column.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    cells = cell_view(run)
    views = _Views(run, run_info(run), summary(cells), failures(cells), process_times(cells))
    if fmt == "csv":
        return csv_text(views.table)
    if fmt == "json":
        doc = {"report_version": REPORT_VERSION, "run": views.info, "summary": records(views.table),
               "failures": records(views.bad)}  # fmt: skip
        return json.dumps(jsonable(doc), indent=2) + "\n"
    if fmt == "text":
        return _render_text(views, width)
    if fmt == "md":
        return _render_markdown(views)
    return _render_html(views, plots)


def _render_text(v: _Views, width: int | None) -> str:
    out = _info_lines(v.info)
    left_out: list[str] = []
    for heading, part in v.experiments():
        shown, dropped = fit_columns(display_table(part), width)
        left_out += [c for c in dropped if c not in left_out]
        laid_out = text_table(shown, RIGHT) if width is None else rich_text_table(shown, width, RIGHT)
        races = race_lines(part, v.times)
        if width is not None:  # a terminal: wrap between words, never inside one
            races = [text for line in races for text in textwrap.wrap(line, width, subsequent_indent="  ")]
        out += ["", one_line(heading), laid_out, *races]
    if left_out:
        out += ["", f"left out to fit {width} columns: {', '.join(left_out)} (a wider terminal, or "
                "--format csv, shows them)"]  # fmt: skip
    out += _disturbed_lines(v.table)
    if v.table.empty:
        out += ["", "no cells finished"]
    if not v.bad.empty:
        out += ["", "cells that did not end ok:"] + ["  " + one_line(line) for line in _failure_lines(v.bad)]
    if not v.table.empty:
        out += ["", legend(v.table)]
    if width is not None:  # prose wraps at the terminal's edge, tables were fitted to it
        out = [line if "\n" in line or len(line) <= width else
               textwrap.fill(line, width, subsequent_indent="  ", break_on_hyphens=False) for line in out]
    return terminal("\n".join(out))


def _render_markdown(v: _Views) -> str:
    out = [f"## seqbench run {markdown(v.info['run_id'])}", ""]
    for line in _info_lines(v.info):
        out.append(f"> **{markdown(line)}**" if line.startswith("PARTIAL") else f"- {markdown(line)}")
    for heading, part in v.experiments():
        full = display_table(part)
        out += ["", f"### {markdown(heading)}", "", md_table(compact(full), RIGHT)]
        out += [text for line in race_lines(part, v.times) for text in ("", markdown(line))]
        out += ["", "<details><summary>All columns</summary>", "", md_table(full, RIGHT), "", "</details>"]
    out += [text for line in _disturbed_lines(v.table) for text in ("", f"> **{markdown(line)}**")]
    if v.table.empty:
        out += ["", "No cells finished."]
    if not v.bad.empty:
        out += ["", "**Cells that did not end ok:**", ""] + [f"- {markdown(line)}" for line in _failure_lines(v.bad)]
    if not v.table.empty:
        out += ["", f"<sub>{legend(v.table)}</sub>"]
    return "\n".join(out) + "\n"


def _render_html(v: _Views, plots: bool) -> str:
    parts = [f"<h1>seqbench run {html_text(v.info['run_id'])}</h1>", "<ul>"]
    for line in _info_lines(v.info):
        if line.startswith("PARTIAL"):
            parts.insert(1, f'<p class="partial"><strong>{html_text(line)}</strong></p>')
        else:
            parts.append(f"<li>{html_text(line)}</li>")
    parts.append("</ul>")
    for heading, part in v.experiments():
        # One line a row, never a sideways scroll: the least read columns (DROP_ORDER) go to a second table
        # that opens on a click, as the terminal leaves them out; numbers never wrap, headers do.
        full = display_table(part)
        shown, dropped = fit_columns(full, HTML_WIDTH)
        parts += [f"<h2>{html_text(heading)}</h2>", f'<div class="fit">{html_table(shown, RIGHT, CLIPPED)}</div>']
        if dropped:
            keys = [c for c in ("env", "backend", "impl", "model", "device") if c in full and c not in dropped]
            more = full[keys + [c for c in full.columns if c in dropped]]
            parts.append(f"<details class=\"more\"><summary>More columns: {html_text(', '.join(dropped))}</summary>"
                         f'<div class="fit">{html_table(more, RIGHT, CLIPPED)}</div></details>')  # fmt: skip
        parts += [f"<p>{html_text(line)}</p>" for line in race_lines(part, v.times)]
    parts += [f'<p class="warning">{html_text(line)}</p>' for line in _disturbed_lines(v.table)]
    if v.table.empty:
        parts.append("<p>No cells finished.</p>")
    if not v.bad.empty:
        items = "".join(f"<li>{html_text(line)}</li>" for line in _failure_lines(v.bad))
        parts.append(f"<h2>Cells that did not end ok</h2><ul>{items}</ul>")
    if not v.table.empty:
        parts.append(f'<p class="legend">{html_text(legend(v.table))}</p>')
    if plots and not v.table.empty:
        from seqbench import plots as plotting

        parts.append("<h2>Plots</h2>")
        try:
            pngs = plotting.run_pngs(v.run)
        except plotting.PlotError as e:
            parts.append(f'<p class="warning">No plots: {html_text(str(e))}</p>')
            pngs = {}
        for name, png in pngs.items():
            parts.append(f"<h3>{html_text(plotting.TITLES.get(name, name))}</h3>{png_img(png, name)}")
    return html_page(f"seqbench run {v.info['run_id']}", "\n".join(parts))

