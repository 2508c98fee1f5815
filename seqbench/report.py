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
import html
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from seqbench.calibration import machines, score
from seqbench.results import COMPLETED, STATUS_OK, Run

KEYS = ["task", "backend", "implementation", "model", "device"]
SEED_KEYS = [*KEYS, "seed"]
FORMATS = ("text", "md", "csv", "json", "html")
REPORT_VERSION = 1  # of the JSON report's layout

_NUMERIC_CELL = ["seed", "epochs_run", "params", "final_loss", "accuracy", "mse", "mae", "probe_prediction",
                 "probe_target", "first_epoch_s", "steady_epoch_s", "cpu_s", "gpu_s", "samples_per_s",
                 "peak_rss_mb", "build_s", "baseline", "flops", "gflops_per_s", "peak_share"]  # fmt: skip
_NUMERIC_EPOCH = ["seed", "epoch", "loss", "wall_s", "cpu_s", "gpu_s"]

SUMMARY_COLUMNS = [
    "seeds", "ok", "failed", "status", "params",
    "accuracy", "accuracy_min", "accuracy_max", "final_loss",
    "metric", "score", "score_min", "score_max", "baseline", "gflops_per_s", "peak_share",
    "first_epoch_ms", "first_epoch_min_ms", "first_epoch_max_ms",
    "steady_epoch_ms", "steady_p25_ms", "steady_p75_ms", "steady_samples",
    "cpu_ms", "gpu_ms", "samples_per_s", "peak_rss_mb", "steady_cal", "path", "machine",
]  # fmt: skip

LEGEND = (
    "accuracy (or the task's primary metric): median (min-max) over seeds; baseline: that metric for a model "
    "that ignores its input; first: first epoch (compile/trace/warm-up), median (min-max) over "
    "seeds; steady: epochs 2..N of every seed, median (interquartile range); cpu/gpu: process CPU and device "
    "time per steady epoch"
)
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
    """The cells, numeric columns as floats, each with its machine id and calibration score."""
    cells = _numeric(run.cells, _NUMERIC_CELL)
    known = machines(run.meta)
    default = next(iter(known))
    if "machine" not in cells:
        cells["machine"] = None
    cells["machine"] = cells["machine"].where(cells["machine"].notna(), default).astype(object)
    scores = {mid: score(m.get("calibration")) for mid, m in known.items()}
    cells["calibration_s"] = cells["machine"].map(lambda m: scores.get(m)).astype("float64")
    return cells


def steady_epochs(cells: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Epochs 2..N of every completed cell (the samples behind each steady time).

    Carries the cell's ``calibration_s`` when ``cells`` has it (see :func:`cell_view`).
    """
    epochs = _numeric(epochs, _NUMERIC_EPOCH)
    cells = _numeric(cells, ["seed"])
    done = cells[cells["status"].isin(COMPLETED)]
    keep = [*SEED_KEYS] + (["calibration_s"] if "calibration_s" in done else [])
    steady = epochs[epochs["epoch"] >= 2].merge(done[keep].drop_duplicates(SEED_KEYS), on=SEED_KEYS)
    return steady.reset_index(drop=True)


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


def summary(cells: pd.DataFrame, epochs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per task x backend x implementation x model x device, over seeds.

    Times come from the per-epoch samples in ``epochs`` when given (all steady
    epochs of every completed seed, pooled), else from each cell's own
    steady-epoch median.  Accuracy, loss and throughput are over completed
    seeds; failed seeds are counted in ``failed`` and named by :func:`failures`.
    """
    if cells.empty:
        return pd.DataFrame(columns=KEYS + SUMMARY_COLUMNS)
    cells = _numeric(cells, _NUMERIC_CELL)
    cells["_metric"], cells["_score"] = primary_scores(cells)
    for column in ("baseline", "gflops_per_s", "peak_share"):
        if column not in cells:
            cells[column] = math.nan
    samples = steady_epochs(cells, epochs) if epochs is not None and not epochs.empty else None
    rows = []
    for key, group in cells.groupby(KEYS, sort=True, dropna=False):
        ok = group[group["status"].isin(COMPLETED)]
        row: dict[str, Any] = dict(zip(KEYS, key, strict=True))
        steady = None
        if samples is not None and not ok.empty:
            mask = np.ones(len(samples), dtype=bool)
            for column, value in zip(KEYS, key, strict=True):
                mask &= (samples[column] == value).to_numpy()
            steady = samples[mask]
        if steady is None or steady.empty:  # no per-epoch records: each seed's own median
            steady = pd.DataFrame({"wall_s": ok["steady_epoch_s"], "cpu_s": ok["cpu_s"], "gpu_s": ok["gpu_s"]})
            if "calibration_s" in ok:
                steady["calibration_s"] = ok["calibration_s"]
        wall = steady["wall_s"].dropna() * 1e3
        normalised = (steady["wall_s"] / steady["calibration_s"]) if "calibration_s" in steady else pd.Series()
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
            first_epoch_ms=_median(ok["first_epoch_s"]) * 1e3,
            first_epoch_min_ms=_agg(ok["first_epoch_s"], "min") * 1e3,
            first_epoch_max_ms=_agg(ok["first_epoch_s"], "max") * 1e3,
            steady_epoch_ms=_median(wall),
            steady_p25_ms=float(wall.quantile(0.25)) if len(wall) else math.nan,
            steady_p75_ms=float(wall.quantile(0.75)) if len(wall) else math.nan,
            steady_samples=len(wall),
            cpu_ms=_median(steady["cpu_s"]) * 1e3,
            gpu_ms=_median(steady["gpu_s"]) * 1e3,
            samples_per_s=_median(ok["samples_per_s"]),
            peak_rss_mb=_agg(ok["peak_rss_mb"], "max"),
            steady_cal=_median(normalised),
            path=",".join(sorted({str(p) for p in ok["implementation_path"].dropna()})),
            machine=",".join(machine_ids),
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=KEYS + SUMMARY_COLUMNS)


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
    done = len(run.cells)
    planned = meta.get("cells_planned")
    status = run.status
    git = meta.get("git") if isinstance(meta.get("git"), dict) else None
    return {
        "run_id": run.path.name,
        "path": str(run.path),
        "status": status,
        "partial": status != "complete" or (isinstance(planned, int) and done < planned),
        "cells_done": done,
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
    }


