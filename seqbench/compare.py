"""Compare two runs cell by cell, with a confidence judgement on every time ratio.

Rows are matched by (task, model, backend, implementation, device).  For each
match the time verdict comes from the steady-epoch samples of both runs
(epochs 2..N of every completed seed):

* ``ratio`` is median(NEW) / median(BASE);
* its 95 % interval comes from a two-level bootstrap: seeds are resampled,
  then epochs within each drawn seed, so that seed-to-seed variation widens
  the interval as it should;
* ``p`` is a two-sided Mann-Whitney U test on the pooled samples (exact for
  small samples without ties, the normal approximation with tie correction
  otherwise).

A row is called ``slower`` only when the whole interval lies above
1 + threshold *and* p < 1 - confidence; ``faster`` symmetrically.  With fewer
than :data:`MIN_SAMPLES` samples on a side the verdict is ``too few
samples`` and is never a regression (the exact test cannot reach p < 0.05
with 3 against 3 anyway).  The tests see the variation *within* each run;
they cannot see a machine that was uniformly slower during one whole run:
compare on the same machine, or use ``--normalize`` (calibration units).

Exit status (:attr:`Comparison.exit_code`): 1 when any matched row is
confidently slower beyond the threshold, lost accuracy beyond the tolerance,
or newly fails; else 0.  Unusable input raises :class:`ResultsError` (2).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seqbench.calibration import machines, score
from seqbench.errors import ResultsError
from seqbench.escape import markdown, one_line, terminal
from seqbench.report import KEYS, SEED_KEYS, cell_view, fmt_ms, md_table, records, steady_epochs, text_table
from seqbench.results import COMPLETED, Run

MATCH_KEYS = ["task", "model", "backend", "implementation", "device"]
MIN_SAMPLES = 5
BOOTSTRAP_REPS = 2000
FORMATS = ("text", "md", "json")
HARDWARE_FIELDS = ("cpu", "cores", "memory_gb", "machine", "os", "python", "python_implementation")
EXPERIMENT_FIELDS = ("task", "task_params", "epochs", "batch_size", "units", "activation")

SLOWER, FASTER, SAME, UNCLEAR, FEW, NA = "slower", "faster", "same", "unclear", "too few samples", "n/a"


# ------------------------------------------------------------------ statistics


def _exact_u_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u) for u = 0..m*n under H0, without ties (the Gaussian binomial coefficient)."""
    size = m * n + 1
    poly = np.zeros(size + m + n + 1, dtype=np.float64)
    poly[0] = 1.0
    for i in range(1, m + 1):
        shift = n + i  # multiply by (1 - q^(n+i))
        poly[shift:] = poly[shift:] - poly[:-shift].copy()
        for r in range(i):  # divide by (1 - q^i), an exact division: c'[k] = c[k] + c'[k - i]
            poly[r::i] = np.cumsum(poly[r::i])
    counts = poly[:size]
    return np.cumsum(counts) / counts.sum()


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the Mann-Whitney U test of samples ``a`` and ``b``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    m, n = len(a), len(b)
    if m == 0 or n == 0:
        return math.nan
    both = np.concatenate([a, b])
    ranks = pd.Series(both).rank(method="average").to_numpy()
    u = ranks[:m].sum() - m * (m + 1) / 2
    ties = len(np.unique(both)) < len(both)
    if not ties and m + n <= 60:
        cdf = _exact_u_cdf(m, n)
        low = min(u, m * n - u)
        return float(min(1.0, 2 * cdf[int(round(low))]))
    _, counts = np.unique(both, return_counts=True)
    total = m + n
    tie_term = (counts**3 - counts).sum() / (total * (total - 1))
    sigma = math.sqrt(m * n / 12 * ((total + 1) - tie_term))
    if sigma == 0:
        return 1.0
    z = (abs(u - m * n / 2) - 0.5) / sigma
    return float(min(1.0, math.erfc(max(z, 0) / math.sqrt(2))))


