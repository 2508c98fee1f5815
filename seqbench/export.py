"""Export a run for CI dashboards that already exist.

``pytest-benchmark``
    pytest-benchmark's saved-run JSON (what ``--benchmark-autosave`` writes
    under ``.benchmarks/``): one benchmark per row, named
    ``steady_epoch[TASK-MODEL-BACKEND-IMPLEMENTATION-DEVICE]``, whose rounds
    are the row's processes (repeats), each its median steady epoch in
    seconds: the median is then the report's.  ``pytest-benchmark compare`` and
    ``--benchmark-compare`` read it.  ``commit_info`` comes from run.json's
    ``git``; ``version`` is the installed pytest-benchmark's, else the release
    whose layout this writes.  pytest-benchmark shows every value as seconds,
    so calibration units (``--normalize``) are refused for it.
``github-action-benchmark``
    the ``customSmallerIsBetter`` input of benchmark-action/github-action-benchmark:
    a JSON list of ``{"name", "unit", "value", "range", "extra"}``, one entry
    per row (median steady epoch, in ms or calibration units).  A dashboard
    keys its series by name alone, so a series in calibration units has its
    own name, ending in ``(cal)``: it never continues a series in ms.

With several experiments in one run (a grid), every name carries the
experiment too: otherwise two experiments' rows would share one series.

``measure="latency"`` (``seqbench export --measure latency``) writes the
inference phase's batch-1 latency instead, one value per process (its median
call), named ``latency_p50[...]`` and ``... latency p50 at batch 1``: a series
of its own (:mod:`seqbench.measures`).
"""

from __future__ import annotations

import json
import math
import statistics
from bisect import bisect_left, bisect_right
from typing import Any

from seqbench.calibration import machines
from seqbench.errors import ResultsError, UsageError
from seqbench.formatting import fmt_num, jsonable
from seqbench.keys import COMPLETED, RowKey
from seqbench.measures import DEFAULT, Measure, measure
from seqbench.results import Run

FORMATS = ("pytest-benchmark", "github-action-benchmark")
# The pytest-benchmark release whose saved-run layout this writes (unchanged since 3.x, ops added in 3.1):
# the version written when pytest-benchmark is not installed here.
PYTEST_BENCHMARK_FORMAT = "5.1.0"
NORMALIZED_SUFFIX = " (cal)"


def pytest_benchmark_version() -> str:
    """The installed pytest-benchmark's version (what its own saved runs say), else :data:`PYTEST_BENCHMARK_FORMAT`."""
    from importlib import metadata

    try:
        return metadata.version("pytest-benchmark")
    except metadata.PackageNotFoundError:
        return PYTEST_BENCHMARK_FORMAT


