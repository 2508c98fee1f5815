"""Views of a stored run: pandas DataFrames computed from it, then rendered.

Every view is a function of the loaded :class:`~seqbench.results.Run` (no
state, no cache): :func:`cell_view` (cells with their machine's calibration),
:func:`steady_epochs` (the per-epoch samples behind each time), :func:`summary`
(one row per task x backend x implementation x model x device, over seeds),
:func:`failures` and :func:`run_info`.  :func:`render` turns them into text,
Markdown, CSV, JSON or one self-contained HTML page.

pandas is imported at the top of this module, so the CLI imports this module
only inside the commands that need it.
"""

from __future__ import annotations

import base64
import json
import math
import textwrap
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from seqbench.calibration import machines, score
from seqbench.escape import html_text, markdown, one_line, terminal
from seqbench.results import COMPLETED, EXPERIMENT_FIELDS, STATUS_OK, Run, experiment_label

# A row of a report is a backend's implementation of a model on a device, in
# one experiment (the task with its parameters, units, activation, epochs,
# batch size, threads and dtype: results.EXPERIMENT_FIELDS).
KEYS = ["task", "experiment", "backend", "implementation", "model", "device"]
SEED_KEYS = [*KEYS, "seed"]
FORMATS = ("text", "md", "csv", "json", "html")
REPORT_VERSION = 1  # of the JSON report's layout

_NUMERIC_CELL = ["seed", "epochs_run", "params", "final_loss", "accuracy", "mse", "mae", "probe_prediction",
                 "probe_target", "first_epoch_s", "steady_epoch_s", "cpu_s", "gpu_s", "samples_per_s",
                 "peak_rss_mb", "build_s", "attempt", "interference", "baseline", "flops", "gflops_per_s",
                 "peak_share"]  # fmt: skip
_NUMERIC_EPOCH = ["seed", "epoch", "loss", "wall_s", "cpu_s", "gpu_s", "attempt", "other_cpu_s"]

SUMMARY_COLUMNS = [
    "seeds", "ok", "failed", "status", "params",
    "accuracy", "accuracy_min", "accuracy_max", "final_loss",
    "metric", "score", "score_min", "score_max", "baseline", "gflops_per_s", "peak_share",
    "first_epoch_ms", "first_epoch_min_ms", "first_epoch_max_ms",
    "steady_epoch_ms", "steady_min_ms", "steady_max_ms", "vs_fastest", "processes", "disturbed",
    "cpu_ms", "gpu_ms", "samples_per_s", "peak_rss_mb", "steady_cal", "path", "machine",
]  # fmt: skip

LEGEND = (
    "accuracy (or the task's primary metric): median (min-max) over seeds; baseline: that metric for a model "
    "that ignores its input; first: first epoch in a fresh process (imports, compile, trace), median (min-max) "
    "over processes; steady: each process's median of epochs 2..N, then the median (min-max) over processes, "
    "one per seed; cpu/gpu: process CPU and device time per steady epoch"
)
DISTURBED_NOTE = ("DISTURBED: other processes took CPU during {n} of the measurements behind this table "
                  "(marked * in the steady column); their times say more about the neighbours than the code")
LEGEND_CAL = "; steady/cal: steady epoch in calibration units (see docs/reports.md)"


def legend(table: pd.DataFrame) -> str:
    return LEGEND + (LEGEND_CAL if table["steady_cal"].notna().any() else "")


# ------------------------------------------------------------------ views


