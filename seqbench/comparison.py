"""Compare two runs row by row, with a verdict on every time ratio that holds on a noisy machine.

Rows are matched by (task, experiment, backend, implementation, model,
device): the experiment is the whole configuration (task parameters, units,
activation, epochs, batch size, threads, dtype), and two runs whose shared
rows were measured in different experiments are not compared at all
(:class:`ResultsError`, exit 2, naming what differs).

Each matched row's time verdict is computed over *processes*: one value per
completed repeat (its median steady epoch, or with ``measure="latency"`` its
median batch-1 predict call: :mod:`seqbench.measures`; from the attempt that counts:
:mod:`seqbench.attempts`), NEW/BASE as a ratio of geometric means with a
Welch t interval (:mod:`seqbench.stats`).  A row is ``slower`` only when the
whole interval lies above 1 + threshold.  Disturbed repeats (their threads
waited for a CPU in most of their epochs) are left out while at least
:data:`~seqbench.stats.MIN_PROCESSES` clean ones remain on each side; with
fewer the verdict is ``disturbed``.  When the interval straddles the
threshold it is ``undecided``: both are said in words and do not fail the
comparison unless ``strict``.

:func:`compare_envs` judges the two environments of one A/B run
(``seqbench run --env A=... --env B=...``; ``seqbench compare RUN --base A
--new B``): rows are matched by their key without the environment, and each
row is judged from the per-seed ratios of processes that ran side by side
(:func:`seqbench.stats.judge_paired`), with the same verdicts and exit codes.

Exit status (:attr:`Comparison.exit_code`): 1 when any matched row is
confidently slower beyond the threshold, lost accuracy beyond the tolerance,
or newly fails (with ``strict``, also when a row is undecided, disturbed or
has too few processes); else 0.  Unusable input raises :class:`ResultsError` (2).

:mod:`seqbench.compare_report` renders a :class:`Comparison` as text,
Markdown (a PR comment) or JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seqbench.calibration import calibration_seconds, machines
from seqbench.errors import ResultsError
from seqbench.keys import CODE_FIELDS, COMPLETED, KEY_FIELDS, RunStatus, experiment_differences
from seqbench.measures import DEFAULT, Measure, measure
from seqbench.results import Run
from seqbench.stats import DISTURBED, FEW, MIN_PROCESSES, NA, SLOWER, UNDECIDED, Judgement, judge, judge_paired
from seqbench.views import by_key, cell_view, status_text

HARDWARE_FIELDS = ("cpu", "cores", "memory_gb", "gpus", "machine", "os", "python", "python_implementation")
UNJUDGED = (UNDECIDED, DISTURBED, FEW)  # said in words; a failure only with --strict
COLUMNS = [*KEY_FIELDS, "match", "base_median", "new_median", "ratio", "ratio_low", "ratio_high", "p_value",
           "n_base", "n_new", "base_disturbed", "new_disturbed", "verdict", "verdict_text", "base_accuracy",
           "new_accuracy", "accuracy_change", "base_params", "new_params", "params_changed", "base_status",
           "new_status", "newly_failed", "regression", "reasons"]  # fmt: skip


@dataclass
class Comparison:
    base: Run
    new: Run
    table: pd.DataFrame  # one row per RowKey of either run: matched, or only in one of them (COLUMNS)
    warnings: list[str] = field(default_factory=list)
    threshold: float = 0.10
    accuracy_tolerance: float = 0.05
    normalized: bool = False
    strict: bool = False
    envs: tuple[str, str] | None = None  # (base, new) environments of one A/B run: a paired comparison
    measure: Measure = DEFAULT  # what is timed: the steady epoch, or the latency (seqbench.measures)

    @property
    def paired(self) -> bool:
        return self.envs is not None

    @property
    def base_label(self) -> str:
        return f"{self.base.path} @{self.envs[0]}" if self.envs else str(self.base.path)

    @property
    def new_label(self) -> str:
        return f"{self.new.path} @{self.envs[1]}" if self.envs else str(self.new.path)

    @property
    def matched(self) -> pd.DataFrame:
        return self.table[self.table["match"] == "matched"]

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
    if base.path.resolve() == new.path.resolve():
        out.append(f"BASE and NEW are the same run ({base.path.name}): every row is compared with itself; give "
                   "two runs, or one A/B run with --base ENV --new ENV")  # fmt: skip
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
    sb = [calibration_seconds(m.get("calibration")) for m in mb.values()]
    sn = [calibration_seconds(m.get("calibration")) for m in mn.values()]
    if len(sb) == 1 and len(sn) == 1 and sb[0] and sn[0] and abs(sn[0] / sb[0] - 1) > 0.10:
        ratio = f"the calibration workload took {sn[0] / sb[0]:.2f}x as long in NEW as in BASE"
        if _differences(hb[0], hn[0], HARDWARE_FIELDS):
            out.append(f"{ratio}: the machines differ in speed; consider --normalize")
        else:
            out.append(f"{ratio} on the same hardware: the machine was busier during one run; its times are suspect")
    for name, run in (("BASE", base), ("NEW", new)):
        if run.status != RunStatus.COMPLETE:
            out.append(f"{name} is partial (status {run.status}): only its finished cells are compared")
    return out


def check_same_experiments(cells_b: pd.DataFrame, cells_n: pd.DataFrame) -> None:
    """Refuse runs whose shared rows were measured in different experiments (names what differs)."""
    exp_b = cells_b.groupby(list(CODE_FIELDS))["experiment"].agg(set)
    exp_n = cells_n.groupby(list(CODE_FIELDS))["experiment"].agg(set)
    for row in exp_b.index.intersection(exp_n.index):
        if not exp_b[row] & exp_n[row]:
            diff = experiment_differences(sorted(exp_b[row])[0], sorted(exp_n[row])[0])
            raise ResultsError(
                f"the runs measured different experiments ({'; '.join(diff)}): their times are not "
                "comparable; compare runs of the same configuration"
            )


def _process_values(cells: pd.DataFrame, normalize: bool, name: str, run: Run, what: Measure = DEFAULT) -> pd.Series:
    """One time per completed repeat (process) of ``what``: ms, or calibration units with ``normalize``."""
    values = cells[what.cell] if what.cell in cells else pd.Series(math.nan, index=cells.index, dtype="float64")
    if not normalize:
        return values * 1e3
    if cells["calibration_s"].isna().any():
        raise ResultsError(f"--normalize: {name} ({run.path}) has no calibration for some cells; "
                           "compare without --normalize")  # fmt: skip
    return values / cells["calibration_s"]


def _median(values: pd.Series) -> float:
    return float(values.median()) if values.notna().any() else math.nan


def compare_runs(base: Run, new: Run, threshold: float = 0.10, accuracy_tolerance: float = 0.05,
                 normalize: bool = False, confidence: float = 0.95, strict: bool = False,
                 measure: str | Measure = "epoch") -> Comparison:  # fmt: skip
    """Match the two runs' rows and judge each on ``measure`` (see the module doc)."""
    _check_limits(threshold, accuracy_tolerance)
    c = Comparison(base, new, pd.DataFrame(), run_warnings(base, new), threshold, accuracy_tolerance, normalize,
                   strict, measure=_measure(measure))  # fmt: skip
    cells_b, cells_n = cell_view(base), cell_view(new)
    check_same_experiments(cells_b, cells_n)
    return _judge_rows(c, cells_b, cells_n, confidence)


