"""A static dashboard of every run found: one self-contained HTML page, ready for GitHub Pages.

The history (:func:`seqbench.history.gather`) drawn as one trend chart per
experiment series, that is per task, experiment and model, with one line per
backend (``backend:implementation/device``) in the colours of the run plots
(:func:`seqbench.chart.entrant_colors`).  Each point is one run: the median
steady epoch over its processes, a whisker from its fastest to its slowest
process; under the axis each run's date and commit.

The page opens with what changed: the level changes that
:func:`seqbench.history.level_changes` finds, newest first, then the charts
with a trend (two runs or more), those with a change first; experiments seen
in one run only wait, folded, at the end.  Filters by task, experiment, model
and backend are a few lines of plain JavaScript in the page.

The charts are inline SVG written here, no charting library and nothing
fetched (docs/reports.md says why), so the page opens from disk, from a CI
artifact or from GitHub Pages alike.  Every string from a results file goes
through :func:`seqbench.escape.html_text`; the script reads them back from
``data-`` attributes, never from code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from seqbench.chart import backend_of, decades, entrant_colors, experiment_tags, left_out_note, plottable
from seqbench.escape import html_text
from seqbench.formatting import fmt_ms, fmt_num
from seqbench.history import History, gather, level_changes
from seqbench.keys import entrant_name
from seqbench.tables import html_page

CHART_W, CHART_H = 600, 270
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 58, 14, 12, 44
FONT = 11  # px, in the SVG's own units
LABEL_W = 74  # px a run's label under the axis needs ("01-05 10:00" over a commit), so that labels never touch
TICK_GAP = 14  # px between two y tick labels at least
CHANGES_SHOWN = 20  # level changes listed at the top; the rest are counted

_CSS = """
.filters{display:flex;flex-wrap:wrap;gap:0.4em 1.2em;align-items:center;background:#f6f6f6;padding:0.6em 0.8em;
border:1px solid #ddd;position:sticky;top:0;z-index:1} .filters label{font-size:0.9em}
.filters select{max-width:16em} .backends label{margin-right:0.6em;white-space:nowrap}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:0.5em 2em}
.chart{min-width:0} .chart h3{margin:0.8em 0 0.1em;font-size:1.05em} .chart svg{width:100%;height:auto;
font-family:system-ui,sans-serif} .key span{display:inline-block;margin-right:1em;font-size:0.85em}
i.swatch{display:inline-block;width:0.9em;height:0.6em;margin-right:0.3em} .meta{color:#666;font-size:0.85em;
margin:0.2em 0} .changes li{margin:0.15em 0} .up{color:#b00020} .down{color:#1b7f3b}
"""

# The filters: a chart shows when its task, experiment and model match and one of its backends is ticked.
_SCRIPT = """
(function () {
  const selects = [...document.querySelectorAll(".filters select")];
  const boxes = [...document.querySelectorAll(".filters input[type=checkbox]")];
  function matches(el) {
    return selects.every((s) => !s.value || el.dataset[s.name] === s.value);
  }
  function apply() {
    const ticked = new Set(boxes.filter((b) => b.checked).map((b) => b.value));
    for (const g of document.querySelectorAll(".chart [data-backend]")) {
      g.style.display = ticked.has(g.dataset.backend) ? "" : "none";
    }
    for (const chart of document.querySelectorAll(".chart")) {
      const mine = [...chart.querySelectorAll("g[data-backend]")].some((g) => ticked.has(g.dataset.backend));
      chart.hidden = !(matches(chart) && mine);
    }
    for (const item of document.querySelectorAll(".changes li[data-backend]")) {
      item.hidden = !(matches(item) && ticked.has(item.dataset.backend));
    }
  }
  for (const el of [...selects, ...boxes]) el.addEventListener("change", apply);
  apply();
})();
"""


def _ticks(low: float, high: float, room: float) -> list[float]:
    """Log-axis ticks inside [low, high]: 1, 2 and 5 times each power of ten, or the powers alone when
    the three would stand closer than :data:`TICK_GAP` in ``room`` pixels."""
    exponents = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for multiples in ((1, 2, 5), (1,)):
        out = [m * 10.0**e for e in exponents for m in multiples if low <= m * 10.0**e <= high]
        if len(out) < 2 or room / (len(out) - 1) >= TICK_GAP:
            return out
    step = math.ceil(len(out) * TICK_GAP / room)  # many decades: every step-th power
    return out[::step]


def _run_label(r: Any) -> tuple[str, str]:
    """A run under the axis: its start (month-day hour:minute) over its commit, or over its id without one."""
    when = r["started"].strftime("%m-%d %H:%M") if pd.notna(r["started"]) else "?"
    return when, str(r["commit"])[:7] or str(r["run_id"])[-7:]


def chart_svg(part: pd.DataFrame, runs: pd.DataFrame, colors: dict[str, str], time_column: str, unit: str,
              changes: pd.DataFrame | None = None) -> tuple[str, int]:  # fmt: skip
    """One trend chart and how many values it left out (:func:`seqbench.chart.plottable`).

    x: the runs of ``part`` in order, each labelled with its date and commit (thinned so that no two labels
    touch; every point names its run in its tooltip); y: the time on a whole-decade log axis.  One ``<g
    data-backend>`` per series, for the filters.  ``changes`` are marked with a triangle and a dashed line.
    """
    order = list(runs["order"])
    x_of = {o: i for i, o in enumerate(order)}
    spread = [c for c in ("steady_min_ms", "steady_max_ms") if unit == "ms" and c in part]
    left_out = int((part[time_column].notna() & ~part[time_column].map(plottable)).sum())
    limits = decades(pd.concat([part[c] for c in [time_column, *spread]]))
    if limits is None:
        return "", left_out
    low, high = limits
    plot_w, plot_h = CHART_W - MARGIN_L - MARGIN_R, CHART_H - MARGIN_T - MARGIN_B

    def x(i: int) -> float:
        return MARGIN_L + plot_w * (i + 0.5) / max(1, len(order))

    def y(v: float) -> float:
        return MARGIN_T + plot_h * (1 - (math.log10(v) - math.log10(low)) / (math.log10(high) - math.log10(low)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
           f'font-size="{FONT}">']  # fmt: skip
    for t in _ticks(low, high, plot_h):
        out.append(f'<line x1="{MARGIN_L}" x2="{CHART_W - MARGIN_R}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e4e4e4"/>'
                   f'<text x="{MARGIN_L - 5}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')  # fmt: skip
    out.append(f'<text transform="translate(13 {MARGIN_T + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">'
               f"{html_text(unit)} per steady epoch (log; lower is better)</text>")  # fmt: skip
    every = max(1, math.ceil(len(order) * LABEL_W / plot_w))  # one label in `every`, the newest always
    records = runs.to_dict("records")
    free = float(CHART_W)  # labels are placed newest first; this is where the last one placed begins
    labels: list[str] = []
    for i in range(len(order) - 1, -1, -every):
        at, anchor = x(i), "middle"
        if at + LABEL_W / 2 > CHART_W:  # near an edge the label hangs inwards, never past the chart
            at, anchor = CHART_W - 1, "end"
        elif at - LABEL_W / 2 < 0:
            at, anchor = 1, "start"
        start = {"middle": at - LABEL_W / 2, "end": at - LABEL_W, "start": at}[anchor]
        if start + LABEL_W > free:  # it would touch the newer label beside it (one moved in from the edge)
            continue
        free = start
        when, commit = (html_text(s) for s in _run_label(records[i]))
        base = CHART_H - MARGIN_B + 15
        labels.append(f'<text x="{at:.1f}" y="{base}" text-anchor="{anchor}"><tspan x="{at:.1f}">{when}</tspan>'
                      f'<tspan x="{at:.1f}" dy="13" font-family="monospace">{commit}</tspan></text>')  # fmt: skip
    out += reversed(labels)  # oldest first, as the runs read
    marked = {(r["row"], r["order"]): r for r in (changes.to_dict("records") if changes is not None else [])}
    for name, line in part.groupby("entrant", sort=True):
        color = colors.get(str(name), "#444")
        line = line.sort_values("order")
        out.append(f'<g data-backend="{html_text(backend_of(str(name)))}" data-series="{html_text(name)}">')
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
            low_v, high_v = (r.get(c) for c in ("steady_min_ms", "steady_max_ms"))
            over = ""
            if spread and plottable(low_v) and plottable(high_v) and low_v > 0 and high_v > 0:
                out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(low_v):.1f}" y2="{y(high_v):.1f}" '
                           f'stroke="{color}"/>')  # fmt: skip
                over = f" ({fmt_ms(low_v)}-{fmt_ms(high_v)} over processes)"
            shown = fmt_ms(v) if unit == "ms" else fmt_num(v, ".3g")
            tip = (f"{name} at commit {r['commit'] or '?'} (run {r['run_id']}, {r['started']}): "
                   f"{shown} {unit}{over}")  # fmt: skip
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{color}"><title>{html_text(tip)}'
                       "</title></circle>")  # fmt: skip
            change = marked.get((r["row"], r["order"]))
            if change is not None:
                up = change["ratio"] > 1
                ratio = fmt_num(change["ratio"] - 1, "+.0%")
                tip = f"{name}: level changed {ratio} at this run ({_levels(change, unit)})"
                tri = f"{cx - 6:.1f},{cy + 9:.1f} {cx + 6:.1f},{cy + 9:.1f} {cx:.1f},{cy - 1:.1f}" if up else \
                    f"{cx - 6:.1f},{cy - 9:.1f} {cx + 6:.1f},{cy - 9:.1f} {cx:.1f},{cy + 1:.1f}"
                out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{MARGIN_T}" y2="{MARGIN_T + plot_h}" '
                           f'stroke="{color}" stroke-dasharray="4 3" opacity="0.6"/>'
                           f'<polygon class="level-change" points="{tri}" fill="none" stroke="{color}" '
                           f'stroke-width="1.5"><title>{html_text(tip)}</title></polygon>')  # fmt: skip
        out.append("</g>")
    out.append("</svg>")
    return "".join(out), left_out


def _levels(change: Any, unit: str) -> str:
    f = fmt_ms if unit == "ms" else (lambda v: fmt_num(v, ".3g"))
    return f"{f(change['before'])} -> {f(change['after'])} {unit}"


def _filters(long: pd.DataFrame, tags: dict[str, str], colors: dict[str, str]) -> str:
    def select(name: str, label: str, options: list[tuple[str, str]]) -> str:
        items = "".join(f'<option value="{html_text(v)}">{html_text(t)}</option>' for v, t in options)
        return f'<label>{label} <select name="{name}"><option value="">all</option>{items}</select></label>'

    backends = sorted({backend_of(s) for s in colors})
    boxes = "".join(
        f'<label><input type="checkbox" value="{html_text(b)}" checked><i class="swatch" '
        f'style="background:{next(c for s, c in colors.items() if backend_of(s) == b)}"></i>{html_text(b)}</label>'
        for b in backends
    )
    return ('<div class="filters">'
            + select("task", "task", [(t, t) for t in sorted(long["task"].unique())])
            + select("experiment", "experiment", sorted(tags.items(), key=lambda kv: kv[1]))
            + select("model", "model", [(m, m) for m in sorted(long["model"].unique())])
            + f'<span class="backends">backend {boxes}</span></div>')  # fmt: skip


def _data(task: Any, experiment: Any, model: Any) -> str:
    return f'data-task="{html_text(task)}" data-experiment="{html_text(experiment)}" data-model="{html_text(model)}"'


def render(h: History, title: str = "seqbench dashboard", normalize: bool = False) -> str:
    """The whole page: level changes, then one chart per (task, experiment, model), newest runs on the right."""
    time_column, unit = ("steady_cal", "cal") if normalize else ("steady_epoch_ms", "ms")
    parts = [f"<h1>{html_text(title)}</h1>"]
    if h.long.empty:
        parts.append("<p>No runs found.</p>")
        return html_page(title, "\n".join(parts), _CSS)
    long = h.long.copy()
    long["entrant"] = [entrant_name(r) for r in long.to_dict("records")]
    colors = entrant_colors(long["entrant"])
    # an experiment by what tells it from the others (units=32), or whole when it is the only one
    tags = {e: tag or e for e, tag in experiment_tags(sorted({str(e) for e in long["experiment"]})).items()}
    changes = level_changes(h, time_column)
    changes = changes.merge(long[["row", "order", "entrant"]], on=["row", "order"])
    first, last = h.runs.iloc[0], h.runs.iloc[-1]
    parts.append(f'<p class="meta">{len(h.runs)} runs, from {html_text(first["started"])} '
                 f'({html_text(_run_label(first)[1])}) to {html_text(last["started"])} '
                 f"({html_text(_run_label(last)[1])}). Each point is a run's median over its processes, the "
                 "whisker its fastest to slowest process; hover a point for its commit and run. A triangle marks "
                 f"a run where a series changed level by more than 10%.</p>")  # fmt: skip
    parts.append(_filters(long, tags, colors))
    charts: list[tuple[tuple[Any, ...], str, bool]] = []
    ids: dict[tuple[Any, Any, Any], str] = {}
    for n, ((task, experiment, model), part) in enumerate(long.groupby(["task", "experiment", "model"], sort=True)):
        runs = h.runs[h.runs["order"].isin(part["order"])]
        mine = changes[changes["row"].isin(part["row"])]
        svg, left_out = chart_svg(part, runs, colors, time_column, unit, mine)
        if not svg:
            continue
        ids[task, experiment, model] = f"chart{n}"
        key = "".join(f'<span><i class="swatch" style="background:{colors[s]}"></i>{html_text(s)}</span>'
                      for s in sorted(part["entrant"].unique()))  # fmt: skip
        note = f'<p class="meta">{html_text(left_out_note(left_out, unit))}</p>' if left_out else ""
        html = (f'<div class="chart" id="chart{n}" {_data(task, experiment, model)}>'
                f'<h3>{html_text(f"{task} / {model}")}</h3>'
                f'<p class="meta" title="{html_text(experiment)}">{html_text(tags[str(experiment)])}</p>'
                f'<div class="key">{key}</div>{svg}{note}</div>')  # fmt: skip
        newest_change = mine["order"].max() if len(mine) else -1
        # trends first, and among them those that changed most recently; then task, experiment and model
        charts.append(((-int(len(runs) > 1), -newest_change, n), html, len(runs) > 1))
    parts.append(_changes_list(changes, ids, tags, unit))
    charts.sort()
    trends = [html for _, html, trend in charts if trend]
    once = [html for _, html, trend in charts if not trend]
    if trends:
        parts.append(f'<h2>Trends</h2><div class="charts">{"".join(trends)}</div>')
    if once:
        parts.append(f"<details class=\"once\"{'' if trends else ' open'}><summary>Experiments seen in one run only "
                     f'({len(once)})</summary><div class="charts">{"".join(once)}</div></details>')  # fmt: skip
    if h.skipped:
        items = "".join(f"<li>{html_text(s)}</li>" for s in h.skipped)
        parts.append(f"<h2>Runs skipped</h2><ul>{items}</ul>")
    parts.append(f"<script>{_SCRIPT}</script>")
    return html_page(title, "\n".join(parts), _CSS)


def _changes_list(changes: pd.DataFrame, ids: dict[tuple[Any, Any, Any], str], tags: dict[str, str],
                  unit: str) -> str:  # fmt: skip
    """The level changes, newest first, each linked to its chart."""
    if changes.empty:
        return '<h2>Level changes</h2><p class="meta">No series changed level by more than 10%.</p>'
    items = []
    for r in changes.sort_values(["order", "ratio"], ascending=[False, False]).to_dict("records"):
        chart = ids.get((r["task"], r["experiment"], r["model"]))
        where = html_text(f"{r['task']} / {r['model']} ({tags[str(r['experiment'])]})")
        link = f'<a href="#{chart}">{where}</a>' if chart else where
        direction = "up" if r["ratio"] > 1 else "down"
        change = html_text(fmt_num(r["ratio"] - 1, "+.0%"))
        items.append(f'<li {_data(r["task"], r["experiment"], r["model"])} '
                     f'data-backend="{html_text(r["backend"])}">{link}: {html_text(r["entrant"])} '
                     f'<strong class="{direction}">{change}</strong> at '
                     f"{html_text(r['run_label'])} ({html_text(_levels(r, unit))})</li>")  # fmt: skip
    more = len(items) - CHANGES_SHOWN
    tail = f'<p class="meta">and {more} earlier changes in the charts below</p>' if more > 0 else ""
    return f'<h2>Level changes</h2><ul class="changes">{"".join(items[:CHANGES_SHOWN])}</ul>{tail}'


def build(dirs: Iterable[str | Path], title: str = "seqbench dashboard", normalize: bool = False,
          since: pd.Timestamp | None = None) -> tuple[str, History]:  # fmt: skip
    """Gather the runs under ``dirs`` and render the page; returns it with the history behind it."""
    h = gather(list(dirs), since=since)
    return render(h, title, normalize), h


__all__ = ["build", "chart_svg", "render"]
