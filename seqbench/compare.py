"""Compare two runs row by row, with a verdict on every time ratio that holds on a noisy machine.

Rows are matched by (task, experiment, backend, implementation, model,
device): the experiment is the whole configuration (task parameters, units,
activation, epochs, batch size, threads, dtype), and two runs whose shared
rows were measured in different experiments are not compared at all
(:class:`ResultsError`, exit 2, naming what differs).

Each matched row's time verdict is computed over *processes*: one value per
completed repeat (its median steady epoch), NEW/BASE as a ratio of geometric
means with a Welch t interval (:mod:`seqbench.stats`).  A row is
``slower`` only when the whole interval lies above 1 + threshold; when a
repeat on either side ran while other processes took CPU the verdict is
``disturbed``, and when the interval straddles the threshold it is
``undecided``: both are said in words and do not fail the comparison unless
``strict``.

Exit status (:attr:`Comparison.exit_code`): 1 when any matched row is
confidently slower beyond the threshold, lost accuracy beyond the tolerance,
or newly fails (with ``strict``, also when a row is undecided, disturbed or
has too few processes); else 0.  Unusable input raises :class:`ResultsError` (2).
"""

from __future__ import annotations

import json
import math
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seqbench.calibration import machines, score
from seqbench.errors import ResultsError
from seqbench.escape import markdown, one_line, terminal
from seqbench.report import KEYS, cell_view, fmt_ms, jsonable, md_table, records, text_table
from seqbench.results import COMPLETED, ROW_KEYS, Run, experiment_differences
from seqbench.stats import DISTURBED, FEW, NA, SLOWER, UNDECIDED, judge

FORMATS = ("text", "md", "json")
HARDWARE_FIELDS = ("cpu", "cores", "memory_gb", "machine", "os", "python", "python_implementation")
UNJUDGED = (UNDECIDED, DISTURBED, FEW)  # said in words; a failure only with --strict


# ------------------------------------------------------------------ comparing runs


@dataclass
class Comparison:
    base: Run
    new: Run
    table: pd.DataFrame  # one row per matched or unmatched (task, model, backend, implementation, device)
    warnings: list[str] = field(default_factory=list)
    threshold: float = 0.10
    accuracy_tolerance: float = 0.05
    normalized: bool = False
    strict: bool = False

    @property
    def problems(self) -> pd.DataFrame:
        return self.table[self.table["regression"]]

    @property
    def exit_code(self) -> int:
        return 1 if len(self.problems) else 0


def _differences(a: dict[str, Any], b: dict[str, Any], names: tuple[str, ...] | None = None) -> list[str]:
    keys = names if names is not None else tuple(sorted(set(a) | set(b)))
    return [f"{k} {a.get(k, 'absent')} -> {b.get(k, 'absent')}" for k in keys if a.get(k) != b.get(k)]