def env_names(run: Run) -> list[str]:
    """The environments of an A/B run, in the order given (none in a run of one)."""
    envs = run.meta.get("envs")
    return list(envs) if isinstance(envs, dict) else []


def compare_envs(run: Run, base_env: str, new_env: str, threshold: float = 0.10, accuracy_tolerance: float = 0.05,
                 normalize: bool = False, confidence: float = 0.95, strict: bool = False,
                 measure: str | Measure = "epoch") -> Comparison:  # fmt: skip
    """Judge environment ``new_env`` against ``base_env`` of one A/B run, pair by pair (see the module doc)."""
    _check_limits(threshold, accuracy_tolerance)
    names = env_names(run)
    for name in (base_env, new_env):
        if name not in names:
            valid = ", ".join(names) if names else "none: it is not an A/B run (seqbench run --env NAME=PYTHON)"
            raise ResultsError(f"{run.path} has no environment {name!r}; its environments: {valid}")
    if base_env == new_env:
        raise ResultsError(f"--base and --new are the same environment {base_env!r}: nothing to compare")
    c = Comparison(run, run, pd.DataFrame(), env_warnings(run, base_env, new_env), threshold, accuracy_tolerance,
                   normalize, strict, envs=(base_env, new_env), measure=_measure(measure))  # fmt: skip
    cells = cell_view(run)
    cells_b = cells[cells["env"] == base_env].assign(env="")
    cells_n = cells[cells["env"] == new_env].assign(env="")
    return _judge_rows(c, cells_b, cells_n, confidence)


