"""Views of a stored run: pandas DataFrames computed from it, with nothing formatted.

Every view is a function of the loaded :class:`~seqbench.results.Run` (no
state, no cache): :func:`cell_view` (the cells that count, with their
experiment and their machine's calibration), :func:`epoch_view` and
:func:`steady_epochs` (the per-epoch samples behind each time),
:func:`summary` (one row per :class:`~seqbench.keys.RowKey`, over its
repeats), :func:`failures` and :func:`run_info`.  The renderers
(:mod:`seqbench.report`, :mod:`seqbench.compare_report`, :mod:`seqbench.history`,
:mod:`seqbench.plots`, :mod:`seqbench.export`) turn them into text, tables
and figures; :mod:`seqbench.formatting` writes their numbers.

pandas is imported at the top of this module, so the CLI imports this module
only inside the commands that need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from seqbench.attempts import attempt_number, counted, remeasurements
from seqbench.calibration import calibration_seconds, machines
from seqbench.keys import (
    COMPLETED,
    EXPERIMENT_FIELDS,
    KEY_FIELDS,
    RACE_FIELDS,
    REPEAT_FIELDS,
    RowKey,
    RunStatus,
    Status,
    experiment_label,
)
from seqbench.results import Run, error_reason

# A row of every view is a RowKey: a backend's implementation of a model on a device, in one experiment.
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
    "cpu_ms", "gpu_ms", "samples_per_s", "peak_rss_mb", "steady_cal", "implementation_path", "machine",
    # the inference phase (seqbench.harness.measure_inference): p50 median (min-max) over processes, the first
    # call over cold processes, p90/p99 and throughput medians over processes
    "latency_first_ms", "latency_p50_ms", "latency_min_ms", "latency_max_ms", "latency_p90_ms", "latency_p99_ms",
    "latency_cal", "throughput_per_s", "inference_only",
]  # fmt: skip

# A wall time is a measurement only when it is positive: a 0.0 or -0.0 (a clock too coarse to see the
# epoch, a hand edit, another tool's file) would divide by zero in every ratio a view feeds (samples/s,
# x vs fastest, the race lines, the exports), so it reads as missing, like a null.
_WALL_TIMES = ("first_epoch_s", "steady_epoch_s", "wall_s")


def _copy_on_write() -> bool:
    return int(pd.__version__.split(".")[0]) >= 3 or pd.get_option("mode.copy_on_write") is True


# Under copy-on-write (always, from pandas 3) a shallow copy is as safe as a deep one and shares every column it
# does not change: a deep copy of a million-cell run's frame was 600 MB more, several times over.
COPY_DEEP = not _copy_on_write()


def _copy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.copy(deep=COPY_DEEP)


def _numeric(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    frame = _copy(frame)
    for column in columns:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            if column in _WALL_TIMES:
                frame[column] = frame[column].where(frame[column] > 0)
    return frame


def with_experiment(cells: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """``cells`` with numeric columns as floats, the experiment fields filled in (from run.json's config
    for a failed cell, or a run older than the column), ``env`` and an ``experiment`` column."""
    return _with_experiment(cells, [meta], np.zeros(len(cells), dtype=np.int64))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _with_experiment(cells: pd.DataFrame, metas: Sequence[dict[str, Any]], run: np.ndarray) -> pd.DataFrame:
    """:func:`with_experiment` of the cells of several runs at once: row ``i`` is of the run ``metas[run[i]]``."""
    cells = _numeric(cells, _NUMERIC_CELL)
    configs: list[dict[str, Any]] = [dict(meta.get("config") or {}) for meta in metas]
    cells["attempt"] = cells["attempt"].fillna(1.0) if "attempt" in cells else 1.0
    cells["disturbed"] = cells["disturbed"].eq(True) if "disturbed" in cells else False
    cells["env"] = cells["env"].where(cells["env"].notna(), "").astype(object) if "env" in cells else ""
    runs = run.tolist()
    for column in EXPERIMENT_FIELDS:
        defaults = [c.get(column) for c in configs]
        if column == "task_params":
            defaults = [c.get("task_params") or {} for c in configs]
        elif column == "dtype":
            defaults = ["float32"] * len(configs)
        if column not in cells:
            cells[column] = [defaults[r] for r in runs]
        elif cells[column].isna().any():  # where nothing is missing, the column stays as it is
            run_defaults = (defaults[r] for r in runs)
            cells[column] = [d if _missing(v) else v for v, d in zip(cells[column], run_defaults, strict=True)]
    cells["experiment"] = _experiment_labels(cells)
    return cells


def _experiment_labels(cells: pd.DataFrame) -> list[str]:
    """:func:`~seqbench.keys.experiment_label` of each row, each distinct experiment labelled once."""
    labels: dict[tuple[Any, ...], str] = {}
    out = []
    for values in zip(*(cells[name] for name in EXPERIMENT_FIELDS), strict=True):
        # the dict of task parameters by identity (the loader shares equal ones), the rest by type and value
        key = (id(values[0]), *((type(v), v) for v in values[1:]))
        label = labels.get(key)
        if label is None:
            label = labels[key] = experiment_label(dict(zip(EXPERIMENT_FIELDS, values, strict=True)))
        out.append(label)
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _pair_of(row: Any) -> tuple[Any, ...]:
    """A repeat with its environment left out: A and B of one seed are chosen together (seqbench.attempts)."""
    return tuple(row.get(name) for name in PAIR_FIELDS)


PAIR_FIELDS = [name for name in SEED_KEYS if name != "env"]


def _counted(cells: pd.DataFrame, by: Sequence[str] = ()) -> np.ndarray:
    """The positions of the rows of ``cells`` (with their experiment) that count, in order (seqbench.attempts).

    ``by``: more columns that tell repeats apart (the run, when ``cells`` holds several).  The rule runs on
    the repeats measured more than once; where every measurement is a first attempt, all of them count.
    """
    everything = np.arange(len(cells))
    attempts = cells["attempt"]
    if attempts.dtype == np.float64 and bool(attempts.eq(1.0).all()):
        return everything
    pairs = [*PAIR_FIELDS, *by]
    number = [attempt_number(a) for a in attempts]
    group = cells.groupby(pairs, sort=False, dropna=False).ngroup().to_numpy()
    several = pd.Series(number).groupby(group).transform("nunique").to_numpy() > 1
    if not several.any():
        return everything
    again = np.flatnonzero(several)

    def pair_of(row: Any) -> tuple[Any, ...]:
        return tuple(row.get(name) for name in pairs)

    chosen = again[counted(_records(cells.iloc[again]), pair_of)]
    return np.sort(np.concatenate([everything[~several], chosen]))


def _rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The rows of ``frame`` at ``positions`` (sorted), numbered from 0: a copy, shallow when that is all of them."""
    if len(positions) == len(frame):
        return _copy(frame).reset_index(drop=True)
    return frame.iloc[positions].reset_index(drop=True)


