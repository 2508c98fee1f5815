"""Figures of a run (and of a history), drawn with matplotlib's Agg canvas.

Each ``*_figure`` function takes views from :mod:`seqbench.views` and
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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.chart import decades, entrant_colors, experiment_tags, left_out_note, plottable
from seqbench.errors import SeqbenchError
from seqbench.escape import mathtext
from seqbench.keys import COMPLETED, entrant_name

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from seqbench.results import Run

TITLES = {
    "steady_time": "Steady epoch time per backend and model (lower is better)",
    "loss_curves": "Training loss per epoch (median over seeds; band: min-max)",
    "accuracy": "Test accuracy per seed (line: median; higher is better)",
    "first_vs_steady": "First epoch vs steady epoch (lower is better)",
    "scaling": "Steady epoch time against each varied parameter (log-log; lower is better)",
    "metric_vs_length": "Primary metric against sequence length, per model kind",
}
FORMATS = ("png", "svg")


_STYLES = ("-", "--", ":", "-.")
TICK_PT = 9  # tick labels: the PNG is shown at 100 dpi, where matplotlib's "x-small" (7 pt) is hard to read
VALUE_PT = 8  # the value written beside a dot


class PlotError(SeqbenchError):
    """matplotlib is missing."""

    exit_code = 2


def _new_figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise PlotError("plots need matplotlib: pip install -e '.[report]' (in the seqbench checkout)") from e
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _entrant_label(row: Any) -> str:
    return mathtext(entrant_name(row))


def _colors_for(frame: pd.DataFrame, colors: dict[str, str] | None) -> dict[str, str]:
    return colors if colors is not None else entrant_colors(frame.apply(entrant_name, axis=1))


def _tick_label(text: str, width: int = 22) -> str:
    """A tick label on lines of at most ``width`` characters, broken at spaces (long words stay whole)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _drawable(frame: pd.DataFrame, columns: list[str], what: str, notes: list[str]) -> pd.DataFrame:
    """``frame`` with each of ``columns`` NaN where :func:`seqbench.chart.plottable` refuses it, noted in ``notes``.

    A record of 1e308 ms is broken, not slow: drawing it would overflow the axis, so it is left out and said.
    """
    frame = frame.copy()
    bad = 0
    for column in columns:
        refused = frame[column].notna() & ~frame[column].map(plottable)
        bad += int(refused.sum())
        frame[column] = frame[column].where(~refused)
    if bad:
        notes.append(left_out_note(bad, what))
    return frame


def _add_notes(fig: Figure, notes: list[str]) -> None:
    if notes:
        fig.supxlabel("; ".join(dict.fromkeys(notes)), fontsize="small", color="#a00000")


def _log_axis(ax: Any, label: str, values: Any) -> None:
    """A fixed log axis (the same scale whatever the data), with a 'lower is better' label."""
    from matplotlib.ticker import LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.set_ylabel(f"{label} (log scale; lower is better)")
    limits = decades(values)
    if limits:  # whole decades around the data, so that the axis does not jump with it
        ax.set_ylim(*limits)


def _log_if_wide(ax: Any, values: Any) -> None:
    values = [float(v) for v in values if plottable(v) and v > 0]
    if values and max(values) / min(values) > 30:
        ax.set_yscale("log")


def _value_label(v: float) -> str:
    from seqbench.formatting import fmt_ms

    return fmt_ms(v)


