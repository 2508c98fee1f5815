"""Views of a stored run: pandas DataFrames computed from it, with nothing formatted.

Every view is a function of the loaded :class:`~seqbench.results.Run` (no
state, no cache): :func:`cell_view` (the cells that count, with their
experiment and their machine's calibration), :func:`epoch_view` and
:func:`steady_epochs` (the per-epoch samples behind each time),
:func:`summary` (one row per :class:`~seqbench.keys.CellKey`, over its
repeats), :func:`failures` and :func:`run_info`.  The renderers
(:mod:`seqbench.report`, :mod:`seqbench.compare_report`, :mod:`seqbench.history`,
:mod:`seqbench.plots`, :mod:`seqbench.export`) turn them into text, tables
and figures; :mod:`seqbench.formatting` writes their numbers.

pandas is imported at the top of this module, so the CLI imports this module
only inside the commands that need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from seqbench.attempts import counted, remeasurements
from seqbench.calibration import machines, score
from seqbench.keys import (
    COMPLETED,
    EXPERIMENT_FIELDS,
    KEY_FIELDS,
    RACE_FIELDS,
    REPEAT_FIELDS,
    CellKey,
    RunStatus,
    Status,
    experiment_label,
)
from seqbench.results import Run, error_reason

# A row of every view is a CellKey: a backend's implementation of a model on a device, in one experiment.
KEYS = list(KEY_FIELDS)
SEED_KEYS = list(REPEAT_FIELDS)

_NUMERIC_CELL = ["seed", "epochs_run", "params", "final_loss", "accuracy", "mse", "mae", "probe_prediction",
                 "probe_target", "first_epoch_s", "steady_epoch_s", "cpu_s", "gpu_s", "samples_per_s",
                 "peak_rss_mb", "build_s", "attempt", "interference", "baseline", "flops", "gflops_per_s",
                 "peak_share", "wait_share", "clean_epochs", "latency_first_s", "latency_p50_s", "latency_p90_s",
                 "latency_p99_s", "throughput_per_s"]  # fmt: skip
_NUMERIC_EPOCH = ["seed", "epoch", "loss", "wall_s", "cpu_s", "gpu_s", "attempt", "other_cpu_s", "wait_s"]

SUMMARY_COLUMNS = [
    "seeds", "ok", "failed", "status", "params",
    "accuracy", "accuracy_min", "accuracy_max", "final_loss",
    "metric", "score", "score_min", "score_max", "baseline", "gflops_per_s", "peak_share",
    "first_epoch_ms", "first_epoch_min_ms", "first_epoch_max_ms",
    "steady_epoch_ms", "steady_min_ms", "steady_max_ms", "vs_fastest", "processes", "disturbed",
    "cpu_ms", "gpu_ms", "samples_per_s", "peak_rss_mb", "steady_cal", "path", "machine",
    # the inference phase (seqbench.harness.measure_inference): p50 median (min-max) over processes, the first
    # call over cold processes, p90/p99 and throughput medians over processes
    "latency_first_ms", "latency_p50_ms", "latency_min_ms", "latency_max_ms", "latency_p90_ms", "latency_p99_ms",
    "latency_cal", "throughput_per_s", "inference_only",
]  # fmt: skip

# A wall time is a measurement only when it is positive: a 0.0 or -0.0 (a clock too coarse to see the
# epoch, a hand edit, another tool's file) would divide by zero in every ratio a view feeds (samples/s,
# x vs fastest, the race lines, the exports), so it reads as missing, like a null.
_WALL_TIMES = ("first_epoch_s", "steady_epoch_s", "wall_s")


def _numeric(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            if column in _WALL_TIMES:
                frame[column] = frame[column].where(frame[column] > 0)
    return frame


def with_experiment(cells: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """``cells`` with numeric columns as floats, the experiment fields filled in (from run.json's config
    for a failed cell, or a run older than the column), ``env`` and an ``experiment`` column."""
    cells = _numeric(cells, _NUMERIC_CELL)
    config: dict[str, Any] = dict(meta.get("config") or {})
    cells["attempt"] = cells["attempt"].fillna(1.0) if "attempt" in cells else 1.0
    cells["disturbed"] = cells["disturbed"].eq(True) if "disturbed" in cells else False
    cells["env"] = cells["env"].where(cells["env"].notna(), "").astype(object) if "env" in cells else ""
    defaults = {name: config.get(name) for name in EXPERIMENT_FIELDS} | {
        "task_params": config.get("task_params") or {}, "dtype": "float32"}
    for column, default in defaults.items():
        values = cells[column] if column in cells else pd.Series([None] * len(cells), index=cells.index)
        cells[column] = [v if v is not None and not (isinstance(v, float) and math.isnan(v)) else default
                         for v in values]  # fmt: skip
    cells["experiment"] = [experiment_label(r) for r in cells.to_dict("records")] if len(cells) else []
    return cells


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _pair_of(row: Any) -> tuple[Any, ...]:
    """A repeat with its environment left out: A and B of one seed are chosen together (seqbench.attempts)."""
    return tuple(row.get(name) for name in PAIR_FIELDS)


PAIR_FIELDS = [name for name in SEED_KEYS if name != "env"]


def counted_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per repeat, the attempt that counts (:mod:`seqbench.attempts`); ``cells`` has its experiment."""
    if cells.empty:
        return cells
    chosen = counted(_records(cells), _pair_of)
    return cells.iloc[chosen].reset_index(drop=True)