def counted_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per repeat, the attempt that counts (:mod:`seqbench.attempts`); ``cells`` has its experiment."""
    if cells.empty:
        return cells
    return _rows(cells, _counted(cells))


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
    chosen = _counted(labelled)
    kept = labelled.iloc[chosen]
    if epochs.empty:
        return _rows(cells, chosen), epochs
    e = _numeric(epochs, ["seed", "attempt"])
    e["attempt"] = e["attempt"].fillna(1.0) if "attempt" in e else 1.0
    e["env"] = e["env"].where(e["env"].notna(), "").astype(object) if "env" in e else ""
    match = list(_EPOCH_MATCH)
    if "experiment" in e and e["experiment"].notna().all():
        match.append("experiment")
    wanted = set(kept[match].itertuples(index=False, name=None))
    keep = [row in wanted for row in e[match].itertuples(index=False, name=None)]
    return _rows(cells, chosen), epochs[keep].reset_index(drop=True)


def cell_view(run: Run) -> pd.DataFrame:
    """The cells that count, numeric columns as floats, each with its experiment, machine and calibration.

    One row per repeat: the attempt that counts (:mod:`seqbench.attempts`).  Runs written before these
    columns existed get them from run.json's config.
    """
    return cell_views(run.cells, [run.meta], np.zeros(len(run.cells), dtype=np.int64)).drop(columns=["_run"])


def cell_views(cells: pd.DataFrame, metas: Sequence[dict[str, Any]], run: np.ndarray) -> pd.DataFrame:
    """:func:`cell_view` of the cells of several runs at once (row ``i`` is of the run ``metas[run[i]]``),
    with that index as a ``_run`` column: one pass over every run's rows (``seqbench history``)."""
    cells = _with_experiment(cells, metas, run)
    cells["_run"] = run
    cells = _rows(cells, _counted(cells, ["_run"])) if len(cells) else cells
    known = [machines(meta) for meta in metas]
    runs = cells["_run"].tolist()
    if "machine" not in cells:
        cells["machine"] = None
    present = cells["machine"].notna()
    defaults = [next(iter(k)) for k in known]
    cells["machine"] = [m if ok else defaults[r] for m, ok, r in zip(cells["machine"], present, runs, strict=True)]
    cells["machine"] = cells["machine"].astype(object)
    scores = [{mid: calibration_seconds(m.get("calibration")) for mid, m in k.items()} for k in known]
    cells["calibration_s"] = pd.Series([scores[r].get(m) for m, r in zip(cells["machine"], runs, strict=True)],
                                       index=cells.index, dtype=object).astype("float64")  # fmt: skip
    return cells


