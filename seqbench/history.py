"""Every run found under some folders, in time order: the trend of each row.

:func:`find_run_dirs` finds run directories (recursively); :func:`gather`
loads them, skipping (and naming) any that cannot be read, and returns one
long DataFrame with a :func:`seqbench.views.summary` row per run and row;
:func:`trend` pivots one metric into one column per run; :func:`render`
writes text, Markdown, CSV, JSON or HTML.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqbench.calibration import calibration_seconds, machines
from seqbench.errors import ResultsError, UsageError
from seqbench.escape import html_text, markdown, one_line, terminal
from seqbench.formatting import fmt_ms, fmt_num
from seqbench.keys import RowKey
from seqbench.loader import (
    concat_tables,
    newest_run,  # noqa: F401 - its old home; callers may import it from here
    read_cells,
)
from seqbench.measures import DEFAULT, Measure, measure
from seqbench.output import write_file
from seqbench.results import CELL_COLUMNS, CLUSTER_FILE, JOBS_DIR, RUN_FILE
from seqbench.tables import csv_text, html_page, html_table, md_table, png_img, records, text_table
from seqbench.views import cell_views, summary

FORMATS = ("text", "md", "csv", "json", "html")


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories at or below each path, in a stable order, each once.

    A run inside another run's directory, or beside a cluster run's ``jobs/cluster.json``, is left out: those
    are a cluster run's shards (seqbench.cluster), which that run holds merged (or will, once its jobs end).
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ResultsError(f"{path} does not exist")
        if (path / RUN_FILE).is_file():
            found[path] = None
            continue
        for run_file in sorted(path.rglob(RUN_FILE)):
            outer = [path / p for p in run_file.parent.relative_to(path).parents]
            if not any((d / RUN_FILE).is_file() or (d / JOBS_DIR / CLUSTER_FILE).is_file() for d in outer):
                found[run_file.parent] = None
    return list(found)


AGE_UNITS = {"m": 1, "min": 1, "h": 60, "d": 24 * 60, "w": 7 * 24 * 60}  # in minutes


def parse_since(text: str) -> pd.Timestamp:
    """An ISO date or time (``2026-01-31``, ``2026-01-31T12:00``), or an age: ``30m``, ``12h``, ``7d``, ``2w``."""
    bad = UsageError(f"--since: expected a date like 2026-01-31 or an age like 30m, 12h, 7d or 2w, got {text!r}")
    match = re.fullmatch(r"\s*(\d{1,9})\s*(min|[mhdw])\s*", text)
    try:
        if match:
            minutes = int(match[1]) * AGE_UNITS[match[2]]
            return pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=minutes)
        stamp = pd.Timestamp(text)
    except (ValueError, OverflowError):  # not a date, or beyond what a timestamp holds
        raise bad from None
    if pd.isna(stamp):  # "nat", "nan"
        raise bad
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@dataclass
class History:
    long: pd.DataFrame  # one row per run x (task, experiment, backend, implementation, model, device)
    runs: pd.DataFrame  # one row per run, in order
    skipped: list[str] = field(default_factory=list)


def _run_row(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """A run's row of :attr:`History.runs`; ``started`` as written (:func:`_timestamps` reads them all at once)."""
    git: dict[str, Any] = meta.get("git") or {}
    known = machines(meta)
    scores = [calibration_seconds(m.get("calibration")) for m in known.values()]
    return {
        "run_id": path.name,
        "path": str(path),
        "started": str(meta.get("started") or ""),
        "commit": str(git.get("commit") or "")[:12],
        "dirty": bool(git.get("dirty")),
        "status": meta.get("status"),
        "machines": ",".join(known),
        "calibration_ms": scores[0] * 1e3 if len(scores) == 1 and scores[0] else float("nan"),
    }


def _timestamps(texts: list[str]) -> list[Any]:
    """Start times as UTC timestamps, NaT where there is none.  ISO 8601 (what runs write) is read for all at
    once; anything else one at a time, as pandas guesses it (read one by one, 5,000 took 3 s)."""
    stamps = list(pd.to_datetime(pd.Series(texts, dtype=object), utc=True, errors="coerce", format="ISO8601"))
    return [pd.to_datetime(text, utc=True, errors="coerce") if pd.isna(stamp) and text else stamp
            for text, stamp in zip(texts, stamps, strict=True)]  # fmt: skip


def _in(values: Iterable[str] | None, series: pd.Series) -> pd.Series:
    return series.isin(list(values)) if values else pd.Series(True, index=series.index)