_EPOCH_MATCH = ["task", "model", "backend", "implementation", "device", "seed", "env", "attempt"]


def count_attempts(cells: pd.DataFrame, epochs: pd.DataFrame,
                   meta: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The rows of a run's cells and epochs that count: one attempt per repeat (:func:`counted_cells`).

    The frames come back with their own columns, filtered; :func:`seqbench.load_run` gives these as
    ``cells`` and ``epochs``.
    """
    if cells.empty:
        return cells, epochs.iloc[0:0] if not epochs.empty else epochs
    labelled = with_experiment(cells, meta)
    chosen = counted(_records(labelled), _pair_of)
    kept = labelled.iloc[chosen]
    if epochs.empty:
        return cells.iloc[chosen].reset_index(drop=True), epochs
    e = _numeric(epochs, ["seed", "attempt"])
    e["attempt"] = e["attempt"].fillna(1.0) if "attempt" in e else 1.0
    e["env"] = e["env"].where(e["env"].notna(), "").astype(object) if "env" in e else ""
    match = list(_EPOCH_MATCH)
    if "experiment" in e and e["experiment"].notna().all():
        match.append("experiment")
    wanted = set(kept[match].itertuples(index=False, name=None))
    keep = [row in wanted for row in e[match].itertuples(index=False, name=None)]
    return cells.iloc[chosen].reset_index(drop=True), epochs[keep].reset_index(drop=True)


def cell_view(run: Run) -> pd.DataFrame:
    """The cells that count, numeric columns as floats, each with its experiment, machine and calibration.

    One row per repeat: the attempt that counts (:mod:`seqbench.attempts`).  Runs written before these
    columns existed get them from run.json's config.
    """
    cells = counted_cells(with_experiment(run.cells, run.meta))
    known = machines(run.meta)
    default = next(iter(known))
    if "machine" not in cells:
        cells["machine"] = None
    cells["machine"] = cells["machine"].where(cells["machine"].notna(), default).astype(object)
    scores = {mid: score(m.get("calibration")) for mid, m in known.items()}
    cells["calibration_s"] = cells["machine"].map(lambda m: scores.get(m)).astype("float64")
    return cells


def by_key(frame: pd.DataFrame) -> dict[CellKey, pd.DataFrame]:
    """The rows of a view (cells or epochs, with their experiment), split by :class:`~seqbench.keys.CellKey`."""
    return {CellKey(*map(str, key)): part for key, part in frame.groupby(KEYS, sort=False, dropna=False)}


def steady_epochs(cells: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """The steady epochs (2..N) each completed cell of ``cells`` (a :func:`cell_view`) took its times from,
    with its experiment: where a cell judged from its clean epochs, the disturbed ones are left out.

    Carries the cell's ``calibration_s`` when ``cells`` has it.
    """
    view = epoch_view(cells, epochs)
    if view.empty:
        return view.reset_index(drop=True)
    left_out = view["disturbed"].eq(True) & ~view["cell_disturbed"].eq(True)
    return view[(view["epoch"] >= 2) & ~left_out].reset_index(drop=True)


def epoch_view(cells: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """The epochs of the completed cells of ``cells`` (a :func:`cell_view`): superseded attempts dropped."""
    epochs = _numeric(epochs, _NUMERIC_EPOCH)
    epochs["attempt"] = epochs["attempt"].fillna(1.0) if "attempt" in epochs else 1.0
    epochs["env"] = epochs["env"].where(epochs["env"].notna(), "").astype(object) if "env" in epochs else ""
    if "disturbed" not in epochs:
        epochs["disturbed"] = None
    done = cells[cells["status"].isin(COMPLETED)].rename(columns={"disturbed": "cell_disturbed"})
    if "cell_disturbed" not in done:
        done["cell_disturbed"] = False
    join = [k for k in SEED_KEYS if k != "experiment"] + ["attempt"]
    if "experiment" in epochs and epochs["experiment"].notna().all():
        join.append("experiment")
    brought = ["experiment", "cell_disturbed"] + (["calibration_s"] if "calibration_s" in done else [])
    keep = list(dict.fromkeys([*join, *brought]))
    epochs = epochs.drop(columns=[c for c in keep if c not in join and c in epochs])
    if epochs.empty or done.empty:  # nothing to join (and empty columns have no type to join on)
        return pd.DataFrame(columns=list(dict.fromkeys([*epochs.columns, *keep])))
    return epochs.merge(done[keep].drop_duplicates(join), on=join).reset_index(drop=True)


def same_seeds(epochs: pd.DataFrame) -> pd.DataFrame:
    """Epochs of the seeds that every row racing in the same task, experiment and model has: curves and
    medians over seeds then compare the same seeds (the same data and initial weights) on every backend."""
    if epochs.empty:
        return epochs
    race = [k for k in RACE_KEYS if k in epochs]
    keys = [k for k in KEYS if k in epochs]
    by_row: dict[tuple[Any, ...], set[Any]] = {}
    for row in epochs[[*keys, "seed"]].itertuples(index=False, name=None):
        by_row.setdefault(row[:-1], set()).add(row[-1])
    shared: dict[tuple[Any, ...], set[Any]] = {}
    for row, seeds in by_row.items():
        group = tuple(row[keys.index(k)] for k in race)
        shared[group] = shared[group] & seeds if group in shared else set(seeds)
    allowed = [seed in shared[group] for *group_list, seed in epochs[[*race, "seed"]].itertuples(index=False, name=None)
               for group in [tuple(group_list)]]  # fmt: skip
    return epochs[allowed].reset_index(drop=True)


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


def status_text(statuses: pd.Series) -> str:
    """How a row's repeats ended: ``ok`` when all did, else counts, ok first (``2 ok, 1 timeout``); ``-``: none."""
    counts = statuses.value_counts()
    if counts.empty:
        return "-"
    if len(counts) == 1 and counts.index[0] == Status.OK:
        return Status.OK.value
    order = sorted(counts.index, key=lambda s: (s != Status.OK, str(s)))
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
    spread shown is the variation between processes (docs/measurement.md).  First-epoch
    times come from cold processes only.  Failed seeds are counted in
    ``failed`` and named by :func:`failures`; ``disturbed`` counts the repeats
    that ran while other processes took CPU.
    """
    if cells.empty:
        return pd.DataFrame(columns=KEYS + SUMMARY_COLUMNS)
    cells = _numeric(cells, _NUMERIC_CELL)
    cells["_metric"], cells["_score"] = primary_scores(cells)
    for column in ("baseline", "gflops_per_s", "peak_share", "latency_first_s", "latency_p50_s", "latency_p90_s",
                   "latency_p99_s", "throughput_per_s"):  # fmt: skip
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
            status=status_text(group["status"]),
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
            **_inference_columns(ok, cold),
        )
        if row["inference_only"] and row["status"] == Status.OK:  # why its training columns are empty
            row["status"] = INFERENCE_ONLY
        rows.append(row)
    table = pd.DataFrame(rows, columns=KEYS + SUMMARY_COLUMNS)
    table["vs_fastest"] = vs_fastest(table)
    return table


INFERENCE_ONLY = "ok (inference only)"  # a row's status when its backend does not train: not a failure


def _inference_columns(ok: pd.DataFrame, cold: pd.DataFrame) -> dict[str, Any]:
    """A row's inference phase over its processes: each process gave one p50, p90, p99 and throughput."""
    latency = ok["latency_p50_s"].dropna()
    normalised = ok["latency_p50_s"] / ok["calibration_s"] if "calibration_s" in ok else pd.Series(dtype=float)
    only = ok["inference_only"].eq(True) if "inference_only" in ok else pd.Series(False, index=ok.index)
    return dict(
        latency_first_ms=_median(cold["latency_first_s"]) * 1e3,
        latency_p50_ms=_median(latency) * 1e3,
        latency_min_ms=_agg(latency, "min") * 1e3,
        latency_max_ms=_agg(latency, "max") * 1e3,
        latency_p90_ms=_median(ok["latency_p90_s"]) * 1e3,
        latency_p99_ms=_median(ok["latency_p99_s"]) * 1e3,
        latency_cal=_median(normalised),
        throughput_per_s=_median(ok["throughput_per_s"]),
        inference_only=bool(len(ok)) and bool(only.all()),
    )


RACE_KEYS = list(RACE_FIELDS)  # rows that race each other: the same model in the same experiment


def vs_fastest(table: pd.DataFrame) -> pd.Series:
    """Each row's steady time over the fastest steady time of its task, experiment and model (1.0: fastest)."""
    if table.empty:
        return pd.Series(dtype="float64")
    fastest = table.groupby(RACE_KEYS, dropna=False)["steady_epoch_ms"].transform("min")
    return (table["steady_epoch_ms"] / fastest).astype("float64")


def failures(cells: pd.DataFrame) -> pd.DataFrame:
    """Every cell that did not end ``ok``, with the line of its error that says why as the reason
    (:func:`~seqbench.results.error_reason`)."""
    columns = [*SEED_KEYS, "status", "epochs_run", "reason"]
    if cells.empty:
        return pd.DataFrame(columns=columns)
    bad = cells[cells["status"] != Status.OK].copy()
    bad["reason"] = [
        error_reason(e) or (f"loss became non-finite at epoch {int(n)}" if s == Status.DIVERGED and pd.notna(n) else "")
        for e, s, n in zip(bad["error"], bad["status"], pd.to_numeric(bad["epochs_run"], errors="coerce"), strict=True)
    ]
    return bad[columns].sort_values(SEED_KEYS).reset_index(drop=True)


def run_info(run: Run) -> dict[str, Any]:
    """What a reader needs to know about the run before trusting its table."""
    meta = run.meta
    every = run.attempts if run.attempts is not None else run.cells  # re-measurements included
    again = remeasurements(every["attempt"]) if "attempt" in every else 0  # disturbed repeats measured again
    done = len(every) - again
    planned = meta.get("cells_planned")
    status = run.status
    git = meta.get("git") if isinstance(meta.get("git"), dict) else None
    return {
        "run_id": run.path.name,
        "path": str(run.path),
        "status": status,
        "partial": status != RunStatus.COMPLETE or (isinstance(planned, int) and done < planned),
        "cells_done": done,
        "remeasured": again,
        "envs": meta.get("envs") if isinstance(meta.get("envs"), dict) else {},
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