def describe_machine(machine: dict[str, Any]) -> str:
    m = machine.get("machine") or {}
    parts = [str(m.get("cpu", "unknown CPU")), f"{m.get('cores', '?')} cores"]
    if m.get("memory_gb"):
        parts.append(f"{m['memory_gb']} GB")
    parts += [str(m.get("os", "")), f"Python {m.get('python', '?')}", f"host {m.get('hostname', '?')}"]
    cal = machine.get("calibration")
    if score(cal) is not None:
        parts.append(f"calibration {score(cal) * 1e3:.2f} ms")
    elif isinstance(cal, dict) and cal.get("error"):
        parts.append(f"calibration failed: {cal['error']}")
    return ", ".join(p for p in parts if p)


def _info_lines(info: dict[str, Any]) -> list[str]:
    lines = []
    planned = info["cells_planned"]
    count = f"{info['cells_done']} of {planned} cells" if isinstance(planned, int) else f"{info['cells_done']} cells"
    lines.append(f"run {info['run_id']}: {info['status']}, {count}, started {info['started']}, ended {info['ended']}")
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
        lines.append("merged from: " + ", ".join(info["merged_from"]))
    return lines


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
            "steady ms": _range(fmt_ms(r["steady_epoch_ms"]), r["steady_p25_ms"], r["steady_p75_ms"], fmt_ms),
            "cpu ms": fmt_ms(r["cpu_ms"]),
        })  # fmt: skip
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


def _score_format(metric: Any) -> Callable[[Any], str]:
    """Two decimals for accuracy (today's look), four significant digits for anything else."""
    spec = ".2f" if metric == "accuracy" else ".4g"
    return lambda v: _fmt(v, spec)


_RIGHT = {"params", "accuracy", "final loss", "first ms", "steady ms", "cpu ms", "gpu ms", "samples/s", "peak MB",
          "steady/cal", "score", "baseline", "mse", "mae", "cross_entropy", "GFLOP/s", "% peak"}  # fmt: skip


def text_table(frame: pd.DataFrame, right: set[str] | None = None) -> str:
    """A plain, aligned text table (no index)."""
    right = _RIGHT if right is None else right
    columns = list(frame.columns)
    cells = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        out = [v.rjust(w) if c in right else v.ljust(w) for v, w, c in zip(values, widths, columns, strict=True)]
        return "  ".join(out).rstrip()

    return "\n".join([line([str(c) for c in columns])] + [line(r) for r in cells])