def run_warnings(base: Run, new: Run) -> list[str]:
    """Loud notes on anything that makes the two runs' times not comparable."""
    out = []
    mb, mn = machines(base.meta), machines(new.meta)
    if len(mb) > 1 or len(mn) > 1:
        out.append(f"a run spans several machines (BASE {len(mb)}, NEW {len(mn)}): rows are compared across "
                   "whichever machine ran them")  # fmt: skip
    hb = [m.get("machine") or {} for m in mb.values()]
    hn = [m.get("machine") or {} for m in mn.values()]
    if len(hb) == 1 and len(hn) == 1:
        diff = _differences(hb[0], hn[0], HARDWARE_FIELDS)
        if diff:
            out.append("different machines: " + "; ".join(diff))
        elif hb[0].get("hostname") != hn[0].get("hostname"):
            out.append(f"different hosts with the same hardware ({hb[0].get('hostname')} -> "
                       f"{hn[0].get('hostname')})")  # fmt: skip
    packages_b = {k: v for m in mb.values() for k, v in (m.get("packages") or {}).items()}
    packages_n = {k: v for m in mn.values() for k, v in (m.get("packages") or {}).items()}
    packages_b.update(base.meta.get("packages") or {})
    packages_n.update(new.meta.get("packages") or {})
    common = tuple(sorted(set(packages_b) & set(packages_n)))
    diff = _differences(packages_b, packages_n, common)
    if diff:
        out.append("different library versions: " + "; ".join(diff))
    sb = [score(m.get("calibration")) for m in mb.values()]
    sn = [score(m.get("calibration")) for m in mn.values()]
    if len(sb) == 1 and len(sn) == 1 and sb[0] and sn[0] and abs(sn[0] / sb[0] - 1) > 0.10:
        ratio = f"the calibration workload took {sn[0] / sb[0]:.2f}x as long in NEW as in BASE"
        if _differences(hb[0], hn[0], HARDWARE_FIELDS):
            out.append(f"{ratio}: the machines differ in speed; consider --normalize")
        else:
            out.append(f"{ratio} on the same hardware: the machine was busier during one run; its times are suspect")
    for name, run in (("BASE", base), ("NEW", new)):
        if run.status != "complete":
            out.append(f"{name} is partial (status {run.status}): only its finished cells are compared")
    return out


def _status(cells: pd.DataFrame) -> str:
    if cells.empty:
        return "-"
    counts = cells["status"].value_counts()
    return ", ".join(f"{counts[s]} {s}" for s in sorted(counts.index, key=lambda s: (s != "ok", s)))


def check_same_experiments(cells_b: pd.DataFrame, cells_n: pd.DataFrame) -> None:
    """Refuse runs whose shared rows were measured in different experiments (names what differs)."""
    exp_b = cells_b.groupby(list(ROW_KEYS))["experiment"].agg(set)
    exp_n = cells_n.groupby(list(ROW_KEYS))["experiment"].agg(set)
    for row in exp_b.index.intersection(exp_n.index):
        if not exp_b[row] & exp_n[row]:
            diff = experiment_differences(sorted(exp_b[row])[0], sorted(exp_n[row])[0])
            raise ResultsError(
                f"the runs measured different experiments ({'; '.join(diff)}): their times are not "
                "comparable; compare runs of the same configuration"
            )


def _process_values(cells: pd.DataFrame, normalize: bool, name: str, run: Run) -> pd.Series:
    """One time per completed repeat (process): ms, or calibration units with ``normalize``."""
    if not normalize:
        return cells["steady_epoch_s"] * 1e3
    if cells["calibration_s"].isna().any():
        raise ResultsError(f"--normalize: {name} ({run.path}) has no calibration for some cells; "
                           "compare without --normalize")  # fmt: skip
    return cells["steady_epoch_s"] / cells["calibration_s"]