def by_key(frame: pd.DataFrame) -> dict[RowKey, pd.DataFrame]:
    """The rows of a view (cells or epochs, with their experiment), split by :class:`~seqbench.keys.RowKey`."""
    return {RowKey(*map(str, key)): part for key, part in frame.groupby(KEYS, sort=False, dropna=False)}


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
    nothing = [None] * len(cells)
    own = {name: cells[name].tolist() if name in cells else nothing for name in set(names)}  # a cell's own column
    values = [found.get(name) if isinstance(found, dict) else own[name][i]
              for i, (name, found) in enumerate(zip(names, metrics, strict=True))]  # fmt: skip
    return names, pd.to_numeric(pd.Series(values, index=cells.index, dtype=object), errors="coerce").astype("float64")


def status_text(statuses: pd.Series) -> str:
    """How a row's repeats ended: ``ok`` when all did, else counts, ok first (``2 ok, 1 timeout``); ``-``: none."""
    return _status_text(statuses.value_counts().to_dict())


def _status_text(counts: dict[Any, int]) -> str:
    if not counts:
        return "-"
    if len(counts) == 1 and next(iter(counts)) == Status.OK:
        return Status.OK.value
    order = sorted(counts, key=lambda s: (s != Status.OK, str(s)))
    return ", ".join(f"{counts[s]} {s}" for s in order)


