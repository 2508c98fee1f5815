"""A :class:`~seqbench.comparison.Comparison` as text, Markdown (a PR comment) or JSON.

The text and JSON forms carry every column; the Markdown form puts the
verdict, the geometric mean and a compact table first (:func:`compact_table`),
and the rest under ``<details>`` (:func:`details_table`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from seqbench.comparison import UNJUDGED, Comparison, geometric_mean_ratio
from seqbench.escape import markdown, one_line, terminal
from seqbench.formatting import fmt_ms, fmt_num, fmt_p, fmt_ratio3, is_number, jsonable
from seqbench.keys import RowKey
from seqbench.tables import md_table, records, text_table

FORMATS = ("text", "md", "json")


def _time_format(c: Comparison) -> Any:
    return (lambda v: fmt_num(v, ".3g")) if c.normalized else fmt_ms


def display_table(c: Comparison) -> pd.DataFrame:
    """Every row, every column a person reads in the terminal."""
    unit = "cal" if c.normalized else "ms"
    fmt_time = _time_format(c)
    rows = []
    for r in c.table.to_dict("records"):
        if r["match"] != "matched":
            rows.append({"task": r["task"], "backend": _backend(r),
                         "model": r["model"], f"base {unit}": "-", f"new {unit}": "-", "new/base": "-",
                         "95% CI": "-", "p-value": "-", "processes": "-", "time": r["match"], "accuracy": "-",
                         "params": "-",
                         "status": f"{r['base_status']} -> {r['new_status']}", "result": ""})  # fmt: skip
            continue
        acc = f"{fmt_num(r['base_accuracy'], '.2f')} -> {fmt_num(r['new_accuracy'], '.2f')}"
        params = fmt_num(r["new_params"], ".0f")
        if r["params_changed"]:
            params = f"{fmt_num(r['base_params'], '.0f')} -> {params}"
        status = r["new_status"] if r["base_status"] == r["new_status"] else f"{r['base_status']} -> {r['new_status']}"
        rows.append({
            "task": r["task"], "backend": _backend(r), "model": r["model"],
            f"base {unit}": fmt_time(r["base_median"]), f"new {unit}": fmt_time(r["new_median"]),
            "new/base": fmt_ratio3(r["ratio"]),
            "95% CI": f"{fmt_ratio3(r['ratio_low'])}-{fmt_ratio3(r['ratio_high'])}",
            "p-value": fmt_p(r["p_value"]),
            "processes": f"{r['n_base']:.0f} / {r['n_new']:.0f}" + _disturbed_mark(r), "time": r["verdict"],
            "accuracy": acc, "params": params, "status": status,
            "result": ("REGRESSION: " + r["reasons"]) if r["regression"] else "",
        })  # fmt: skip
    return pd.DataFrame(rows)


_RIGHT = {"base ms", "new ms", "base cal", "new cal", "new/base", "95% CI", "p-value", "processes", "params"}


def _disturbed_mark(r: Mapping[Any, Any]) -> str:
    n = int(r["base_disturbed"] or 0) + int(r["new_disturbed"] or 0)
    return f" ({n} disturbed)" if n else ""


def _verdict_line(c: Comparison) -> str:
    matched = c.matched
    if c.exit_code:
        return f"REGRESSION in {len(c.problems)} of {len(matched)} matched rows"
    unjudged = matched[matched["verdict"].isin(UNJUDGED)]
    if len(unjudged):
        counts = unjudged["verdict"].value_counts()
        what = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        return (f"no regression found in {len(matched)} matched rows, but {len(unjudged)} could not be judged "
                f"({what}): measure again on a quiet machine, or with more --seeds")  # fmt: skip
    return f"no regression in {len(matched)} matched rows"


def _settings_line(c: Comparison) -> str:
    unit = "calibration units" if c.normalized else "ms"
    over = ("A/B pairs (one per seed, run side by side in one run: a paired t interval of the log ratios)"
            if c.paired else "worker processes (one per seed)")  # fmt: skip
    return (f"threshold {c.threshold:.0%}: slower only when the 95% interval of new/base, computed over {over}, "
            f"lies above {1 + c.threshold:.2f}; processes whose threads waited for a CPU in most epochs are left "
            f"out while two clean ones remain, else the row is 'disturbed' and not judged"
            f"{' (--strict: it fails)' if c.strict else ''}; accuracy tolerance {c.accuracy_tolerance:.3f}; "
            f"times: median {c.measure.title}, {unit}")  # fmt: skip


def geomean_line(c: Comparison) -> str:
    """``geometric mean of new/base over 4 matched rows: 1.034 (3.4% slower)``."""
    g, n = geometric_mean_ratio(c)
    if not n:
        return "geometric mean of new/base: no matched row has times on both sides"
    change = "no change" if round(g, 3) == 1 else f"{abs(g - 1):.1%} {'slower' if g > 1 else 'faster'}"
    return f"geometric mean of new/base over {n} matched row{'s' if n != 1 else ''}: {fmt_ratio3(g)} ({change})"


def _backend(r: Mapping[Any, Any]) -> str:
    return RowKey.of(r).entrant


def compact_table(c: Comparison) -> pd.DataFrame:
    """What a PR comment shows first: verdict, backend, model, ratio with its interval, accuracy change.

    Rows are ordered worst first (regressions, then the rows that could not be judged).  With several
    experiments, an ``exp`` column numbers them (:func:`experiment_index`, spelled out in the details).
    """
    index = experiment_index(c)
    rows = []
    for r in _worst_first(c.table):
        if r["match"] != "matched":
            verdict, ratio, acc = r["match"], "-", "-"
        else:
            verdict = ("REGRESSION: " + r["reasons"]) if r["regression"] else r["verdict"]
            ratio = fmt_ratio3(r["ratio"])
            if is_number(r["ratio_low"]):
                ratio += f" ({fmt_ratio3(r['ratio_low'])}-{fmt_ratio3(r['ratio_high'])})"
            acc = fmt_num(r["accuracy_change"], "+.3f")
        row = {"verdict": verdict, "backend": _backend(r), "model": r["model"]}
        if len(index) > 1:
            row["exp"] = str(index[(r["task"], r["experiment"])])
        row.update({"new/base (95% CI)": ratio, "accuracy change": acc})
        rows.append(row)
    return pd.DataFrame(rows, columns=["verdict", "backend", "model", *(["exp"] if len(index) > 1 else []),
                                       "new/base (95% CI)", "accuracy change"])  # fmt: skip


def experiment_index(c: Comparison) -> dict[tuple[str, str], int]:
    """A number for each (task, experiment) of the comparison, in sorted order, from 1."""
    keys = sorted({(str(t), str(e)) for t, e in zip(c.table["task"], c.table["experiment"], strict=True)})
    return {k: i for i, k in enumerate(keys, 1)}


def _worst_first(table: pd.DataFrame) -> list[dict[str, Any]]:
    def rank(r: dict[str, Any]) -> int:
        return 0 if r["regression"] else 1 if r["verdict"] in UNJUDGED else 2 if r["match"] == "matched" else 3

    rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in table.to_dict("records")]
    return sorted(rows, key=rank)


def details_table(c: Comparison) -> pd.DataFrame:
    """Everything else a reviewer may want, per row: times, p-value, processes, disturbed, statuses, params."""
    unit = "cal" if c.normalized else "ms"
    fmt_time = _time_format(c)
    index = experiment_index(c)
    rows = []
    for r in _worst_first(c.table):
        matched = r["match"] == "matched"
        params = fmt_num(r["new_params"], ".0f")
        if matched and r["params_changed"]:
            params = f"{fmt_num(r['base_params'], '.0f')} -> {params}"
        rows.append({
            "backend": _backend(r), "model": r["model"], "exp": str(index[(r["task"], r["experiment"])]),
            f"base {unit}": fmt_time(r["base_median"]) if matched else "-",
            f"new {unit}": fmt_time(r["new_median"]) if matched else "-",
            "p-value": fmt_p(r["p_value"]) if matched else "-",
            "processes base/new": f"{r['n_base']:.0f}/{r['n_new']:.0f}" if matched else "-",
            "disturbed base/new": f"{int(r['base_disturbed'] or 0)}/{int(r['new_disturbed'] or 0)}" if matched else "-",
            "accuracy base -> new": f"{fmt_num(r['base_accuracy'], '.3f')} -> {fmt_num(r['new_accuracy'], '.3f')}"
            if matched else "-",
            "status base -> new": f"{r['base_status']} -> {r['new_status']}", "params": params,
        })  # fmt: skip
    return pd.DataFrame(rows)


_RIGHT_MD = {"new/base (95% CI)", "accuracy change", "exp", "p-value", "processes base/new", "disturbed base/new",
             "params", "base ms", "new ms", "base cal", "new cal"}  # fmt: skip


def _short(c: Comparison, side: int) -> str:
    """A side as a PR comment names it: the run's id, and the environment of an A/B run."""
    run = (c.base, c.new)[side]
    return f"{run.path.name} @{c.envs[side]} (paired)" if c.envs else run.path.name