def _quartiles(data: list[float]) -> tuple[float, float]:
    """Q1 and Q3 as pytest-benchmark computes them (Wikipedia's methods 2 and 3)."""
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            return 0.25 * data[k - 1] + 0.75 * data[k], 0.75 * data[3 * k] + 0.25 * data[3 * k + 1]
        return 0.75 * data[k] + 0.25 * data[k + 1], 0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2]
    return statistics.median(data[: n // 2]), statistics.median(data[n // 2 :])


def benchmark_stats(samples: list[float]) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` object for these per-round seconds."""
    data = sorted(samples)
    n = len(data)
    mean = statistics.mean(data)
    stddev = statistics.stdev(data) if n > 1 else 0.0
    q1, q3 = _quartiles(data)
    iqr = q3 - q1
    lo, hi = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_out = sum(1 for v in data if v < lo or v > hi)
    std_out = sum(1 for v in data if v < mean - stddev or v > mean + stddev)
    total = sum(data)
    return {
        "min": data[0], "max": data[-1], "mean": mean, "stddev": stddev, "rounds": n,
        "median": statistics.median(data), "iqr": iqr, "q1": q1, "q3": q3, "iqr_outliers": iqr_out,
        "stddev_outliers": std_out, "outliers": f"{std_out};{iqr_out}",
        "ld15iqr": data[0] if n == 1 else data[bisect_left(data, lo)],
        "hd15iqr": data[0] if n == 1 else data[bisect_right(data, hi) - 1],
        "ops": n / total if total else 0, "total": total, "data": list(samples), "iterations": 1,
    }  # fmt: skip


def _rows(run: Run, normalize: bool,
          what: Measure = DEFAULT) -> tuple[list[tuple[RowKey, list[float], dict[str, Any]]], bool]:  # fmt: skip
    """(row key, one time of ``what`` per process in seconds or calibration units, summary row) per row with
    times, and whether the run holds several experiments (then every name carries its experiment).

    A sample is a process (a repeat: the attempt that counts), never an epoch: epochs inside one process are
    not independent, and their pooled median differs from the median over processes that the report shows.
    """
    from seqbench.views import by_key, cell_view, summary

    cells = cell_view(run)
    done = by_key(cells[cells["status"].isin(COMPLETED)])
    table = summary(cells)
    out: list[tuple[RowKey, list[float], dict[str, Any]]] = []
    for record in table.to_dict("records"):
        row = {str(k): v for k, v in record.items()}
        key = RowKey.of(row)
        part = done.get(key)
        if part is None:
            continue
        if normalize:
            if part["calibration_s"].isna().any():
                raise ResultsError(f"{run.path}: --normalize needs a calibration, and this run has none")
            values = (part[what.cell] / part["calibration_s"]).tolist()
        else:
            values = part[what.cell].tolist()
        values = [float(v) for v in values if math.isfinite(v)]
        if values:
            out.append((key, values, row))
    if not out:
        timed = "timed epochs" if what is DEFAULT else f"a {what.title} (seqbench run --inference)"
        raise ResultsError(f"{run.path}: no completed cell with {timed} to export")
    return out, table["experiment"].nunique() > 1


def _commit_info(git: dict[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's ``commit_info`` from run.json's ``git`` (what was recorded; null where nothing was)."""
    return {
        "id": git.get("commit") or "unknown", "time": git.get("time"), "author_time": git.get("author_time"),
        "dirty": bool(git.get("dirty")), "project": "seqbench", "branch": git.get("branch") or "(unknown)",
    }  # fmt: skip


def pytest_benchmark_json(run: Run, normalize: bool = False, measure: str | Measure = "epoch") -> dict[str, Any]:
    if normalize:
        raise UsageError("pytest-benchmark shows every value as seconds, so it cannot show calibration units: "
                           "export --normalize as github-action-benchmark, or without --normalize")  # fmt: skip
    meta = run.meta
    known = machines(meta)
    first = next(iter(known.values()))
    m = first.get("machine") or {}
    git: dict[str, Any] = meta.get("git") or {}
    benchmarks = []
    what = _measure(measure)
    rows, several = _rows(run, normalize, what)
    for key, values, row in rows:
        param = key.slug(with_experiment=several)
        benchmarks.append({
            "group": f"{key.task}-{key.model}",
            "name": f"{what.slug}[{param}]",
            "fullname": f"seqbench::{what.slug}[{param}]",
            "params": {"case": param},
            "param": param,
            "extra_info": {
                "unit": "seconds", "experiment": key.experiment, "accuracy": row["accuracy"],
                "params": row["params"], "status": row["status"], "seeds": row["seeds"],
                "implementation_path": row["implementation_path"], "machine": row["machine"], "run_id": run.path.name,
            },
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": len(values),
                        "max_time": 0, "min_time": 0, "warmup": False},
            "stats": benchmark_stats(values),
        })  # fmt: skip
    return {
        "machine_info": {
            "node": m.get("hostname", ""), "processor": m.get("machine", ""), "machine": m.get("machine", ""),
            "python_compiler": "", "python_implementation": m.get("python_implementation", ""),
            "python_implementation_version": m.get("python", ""), "python_version": m.get("python", ""),
            "python_build": [], "release": "", "system": m.get("os", ""),
            "cpu": {"brand_raw": m.get("cpu", ""), "count": m.get("cores")},
            "seqbench_machines": list(known),
        },
        "commit_info": _commit_info(git),
        "benchmarks": benchmarks,
        "datetime": meta.get("started"),
        "version": pytest_benchmark_version(),
    }  # fmt: skip


def github_action_benchmark_json(run: Run, normalize: bool = False,
                                 measure: str | Measure = "epoch") -> list[dict[str, Any]]:  # fmt: skip
    scale, unit = (1.0, "cal") if normalize else (1e3, "ms")
    out = []
    what = _measure(measure)
    rows, several = _rows(run, normalize, what)
    for key, values, row in rows:
        data = sorted(v * scale for v in values)
        q1, q3 = _quartiles(data)
        accuracy = row["accuracy"]
        extra = f"{row['seeds']} seeds, {len(data)} processes (median over processes); status {row['status']}"
        if accuracy == accuracy:
            extra += f"; accuracy {fmt_num(accuracy, '.2f')}"
        experiment = f" [{key.experiment}]" if several else ""
        out.append({
            "name": f"{key.task} {key.model} {key.entrant} {what.title}{experiment}"
                    + (NORMALIZED_SUFFIX if normalize else ""),
            "unit": unit,
            "value": round(statistics.median(data), 6),
            "range": f"± {(q3 - q1) / 2:.4g}",
            "extra": extra,
        })  # fmt: skip
    return out


def _measure(name: str | Measure) -> Measure:
    try:
        return measure(name)
    except ValueError as e:
        raise UsageError(str(e)) from None


def export(run: Run, fmt: str, normalize: bool = False, measure: str | Measure = "epoch") -> str:
    if fmt == "pytest-benchmark":
        doc: Any = pytest_benchmark_json(run, normalize, measure)
    elif fmt == "github-action-benchmark":
        doc = github_action_benchmark_json(run, normalize, measure)
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    return json.dumps(jsonable(doc), indent=2, allow_nan=False, default=str) + "\n"