def md_table(frame: pd.DataFrame, right: set[str] | None = None) -> str:
    right = _RIGHT if right is None else right

    def esc(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(esc(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if c in right else "---" for c in frame.columns) + "|"
    body = ["| " + " | ".join(esc(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def html_table(frame: pd.DataFrame, right: set[str] | None = None) -> str:
    right = _RIGHT if right is None else right
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        tds = "".join(
            f'<td class="num">{html.escape(str(v))}</td>' if c in right else f"<td>{html.escape(str(v))}</td>"
            for c, v in zip(frame.columns, row, strict=True)
        )
        body.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _task_heading(task: str, config: dict[str, Any]) -> str:
    params = config.get("task_params") or {}
    extra = " ".join(f"{k}={v}" for k, v in params.items()) or "default parameters"
    return (f"task {task} ({extra}): {config.get('epochs', '?')} epochs, batch {config.get('batch_size', '?')}, "
            f"{config.get('units', '?')} units, {config.get('activation', '?')}")  # fmt: skip


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


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready rows (NaN becomes null)."""
    return [jsonable(r) for r in frame.astype(object).to_dict("records")]


# ------------------------------------------------------------------ rendering


def render_summary(run: Run) -> str:
    """The terminal report: what ``seqbench run`` prints at the end, and ``seqbench report``."""
    return render(run, "text")


def render(run: Run, fmt: str = "text", plots: bool = True) -> str:
    """The whole report in ``fmt`` (one of :data:`FORMATS`).

    ``plots`` applies to HTML only: embed the figures (needs matplotlib).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    cells = cell_view(run)
    table = summary(cells, run.epochs)
    bad = failures(cells)
    info = run_info(run)
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        doc = {"report_version": REPORT_VERSION, "run": info, "summary": records(table),
               "failures": records(bad)}  # fmt: skip
        return json.dumps(jsonable(doc), indent=2) + "\n"
    config = info["config"]
    if fmt == "text":
        out = _info_lines(info)
        for task, part in table.groupby("task", sort=True):
            out += ["", _task_heading(str(task), config), text_table(display_table(part))]
        if table.empty:
            out += ["", "no cells finished"]
        if not bad.empty:
            out += ["", "cells that did not end ok:"] + ["  " + line for line in _failure_lines(bad)]
        if not table.empty:
            out += ["", legend(table)]
        return "\n".join(out)
    if fmt == "md":
        out = [f"## seqbench run `{info['run_id']}`", ""]
        for line in _info_lines(info):
            out.append(f"> **{line}**" if line.startswith("PARTIAL") else f"- {line}")
        for task, part in table.groupby("task", sort=True):
            out += ["", f"### {_task_heading(str(task), config)}", "", md_table(display_table(part))]
        if table.empty:
            out += ["", "No cells finished."]
        if not bad.empty:
            out += ["", "**Cells that did not end ok:**", ""] + [f"- {line}" for line in _failure_lines(bad)]
        if not table.empty:
            out += ["", f"<sub>{legend(table)}</sub>"]
        return "\n".join(out) + "\n"
    return _render_html(run, info, table, bad, plots)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:90em}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left}
th{background:#f0f0f0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.partial{background:#fff3cd;border:1px solid #e0c060;padding:0.6em}
.warning{background:#fde2e1;border:1px solid #d08080;padding:0.6em}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0} .legend{color:#666;font-size:0.85em}
"""


def html_page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")  # fmt: skip


def png_img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _render_html(run: Run, info: dict[str, Any], table: pd.DataFrame, bad: pd.DataFrame, plots: bool) -> str:
    parts = [f"<h1>seqbench run {html.escape(info['run_id'])}</h1>", "<ul>"]
    for line in _info_lines(info):
        if line.startswith("PARTIAL"):
            parts.insert(1, f'<p class="partial"><strong>{html.escape(line)}</strong></p>')
        else:
            parts.append(f"<li>{html.escape(line)}</li>")
    parts.append("</ul>")
    for task, part in table.groupby("task", sort=True):
        parts += [f"<h2>{html.escape(_task_heading(str(task), info['config']))}</h2>",
                  html_table(display_table(part))]  # fmt: skip
    if table.empty:
        parts.append("<p>No cells finished.</p>")
    if not bad.empty:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in _failure_lines(bad))
        parts.append(f"<h2>Cells that did not end ok</h2><ul>{items}</ul>")
    if not table.empty:
        parts.append(f'<p class="legend">{html.escape(legend(table))}</p>')
    if plots and not table.empty:
        from seqbench import plots as plotting

        parts.append("<h2>Plots</h2>")
        try:
            pngs = plotting.run_pngs(run)
        except plotting.PlotError as e:
            parts.append(f'<p class="warning">No plots: {html.escape(str(e))}</p>')
            pngs = {}
        for name, png in pngs.items():
            parts.append(f"<h3>{html.escape(plotting.TITLES.get(name, name))}</h3>{png_img(png, name)}")
    return html_page(f"seqbench run {info['run_id']}", "\n".join(parts))
