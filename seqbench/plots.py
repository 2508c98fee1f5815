"""Figures of a run (and of a history), drawn with matplotlib's Agg canvas.

Each ``*_figure`` function takes views from :mod:`seqbench.report` and
returns a :class:`matplotlib.figure.Figure`; :func:`run_pngs` draws every
figure of a run as PNG bytes, :func:`save_run_plots` writes them to a folder.
Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot), so no
global state or display is involved.  matplotlib is imported inside the
functions: it is an optional dependency (``pip install -e '.[report]'`` in a checkout).
Every label that comes from a run goes through :func:`seqbench.escape.mathtext`:
a ``$`` in a name would otherwise start mathtext, and a bad expression stops the figure.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.errors import SeqbenchError
from seqbench.escape import mathtext

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from seqbench.results import Run

TITLES = {
    "steady_time": "Steady epoch time per backend and model",
    "loss_curves": "Training loss per epoch (median over seeds; band: min-max)",
    "accuracy": "Test accuracy per seed (bar: median)",
    "first_vs_steady": "First epoch vs steady epoch",
}


_STYLES = ("-", "--", ":", "-.")


class PlotError(SeqbenchError):
    """matplotlib is missing."""

    exit_code = 2


def _new_figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise PlotError("plots need matplotlib: pip install -e '.[report]' (in the seqbench checkout)") from e
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _series_label(row: Any) -> str:
    return mathtext(f"{row['backend']}:{row['implementation']}/{row['device']}")


def _log_if_wide(ax: Any, values: Any) -> None:
    values = [v for v in values if v == v and v > 0]
    if values and max(values) / min(values) > 30:
        ax.set_yscale("log")


def steady_time_figure(table: pd.DataFrame) -> Figure:
    """Grouped bars: steady epoch ms (whiskers: interquartile range) per model, one bar per backend."""
    import numpy as np

    table = table[table["steady_epoch_ms"].notna()].copy()
    table["series"] = table.apply(_series_label, axis=1)
    table["group"] = (table["task"] + " / " + table["model"]).map(mathtext)
    groups = sorted(table["group"].unique())
    series = sorted(table["series"].unique())
    fig = _new_figure(max(5.0, 1.2 * len(groups) * max(1, len(series)) * 0.6 + 2), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        part = table[table["series"] == name].set_index("group").reindex(groups)
        x = np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width
        med = part["steady_epoch_ms"].to_numpy(float)
        err = np.vstack([med - part["steady_min_ms"].to_numpy(float), part["steady_max_ms"].to_numpy(float) - med])
        ax.bar(x, med, width, yerr=np.nan_to_num(err), capsize=3, label=name)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("ms per steady epoch")
    _log_if_wide(ax, table["steady_epoch_ms"])
    ax.legend(fontsize="small")
    ax.set_title(TITLES["steady_time"])
    return fig


def loss_figure(epochs: pd.DataFrame) -> Figure:
    """One panel per task/model, one line per backend: median loss over seeds, band min-max."""
    panels: list[tuple[str, str]] = sorted(epochs.groupby(["task", "model"]).groups)  # type: ignore[arg-type]
    fig = _new_figure(5.0 * max(1, len(panels)), 3.8)
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (task, model) in zip(axes, panels, strict=False):
        part = epochs[(epochs["task"] == task) & (epochs["model"] == model)].copy()
        part["series"] = part.apply(_series_label, axis=1)
        for i, (name, curve) in enumerate(part.groupby("series", sort=True)):
            by_epoch = curve.groupby("epoch")["loss"]
            med = by_epoch.median()
            # curves that agree lie on top of each other: vary the line style so each stays visible
            (line,) = ax.plot(med.index, med.to_numpy(float), marker=".xo+"[i % 4], linestyle=_STYLES[i % 4],
                              label=name)  # fmt: skip
            ax.fill_between(med.index, by_epoch.min().to_numpy(float), by_epoch.max().to_numpy(float),
                            color=line.get_color(), alpha=0.15)  # fmt: skip
        positive = part["loss"][part["loss"] > 0]
        if len(positive):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.set_title(mathtext(f"{task} / {model}"))
        ax.legend(fontsize="small")
    fig.suptitle(TITLES["loss_curves"])
    return fig


def accuracy_figure(cells: pd.DataFrame) -> Figure:
    """One point per seed, a bar at the median, per backend and model."""
    import numpy as np

    from seqbench.results import COMPLETED

    done = cells[cells["status"].isin(COMPLETED)].copy()
    done["series"] = done.apply(_series_label, axis=1)
    done["label"] = (done["task"] + " / " + done["model"]).map(mathtext) + "\n" + done["series"]
    labels = sorted(done["label"].unique())
    fig = _new_figure(max(5.0, 1.1 * len(labels) + 1.5), 3.8)
    ax = fig.add_subplot()
    for i, label in enumerate(labels):
        values = done.loc[done["label"] == label, "accuracy"].dropna().to_numpy(float)
        if not len(values):
            continue
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(i + jitter, values, s=22, zorder=3)
        ax.hlines(np.median(values), i - 0.3, i + 0.3, color="black", linewidth=2)
        ax.vlines(i, values.min(), values.max(), color="grey", linewidth=1)
    ax.set_xticks(range(len(labels)), labels, fontsize="small")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("test accuracy")
    ax.set_title(TITLES["accuracy"])
    return fig


def first_vs_steady_figure(table: pd.DataFrame) -> Figure:
    """Per row: the first epoch next to the steady epoch (log scale when they differ widely)."""
    import numpy as np

    table = table[table["steady_epoch_ms"].notna()].copy()
    labels = ((table["task"] + " / " + table["model"]).map(mathtext) + "\n"
              + table.apply(_series_label, axis=1)).tolist()  # fmt: skip
    fig = _new_figure(max(5.0, 1.1 * len(labels) + 1.5), 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x - 0.2, table["first_epoch_ms"].to_numpy(float), 0.4, label="first epoch")
    ax.bar(x + 0.2, table["steady_epoch_ms"].to_numpy(float), 0.4, label="steady epoch")
    ax.set_xticks(x, labels, fontsize="small")
    ax.set_ylabel("ms")
    _log_if_wide(ax, list(table["first_epoch_ms"]) + list(table["steady_epoch_ms"]))
    ax.legend(fontsize="small")
    ax.set_title(TITLES["first_vs_steady"])
    return fig


def history_figure(long: pd.DataFrame, time_column: str, time_label: str) -> Figure:
    """Two panels, one line per cell row across runs in time order: steady time, and accuracy."""
    runs = list(dict.fromkeys(long.sort_values("order")["run_label"]))
    fig = _new_figure(max(7.0, 0.7 * len(runs) + 4), 7.0)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, column, label in ((axes[0], time_column, time_label), (axes[1], "accuracy", "median test accuracy")):
        for name, part in long.groupby("row", sort=True):
            part = part.sort_values("order")
            x = [runs.index(r) for r in part["run_label"]]
            ax.plot(x, part[column].to_numpy(float), marker="o", label=mathtext(name))
        ax.set_ylabel(label)
    _log_if_wide(axes[0], long[time_column])
    axes[1].set_ylim(-0.03, 1.03)
    axes[1].set_xticks(range(len(runs)), [mathtext(r) for r in runs], rotation=30, ha="right", fontsize="small")
    axes[0].legend(fontsize="x-small")
    axes[0].set_title("History: steady epoch time and accuracy per run (oldest left)")
    return fig


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def run_figures(run: Run) -> dict[str, Figure]:
    """Every figure of a run that has data to show, by name (see :data:`TITLES`)."""
    from seqbench.report import cell_view, summary

    cells = cell_view(run)
    table = summary(cells)
    figures: dict[str, Figure] = {}
    if table["steady_epoch_ms"].notna().any():
        figures["steady_time"] = steady_time_figure(table)
        figures["first_vs_steady"] = first_vs_steady_figure(table)
    if not run.epochs.empty:
        figures["loss_curves"] = loss_figure(run.epochs)
    if cells["accuracy"].notna().any():
        figures["accuracy"] = accuracy_figure(cells)
    return figures


def run_pngs(run: Run) -> dict[str, bytes]:
    return {name: png(fig) for name, fig in run_figures(run).items()}


def save_run_plots(run: Run, folder: str | Path) -> list[Path]:
    """Write each figure of ``run`` as ``folder/<name>.png``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in run_pngs(run).items():
        path = folder / f"{name}.png"
        path.write_bytes(data)
        written.append(path)
    return written