def summary(cells: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per task x experiment x backend x implementation x model x device, over processes.

    ``cells`` is a :func:`cell_view`.  Each completed repeat ran in its own
    process and contributes one steady time (its median of epochs 2..N); the
    row's time is the median over processes, with their min and max, so the
    spread shown is the variation between processes (docs/measurement.md).  First-epoch
    times come from cold processes only.  Failed seeds are counted in
    ``failed`` and named by :func:`failures`; ``disturbed`` counts the repeats
    that ran while other processes took CPU.

    ``by``: more columns that split the rows, added after the others (the run of :func:`cell_views`): one
    pass over many runs, each row's ``vs_fastest`` within its own.  Every statistic is a pandas group
    reduction over all rows at once, never a loop over the groups (a run of 4 cells took 25 ms that way).
    """
    keys = [*KEYS, *by]
    if cells.empty:
        return pd.DataFrame(columns=keys + SUMMARY_COLUMNS)
    cells = _numeric(cells, _NUMERIC_CELL)
    cells["_metric"], cells["_score"] = primary_scores(cells)
    for column in ("baseline", "gflops_per_s", "peak_share", "latency_first_s", "latency_p50_s", "latency_p90_s",
                   "latency_p99_s", "throughput_per_s"):  # fmt: skip
        if column not in cells:
            cells[column] = math.nan
    grouped = cells.groupby(keys, sort=True, dropna=False)
    group = grouped.ngroup().to_numpy()
    firsts = np.unique(group, return_index=True)[1]  # each group's first row, in group order
    ok = cells["status"].isin(COMPLETED).to_numpy()
    cold = ok & cells["cold"].ne(False).to_numpy() if "cold" in cells else ok

    def over(column: str | pd.Series, rows: np.ndarray, how: str) -> np.ndarray:
        """``how`` (median, min, max, count, sum) of a column over the chosen rows of each group, NaN skipped."""
        values = cells[column] if isinstance(column, str) else column
        return values.where(rows).groupby(group).agg(how).reindex(range(len(firsts))).to_numpy()

    def joined(values: pd.Series, rows: np.ndarray) -> list[str]:
        """The distinct values of each group's chosen rows (nulls left out), sorted, with commas."""
        seen: list[set[str]] = [set() for _ in firsts]
        for g, v in zip(group[rows], values[rows], strict=True):
            if not _missing(v):
                seen[g].add(str(v))
        return [",".join(sorted(found)) for found in seen]

    everyone = np.ones(len(cells), dtype=bool)
    steady = cells["steady_epoch_s"]
    samples = cells["samples_per_s"] * steady  # throughput from the steady median, so that the columns agree
    normalised = steady / cells["calibration_s"] if "calibration_s" in cells else pd.Series(math.nan, cells.index)
    statuses: list[dict[Any, int]] = [{} for _ in firsts]
    for g, status in zip(group, cells["status"], strict=True):
        if not _missing(status):
            statuses[g][status] = statuses[g].get(status, 0) + 1
    seeds = np.bincount(group, minlength=len(firsts))
    n_ok = np.bincount(group, weights=ok, minlength=len(firsts)).astype(int)
    processes = over(steady, ok, "count")
    table: dict[str, Any] = {key: cells[key].to_numpy()[firsts].tolist() for key in keys}
    table.update(
        seeds=seeds.tolist(),
        ok=n_ok.tolist(),
        failed=(seeds - n_ok).tolist(),
        status=[_status_text(counts) for counts in statuses],
        params=np.where(n_ok > 0, over("params", ok, "max"), over("params", everyone, "max")).tolist(),
        accuracy=over("accuracy", ok, "median").tolist(),
        accuracy_min=over("accuracy", ok, "min").tolist(),
        accuracy_max=over("accuracy", ok, "max").tolist(),
        final_loss=over("final_loss", ok, "median").tolist(),
        metric=joined(cells["_metric"], everyone),
        score=over("_score", ok, "median").tolist(),
        score_min=over("_score", ok, "min").tolist(),
        score_max=over("_score", ok, "max").tolist(),
        baseline=over("baseline", ok, "median").tolist(),
        gflops_per_s=over("gflops_per_s", ok, "median").tolist(),
        peak_share=over("peak_share", ok, "median").tolist(),
        first_epoch_ms=(over("first_epoch_s", cold, "median") * 1e3).tolist(),
        first_epoch_min_ms=(over("first_epoch_s", cold, "min") * 1e3).tolist(),
        first_epoch_max_ms=(over("first_epoch_s", cold, "max") * 1e3).tolist(),
        steady_epoch_ms=(over(steady, ok, "median") * 1e3).tolist(),
        steady_min_ms=(over(steady, ok, "min") * 1e3).tolist(),
        steady_max_ms=(over(steady, ok, "max") * 1e3).tolist(),
        processes=processes.astype(int).tolist(),
        disturbed=(over(pd.to_numeric(cells["disturbed"], errors="coerce"), ok, "sum").astype(int).tolist()
                   if "disturbed" in cells else [0] * len(firsts)),  # fmt: skip
        cpu_ms=(over("cpu_s", ok, "median") * 1e3).tolist(),
        gpu_ms=(over("gpu_s", ok, "median") * 1e3).tolist(),
        samples_per_s=np.where(over(samples, ok, "count") > 0,
                               over(samples, ok, "median") / over(steady, ok, "median"), math.nan).tolist(),
        peak_rss_mb=over("peak_rss_mb", ok, "max").tolist(),
        steady_cal=over(normalised, ok, "median").tolist(),
        implementation_path=joined(cells["implementation_path"], ok),
        machine=joined(cells["machine"], everyone) if "machine" in cells else [""] * len(firsts),
        **_inference_columns(cells, over, ok, cold, n_ok),
    )
    if any(table["inference_only"]):  # why such a row's training columns are empty: not a failure
        table["status"] = [INFERENCE_ONLY if only and s == Status.OK else s
                           for only, s in zip(table["inference_only"], table["status"], strict=True)]  # fmt: skip
    out = pd.DataFrame({name: table.get(name, [math.nan] * len(firsts)) for name in [*KEYS, *SUMMARY_COLUMNS, *by]})
    out["vs_fastest"] = vs_fastest(out, by)
    return out


INFERENCE_ONLY = "ok (inference only)"  # a row's status when its backend does not train: not a failure


def _inference_columns(cells: pd.DataFrame, over: Any, ok: np.ndarray, cold: np.ndarray,
                       n_ok: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """Each row's inference phase over its processes (each gave one p50, p90, p99 and throughput); ``over``
    reduces a column over the chosen rows of each row's group (see :func:`summary`)."""
    def column(name: str) -> pd.Series:
        return pd.to_numeric(cells[name], errors="coerce") if name in cells else pd.Series(math.nan, cells.index)

    normalised = column("latency_p50_s") / column("calibration_s")
    only = cells["inference_only"].eq(True).astype(float) if "inference_only" in cells else pd.Series(0.0, cells.index)
    return dict(
        latency_first_ms=(over(column("latency_first_s"), cold, "median") * 1e3).tolist(),
        latency_p50_ms=(over(column("latency_p50_s"), ok, "median") * 1e3).tolist(),
        latency_min_ms=(over(column("latency_p50_s"), ok, "min") * 1e3).tolist(),
        latency_max_ms=(over(column("latency_p50_s"), ok, "max") * 1e3).tolist(),
        latency_p90_ms=(over(column("latency_p90_s"), ok, "median") * 1e3).tolist(),
        latency_p99_ms=(over(column("latency_p99_s"), ok, "median") * 1e3).tolist(),
        latency_cal=over(normalised, ok, "median").tolist(),
        throughput_per_s=over(column("throughput_per_s"), ok, "median").tolist(),
        inference_only=((n_ok > 0) & (over(only, ok, "min") == 1)).tolist(),
    )


RACE_KEYS = list(RACE_FIELDS)  # rows that race each other: the same model in the same experiment


def vs_fastest(table: pd.DataFrame, by: Sequence[str] = ()) -> pd.Series:
    """Each row's steady time over the fastest steady time of its task, experiment and model (1.0: fastest),
    within the groups of ``by`` (the run, for a :func:`summary` of many)."""
    if table.empty:
        return pd.Series(dtype="float64")
    fastest = table.groupby([*RACE_KEYS, *by], dropna=False)["steady_epoch_ms"].transform("min")
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

