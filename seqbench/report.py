"""Views of a stored run: pandas DataFrames computed from it, then rendered."""

from __future__ import annotations

import pandas as pd

from seqbench.results import Run

KEYS = ["task", "backend", "implementation", "model", "device"]


def _spread(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    return f"{values.min():.3g}-{values.max():.3g}" if len(values) > 1 else f"{values.iloc[0]:.3g}"


def _statuses(values: pd.Series) -> str:
    counts = values.value_counts()
    return ",".join(f"{n} {s}" for s, n in counts.items())


def summary(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per task x backend x implementation x model x device, over seeds."""
    if cells.empty:
        return pd.DataFrame(columns=KEYS)
    grouped = cells.groupby(KEYS, sort=True, dropna=False)
    out = grouped.agg(
        seeds=("seed", "count"),
        status=("status", _statuses),
        params=("params", "max"),
        accuracy=("accuracy", "median"),
        accuracy_range=("accuracy", _spread),
        final_loss=("final_loss", "median"),
        first_epoch_s=("first_epoch_s", "median"),
        steady_epoch_ms=("steady_epoch_s", lambda s: s.median() * 1e3),
        steady_range_ms=("steady_epoch_s", lambda s: _spread(s * 1e3)),
        path=("implementation_path", lambda s: ",".join(sorted(set(s.dropna())))),
    )
    return out.reset_index()


def render_summary(run: Run) -> str:
    table = summary(run.cells)
    if table.empty:
        return "no cells finished"
    return table.drop(columns=["task"]).to_string(index=False, float_format=lambda v: f"{v:.4g}")
