"""A static dashboard of every run found: one self-contained HTML page, ready for GitHub Pages.

The way asv publishes: the history (:func:`seqbench.history.gather`) drawn as
one trend chart per experiment series, that is per task, experiment and
model, with one line per backend (``backend:implementation/device``, the same
colours as the run plots).  Each point is one run: the median steady epoch
over its processes, a whisker from its fastest to its slowest process, and
the run's commit under the axis and in the point's tooltip.

The charts are inline SVG written here (no JavaScript, no matplotlib, no file
besides the page), so the page opens from disk, from a CI artifact or from
GitHub Pages alike.  Every string from a results file goes through
:func:`seqbench.escape.html_text`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from seqbench.chart import decades, plottable, series_colors
from seqbench.escape import html_text
from seqbench.formatting import fmt_ms
from seqbench.history import History, gather
from seqbench.keys import series_name
from seqbench.tables import html_page

CHART_W, CHART_H = 760, 300
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 16, 14, 64

_CSS = """
.chart{margin:0.5em 0 2em} .chart svg{max-width:100%;height:auto;font-family:system-ui,sans-serif}
.key span{display:inline-block;margin-right:1.2em;font-size:0.85em} .key i{display:inline-block;width:1em;
height:0.6em;margin-right:0.3em} .meta{color:#666;font-size:0.85em}
"""


def _ticks(low: float, high: float) -> list[float]:
    """Log-axis ticks: 1, 2 and 5 times each power of ten inside [low, high]."""
    out = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**exponent
            if low <= v <= high:
                out.append(v)
    return out


def chart_svg(part: pd.DataFrame, runs: pd.DataFrame, colors: dict[str, str], time_column: str, unit: str) -> str:
    """One trend chart: x the runs in order (their commits below), y the time on a whole-decade log axis."""
    order = list(runs["order"])
    x_of = {o: i for i, o in enumerate(order)}
    values = pd.concat([part[time_column], part.get("steady_min_ms", part[time_column]),
                        part.get("steady_max_ms", part[time_column])]).astype(float)  # fmt: skip
    limits = decades(values)
    if limits is None:
        return ""
    low, high = limits
    plot_w, plot_h = CHART_W - MARGIN_L - MARGIN_R, CHART_H - MARGIN_T - MARGIN_B

    def x(i: int) -> float:
        return MARGIN_L + (plot_w * (i + 0.5) / max(1, len(order)))

    def y(v: float) -> float:
        return MARGIN_T + plot_h * (1 - (math.log10(v) - math.log10(low)) / (math.log10(high) - math.log10(low)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_W} {CHART_H}" role="img">']
    for t in _ticks(low, high):
        out.append(f'<line x1="{MARGIN_L}" x2="{CHART_W - MARGIN_R}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                   f'stroke="#e4e4e4"/><text x="{MARGIN_L - 6}" y="{y(t) + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{t:g}</text>')  # fmt: skip
    out.append(f'<text transform="translate(14 {MARGIN_T + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
               f'font-size="11">{html_text(unit)} per steady epoch (log; lower is better)</text>')  # fmt: skip
    for i, o in enumerate(order):
        r = runs[runs["order"] == o].iloc[0]
        label = html_text(str(r["commit"])[:7] or str(r["run_id"])[-6:])
        out.append(f'<text transform="translate({x(i):.1f} {CHART_H - MARGIN_B + 14}) rotate(40)" font-size="10" '
                   f'font-family="monospace">{label}</text>')  # fmt: skip
    for name, line in part.groupby("series", sort=True):
        color = colors.get(str(name), "#444")
        line = line.sort_values("order")
        points = [(x_of[o], float(v)) for o, v in zip(line["order"], line[time_column], strict=True)
                  if plottable(v) and v > 0 and o in x_of]  # fmt: skip
        if len(points) > 1:
            path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        for r in line.to_dict("records"):
            v = float(r[time_column])
            if not (plottable(v) and v > 0) or r["order"] not in x_of:
                continue
            cx, cy = x(x_of[r["order"]]), y(v)
            low_v, high_v = r.get("steady_min_ms"), r.get("steady_max_ms")
            spread = ""
            if unit == "ms" and plottable(low_v) and plottable(high_v) and low_v > 0 and high_v > 0:
                out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(low_v):.1f}" y2="{y(high_v):.1f}" '
                           f'stroke="{color}"/>')  # fmt: skip
                spread = f" ({fmt_ms(low_v)}-{fmt_ms(high_v)} over processes)"
            shown = fmt_ms(v) if unit == "ms" else f"{v:.3g}"
            tip = (f"{name} at commit {r['commit'] or '?'} (run {r['run_id']}, {r['started']}): "
                   f"{shown} {unit}{spread}")  # fmt: skip
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{color}"><title>{html_text(tip)}'
                       "</title></circle>")  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def render(h: History, title: str = "seqbench dashboard", normalize: bool = False) -> str:
    """The whole page: one chart per (task, experiment, model), newest runs on the right."""
    time_column, unit = ("steady_cal", "cal") if normalize else ("steady_epoch_ms", "ms")
    parts = [f"<h1>{html_text(title)}</h1>"]
    if h.long.empty:
        parts.append("<p>No runs found.</p>")
        return html_page(title, "\n".join(parts), _CSS)
    long = h.long.copy()
    long["series"] = [series_name(r) for r in long.to_dict("records")]
    colors = series_colors(long["series"])
    first, last = h.runs.iloc[0], h.runs.iloc[-1]
    parts.append(f'<p class="meta">{len(h.runs)} runs, from {html_text(first["started"])} '
                 f'({html_text(str(first["commit"])[:7])}) to {html_text(last["started"])} '
                 f'({html_text(str(last["commit"])[:7])}); each point is a run\'s median over its processes, '
                 "the whisker its fastest to slowest process; hover a point for its commit and run.</p>")  # fmt: skip
    for (task, experiment, model), part in long.groupby(["task", "experiment", "model"], sort=True):
        runs = h.runs[h.runs["order"].isin(part["order"])]
        svg = chart_svg(part, runs, colors, time_column, unit)
        if not svg:
            continue
        key = "".join(f'<span><i style="background:{colors[s]}"></i>{html_text(s)}</span>'
                      for s in sorted(part["series"].unique()))  # fmt: skip
        parts.append(f'<div class="chart"><h2>{html_text(f"{task} / {model}")}</h2>'
                     f'<p class="meta">{html_text(experiment)}</p><div class="key">{key}</div>{svg}</div>')  # fmt: skip
    if h.skipped:
        items = "".join(f"<li>{html_text(s)}</li>" for s in h.skipped)
        parts.append(f"<h2>Runs skipped</h2><ul>{items}</ul>")
    return html_page(title, "\n".join(parts), _CSS)


def build(dirs: Iterable[str | Path], title: str = "seqbench dashboard", normalize: bool = False,
          since: pd.Timestamp | None = None) -> tuple[str, History]:  # fmt: skip
    """Gather the runs under ``dirs`` and render the page; returns it with the history behind it."""
    h = gather(list(dirs), since=since)
    return render(h, title, normalize), h


__all__ = ["build", "chart_svg", "render"]