def _progress(total: int, show: bool | None) -> Callable[[int], None]:
    """``reading runs: 1200/5000`` on stderr, redrawn at most ten times a second and erased at the end;
    ``show`` None: only when stderr is a terminal (a CI log or a pipe gets nothing)."""
    stream = sys.stderr
    if not (stream.isatty() if show is None else show):
        return lambda done: None
    shown = [-1.0]

    def update(done: int) -> None:
        now = time.monotonic()
        if done < total and now - shown[0] < 0.1:
            return
        shown[0] = now
        text = f"reading runs: {done}/{total}"
        stream.write(f"\r{text}" if done < total else "\r" + " " * len(text) + "\r")
        stream.flush()

    return update


def gather(paths: Iterable[str | Path], since: pd.Timestamp | None = None, backends: Iterable[str] | None = None,
           models: Iterable[str] | None = None, tasks: Iterable[str] | None = None,
           progress: bool | None = None) -> History:  # fmt: skip
    """Load every run under ``paths`` (newer than ``since``), filtered by backend, model and task.

    One pass: every run's cells are read as columns (:func:`seqbench.loader.read_cells`, which checks them
    as :func:`~seqbench.loader.load_run` does), joined into one table, and summarised at once
    (:func:`seqbench.views.cell_views`, :func:`seqbench.views.summary` by run).  Summarising run by run
    cost 25 ms a run in pandas overhead, two minutes for 5,000 runs; this costs about what reading the
    files does.  ``progress``: the count of runs read on stderr (None: when it is a terminal).
    """
    dirs = find_run_dirs(paths)
    update = _progress(len(dirs), progress)
    skipped: list[str] = []
    metas: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    for done, path in enumerate(dirs):
        update(done)
        try:
            meta, cells = read_cells(path)
        except ResultsError as e:
            skipped.append(str(e))
            continue
        if cells:  # a run without cells has no row to show
            metas.append(dict(meta))
            infos.append(_run_row(path, dict(meta)))
            tables.append(cells)
    update(len(dirs))
    for info, started in zip(infos, _timestamps([info["started"] for info in infos]), strict=True):
        info["started"] = started
    if since is not None:
        wanted = [i for i, info in enumerate(infos) if pd.notna(info["started"]) and info["started"] >= since]
        metas, infos, tables = [metas[i] for i in wanted], [infos[i] for i in wanted], [tables[i] for i in wanted]
    if not tables:
        return History(pd.DataFrame(), pd.DataFrame(columns=list(_run_row(Path("x"), {}).keys())), skipped)
    rows = [len(next(iter(t.values()))) for t in tables]
    every = pd.DataFrame(concat_tables(tables), columns=CELL_COLUMNS)
    table = summary(cell_views(every, metas, np.repeat(np.arange(len(tables)), rows)), by=["_run"])
    table = table[_in(backends, table["backend"]) & _in(models, table["model"]) & _in(tasks, table["task"])]
    table = table.sort_values("_run", kind="stable")  # run by run, as found
    table["run_id"] = [infos[r]["run_id"] for r in table["_run"]]
    parts = table.drop(columns=["_run", "implementation_path"])
    run_rows = [infos[r] for r in sorted(set(table["_run"]))]
    runs = pd.DataFrame(run_rows, columns=list(_run_row(Path("x"), {}).keys()))
    if runs.empty:
        return History(pd.DataFrame(), runs, skipped)
    runs = runs.sort_values(["started", "commit", "run_id"], na_position="first").reset_index(drop=True)
    runs["order"] = range(len(runs))
    labels: list[str] = []
    for r in runs.to_dict("records"):
        label = r["run_id"]
        for when in ("%m-%d %H:%M", "%m-%d %H:%M:%S"):  # seconds only where minutes collide
            if pd.notna(r["started"]) and f"{r['started'].strftime(when)} {r['commit'][:7]}".strip() not in labels:
                label = f"{r['started'].strftime(when)} {r['commit'][:7]}".strip()
                break
        while label in labels:
            label += "'"
        labels.append(label)
    runs["run_label"] = labels
    long = parts.reset_index(drop=True)
    long = long.merge(runs[["run_id", "order", "run_label", "started", "commit"]], on="run_id")
    # A series is one row of one experiment: runs of another configuration never join its trend.
    long["row"] = [RowKey.of(r).label for r in long.to_dict("records")]
    return History(long.sort_values(["order", "row"]).reset_index(drop=True), runs, skipped)


def trend(h: History, value: str, last: int | None = None, relative: bool = True) -> pd.DataFrame:
    """One row per cell row, one column per run (oldest first), and the change from first to last.

    ``change`` is last/first - 1 when ``relative`` (times), else last - first (accuracy).
    """
    if h.long.empty:
        return pd.DataFrame()
    labels = list(h.runs["run_label"])
    if last:
        labels = labels[-last:]
    wide = h.long.pivot_table(index="row", columns="run_label", values=value, aggfunc="first")
    wide = wide.reindex(columns=[c for c in labels if c in wide.columns])

    def change(series: pd.Series) -> float:
        values = series.dropna()
        if len(values) < 2:
            return float("nan")
        if not relative:
            return float(values.iloc[-1] - values.iloc[0])
        return float(values.iloc[-1] / values.iloc[0] - 1) if values.iloc[0] else float("nan")

    wide["change"] = wide.apply(change, axis=1)
    return wide