def env_warnings(run: Run, base_env: str, new_env: str) -> list[str]:
    """What differs between the two environments besides the code under test (package versions)."""
    envs = run.meta.get("envs") or {}
    a, b = (envs.get(name) or {} for name in (base_env, new_env))
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    diff = _differences(pa, pb, tuple(sorted(set(pa) & set(pb) - {"seqbench"})))
    out = [f"different library versions between {base_env} and {new_env}: " + "; ".join(diff)] if diff else []
    if run.status != RunStatus.COMPLETE:
        out.append(f"the run is partial (status {run.status}): only its finished pairs are compared")
    return out


def _measure(name: str | Measure) -> Measure:
    try:
        return measure(name)
    except ValueError as e:
        raise ResultsError(str(e)) from None


def _check_limits(threshold: float, accuracy_tolerance: float) -> None:
    if not (threshold >= 0 and accuracy_tolerance >= 0 and math.isfinite(threshold + accuracy_tolerance)):
        raise ValueError("threshold and tolerance must be finite and not negative")


def _judge_rows(c: Comparison, cells_b: pd.DataFrame, cells_n: pd.DataFrame, confidence: float) -> Comparison:
    rows_b, rows_n = by_key(cells_b), by_key(cells_n)
    if not rows_b.keys() & rows_n.keys():
        raise ResultsError(
            f"no cells match between {c.base_label} and {c.new_label}: they share no "
            "(task, backend, implementation, model, device); nothing to compare"
        )
    rows = []
    for key in sorted(rows_b.keys() | rows_n.keys()):
        cb, cn = rows_b.get(key), rows_n.get(key)
        row: dict[str, Any] = asdict(key)
        row.update(base_status=status_text(cb["status"]) if cb is not None else "-",
                   new_status=status_text(cn["status"]) if cn is not None else "-")  # fmt: skip
        if cb is None or cn is None:
            row.update(match="only in BASE" if cn is None else "only in NEW", verdict=NA, regression=False,
                       reasons="")  # fmt: skip
        else:
            row.update(_judge_row(c, cb, cn, confidence))
            if row["params_changed"]:
                c.warnings.append(f"{key.describe()} [{key.experiment}]: parameter count changed "
                                  f"{row['base_params']:.0f} -> {row['new_params']:.0f}")  # fmt: skip
        rows.append(row)
    c.table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    c.table["regression"] = c.table["regression"].fillna(False).astype(bool)
    return c