def _label_columns(ax: Any, points: Sequence[tuple[Any, float, float, str, str]]) -> None:
    """Write each value beside its dot, where no two labels can overprint.

    ``points`` are ``(group, x, y, text, colour)``.  The labels of a group stand in one column just right
    of the group's rightmost dot, in the order of their values, pushed apart to at least a line's height;
    a thin line in the dot's colour joins a label that had to move to its dot.  Positions are worked out in
    pixels once the layout is final, which is then frozen, so that saving cannot move the axes under them.
    """
    fig = ax.figure
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    px_per_pt = fig.dpi / 72
    height = VALUE_PT * 1.3 * px_per_pt  # one line of value text, with a little air
    box = ax.get_window_extent()
    groups: dict[Any, list[tuple[float, float, str, str]]] = {}
    for group, x, y, text, color in points:
        if plottable(y):
            px, py = ax.transData.transform((x, y))
            groups.setdefault(group, []).append((px, py, text, color))
    for items in groups.values():
        items.sort(key=lambda item: item[1])
        column = max(px for px, _, _, _ in items) + 5 * px_per_pt  # clear of the dot and its whisker cap
        ys = [py for _, py, _, _ in items]
        for i in range(1, len(ys)):  # upwards: each label at least a line above the one below it
            ys[i] = max(ys[i], ys[i - 1] + height)
        if ys[-1] > box.y1 - height / 2:  # over the top: push the column back down
            ys[-1] = box.y1 - height / 2
            for i in range(len(ys) - 2, -1, -1):
                ys[i] = min(ys[i], ys[i + 1] - height)
        for (px, py, text, color), ly in zip(items, ys, strict=True):
            moved = abs(ly - py) > height / 4 or column - px > 2 * height  # far from its dot: a line to it
            # the text in figure fractions, the end of its line on the data: both hold at any dpi (SVG is 72)
            where = (column / fig.bbox.width, ly / fig.bbox.height)
            ann = ax.annotate(text, ax.transData.inverted().transform((px, py)), xytext=where,
                              textcoords="figure fraction", fontsize=VALUE_PT, va="center", ha="left",
                              annotation_clip=False,
                              arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6, "shrinkA": 0, "shrinkB": 3}
                              if moved else None)  # fmt: skip
            ann.set_in_layout(False)


def steady_time_figure(table: pd.DataFrame, colors: dict[str, str] | None = None) -> Figure:
    """Dots: the steady epoch ms per backend (median over processes, labelled), whiskers min-max over processes.

    One column of dots per task/model, one colour per backend; a fixed log axis says "lower is better".
    """
    notes: list[str] = []
    table = _drawable(table, ["steady_epoch_ms", "steady_min_ms", "steady_max_ms"], "time", notes)
    table = table[table["steady_epoch_ms"].notna()].copy()
    colors = _colors_for(table, colors)
    table["entrant"] = table.apply(entrant_name, axis=1)
    table["group"] = table["task"] + " / " + table["model"]
    groups = sorted(table["group"].unique())
    entrants = sorted(table["entrant"].unique())
    fig = _new_figure(max(5.5, 1.8 * len(groups) + 3.0), 4.2)
    ax = fig.add_subplot()
    step = 0.55 / max(1, len(entrants))  # the dots of a group, leaving room on their right for the value labels
    labels = []
    for i, name in enumerate(entrants):
        part = table[table["entrant"] == name]
        for _, r in part.iterrows():
            x = groups.index(r["group"]) + (i - (len(entrants) - 1) / 2) * step - 0.1
            med, low, high = r["steady_epoch_ms"], r["steady_min_ms"], r["steady_max_ms"]
            yerr = [[max(0.0, med - low)], [max(0.0, high - med)]] if low == low and high == high else None
            ax.errorbar([x], [med], yerr=yerr, fmt="o", color=colors[name], capsize=4, markersize=6,
                        label=mathtext(name) if r["group"] == part["group"].iloc[0] else None)  # fmt: skip
            labels.append((r["group"], x, med, _value_label(med), colors[name]))
    ax.set_xticks(range(len(groups)), [mathtext(_tick_label(g)) for g in groups], fontsize=TICK_PT)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    _log_axis(ax, "ms per steady epoch", list(table["steady_min_ms"]) + list(table["steady_max_ms"])
              + list(table["steady_epoch_ms"]))  # fmt: skip
    ax.legend(fontsize="small", title="dot: median; bar: min-max over processes", title_fontsize="x-small",
              loc="center left", bbox_to_anchor=(1.01, 0.5))  # fmt: skip
    fig.suptitle(TITLES["steady_time"])  # over the legend too: the axes alone may be narrower than the title
    _add_notes(fig, notes)
    _label_columns(ax, labels)  # last: it freezes the layout
    return fig