# A change of level smaller than this is not marked: runs on one machine drift by a few per cent.
LEVEL_THRESHOLD = 0.10
# ... nor one smaller than this many standard deviations of the run-to-run noise.
LEVEL_NOISE = 4.0


def level_shifts(values: list[float], threshold: float = LEVEL_THRESHOLD) -> list[tuple[int, float]]:
    """Where a series of positive values (oldest first) changed level: ``(index, new / old)`` pairs.

    Binary segmentation on the logs (times are positive and their noise multiplicative): the split that
    best explains a stretch as two levels (the least absolute deviation from each side's median) is kept
    when the change between the medians exceeds ``threshold`` and :data:`LEVEL_NOISE` times the noise,
    estimated from the other run-to-run differences of the stretch (1.4826 x their median absolute value,
    over the square root of 2); then each side is split again.  Medians make one odd run inside a series
    move nothing; the newest run alone can only be a change at the end.  NaN and values no figure can draw
    are skipped; the indices are those of ``values``.
    """
    import numpy as np

    from seqbench.chart import plottable

    kept = [i for i, v in enumerate(values) if plottable(v) and v > 0]
    logs = np.log([values[i] for i in kept])
    found: list[tuple[int, float]] = []

    def cost(part: np.ndarray) -> float:
        return float(np.abs(part - np.median(part)).sum())

    def split(lo: int, hi: int) -> None:
        if hi - lo < 2:
            return
        k = min(range(lo + 1, hi), key=lambda k: cost(logs[lo:k]) + cost(logs[k:hi]))
        step = float(np.median(logs[k:hi]) - np.median(logs[lo:k]))
        others = np.delete(np.diff(logs[lo:hi]), k - lo - 1)  # every difference but the one at the split
        noise = 1.4826 * float(np.median(np.abs(others))) / math.sqrt(2) if len(others) else 0.0
        if abs(step) <= max(math.log1p(threshold), LEVEL_NOISE * noise):
            return
        found.append((kept[k], math.exp(step)))
        split(lo, k)
        split(k, hi)

    split(0, len(kept))
    return sorted(found)


def level_changes(h: History, column: str = "steady_epoch_ms", threshold: float = LEVEL_THRESHOLD) -> pd.DataFrame:
    """Every change of level (:func:`level_shifts`) in each row's ``column`` over the runs, oldest first.

    One line per change: the row's identity, the run it first shows in (``order``, ``run_label``), the
    levels before and after (medians of the runs on each side up to the next change) and their ratio.
    """
    columns = ["row", "task", "experiment", "model", "backend", "implementation", "device", "order", "run_label",
               "before", "after", "ratio"]  # fmt: skip
    out = []
    if h.long.empty:
        return pd.DataFrame(columns=columns)
    for _, part in h.long.groupby("row", sort=True):
        part = part.sort_values("order")
        values = [float(v) for v in part[column]]
        shifts = level_shifts(values, threshold)
        edges = [0, *[i for i, _ in shifts], len(values)]
        for n, (i, ratio) in enumerate(shifts):
            r = part.iloc[i]
            before = pd.Series(values[edges[n]:i]).median()
            after = pd.Series(values[i:edges[n + 2]]).median()
            out.append({**{c: r[c] for c in columns[:9]}, "before": before, "after": after, "ratio": ratio})
    return pd.DataFrame(out, columns=columns)


def _display(wide: pd.DataFrame, fmt_value: Any, change_spec: str = "+.1%") -> pd.DataFrame:
    out = pd.DataFrame({"row": wide.index})
    for column in wide.columns:
        if column == "change":
            out["change"] = [fmt_num(v, change_spec) for v in wide[column]]
        else:
            out[column] = [fmt_value(v) for v in wide[column]]
    return out


@dataclass
class _Views:
    """What every human-readable format of a history shows, built once."""

    times: pd.DataFrame
    accuracy: pd.DataFrame
    runs: pd.DataFrame
    notes: list[str]
    time_title: str
    acc_title: str
    right: set[str]
    unit: str
    time_column: str
    title: str = DEFAULT.title