def _bootstrap_medians(groups: list[np.ndarray], reps: int, gen: np.random.Generator) -> np.ndarray:
    """Medians of ``reps`` two-level resamples: seeds with replacement, then epochs within each."""
    k = len(groups)
    lengths = np.array([len(g) for g in groups])
    width = int(lengths.max())
    padded = np.full((k, width), np.nan)
    for i, g in enumerate(groups):
        padded[i, : len(g)] = g
    seeds = gen.integers(0, k, size=(reps, k))
    drawn_len = lengths[seeds]  # (reps, k)
    positions = (gen.random((reps, k, width)) * drawn_len[..., None]).astype(int)
    values = padded[seeds[..., None], positions]
    values = np.where(np.arange(width) < drawn_len[..., None], values, np.nan)
    return np.nanmedian(values.reshape(reps, -1), axis=1)


@dataclass(frozen=True)
class TimeJudgement:
    ratio: float
    low: float
    high: float
    p: float
    n_base: int
    n_new: int
    verdict: str


def judge_times(base: list[np.ndarray], new: list[np.ndarray], threshold: float, confidence: float = 0.95,
                seed: int = 0) -> TimeJudgement:  # fmt: skip
    """Judge NEW/BASE from per-seed groups of per-epoch samples (see the module doc)."""
    base = [np.asarray(g, float)[np.isfinite(g)] for g in base]
    new = [np.asarray(g, float)[np.isfinite(g)] for g in new]
    base, new = [g for g in base if len(g)], [g for g in new if len(g)]
    a = np.concatenate(base) if base else np.array([])
    b = np.concatenate(new) if new else np.array([])
    if not len(a) or not len(b):
        return TimeJudgement(math.nan, math.nan, math.nan, math.nan, len(a), len(b), NA)
    ratio = float(np.median(b) / np.median(a))
    gen = np.random.default_rng(seed)
    boot = _bootstrap_medians(new, BOOTSTRAP_REPS, gen) / _bootstrap_medians(base, BOOTSTRAP_REPS, gen)
    alpha = 1 - confidence
    low, high = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    p = mann_whitney_p(a, b)
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        verdict = FEW
    elif low > 1 + threshold and p < alpha:
        verdict = SLOWER
    elif high < 1 / (1 + threshold) and p < alpha:
        verdict = FASTER
    elif 1 / (1 + threshold) <= ratio <= 1 + threshold:
        verdict = SAME
    else:
        verdict = UNCLEAR  # beyond the threshold, but not with confidence
    return TimeJudgement(ratio, low, high, p, len(a), len(b), verdict)


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
    cb, cn = base.meta.get("config") or {}, new.meta.get("config") or {}
    diff = _differences(cb, cn, EXPERIMENT_FIELDS)
    if diff:
        out.append("different experiment settings: " + "; ".join(diff))
    if cb.get("threads") != cn.get("threads"):
        out.append(f"different thread counts: {cb.get('threads')} -> {cn.get('threads')}")
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


def _seed_groups(samples: pd.DataFrame, value: str) -> list[np.ndarray]:
    return [g[value].to_numpy(float) for _, g in samples.groupby("seed", sort=True)]


def _status(cells: pd.DataFrame) -> str:
    if cells.empty:
        return "-"
    counts = cells["status"].value_counts()
    return ", ".join(f"{counts[s]} {s}" for s in sorted(counts.index, key=lambda s: (s != "ok", s)))