def _numeric(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def cell_view(run: Run) -> pd.DataFrame:
    """The cells that count, numeric columns as floats, each with its experiment, machine and calibration.

    A repeat measured again because it was disturbed (``attempt`` 2, 3, ...)
    appears once: its latest undisturbed attempt, else its latest attempt.
    Runs written before these columns existed get them from run.json's config.
    """
    cells = _numeric(run.cells, _NUMERIC_CELL)
    config: dict[str, Any] = dict(run.meta.get("config") or {})
    cells["attempt"] = cells["attempt"].fillna(1.0) if "attempt" in cells else 1.0
    cells["disturbed"] = cells["disturbed"].eq(True) if "disturbed" in cells else False
    defaults = {name: config.get(name) for name in EXPERIMENT_FIELDS} | {
        "task_params": config.get("task_params") or {}, "dtype": "float32"}
    for column, default in defaults.items():  # a failed cell, or a run older than the column
        values = cells[column] if column in cells else pd.Series([None] * len(cells), index=cells.index)
        cells[column] = [v if v is not None and not (isinstance(v, float) and math.isnan(v)) else default
                         for v in values]  # fmt: skip
    cells["experiment"] = [experiment_label(r) for r in cells.to_dict("records")] if len(cells) else []
    if len(cells):  # latest undisturbed attempt first, then latest attempt: keep the first of each repeat
        order = cells.assign(_clean=~cells["disturbed"]).sort_values(["_clean", "attempt"], ascending=False)
        keep = order.drop_duplicates(SEED_KEYS).index
        cells = cells.loc[sorted(keep)].reset_index(drop=True)
    known = machines(run.meta)
    default = next(iter(known))
    if "machine" not in cells:
        cells["machine"] = None
    cells["machine"] = cells["machine"].where(cells["machine"].notna(), default).astype(object)
    scores = {mid: score(m.get("calibration")) for mid, m in known.items()}
    cells["calibration_s"] = cells["machine"].map(lambda m: scores.get(m)).astype("float64")
    return cells


def steady_epochs(cells: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Epochs 2..N of every completed cell of ``cells`` (a :func:`cell_view`), with its experiment.

    Carries the cell's ``calibration_s`` when ``cells`` has it.
    """
    return epoch_view(cells, epochs).query("epoch >= 2").reset_index(drop=True)


def epoch_view(cells: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """The epochs of the completed cells of ``cells`` (a :func:`cell_view`): superseded attempts dropped."""
    epochs = _numeric(epochs, _NUMERIC_EPOCH)
    epochs["attempt"] = epochs["attempt"].fillna(1.0) if "attempt" in epochs else 1.0
    done = cells[cells["status"].isin(COMPLETED)]
    join = [k for k in SEED_KEYS if k != "experiment"] + ["attempt"]
    if "experiment" in epochs and epochs["experiment"].notna().all():
        join.append("experiment")
    keep = list(dict.fromkeys([*join, "experiment"] + (["calibration_s"] if "calibration_s" in done else [])))
    epochs = epochs.drop(columns=[c for c in keep if c not in join and c in epochs])
    if epochs.empty or done.empty:  # nothing to join (and empty columns have no type to join on)
        return pd.DataFrame(columns=list(dict.fromkeys([*epochs.columns, *keep])))
    return epochs.merge(done[keep].drop_duplicates(join), on=join).reset_index(drop=True)


def primary_scores(cells: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each cell's primary metric name and value.

    From the cell's ``metrics`` and ``primary_metric`` (seqbench 0.2); cells
    written before then have neither and score their ``accuracy``.
    """
    names = cells["primary_metric"] if "primary_metric" in cells else pd.Series(None, index=cells.index)
    names = names.where(names.notna(), "accuracy").astype(object)
    metrics = cells["metrics"] if "metrics" in cells else pd.Series(None, index=cells.index)
    values = []
    for name, found, (_, row) in zip(names, metrics, cells.iterrows(), strict=True):
        value = found.get(name) if isinstance(found, dict) else row.get(name)
        values.append(value)
    return names, pd.to_numeric(pd.Series(values, index=cells.index, dtype=object), errors="coerce").astype("float64")


def _status_text(statuses: pd.Series) -> str:
    counts = statuses.value_counts()
    if len(counts) == 1 and counts.index[0] == STATUS_OK:
        return STATUS_OK
    order = sorted(counts.index, key=lambda s: (s != STATUS_OK, s))
    return ", ".join(f"{counts[s]} {s}" for s in order)


def _median(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.median()) if len(values) else math.nan


def _agg(values: pd.Series, how: str) -> float:
    values = values.dropna()
    return float(getattr(values, how)()) if len(values) else math.nan


def summary(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per task x experiment x backend x implementation x model x device, over processes.

    ``cells`` is a :func:`cell_view`.  Each completed repeat ran in its own
    process and contributes one steady time (its median of epochs 2..N); the
    row's time is the median over processes, with their min and max, so the
    spread shown is the variation between processes (DESIGN.md).  First-epoch
    times come from cold processes only.  Failed seeds are counted in
    ``failed`` and named by :func:`failures`; ``disturbed`` counts the repeats
    that ran while other processes took CPU.
    """
    if cells.empty:
        return pd.DataFrame(columns=KEYS + SUMMARY_COLUMNS)
    cells = _numeric(cells, _NUMERIC_CELL)
    cells["_metric"], cells["_score"] = primary_scores(cells)
    for column in ("baseline", "gflops_per_s", "peak_share"):
        if column not in cells:
            cells[column] = math.nan
    rows = []
    for key, group in cells.groupby(KEYS, sort=True, dropna=False):
        ok = group[group["status"].isin(COMPLETED)]
        cold = ok[ok["cold"].ne(False)] if "cold" in ok else ok
        row: dict[str, Any] = dict(zip(KEYS, key, strict=True))
        steady = ok["steady_epoch_s"].dropna()
        # throughput from the same median as the steady time, so that the two columns agree:
        # each cell recorded samples/s = samples per epoch / its own steady median
        samples = (ok["samples_per_s"] * ok["steady_epoch_s"]).dropna()
        normalised = ok["steady_epoch_s"] / ok["calibration_s"] if "calibration_s" in ok else pd.Series(dtype=float)
        machine_ids = sorted({str(m) for m in group.get("machine", pd.Series()).dropna()})
        row.update(
            seeds=len(group),
            ok=len(ok),
            failed=len(group) - len(ok),
            status=_status_text(group["status"]),
            params=_agg(ok["params"] if not ok.empty else group["params"], "max"),
            accuracy=_median(ok["accuracy"]),
            accuracy_min=_agg(ok["accuracy"], "min"),
            accuracy_max=_agg(ok["accuracy"], "max"),
            final_loss=_median(ok["final_loss"]),
            metric=",".join(sorted({str(m) for m in group["_metric"]})),
            score=_median(ok["_score"]),
            score_min=_agg(ok["_score"], "min"),
            score_max=_agg(ok["_score"], "max"),
            baseline=_median(ok["baseline"]),
            gflops_per_s=_median(ok["gflops_per_s"]),
            peak_share=_median(ok["peak_share"]),
            first_epoch_ms=_median(cold["first_epoch_s"]) * 1e3,
            first_epoch_min_ms=_agg(cold["first_epoch_s"], "min") * 1e3,
            first_epoch_max_ms=_agg(cold["first_epoch_s"], "max") * 1e3,
            steady_epoch_ms=_median(steady) * 1e3,
            steady_min_ms=_agg(steady, "min") * 1e3,
            steady_max_ms=_agg(steady, "max") * 1e3,
            processes=len(steady),
            disturbed=int(ok["disturbed"].sum()) if "disturbed" in ok else 0,
            cpu_ms=_median(ok["cpu_s"]) * 1e3,
            gpu_ms=_median(ok["gpu_s"]) * 1e3,
            samples_per_s=_median(samples) / _median(steady) if len(samples) and len(steady) else math.nan,
            peak_rss_mb=_agg(ok["peak_rss_mb"], "max"),
            steady_cal=_median(normalised),
            path=",".join(sorted({str(p) for p in ok["implementation_path"].dropna()})),
            machine=",".join(machine_ids),
        )
        rows.append(row)
    table = pd.DataFrame(rows, columns=KEYS + SUMMARY_COLUMNS)
    table["vs_fastest"] = vs_fastest(table)
    return table


# Rows that race each other: the same model in the same experiment (backends and devices differ).
RACE_KEYS = ["task", "experiment", "model"]


def vs_fastest(table: pd.DataFrame) -> pd.Series:
    """Each row's steady time over the fastest steady time of its task, experiment and model (1.0: fastest)."""
    if table.empty:
        return pd.Series(dtype="float64")
    fastest = table.groupby(RACE_KEYS, dropna=False)["steady_epoch_ms"].transform("min")
    return (table["steady_epoch_ms"] / fastest).astype("float64")


def race_lines(table: pd.DataFrame) -> list[str]:
    """One hyperfine-style sentence per model that more than one row timed, fastest first.

    ``numpy:reference ran 2.0x faster than keras:graph and 4.6x faster than torch:loop for lstm``.
    The device is named only when the rows ran on more than one.
    """
    out = []
    timed = table[table["steady_epoch_ms"].notna()]
    for (_, _, model), part in timed.groupby(RACE_KEYS, sort=True, dropna=False):
        if len(part) < 2:
            continue
        part = part.sort_values(["steady_epoch_ms", "backend", "implementation"])
        devices = part["device"].nunique() > 1

        def name(r: dict[str, Any], devices: bool = devices) -> str:
            return f"{r['backend']}:{r['implementation']}" + (f"/{r['device']}" if devices else "")

        first, *rest = part.to_dict("records")
        against = [f"{fmt_ratio(r['steady_epoch_ms'] / first['steady_epoch_ms'])} faster than {name(r)}"
                   for r in rest]  # fmt: skip
        listed = against[0] if len(against) == 1 else ", ".join(against[:-1]) + " and " + against[-1]
        out.append(f"{name(first)} ran {listed} for {model}")
    return out


def fmt_ratio(v: Any) -> str:
    """A ratio of times, the same precision everywhere: ``1.00x``, ``4.60x``, ``18.2x``, ``180x``."""
    if not _ok(v):
        return "-"
    v = float(v)
    return f"{v:.0f}x" if v >= 100 else f"{v:.1f}x" if v >= 10 else f"{v:.2f}x"


def _reason(error: Any) -> str:
    if not isinstance(error, str) or not error.strip():
        return ""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def failures(cells: pd.DataFrame) -> pd.DataFrame:
    """Every cell that did not end ``ok``, with the last line of its error as the reason."""
    columns = [*SEED_KEYS, "status", "epochs_run", "reason"]
    if cells.empty:
        return pd.DataFrame(columns=columns)
    bad = cells[cells["status"] != STATUS_OK].copy()
    bad["reason"] = [
        _reason(e) or (f"loss became non-finite at epoch {int(n)}" if s == "diverged" and pd.notna(n) else "")
        for e, s, n in zip(bad["error"], bad["status"], pd.to_numeric(bad["epochs_run"], errors="coerce"), strict=True)
    ]
    return bad[columns].sort_values(SEED_KEYS).reset_index(drop=True)


def run_info(run: Run) -> dict[str, Any]:
    """What a reader needs to know about the run before trusting its table."""
    meta = run.meta
    attempts = pd.to_numeric(run.cells["attempt"], errors="coerce") if "attempt" in run.cells else None
    again = int((attempts > 1).sum()) if attempts is not None else 0  # disturbed repeats measured again
    done = len(run.cells) - again
    planned = meta.get("cells_planned")
    status = run.status
    git = meta.get("git") if isinstance(meta.get("git"), dict) else None
    return {
        "run_id": run.path.name,
        "path": str(run.path),
        "status": status,
        "partial": status != "complete" or (isinstance(planned, int) and done < planned),
        "cells_done": done,
        "remeasured": again,
        "cells_planned": planned,
        "started": meta.get("started"),
        "ended": meta.get("ended"),
        "seqbench_version": meta.get("seqbench_version"),
        "format_version": meta.get("format_version"),
        "git": git,
        "config": meta.get("config", {}),
        "shard": meta.get("shard"),
        "machines": machines(meta),
        "packages": meta.get("packages", {}),
        "merged_from": [m.get("run_id") for m in meta.get("merged_from") or [] if isinstance(m, dict)],
        "notes": list(run.notes),
    }


def describe_machine(machine: dict[str, Any]) -> str:
    m = machine.get("machine") or {}
    parts = [str(m.get("cpu", "unknown CPU")), f"{m.get('cores', '?')} cores"]
    if m.get("memory_gb"):
        parts.append(f"{m['memory_gb']} GB")
    parts += [str(m.get("os", "")), f"Python {m.get('python', '?')}", f"host {m.get('hostname', '?')}"]
    cal = machine.get("calibration")
    cal_s = score(cal)
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
    if info["partial"]:
        why = {"interrupted": "the run was interrupted", "running": "the run never finished (still running, "
               "or killed)", "failed": "the run stopped on an error", "partial": "not every part was merged"}
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
    return [one_line(line) for line in lines]


# ------------------------------------------------------------------ formatting


def _ok(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def fmt_ms(v: Any) -> str:
    if not _ok(v):
        return "-"
    v = float(v)
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 0.1:
        return f"{v:.2f}"
    return f"{v:.2g}"


def _fmt(v: Any, spec: str) -> str:
    return format(float(v), spec) if _ok(v) else "-"


def _range(mid: str, low: Any, high: Any, f: Callable[[Any], str]) -> str:
    if mid == "-" or not (_ok(low) and _ok(high)) or f(low) == f(high):
        return mid
    return f"{mid} ({f(low)}-{f(high)})"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The summary as the strings a person reads: medians with their spread."""
    show_gpu = table["gpu_ms"].notna().any()
    show_cal = table["steady_cal"].notna().any()
    show_machine = table["machine"].str.contains(",").any() or table["machine"].nunique() > 1
    show_baseline = table["baseline"].notna().any()
    show_flops = table["gflops_per_s"].notna().any()
    show_share = table["peak_share"].notna().any()
    show_race = bool(race_lines(table))  # some model was timed on more than one row
    metrics = set(table["metric"].dropna())
    # The primary metric's own name heads the column when the table has one metric (today's "accuracy").
    score_title = next(iter(metrics)) if len(metrics) == 1 else "score"
    rows = []
    for r in table.to_dict("records"):
        f = _score_format(r["metric"])
        score = _range(f(r["score"]), r["score_min"], r["score_max"], f)
        row = {
            "backend": r["backend"], "impl": r["implementation"], "model": r["model"], "device": r["device"],
            "status": r["status"], "params": _fmt(r["params"], ".0f"),
            score_title: score if len(metrics) == 1 else f"{r['metric']} {score}",
        }  # fmt: skip
        if show_baseline:
            row["baseline"] = f(r["baseline"])
        row.update({
            "final loss": _fmt(r["final_loss"], ".4g"),
            "first ms": _range(fmt_ms(r["first_epoch_ms"]), r["first_epoch_min_ms"], r["first_epoch_max_ms"], fmt_ms),
            "steady ms": _range(fmt_ms(r["steady_epoch_ms"]), r["steady_min_ms"], r["steady_max_ms"], fmt_ms)
            + ("*" if r["disturbed"] else ""),
            "x vs fastest": fmt_ratio(r["vs_fastest"]),
            "cpu ms": fmt_ms(r["cpu_ms"]),
        })  # fmt: skip
        if not show_race:
            del row["x vs fastest"]
        if show_flops:
            row["GFLOP/s"] = _fmt(r["gflops_per_s"], ".3g")
        if show_share:
            row["% peak"] = _fmt(100 * r["peak_share"], ".0f") if _ok(r["peak_share"]) else "-"
        if show_gpu:
            row["gpu ms"] = fmt_ms(r["gpu_ms"])
        row.update({"samples/s": _fmt(r["samples_per_s"], ",.0f"), "peak MB": _fmt(r["peak_rss_mb"], ".0f")})
        if show_cal:
            row["steady/cal"] = _fmt(r["steady_cal"], ".3g")
        row["path"] = r["path"] or "-"
        if show_machine:
            row["machine"] = r["machine"]
        rows.append(row)
    return pd.DataFrame(rows)


COMPACT_COLUMNS = ("backend", "model", "status", "steady ms", "x vs fastest")


def compact(shown: pd.DataFrame) -> pd.DataFrame:
    """A :func:`display_table` cut to what a PR comment shows first.

    backend (``backend:implementation/device``), model, the primary metric's column, steady ms, x vs
    fastest, and status only when some seed did not end ok.
    """
    out = pd.DataFrame({"backend": [f"{b}:{i}/{d}" for b, i, d in
                                    zip(shown["backend"], shown["impl"], shown["device"], strict=True)]})  # fmt: skip
    out["model"] = list(shown["model"])
    fixed = {"backend", "impl", "model", "device", "status", "params", "baseline", "final loss", "first ms",
             "steady ms", "x vs fastest", "cpu ms", "GFLOP/s", "% peak", "gpu ms", "samples/s", "peak MB",
             "steady/cal", "path", "machine"}  # fmt: skip
    score = next(c for c in shown.columns if c not in fixed)  # the primary metric's column (or "score")
    out[score] = list(shown[score])
    for column in ("steady ms", "x vs fastest"):
        if column in shown:
            out[column] = list(shown[column])
    if not shown["status"].eq(STATUS_OK).all():
        out["status"] = list(shown["status"])
    return out


def _score_format(metric: Any) -> Callable[[Any], str]:
    """Two decimals for accuracy (today's look), four significant digits for anything else."""
    spec = ".2f" if metric == "accuracy" else ".4g"
    return lambda v: _fmt(v, spec)


_RIGHT = {"x vs fastest", "params", "accuracy", "final loss", "first ms", "steady ms", "cpu ms", "gpu ms",
          "samples/s", "peak MB", "steady/cal", "score", "baseline", "mse", "mae", "cross_entropy", "GFLOP/s",
          "% peak"}  # fmt: skip


def text_table(frame: pd.DataFrame, right: set[str] | None = None) -> str:
    """A plain, aligned text table (no index)."""
    right = _RIGHT if right is None else right
    columns = list(frame.columns)
    cells = [[one_line(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        out = [v.rjust(w) if c in right else v.ljust(w) for v, w, c in zip(values, widths, columns, strict=True)]
        return "  ".join(out).rstrip()

    return "\n".join([line([str(c) for c in columns])] + [line(r) for r in cells])


# Columns left out, in this order, when a table must fit a terminal: the least read first.  What is left
# answers "who is fastest, how sure, and did it learn": backend, model, the primary metric and the times.
DROP_ORDER = ("path", "peak MB", "samples/s", "steady/cal", "cpu ms", "% peak", "params", "final loss", "baseline",
              "GFLOP/s", "gpu ms", "device", "first ms", "status")  # fmt: skip


def fit_columns(frame: pd.DataFrame, width: int | None) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` without the fewest :data:`DROP_ORDER` columns that make its text table fit ``width``.

    Returns the table and the names of the columns left out (none when ``width`` is None).
    """
    dropped: list[str] = []
    if width is None:
        return frame, dropped
    for column in DROP_ORDER:
        if _table_width(frame) <= width:
            break
        if column == "status" and not frame[column].eq(STATUS_OK).all():
            continue  # a failure is news: keep it
        if column == "device" and frame[column].nunique() > 1:
            continue
        if column in frame:
            frame = frame.drop(columns=[column])
            dropped.append(column)
    return frame, dropped


def _table_width(frame: pd.DataFrame) -> int:
    widths = [max([len(str(c))] + [len(one_line(v)) for v in frame[c]]) for c in frame.columns]
    return sum(widths) + 2 * max(0, len(widths) - 1)


def rich_text_table(frame: pd.DataFrame, width: int, right: set[str] | None = None) -> str:
    """The table laid out by rich for ``width`` columns, as plain text (no colour, no box).

    Numbers never wrap; a text column folds when even the fitted table is too wide.
    """
    import io

    from rich.console import Console
    from rich.table import Table

    right = _RIGHT if right is None else right
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_edge=False, header_style="")
    for c in frame.columns:
        table.add_column(str(c), justify="right" if c in right else "left", no_wrap=c in right,
                         overflow="fold")  # fmt: skip
    for row in frame.itertuples(index=False):
        table.add_row(*[one_line(v) for v in row])
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False, highlight=False,
            markup=False, emoji=False).print(table)  # fmt: skip
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())


def md_table(frame: pd.DataFrame, right: set[str] | None = None) -> str:
    right = _RIGHT if right is None else right

    head = "| " + " | ".join(markdown(c, line_start=False) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if c in right else "---" for c in frame.columns) + "|"
    body = ["| " + " | ".join(markdown(v, line_start=False) for v in row) + " |"
            for row in frame.itertuples(index=False)]  # fmt: skip
    return "\n".join([head, rule, *body])


def html_table(frame: pd.DataFrame, right: set[str] | None = None) -> str:
    right = _RIGHT if right is None else right
    head = "".join(f"<th>{html_text(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        tds = "".join(
            f'<td class="num">{html_text(v)}</td>' if c in right else f"<td>{html_text(v)}</td>"
            for c, v in zip(frame.columns, row, strict=True)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _task_heading(task: str, experiment: str) -> str:
    return f"task {task}: {experiment}"


def _disturbed_lines(table: pd.DataFrame) -> list[str]:
    n = int(table["disturbed"].sum()) if len(table) else 0
    return [DISTURBED_NOTE.format(n=n)] if n else []


def _failure_lines(bad: pd.DataFrame) -> list[str]:
    return [
        f"{r['task']} {r['backend']}:{r['implementation']}/{r['device']} {r['model']} seed={int(r['seed'])}: "
        f"{r['status']}{': ' + r['reason'] if r['reason'] else ''}"
        for r in bad.to_dict("records")
    ]


def jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return jsonable(float(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


INTEGER_COLUMNS = ("seeds", "ok", "failed", "params", "processes", "disturbed", "n_base", "n_new")


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV, counts written as integers (``131``, not the ``131.0`` a NaN-holding column gets)."""
    frame = frame.copy()
    for column in INTEGER_COLUMNS:
        if column in frame:
            values = pd.to_numeric(frame[column], errors="coerce")
            if (values.dropna() % 1 == 0).all():
                frame[column] = values.astype("Int64")
    return frame.to_csv(index=False)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready rows (NaN becomes null)."""
    return [jsonable(r) for r in frame.astype(object).to_dict("records")]


# ------------------------------------------------------------------ rendering


def render_summary(run: Run, width: int | None = None) -> str:
    """The terminal report: what ``seqbench run`` prints at the end, and ``seqbench report``."""
    return render(run, "text", width=width)


def render(run: Run, fmt: str = "text", plots: bool = True, width: int | None = None) -> str:
    """The whole report in ``fmt`` (one of :data:`FORMATS`).

    ``plots`` applies to HTML only: embed the figures (needs matplotlib).  ``width`` applies to text only:
    the terminal's width, which every table is fitted to (:func:`fit_columns`, then laid out by rich);
    None (a file, a pipe) keeps every column.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    cells = cell_view(run)
    table = summary(cells)
    bad = failures(cells)
    info = run_info(run)
    if fmt == "csv":
        return csv_text(table)
    if fmt == "json":
        doc = {"report_version": REPORT_VERSION, "run": info, "summary": records(table),
               "failures": records(bad)}  # fmt: skip
        return json.dumps(jsonable(doc), indent=2) + "\n"
    if fmt == "text":
        out = _info_lines(info)
        left_out: list[str] = []
        for (task, experiment), part in table.groupby(["task", "experiment"], sort=True):
            shown, dropped = fit_columns(display_table(part), width)
            left_out += [c for c in dropped if c not in left_out]
            laid_out = text_table(shown) if width is None else rich_text_table(shown, width)
            out += ["", one_line(_task_heading(str(task), str(experiment))), laid_out]
            out += race_lines(part)
        if left_out:
            out += ["", f"left out to fit {width} columns: {', '.join(left_out)} (a wider terminal, or "
                    "--format csv, shows them)"]  # fmt: skip
        out += _disturbed_lines(table)
        if table.empty:
            out += ["", "no cells finished"]
        if not bad.empty:
            out += ["", "cells that did not end ok:"] + ["  " + one_line(line) for line in _failure_lines(bad)]
        if not table.empty:
            out += ["", legend(table)]
        if width is not None:  # prose wraps at the terminal's edge, tables were fitted to it
            out = [line if "\n" in line or len(line) <= width else
                   textwrap.fill(line, width, subsequent_indent="  ", break_on_hyphens=False) for line in out]
        return terminal("\n".join(out))
    if fmt == "md":
        out = [f"## seqbench run {markdown(info['run_id'])}", ""]
        for line in _info_lines(info):
            out.append(f"> **{markdown(line)}**" if line.startswith("PARTIAL") else f"- {markdown(line)}")
        for (task, experiment), part in table.groupby(["task", "experiment"], sort=True):
            full = display_table(part)
            out += ["", f"### {markdown(_task_heading(str(task), str(experiment)))}", "", md_table(compact(full))]
            out += [text for line in race_lines(part) for text in ("", markdown(line))]
            out += ["", "<details><summary>All columns</summary>", "", md_table(full), "", "</details>"]
        out += [text for line in _disturbed_lines(table) for text in ("", f"> **{markdown(line)}**")]
        if table.empty:
            out += ["", "No cells finished."]
        if not bad.empty:
            out += ["", "**Cells that did not end ok:**", ""] + [f"- {markdown(line)}" for line in _failure_lines(bad)]
        if not table.empty:
            out += ["", f"<sub>{legend(table)}</sub>"]
        return "\n".join(out) + "\n"
    return _render_html(run, info, table, bad, plots)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:90em}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left}
th{background:#f0f0f0} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{overflow-x:auto}
.partial{background:#fff3cd;border:1px solid #e0c060;padding:0.6em}
.warning{background:#fde2e1;border:1px solid #d08080;padding:0.6em}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0} .legend{color:#666;font-size:0.85em}
"""


def html_page(title: str, body: str, css: str = "") -> str:
    """One self-contained page: the report's style, plus ``css`` (ours, never from a file)."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html_text(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_CSS}{css}</style></head><body>\n{body}\n</body></html>\n")  # fmt: skip


def png_img(png: bytes, alt: str) -> str:
    return f'<img alt="{html_text(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _render_html(run: Run, info: dict[str, Any], table: pd.DataFrame, bad: pd.DataFrame, plots: bool) -> str:
    parts = [f"<h1>seqbench run {html_text(info['run_id'])}</h1>", "<ul>"]
    for line in _info_lines(info):
        if line.startswith("PARTIAL"):
            parts.insert(1, f'<p class="partial"><strong>{html_text(line)}</strong></p>')
        else:
            parts.append(f"<li>{html_text(line)}</li>")
    parts.append("</ul>")
    for (task, experiment), part in table.groupby(["task", "experiment"], sort=True):
        # numbers never wrap ("0.82 (0.47-0.94)" on one line); a table wider than the page scrolls
        parts += [f"<h2>{html_text(_task_heading(str(task), str(experiment)))}</h2>",
                  f'<div class="scroll">{html_table(display_table(part))}</div>']  # fmt: skip
        parts += [f"<p>{html_text(line)}</p>" for line in race_lines(part)]
    parts += [f'<p class="warning">{html_text(line)}</p>' for line in _disturbed_lines(table)]
    if table.empty:
        parts.append("<p>No cells finished.</p>")
    if not bad.empty:
        items = "".join(f"<li>{html_text(line)}</li>" for line in _failure_lines(bad))
        parts.append(f"<h2>Cells that did not end ok</h2><ul>{items}</ul>")
    if not table.empty:
        parts.append(f'<p class="legend">{html_text(legend(table))}</p>')
    if plots and not table.empty:
        from seqbench import plots as plotting

        parts.append("<h2>Plots</h2>")
        try:
            pngs = plotting.run_pngs(run)
        except plotting.PlotError as e:
            parts.append(f'<p class="warning">No plots: {html_text(str(e))}</p>')
            pngs = {}
        for name, png in pngs.items():
            parts.append(f"<h3>{html_text(plotting.TITLES.get(name, name))}</h3>{png_img(png, name)}")
    return html_page(f"seqbench run {info['run_id']}", "\n".join(parts))