def _views(h: History, normalize: bool, last: int | None, what: Measure = DEFAULT) -> _Views:
    time_column = what.cal if normalize else what.median
    unit = "calibration units" if normalize else "ms"
    fmt_time = (lambda v: fmt_num(v, ".3g")) if normalize else fmt_ms
    times = _display(trend(h, time_column, last), fmt_time)
    accuracy = _display(trend(h, "accuracy", last, relative=False), lambda v: fmt_num(v, ".2f"), "+.2f")
    shown = f"the last {last} of {len(h.runs)}" if last and len(h.runs) > last else f"all {len(h.runs)}"
    runs = h.runs.assign(
        started=h.runs["started"].map(lambda t: t.strftime("%Y-%m-%d %H:%M") if pd.notna(t) else "-"),
        calibration_ms=h.runs["calibration_ms"].map(lambda v: fmt_num(v, ".2f")),
        commit=h.runs["commit"].str[:7] + h.runs["dirty"].map(lambda d: "+" if d else ""),
    )[["run_label", "run_id", "started", "commit", "status", "machines", "calibration_ms"]]
    notes = []
    if not normalize and h.runs["machines"].nunique() > 1:
        notes.append(f"the runs come from {h.runs['machines'].nunique()} machines: times are comparable only "
                     "within one machine; --normalize shows them in calibration units")  # fmt: skip
    if normalize and h.long[time_column].isna().any():
        notes.append("some runs have no calibration: their normalised times show as '-'")
    notes += [f"skipped: {s}" for s in h.skipped]
    time_title = f"{what.title}, {unit} (median; one column per run, {shown} runs, oldest first)"
    return _Views(times, accuracy, runs, notes, time_title, "accuracy (median over seeds)",
                  set(times.columns) - {"row"}, unit, time_column, what.title)  # fmt: skip


def _render_text(h: History, v: _Views) -> str:
    out = [f"{len(h.runs)} runs"] + [f"note: {one_line(n)}" for n in v.notes]
    out += ["", v.time_title, text_table(v.times, v.right), "", v.acc_title, text_table(v.accuracy, v.right),
            "", "runs", text_table(v.runs, set())]  # fmt: skip
    return terminal("\n".join(out))


def _render_markdown(h: History, v: _Views) -> str:
    out = [f"## seqbench history: {len(h.runs)} runs", ""] + [f"> {markdown(n)}" for n in v.notes]
    out += ["", f"### {v.time_title}", "", md_table(v.times, v.right), "", f"### {v.acc_title}", "",
            md_table(v.accuracy, v.right), "", "### runs", "", md_table(v.runs, set())]  # fmt: skip
    return "\n".join(out) + "\n"


def _render_html(h: History, v: _Views, plots: bool) -> str:
    body = [f"<h1>seqbench history: {len(h.runs)} runs</h1>"]
    body += [f'<p class="warning">{html_text(n)}</p>' for n in v.notes]
    body += [f"<h2>{html_text(v.time_title)}</h2>", html_table(v.times, v.right), f"<h2>{v.acc_title}</h2>",
             html_table(v.accuracy, v.right), "<h2>runs</h2>", html_table(v.runs, set())]  # fmt: skip
    if plots:
        from seqbench.plots import history_figure, png

        figure = history_figure(h.long, v.time_column, f"{v.title} ({v.unit})", level_changes(h, v.time_column))
        body.append(png_img(png(figure), "history"))
    return html_page("seqbench history", "\n".join(body))


def render(h: History, fmt: str = "text", normalize: bool = False, last: int | None = 8,
           plots: bool = True, measure: str | Measure = "epoch") -> str:  # fmt: skip
    """The history in ``fmt`` (one of :data:`FORMATS`): the data as they are (csv, json), or tables of the last
    ``last`` runs for people (text, md, html), of ``measure``'s time (:mod:`seqbench.measures`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if fmt == "csv":
        return csv_text(h.long)
    if fmt == "json":
        doc = {"runs": records(h.runs.astype({"started": str})), "rows": records(h.long.astype({"started": str})),
               "skipped": h.skipped}  # fmt: skip
        return json.dumps(doc, indent=2) + "\n"
    if h.long.empty:
        lines = ["no runs found" + (" that match" if h.skipped == [] else "")]
        lines += [f"skipped: {one_line(s)}" for s in h.skipped]
        return "\n".join(lines)
    v = _views(h, normalize, last, _measure(measure))
    if fmt == "text":
        return _render_text(h, v)
    if fmt == "md":
        return _render_markdown(h, v)
    return _render_html(h, v, plots)


def save_plot(h: History, path: str | Path, normalize: bool = False, measure: str | Measure = "epoch") -> Path:
    from seqbench.plots import history_figure, png

    what = _measure(measure)
    unit = "calibration units" if normalize else "ms"
    column = what.cal if normalize else what.median
    return write_file(path, png(history_figure(h.long, column, f"{what.title} ({unit})", level_changes(h, column))))


def _measure(name: str | Measure) -> Measure:
    try:
        return measure(name)
    except ValueError as e:
        raise UsageError(str(e)) from None