def compare_runs(base: Run, new: Run, threshold: float = 0.10, accuracy_tolerance: float = 0.05,
                 normalize: bool = False, confidence: float = 0.95, strict: bool = False) -> Comparison:  # fmt: skip
    """Match the two runs' rows and judge each (see the module doc)."""
    if not (threshold >= 0 and accuracy_tolerance >= 0 and math.isfinite(threshold + accuracy_tolerance)):
        raise ValueError("threshold and tolerance must be finite and not negative")
    cells_b, cells_n = cell_view(base), cell_view(new)
    warnings = run_warnings(base, new)
    check_same_experiments(cells_b, cells_n)
    keys_b = {tuple(k) for k in cells_b[KEYS].drop_duplicates().itertuples(index=False)}
    keys_n = {tuple(k) for k in cells_n[KEYS].drop_duplicates().itertuples(index=False)}
    matched = keys_b & keys_n
    if not matched:
        raise ResultsError(
            f"no cells match between {base.path} and {new.path}: they share no "
            "(task, backend, implementation, model, device); nothing to compare"
        )

    def select(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
        mask = np.ones(len(frame), dtype=bool)
        for column, value in zip(KEYS, key, strict=True):
            mask &= (frame[column] == value).to_numpy()
        return frame[mask]

    rows = []
    for key in sorted(keys_b | keys_n):
        row: dict[str, Any] = dict(zip(KEYS, key, strict=True))
        cb, cn = select(cells_b, key), select(cells_n, key)
        row.update(base_status=_status(cb), new_status=_status(cn))
        if key not in matched:
            row.update(match="only in BASE" if key in keys_b else "only in NEW", verdict=NA, regression=False,
                       reasons="")  # fmt: skip
            rows.append(row)
            continue
        ok_b, ok_n = cb[cb["status"].isin(COMPLETED)], cn[cn["status"].isin(COMPLETED)]
        values_b = _process_values(ok_b, normalize, "BASE", base).dropna()
        values_n = _process_values(ok_n, normalize, "NEW", new).dropna()
        disturbed_b, disturbed_n = int(ok_b["disturbed"].sum()), int(ok_n["disturbed"].sum())
        t = judge(list(values_b), list(values_n), threshold, confidence, disturbed=bool(disturbed_b + disturbed_n))
        common = set(ok_b["seed"]) & set(ok_n["seed"])  # same seeds: same data and weights
        acc_b = ok_b[ok_b["seed"].isin(common)]["accuracy"] if common else ok_b["accuracy"]
        acc_n = ok_n[ok_n["seed"].isin(common)]["accuracy"] if common else ok_n["accuracy"]
        acc_b_med = float(acc_b.median()) if acc_b.notna().any() else math.nan
        acc_n_med = float(acc_n.median()) if acc_n.notna().any() else math.nan
        params_b = float(cb["params"].max()) if cb["params"].notna().any() else math.nan
        params_n = float(cn["params"].max()) if cn["params"].notna().any() else math.nan
        newly_failed = sorted(int(s) for s in set(ok_b["seed"]) - set(ok_n["seed"]) if s in set(cn["seed"]))
        reasons = []
        if t.verdict == SLOWER:
            reasons.append(f"slower x{t.ratio:.2f}")
        elif strict and t.verdict in UNJUDGED:
            reasons.append(f"{t.verdict} (--strict)")
        delta = acc_n_med - acc_b_med
        if math.isfinite(delta) and delta < -accuracy_tolerance:
            reasons.append(f"accuracy {delta:+.3f}")
        if newly_failed:
            reasons.append("newly fails (seed " + ",".join(map(str, newly_failed)) + ")")
        row.update(
            match="matched",
            base_median=float(values_b.median()) if len(values_b) else math.nan,
            new_median=float(values_n.median()) if len(values_n) else math.nan,
            ratio=t.ratio, ratio_low=t.low, ratio_high=t.high, p_value=t.p, n_base=t.n_base, n_new=t.n_new,
            base_disturbed=disturbed_b, new_disturbed=disturbed_n, verdict=t.verdict, verdict_text=t.text,
            base_accuracy=acc_b_med, new_accuracy=acc_n_med, accuracy_change=delta,
            base_params=params_b, new_params=params_n, params_changed=params_b != params_n
            and not (math.isnan(params_b) and math.isnan(params_n)),
            newly_failed=",".join(map(str, newly_failed)), regression=bool(reasons), reasons="; ".join(reasons),
        )  # fmt: skip
        if row["params_changed"]:
            warnings.append(f"{'/'.join(key)}: parameter count changed {params_b:.0f} -> {params_n:.0f}")
        rows.append(row)
    columns = [*KEYS, "match", "base_median", "new_median", "ratio", "ratio_low", "ratio_high", "p_value",
               "n_base", "n_new", "base_disturbed", "new_disturbed", "verdict", "verdict_text", "base_accuracy",
               "new_accuracy", "accuracy_change", "base_params", "new_params", "params_changed", "base_status",
               "new_status", "newly_failed", "regression", "reasons"]  # fmt: skip
    table = pd.DataFrame(rows).reindex(columns=columns)
    table["regression"] = table["regression"].fillna(False).astype(bool)
    return Comparison(base, new, table, warnings, threshold, accuracy_tolerance, normalize, strict)


# ------------------------------------------------------------------ rendering


def _num(v: Any, spec: str) -> str:
    return format(float(v), spec) if v is not None and not (isinstance(v, float) and math.isnan(v)) else "-"


def display_table(c: Comparison) -> pd.DataFrame:
    unit = "cal" if c.normalized else "ms"
    fmt_time = (lambda v: _num(v, ".3g")) if c.normalized else fmt_ms
    rows = []
    for r in c.table.to_dict("records"):
        if r["match"] != "matched":
            rows.append({"task": r["task"], "backend": f"{r['backend']}:{r['implementation']}/{r['device']}",
                         "model": r["model"], f"base {unit}": "-", f"new {unit}": "-", "new/base": "-",
                         "95% CI": "-", "p-value": "-", "processes": "-", "time": r["match"], "accuracy": "-",
                         "params": "-",
                         "status": f"{r['base_status']} -> {r['new_status']}", "result": ""})  # fmt: skip
            continue
        acc = f"{_num(r['base_accuracy'], '.2f')} -> {_num(r['new_accuracy'], '.2f')}"
        params = _num(r["new_params"], ".0f")
        if r["params_changed"]:
            params = f"{_num(r['base_params'], '.0f')} -> {params}"
        status = r["new_status"] if r["base_status"] == r["new_status"] else f"{r['base_status']} -> {r['new_status']}"
        rows.append({
            "task": r["task"], "backend": f"{r['backend']}:{r['implementation']}/{r['device']}", "model": r["model"],
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
    matched = c.table[c.table["match"] == "matched"]
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
    return (f"threshold {c.threshold:.0%}: slower only when the 95% interval of new/base, computed over worker "
            f"processes (one per seed), lies above {1 + c.threshold:.2f}; rows measured while other processes "
            f"took CPU are 'disturbed' and not judged{' (--strict: they fail)' if c.strict else ''}; accuracy "
            f"tolerance {c.accuracy_tolerance:.3f}; times: median steady epoch, {unit}")  # fmt: skip


def geometric_mean_ratio(c: Comparison) -> tuple[float, int]:
    """The geometric mean of NEW/BASE over every matched row with a ratio, and how many rows that is."""
    ratios = pd.to_numeric(c.table.loc[c.table["match"] == "matched", "ratio"], errors="coerce").dropna()
    ratios = ratios[ratios > 0]
    if ratios.empty:
        return math.nan, 0
    return float(np.exp(np.log(ratios.to_numpy(float)).mean())), len(ratios)


def geomean_line(c: Comparison) -> str:
    """``geometric mean of new/base over 4 matched rows: 1.034 (3.4% slower)``."""
    g, n = geometric_mean_ratio(c)
    if not n:
        return "geometric mean of new/base: no matched row has times on both sides"
    change = "no change" if round(g, 3) == 1 else f"{abs(g - 1):.1%} {'slower' if g > 1 else 'faster'}"
    return f"geometric mean of new/base over {n} matched row{'s' if n != 1 else ''}: {fmt_ratio3(g)} ({change})"


def fmt_ratio3(v: Any) -> str:
    """Ratios in compare: always three decimals (``1.000``, ``0.981``, ``3.690``)."""
    return _num(v, ".3f")


def fmt_p(v: Any) -> str:
    """p-values: always three decimals, ``<0.001`` below that (never ``1``, ``0.19`` and ``6e-05`` side by side)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "<0.001" if float(v) < 0.001 else f"{float(v):.3f}"


def _backend(r: Mapping[Any, Any]) -> str:
    return f"{r['backend']}:{r['implementation']}/{r['device']}"


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
            if _num(r["ratio_low"], "") != "-":
                ratio += f" ({fmt_ratio3(r['ratio_low'])}-{fmt_ratio3(r['ratio_high'])})"
            acc = _num(r["accuracy_change"], "+.3f")
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
    fmt_time = (lambda v: _num(v, ".3g")) if c.normalized else fmt_ms
    index = experiment_index(c)
    rows = []
    for r in _worst_first(c.table):
        matched = r["match"] == "matched"
        params = _num(r["new_params"], ".0f")
        if matched and r["params_changed"]:
            params = f"{_num(r['base_params'], '.0f')} -> {params}"
        rows.append({
            "backend": _backend(r), "model": r["model"], "exp": str(index[(r["task"], r["experiment"])]),
            f"base {unit}": fmt_time(r["base_median"]) if matched else "-",
            f"new {unit}": fmt_time(r["new_median"]) if matched else "-",
            "p-value": fmt_p(r["p_value"]) if matched else "-",
            "processes base/new": f"{r['n_base']:.0f}/{r['n_new']:.0f}" if matched else "-",
            "disturbed base/new": f"{int(r['base_disturbed'] or 0)}/{int(r['new_disturbed'] or 0)}" if matched else "-",
            "accuracy base -> new": f"{_num(r['base_accuracy'], '.3f')} -> {_num(r['new_accuracy'], '.3f')}"
            if matched else "-",
            "status base -> new": f"{r['base_status']} -> {r['new_status']}", "params": params,
        })  # fmt: skip
    return pd.DataFrame(rows)


_RIGHT_MD = {"new/base (95% CI)", "accuracy change", "exp", "p-value", "processes base/new", "disturbed base/new",
             "params", "base ms", "new ms", "base cal", "new cal"}  # fmt: skip


def render_markdown(c: Comparison) -> str:
    """A PR comment: the verdict line, the geometric mean, a compact table, and the rest under <details>."""
    out = [f"## seqbench compare: {markdown(_verdict_line(c))}", "", markdown(geomean_line(c)), "",
           f"- BASE {markdown(c.base.path.name)}", f"- NEW {markdown(c.new.path.name)}", ""]  # fmt: skip
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
            "base": str(c.base.path), "new": str(c.new.path), "threshold": c.threshold,
            "accuracy_tolerance": c.accuracy_tolerance, "normalized": c.normalized, "strict": c.strict,
            "warnings": c.warnings, "summary": _verdict_line(c),
            "regression": bool(c.exit_code), "rows": records(c.table),
        }  # fmt: skip
        return json.dumps(jsonable(doc), indent=2) + "\n"
    table = display_table(c)
    head = f"BASE {one_line(c.base.path)}\nNEW  {one_line(c.new.path)}"
    if fmt == "text":
        out = [head]
        out += [f"WARNING: {one_line(w)}" for w in c.warnings]
        out += ["", text_table(table, _RIGHT), "", _verdict_line(c), geomean_line(c), _settings_line(c)]
        return terminal("\n".join(out))
    return render_markdown(c)


def compare_public(base: Any, new: Any, threshold: float = 0.10, accuracy_tolerance: float = 0.05,
                   normalize: bool = False, strict: bool = False) -> Comparison:  # fmt: skip
    """:func:`compare_runs` on runs or anything :func:`seqbench.load_run` takes (``seqbench.compare``)."""
    from seqbench.loader import load_run

    def run(value: Any) -> Run:
        return value if isinstance(value, Run) else load_run(value)

    return compare_runs(run(base), run(new), threshold=threshold, accuracy_tolerance=accuracy_tolerance,
                        normalize=normalize, strict=strict)  # fmt: skip


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`compare_public`.

    Why: ``seqbench.compare(base, new)`` is the public function, but importing this module makes Python set
    the package attribute ``seqbench.compare`` to the module, replacing the function.  A callable module
    keeps ``seqbench.compare(base, new)`` working whichever happened last.
    """

    def __call__(self, base: Any, new: Any, **options: Any) -> Comparison:
        return compare_public(base, new, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["KEYS", "Comparison", "compare_public", "compare_runs", "geometric_mean_ratio", "render"]