def loss_agreement(epochs: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Per (task, model): the largest relative difference between backends' median loss at any epoch.

    ``|a - b| / max(|a|, |b|)`` over every pair of backends and every epoch they share; NaN with one backend.
    The fairness rules give every backend the same data, weights and batches, so this should be small.
    """
    out: dict[tuple[str, str], float] = {}
    if epochs.empty:
        return out
    frame = epochs.copy()
    frame["entrant"] = frame.apply(entrant_name, axis=1)
    for (task, model), part in frame.groupby(["task", "model"], sort=True):
        medians = part.groupby(["epoch", "entrant"])["loss"].median().unstack("entrant")
        medians = medians.dropna(how="any")
        if medians.shape[1] < 2 or medians.empty:
            out[str(task), str(model)] = float("nan")
            continue
        high, low = medians.max(axis=1), medians.min(axis=1)
        scale = medians.abs().max(axis=1).where(lambda v: v > 0)
        out[str(task), str(model)] = float(((high - low) / scale).max())
    return out


def loss_figure(epochs: pd.DataFrame, colors: dict[str, str] | None = None) -> Figure:
    """One panel per task/model, one line per backend: median loss over seeds, band min-max.

    Each panel states how closely the backends agree (:func:`loss_agreement`).
    """
    notes: list[str] = []
    epochs = _drawable(epochs, ["loss"], "loss", notes)
    panels: list[tuple[str, str]] = sorted(epochs.groupby(["task", "model"]).groups)  # type: ignore[arg-type]
    colors = _colors_for(epochs, colors)
    agreement = loss_agreement(epochs)
    fig = _new_figure(5.0 * max(1, len(panels)), 4.0)
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (task, model) in zip(axes, panels, strict=False):
        part = epochs[(epochs["task"] == task) & (epochs["model"] == model)].copy()
        part["entrant"] = part.apply(entrant_name, axis=1)
        for i, (name, curve) in enumerate(part.groupby("entrant", sort=True)):
            by_epoch = curve.groupby("epoch")["loss"]
            med = by_epoch.median()
            # curves that agree lie on top of each other: vary the line style so each stays visible
            ax.plot(med.index, med.to_numpy(float), marker=".xo+"[i % 4], linestyle=_STYLES[i % 4],
                    color=colors[str(name)], label=mathtext(str(name)))  # fmt: skip
            ax.fill_between(med.index, by_epoch.min().to_numpy(float), by_epoch.max().to_numpy(float),
                            color=colors[str(name)], alpha=0.15)  # fmt: skip
        positive = part["loss"][part["loss"] > 0]
        if len(positive):
            ax.set_yscale("log")
        gap = agreement.get((str(task), str(model)), float("nan"))
        if gap == gap:
            said = "backends agree exactly" if gap == 0 else f"backends agree to {gap:.1e}"
            ax.text(0.98, 0.97, f"{said}\n(largest relative gap of median loss)",
                    transform=ax.transAxes, ha="right", va="top", fontsize="small",
                    bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (log scale)")
        ax.set_title(mathtext(f"{task} / {model}"))
        ax.legend(fontsize="small", loc="lower left")
    fig.suptitle(TITLES["loss_curves"])
    _add_notes(fig, notes)
    return fig


def accuracy_figure(cells: pd.DataFrame, colors: dict[str, str] | None = None) -> Figure:
    """One point per seed, a line at the median, per backend and model, coloured by backend."""
    import numpy as np


    notes: list[str] = []
    done = _drawable(cells[cells["status"].isin(COMPLETED)], ["accuracy"], "accuracy", notes)
    colors = _colors_for(done, colors)
    done["entrant"] = done.apply(entrant_name, axis=1)
    done["label"] = done["task"] + " / " + done["model"] + "\n" + done["entrant"]
    labels = sorted(done["label"].unique())
    fig = _new_figure(max(5.5, 1.3 * len(labels) + 3.0), 5.0)
    ax = fig.add_subplot()
    shown: set[str] = set()
    for i, label in enumerate(labels):
        rows = done[done["label"] == label]
        values = rows["accuracy"].dropna().to_numpy(float)
        if not len(values):
            continue
        name = str(rows["entrant"].iloc[0])
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(i + jitter, values, s=24, zorder=3, color=colors[name],
                   label=None if name in shown else mathtext(name))  # fmt: skip
        shown.add(name)
        ax.hlines(np.median(values), i - 0.3, i + 0.3, color=colors[name], linewidth=2)
    ax.set_xticks(range(len(labels)), [mathtext(lab) for lab in labels], fontsize=TICK_PT, rotation=30, ha="right")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("test accuracy (higher is better)")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(TITLES["accuracy"])  # over the legend too: the axes alone may be narrower than the title
    _add_notes(fig, notes)
    return fig


def first_vs_steady_figure(table: pd.DataFrame, colors: dict[str, str] | None = None) -> Figure:
    """Per row: the first epoch (hollow) and the steady epoch (filled) on a fixed log axis, coloured by backend.

    One line per row, read across: its name stays horizontal and full-size however many rows there are (the
    figure grows down, not sideways, so the page never shrinks it).  Of a row's two values the larger is
    written right of its dot and the smaller left of its own, so the two labels point apart and never meet.
    """
    notes: list[str] = []
    table = _drawable(table, ["first_epoch_ms", "steady_epoch_ms"], "time", notes)
    table = table[table["steady_epoch_ms"].notna()].copy()
    colors = _colors_for(table, colors)
    names = table.apply(entrant_name, axis=1).tolist()
    labels = [mathtext(f"{t} / {m}   {n}") for t, m, n in zip(table["task"], table["model"], names, strict=True)]
    fig = _new_figure(10.0, 1.6 + 0.38 * len(labels))
    ax = fig.add_subplot()
    for y, (name, first, steady) in enumerate(zip(names, table["first_epoch_ms"], table["steady_epoch_ms"],
                                                  strict=True)):  # fmt: skip
        ax.plot([first, steady], [y, y], color=colors[name], linewidth=1, alpha=0.6)
        ax.scatter([first], [y], s=40, facecolors="none", edgecolors=colors[name], zorder=3,
                   label="first epoch (hollow)" if y == 0 else None)  # fmt: skip
        ax.scatter([steady], [y], s=40, color=colors[name], zorder=3, label="steady epoch (filled)" if y == 0 else None)
        shown = sorted((v, i) for i, v in enumerate((first, steady)) if v == v)
        for rank, (v, _) in enumerate(shown):
            right = rank == len(shown) - 1
            ax.annotate(_value_label(v), (v, y), textcoords="offset points", xytext=(7 if right else -7, 0),
                        ha="left" if right else "right", va="center", fontsize=VALUE_PT)  # fmt: skip
    ax.set_yticks(range(len(labels)), labels, fontsize=TICK_PT + 1)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # the first row on top, as in the table
    values = list(table["first_epoch_ms"]) + list(table["steady_epoch_ms"])
    ax.set_xscale("log")
    limits = decades(values)
    if limits:  # whole decades, and room on each side for the labels that point outwards
        ax.set_xlim(limits[0] / 2, limits[1] * 2)
    ax.set_xlabel("ms (log scale; lower is better)")
    ax.tick_params(axis="x", labelsize=TICK_PT)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    ax.legend(fontsize="small", loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, frameon=False)
    fig.suptitle(TITLES["first_vs_steady"])
    _add_notes(fig, notes)
    return fig


HISTORY_LEGEND_CAP = 12  # legend entries of a history figure; more are counted, not listed


def history_figure(long: pd.DataFrame, time_column: str, time_label: str,
                   changes: pd.DataFrame | None = None) -> Figure:  # fmt: skip
    """One panel per task, experiment and model: its steady time above, its accuracy below, runs in time order.

    One line per entrant in its colour (:func:`seqbench.chart.entrant_colors`), one legend for the
    figure under the panels, at most :data:`HISTORY_LEGEND_CAP` entries.  ``changes``
    (:func:`seqbench.history.level_changes`) are marked with a triangle at the first run of the new level.
    """
    import math

    from matplotlib.lines import Line2D

    notes: list[str] = []
    long = _drawable(long, [time_column, "accuracy"], "history", notes)
    long["entrant"] = [entrant_name(r) for r in long.to_dict("records")]
    runs = list(dict.fromkeys(long.sort_values("order")["run_label"]))
    colors = entrant_colors(long["entrant"])
    facets = list(long.groupby(["task", "experiment", "model"], sort=True))
    tags = experiment_tags(sorted({str(e) for e in long["experiment"]}))
    ncols = min(3, max(1, len(facets)))
    nrows = math.ceil(len(facets) / ncols) or 1
    fig = _new_figure(max(7.0, 5.0 * ncols), 3.4 * nrows + 1.6)
    grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=[3, 1] * nrows)
    every = max(1, math.ceil(len(runs) / 12))  # at most about 12 run labels under a panel
    marked = {(r, o) for r, o in zip(changes["row"], changes["order"], strict=True)} if changes is not None else set()
    axes_time = []
    for n, ((task, experiment, model), part) in enumerate(facets):
        row, col = divmod(n, ncols)
        ax = fig.add_subplot(grid[2 * row, col])
        acc = fig.add_subplot(grid[2 * row + 1, col], sharex=ax)
        axes_time.append(ax)
        for name, line in part.groupby("entrant", sort=True):
            line = line.sort_values("order")
            x = [runs.index(r) for r in line["run_label"]]
            color = colors[str(name)]
            ax.plot(x, line[time_column].to_numpy(float), marker="o", markersize=4, color=color)
            acc.plot(x, line["accuracy"].to_numpy(float), marker="o", markersize=3, color=color)
            hits = line[[(r, o) in marked for r, o in zip(line["row"], line["order"], strict=True)]]
            if len(hits):
                ax.scatter([runs.index(r) for r in hits["run_label"]], hits[time_column].to_numpy(float), marker="^",
                           s=90, facecolors="none", edgecolors=color, linewidths=1.5, zorder=4)  # fmt: skip
        tag = tags.get(str(experiment), "")
        ax.set_title(mathtext(f"{task} / {model}" + (f"\n{tag}" if tag else "")), fontsize=TICK_PT + 1)
        _log_if_wide(ax, part[time_column])
        ax.tick_params(labelbottom=False, labelsize=TICK_PT)
        acc.set_ylim(-0.05, 1.05)
        acc.tick_params(labelsize=TICK_PT)
        if col == 0:
            ax.set_ylabel(time_label, fontsize=TICK_PT)
            acc.set_ylabel("accuracy", fontsize=TICK_PT)
        shown = range(0, len(runs), every)
        acc.set_xticks(list(shown), [mathtext(runs[i]) for i in shown], rotation=30, ha="right", fontsize=TICK_PT)
        acc.set_xlim(-0.5, len(runs) - 0.5)
    names = sorted(colors)
    handles: list[Any] = [Line2D([], [], color=colors[s], marker="o") for s in names[:HISTORY_LEGEND_CAP]]
    labels = [mathtext(s) for s in names[:HISTORY_LEGEND_CAP]]
    if len(names) > HISTORY_LEGEND_CAP:
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(f"and {len(names) - HISTORY_LEGEND_CAP} more (--backend narrows the history)")
    if len(marked):
        handles.append(Line2D([], [], marker="^", linestyle="none", markerfacecolor="none", color="#444"))
        labels.append("level changed at this run")
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(handles)), fontsize=TICK_PT,
               frameon=False)  # fmt: skip
    fig.suptitle("History: steady epoch time (above) and accuracy (below) per run, oldest left")
    _add_notes(fig, notes)
    return fig


def png(fig: Figure) -> bytes:
    return render_figure(fig, "png")


def render_figure(fig: Figure, fmt: str = "png") -> bytes:
    """The figure as PNG or SVG bytes (:data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown plot format {fmt!r}; valid: {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt)
    return buffer.getvalue()


def grid_parameters(cells: pd.DataFrame) -> dict[str, pd.Series]:
    """The numeric parameters a grid varied, each as a per-cell Series (``units``, ``batch_size``, ``task.KEY``)."""
    import pandas as pd

    found: dict[str, pd.Series] = {}
    for name in ("units", "batch_size", "layers"):
        if name in cells and cells[name].nunique(dropna=True) > 1:
            found[name] = pd.to_numeric(cells[name], errors="coerce")
    params = cells["task_params"] if "task_params" in cells else pd.Series([{}] * len(cells), index=cells.index)
    keys = sorted({k for p in params if isinstance(p, dict) for k in p})
    for key in keys:
        values = pd.to_numeric(pd.Series([p.get(key) if isinstance(p, dict) else None for p in params],
                                         index=cells.index), errors="coerce")  # fmt: skip
        if values.nunique(dropna=True) > 1:
            found[f"task.{key}"] = values
    return found


def scaling_figure(cells: pd.DataFrame, varied: dict[str, pd.Series], colors: dict[str, str] | None = None) -> Figure:
    """One panel per varied parameter: steady ms (median over processes) against its value, per backend and model.

    How cost grows as the work grows; both axes log.  Points that differ in another varied parameter are
    drawn as separate lines of the same colour.
    """
    import numpy as np

    notes: list[str] = []
    ok = _drawable(cells[cells["status"].isin(COMPLETED)], ["steady_epoch_s"], "time", notes)
    ok = ok[ok["steady_epoch_s"].notna()].copy()
    colors = _colors_for(ok, colors)
    fig = _new_figure(max(7.5, 5.0 * len(varied)), 4.0)  # one panel: wide enough for the title
    axes = fig.subplots(1, max(1, len(varied)), squeeze=False)[0]
    ok["entrant"] = ok.apply(entrant_name, axis=1)
    for ax, (name, values) in zip(axes, varied.items(), strict=False):
        ok["x"] = values.reindex(ok.index)
        others = [n for n in varied if n != name]
        for n in others:
            ok[f"_{n}"] = varied[n].reindex(ok.index)
        shape = [c for c in ("bidirectional",) if c in ok]  # a merged run may hold both directions' rows
        keys = ["entrant", "model", "activation", *shape, *[f"_{n}" for n in others]]
        labelled: set[str] = set()
        for key, part in ok.groupby(keys, dropna=False, sort=True):
            curve = part.groupby("x")["steady_epoch_s"].median().sort_index() * 1e3
            label = f"{mathtext(str(key[0]))} {key[1]}"
            ax.plot(np.asarray(curve.index, float), curve.to_numpy(float), marker="o",
                    color=colors.get(str(key[0])), label=None if label in labelled else label)  # fmt: skip
            labelled.add(label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("ms per steady epoch (lower is better)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.suptitle(TITLES["scaling"])
    _add_notes(fig, notes)
    return fig


def metric_vs_length_figure(cells: pd.DataFrame, steps: pd.Series) -> Figure:
    """The primary metric (median over seeds and backends) against ``steps``, one line per model kind,
    with the trivial baseline dashed: where a kind stops remembering, its line meets the baseline."""
    from seqbench.views import primary_scores

    ok = cells[cells["status"].isin(COMPLETED)].copy()
    ok["_metric"], ok["_score"] = primary_scores(ok)
    notes: list[str] = []
    ok = _drawable(ok, ["_score"], "metric", notes)
    ok["steps"] = steps.reindex(ok.index)
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    for kind, part in ok.groupby("model", sort=True):
        curve = part.groupby("steps")["_score"].median().sort_index()
        ax.plot(curve.index.to_numpy(float), curve.to_numpy(float), marker="o", label=str(kind))
    if "baseline" in ok and ok["baseline"].notna().any():
        base = ok.groupby("steps")["baseline"].median().sort_index()
        ax.plot(base.index.to_numpy(float), base.to_numpy(float), "k--", label="trivial baseline")
    metric = ",".join(sorted({str(m) for m in ok["_metric"]}))
    lower = bool(ok["higher_is_better"].eq(False).any()) if "higher_is_better" in ok else False
    ax.set_xscale("log")
    ax.set_xlabel("steps (sequence length)")
    ax.set_ylabel(f"{metric} ({'lower' if lower else 'higher'} is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(TITLES["metric_vs_length"])
    _add_notes(fig, notes)
    return fig


def run_figures(run: Run) -> dict[str, Figure]:
    """Every figure of a run that has data to show, by name (see :data:`TITLES`), one colour per backend."""
    from seqbench.views import cell_view, epoch_view, same_seeds, summary

    cells = cell_view(run)
    table = summary(cells)
    epochs = same_seeds(epoch_view(cells, run.epochs))  # the counted attempts, the seeds every backend has
    names = [entrant_name(r) for frame in (cells, epochs) for r in frame.to_dict("records")]
    colors = entrant_colors(names)  # once for the run: every figure gives an entrant the same colour
    figures: dict[str, Figure] = {}
    if table["steady_epoch_ms"].notna().any():
        figures["steady_time"] = steady_time_figure(table, colors)
        figures["first_vs_steady"] = first_vs_steady_figure(table, colors)
    if not epochs.empty:
        figures["loss_curves"] = loss_figure(epochs, colors)
    if cells["accuracy"].notna().any():
        figures["accuracy"] = accuracy_figure(cells, colors)
    varied = grid_parameters(cells) if len(cells) else {}
    if varied and table["steady_epoch_ms"].notna().any():
        figures["scaling"] = scaling_figure(cells, varied, colors)
    if "task.steps" in varied:
        figures["metric_vs_length"] = metric_vs_length_figure(cells, varied["task.steps"])
    return figures


def run_pngs(run: Run) -> dict[str, bytes]:
    return {name: png(fig) for name, fig in run_figures(run).items()}


def save_run_plots(run: Run, folder: str | Path, fmt: str = "png") -> list[Path]:
    """Write each figure of ``run`` as ``folder/<name>.<fmt>`` (png or svg); return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in run_figures(run).items():
        path = folder / f"{name}.{fmt}"
        path.write_bytes(render_figure(fig, fmt))
        written.append(path)
    return written