def compare_runs(base: Run, new: Run, threshold: float = 0.10, accuracy_tolerance: float = 0.05,
                 normalize: bool = False, confidence: float = 0.95) -> Comparison:  # fmt: skip
    """Match the two runs' rows and judge each (see the module doc)."""
    if threshold < 0 or accuracy_tolerance < 0:
        raise ValueError("threshold and tolerance must not be negative")
    cells_b, cells_n = cell_view(base), cell_view(new)
    warnings = run_warnings(base, new)
    samples = {}
    for name, run, cells in (("BASE", base, cells_b), ("NEW", new, cells_n)):
        s = steady_epochs(cells, run.epochs)
        if s.empty:  # no per-epoch records: one sample per seed
            done = cells[cells["status"].isin(COMPLETED)]
            s = done[[*SEED_KEYS, "calibration_s"]].assign(wall_s=done["steady_epoch_s"])
        s = s.copy()
        if normalize:
            missing = s["calibration_s"].isna()
            if missing.any():
                raise ResultsError(f"--normalize: {name} ({run.path}) has no calibration for some cells; "
                                   "compare without --normalize")  # fmt: skip
            s["value"] = s["wall_s"] / s["calibration_s"]
        else:
            s["value"] = s["wall_s"] * 1e3
        samples[name] = s

    keys_b = {tuple(k) for k in cells_b[MATCH_KEYS].drop_duplicates().itertuples(index=False)}
    keys_n = {tuple(k) for k in cells_n[MATCH_KEYS].drop_duplicates().itertuples(index=False)}
    matched = keys_b & keys_n
    if not matched:
        raise ResultsError(
            f"no cells match between {base.path} and {new.path}: they share no "
            "(task, model, backend, implementation, device); nothing to compare"
        )

    def select(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
        mask = np.ones(len(frame), dtype=bool)
        for column, value in zip(MATCH_KEYS, key, strict=True):
            mask &= (frame[column] == value).to_numpy()
        return frame[mask]

    rows = []
    for key in sorted(keys_b | keys_n):
        row: dict[str, Any] = dict(zip(MATCH_KEYS, key, strict=True))
        cb, cn = select(cells_b, key), select(cells_n, key)
        row.update(base_status=_status(cb), new_status=_status(cn))
        if key not in matched:
            row.update(match="only in BASE" if key in keys_b else "only in NEW", verdict=NA, regression=False,
                       reasons="")  # fmt: skip
            rows.append(row)
            continue
        sb, sn = select(samples["BASE"], key), select(samples["NEW"], key)
        t = judge_times(_seed_groups(sb, "value"), _seed_groups(sn, "value"), threshold, confidence)
        ok_b, ok_n = cb[cb["status"].isin(COMPLETED)], cn[cn["status"].isin(COMPLETED)]
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
        delta = acc_n_med - acc_b_med
        if math.isfinite(delta) and delta < -accuracy_tolerance:
            reasons.append(f"accuracy {delta:+.3f}")
        if newly_failed:
            reasons.append("newly fails (seed " + ",".join(map(str, newly_failed)) + ")")
        row.update(
            match="matched",
            base_median=float(np.median(sb["value"])) if len(sb) else math.nan,
            new_median=float(np.median(sn["value"])) if len(sn) else math.nan,
            ratio=t.ratio, ratio_low=t.low, ratio_high=t.high, p_value=t.p, n_base=t.n_base, n_new=t.n_new,
            verdict=t.verdict, base_accuracy=acc_b_med, new_accuracy=acc_n_med, accuracy_change=delta,
            base_params=params_b, new_params=params_n, params_changed=params_b != params_n
            and not (math.isnan(params_b) and math.isnan(params_n)),
            newly_failed=",".join(map(str, newly_failed)), regression=bool(reasons), reasons="; ".join(reasons),
        )  # fmt: skip
        if row["params_changed"]:
            warnings.append(f"{'/'.join(key)}: parameter count changed {params_b:.0f} -> {params_n:.0f}")
        rows.append(row)
    columns = [*MATCH_KEYS, "match", "base_median", "new_median", "ratio", "ratio_low", "ratio_high", "p_value",
               "n_base", "n_new", "verdict", "base_accuracy", "new_accuracy", "accuracy_change", "base_params",
               "new_params", "params_changed", "base_status", "new_status", "newly_failed", "regression",
               "reasons"]  # fmt: skip
    table = pd.DataFrame(rows).reindex(columns=columns)
    table["regression"] = table["regression"].fillna(False).astype(bool)
    return Comparison(base, new, table, warnings, threshold, accuracy_tolerance, normalize)


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
                         "95% CI": "-", "p": "-", "time": r["match"], "accuracy": "-", "params": "-",
                         "status": f"{r['base_status']} -> {r['new_status']}", "": ""})  # fmt: skip
            continue
        acc = f"{_num(r['base_accuracy'], '.2f')} -> {_num(r['new_accuracy'], '.2f')}"
        params = _num(r["new_params"], ".0f")
        if r["params_changed"]:
            params = f"{_num(r['base_params'], '.0f')} -> {params}"
        status = r["new_status"] if r["base_status"] == r["new_status"] else f"{r['base_status']} -> {r['new_status']}"
        rows.append({
            "task": r["task"], "backend": f"{r['backend']}:{r['implementation']}/{r['device']}", "model": r["model"],
            f"base {unit}": fmt_time(r["base_median"]), f"new {unit}": fmt_time(r["new_median"]),
            "new/base": _num(r["ratio"], ".3f"),
            "95% CI": f"{_num(r['ratio_low'], '.3f')}-{_num(r['ratio_high'], '.3f')}",
            "p": _num(r["p_value"], ".2g"), "time": r["verdict"], "accuracy": acc, "params": params,
            "status": status, "": ("REGRESSION: " + r["reasons"]) if r["regression"] else "",
        })  # fmt: skip
    return pd.DataFrame(rows)