def _judge_row(c: Comparison, cb: pd.DataFrame, cn: pd.DataFrame, confidence: float) -> dict[str, Any]:
    """The columns of one matched row: its time verdict over processes, accuracy, parameters, and why it fails."""
    ok_b, ok_n = cb[cb["status"].isin(COMPLETED)], cn[cn["status"].isin(COMPLETED)]
    values_b = _process_values(ok_b, c.normalized, "BASE", c.base, c.measure).dropna()
    values_n = _process_values(ok_n, c.normalized, "NEW", c.new, c.measure).dropna()
    disturbed_b, disturbed_n = int(ok_b["disturbed"].sum()), int(ok_n["disturbed"].sum())
    t = (_paired_time if c.paired else _unpaired_time)(c, ok_b, ok_n, values_b, values_n, confidence)
    common = set(ok_b["seed"]) & set(ok_n["seed"])  # same seeds: same data and weights
    acc_b = _median(ok_b[ok_b["seed"].isin(common)]["accuracy"] if common else ok_b["accuracy"])
    acc_n = _median(ok_n[ok_n["seed"].isin(common)]["accuracy"] if common else ok_n["accuracy"])
    params_b = float(cb["params"].max()) if cb["params"].notna().any() else math.nan
    params_n = float(cn["params"].max()) if cn["params"].notna().any() else math.nan
    newly_failed = sorted(int(s) for s in set(ok_b["seed"]) - set(ok_n["seed"]) if s in set(cn["seed"]))
    reasons = []
    if t.verdict == SLOWER:
        reasons.append(f"slower x{t.ratio:.2f}")
    elif c.strict and t.verdict in UNJUDGED:
        reasons.append(f"{t.verdict} (--strict)")
    delta = acc_n - acc_b
    if math.isfinite(delta) and delta < -c.accuracy_tolerance:
        reasons.append(f"accuracy {delta:+.3f}")
    if newly_failed:
        reasons.append("newly fails (seed " + ",".join(map(str, newly_failed)) + ")")
    return dict(
        match="matched", base_median=_median(values_b), new_median=_median(values_n),
        ratio=t.ratio, ratio_low=t.low, ratio_high=t.high, p_value=t.p, n_base=t.n_base, n_new=t.n_new,
        base_disturbed=disturbed_b, new_disturbed=disturbed_n, verdict=t.verdict, verdict_text=t.text,
        base_accuracy=acc_b, new_accuracy=acc_n, accuracy_change=delta, base_params=params_b, new_params=params_n,
        params_changed=params_b != params_n and not (math.isnan(params_b) and math.isnan(params_n)),
        newly_failed=",".join(map(str, newly_failed)), regression=bool(reasons), reasons="; ".join(reasons),
    )  # fmt: skip


def _unpaired_time(c: Comparison, ok_b: pd.DataFrame, ok_n: pd.DataFrame, values_b: pd.Series,
                   values_n: pd.Series, confidence: float) -> Judgement:  # fmt: skip
    """Welch over processes; disturbed processes left out while enough clean ones remain on each side."""
    clean_b = values_b[~ok_b.loc[values_b.index, "disturbed"]]
    clean_n = values_n[~ok_n.loc[values_n.index, "disturbed"]]
    if len(clean_b) >= MIN_PROCESSES and len(clean_n) >= MIN_PROCESSES:
        return judge(list(clean_b), list(clean_n), c.threshold, confidence)
    disturbed = len(clean_b) < len(values_b) or len(clean_n) < len(values_n)
    return judge(list(values_b), list(values_n), c.threshold, confidence, disturbed=disturbed)


def _by_seed(ok: pd.DataFrame, values: pd.Series) -> dict[int, tuple[float, bool]]:
    """seed -> (its process's value, whether it was disturbed)."""
    rows = ok.loc[values.index]
    return {int(s): (float(v), bool(d)) for s, v, d in zip(rows["seed"], values, rows["disturbed"], strict=True)}


def _paired_time(c: Comparison, ok_b: pd.DataFrame, ok_n: pd.DataFrame, values_b: pd.Series,
                 values_n: pd.Series, confidence: float) -> Judgement:  # fmt: skip
    """The per-seed ratios of processes that ran side by side; pairs with a disturbed side left out while
    enough clean pairs remain."""
    by_seed_b, by_seed_n = _by_seed(ok_b, values_b), _by_seed(ok_n, values_n)
    seeds = sorted(by_seed_b.keys() & by_seed_n.keys())
    clean = [(by_seed_b[s][0], by_seed_n[s][0]) for s in seeds if not (by_seed_b[s][1] or by_seed_n[s][1])]
    if len(clean) >= MIN_PROCESSES:
        return judge_paired(clean, c.threshold, confidence)
    every = [(by_seed_b[s][0], by_seed_n[s][0]) for s in seeds]
    return judge_paired(every, c.threshold, confidence, disturbed=len(clean) < len(every))


def geometric_mean_ratio(c: Comparison) -> tuple[float, int]:
    """The geometric mean of NEW/BASE over every matched row with a ratio, and how many rows that is."""
    ratios = pd.to_numeric(c.matched["ratio"], errors="coerce").dropna()
    ratios = ratios[ratios > 0]
    if ratios.empty:
        return math.nan, 0
    return float(np.exp(np.log(ratios.to_numpy(float)).mean())), len(ratios)


__all__ = ["Comparison", "compare_envs", "compare_runs", "env_names", "geometric_mean_ratio"]