def render_markdown(c: Comparison) -> str:
    """A PR comment: the verdict line, the geometric mean, a compact table, and the rest under <details>."""
    out = [f"## seqbench compare: {markdown(_verdict_line(c))}", "", markdown(geomean_line(c)), "",
           f"- BASE {markdown(_short(c, 0))}", f"- NEW {markdown(_short(c, 1))}", ""]  # fmt: skip
    out += [f"> **Warning:** {markdown(w)}" for w in c.warnings]
    if c.warnings:
        out.append("")
    out += [md_table(compact_table(c), _RIGHT_MD), ""]
    out += ["<details><summary>Details: times, p-values, processes, statuses, parameters, experiments</summary>",
            "", md_table(details_table(c), _RIGHT_MD), ""]  # fmt: skip
    out += [f"- experiment {i}: {markdown(task)}, {markdown(exp)}" for (task, exp), i in experiment_index(c).items()]
    out += ["", markdown(_settings_line(c)), "", "</details>"]
    return "\n".join(out) + "\n"


def render(c: Comparison, fmt: str = "text") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if fmt == "json":
        doc = {
            "base": str(c.base.path), "new": str(c.new.path), "paired": c.paired,
            "envs": list(c.envs) if c.envs else None, "threshold": c.threshold,
            "accuracy_tolerance": c.accuracy_tolerance, "normalized": c.normalized, "strict": c.strict,
            "measure": c.measure.name,
            "warnings": c.warnings, "summary": _verdict_line(c),
            "regression": bool(c.exit_code), "rows": records(c.table),
        }  # fmt: skip
        return json.dumps(jsonable(doc), indent=2) + "\n"
    table = display_table(c)
    head = f"BASE {one_line(c.base_label)}\nNEW  {one_line(c.new_label)}"
    if fmt == "text":
        out = [head]
        out += [f"WARNING: {one_line(w)}" for w in c.warnings]
        out += ["", text_table(table, _RIGHT), "", _verdict_line(c), geomean_line(c), _settings_line(c)]
        return terminal("\n".join(out))
    return render_markdown(c)