_RIGHT = {"base ms", "new ms", "base cal", "new cal", "new/base", "95% CI", "p", "params"}


def _verdict_line(c: Comparison) -> str:
    matched = int((c.table["match"] == "matched").sum())
    if c.exit_code:
        return f"REGRESSION in {len(c.problems)} of {matched} matched rows"
    return f"no regression in {matched} matched rows"


def _settings_line(c: Comparison) -> str:
    unit = "calibration units" if c.normalized else "ms"
    return (f"threshold {c.threshold:.0%} (slower only when the 95% interval of new/base lies above "
            f"{1 + c.threshold:.2f} and p < 0.05); accuracy tolerance {c.accuracy_tolerance:.3f}; "
            f"times: median steady epoch, {unit}")  # fmt: skip


def render(c: Comparison, fmt: str = "text") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if fmt == "json":
        doc = {
            "base": str(c.base.path), "new": str(c.new.path), "threshold": c.threshold,
            "accuracy_tolerance": c.accuracy_tolerance, "normalized": c.normalized, "warnings": c.warnings,
            "regression": bool(c.exit_code), "rows": records(c.table),
        }  # fmt: skip
        return json.dumps(doc, indent=2) + "\n"
    table = display_table(c)
    head = f"BASE {one_line(c.base.path)}\nNEW  {one_line(c.new.path)}"
    if fmt == "text":
        out = [head]
        out += [f"WARNING: {one_line(w)}" for w in c.warnings]
        out += ["", text_table(table, _RIGHT), "", _verdict_line(c), _settings_line(c)]
        return terminal("\n".join(out))
    out = [f"## seqbench compare: {_verdict_line(c)}", "",
           f"- BASE {markdown(c.base.path.name)}", f"- NEW {markdown(c.new.path.name)}", ""]  # fmt: skip
    out += [f"> **Warning:** {markdown(w)}" for w in c.warnings]
    if c.warnings:
        out.append("")
    out += [md_table(table, _RIGHT), "", f"<sub>{_settings_line(c)}</sub>"]
    return "\n".join(out) + "\n"


__all__ = ["KEYS", "Comparison", "compare_runs", "judge_times", "mann_whitney_p", "render"]
