"""Renderers of display-ready DataFrames: aligned text, rich text, Markdown, HTML, CSV and JSON rows.

A table here is already strings (see :mod:`seqbench.formatting`); a
renderer only lays it out and escapes it for its medium
(:mod:`seqbench.escape`).  ``right`` names the columns aligned right: the
numbers.  :func:`html_page` wraps a body into the one self-contained page
every HTML output shares.  pandas is needed by the callers only: nothing here
imports it.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from seqbench.escape import html_text, markdown, one_line
from seqbench.formatting import jsonable

if TYPE_CHECKING:
    import pandas as pd


def text_table(frame: pd.DataFrame, right: Collection[str] = ()) -> str:
    """A plain, aligned text table (no index)."""
    columns = list(frame.columns)
    cells = [[one_line(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        out = [v.rjust(w) if c in right else v.ljust(w) for v, w, c in zip(values, widths, columns, strict=True)]
        return "  ".join(out).rstrip()

    return "\n".join([line([str(c) for c in columns])] + [line(r) for r in cells])

def table_width(frame: pd.DataFrame) -> int:
    widths = [max([len(str(c))] + [len(one_line(v)) for v in frame[c]]) for c in frame.columns]
    return sum(widths) + 2 * max(0, len(widths) - 1)  # the gap text_table leaves between columns

def rich_text_table(frame: pd.DataFrame, width: int, right: Collection[str] = ()) -> str:
    """The table laid out by rich for ``width`` columns, as plain text (no colour, no box).

    Numbers never wrap; a text column folds when even the fitted table is too wide.
    """
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_edge=False, header_style="")
    for c in frame.columns:
        table.add_column(str(c), justify="right" if c in right else "left", no_wrap=c in right,
                         overflow="fold")  # fmt: skip
    for row in frame.itertuples(index=False):
        table.add_row(*[one_line(v) for v in row])
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False, highlight=False,
            markup=False, emoji=False).print(table)  # fmt: skip
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())

def md_table(frame: pd.DataFrame, right: Collection[str] = ()) -> str:

    head = "| " + " | ".join(markdown(c, line_start=False) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if c in right else "---" for c in frame.columns) + "|"
    body = ["| " + " | ".join(markdown(v, line_start=False) for v in row) + " |"
            for row in frame.itertuples(index=False)]  # fmt: skip
    return "\n".join([head, rule, *body])

def html_table(frame: pd.DataFrame, right: Collection[str] = (), clip: Collection[str] = ()) -> str:
    """``right`` columns hold numbers (class ``num``); ``clip`` columns are cut to a width, whole in a tooltip."""
    head = "".join(f"<th>{html_text(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        tds = []
        for c, v in zip(frame.columns, row, strict=True):
            if c in right:
                tds.append(f'<td class="num">{html_text(v)}</td>')
            elif c in clip:
                tds.append(f'<td class="clip" title="{html_text(v)}">{html_text(v)}</td>')
            else:
                tds.append(f"<td>{html_text(v)}</td>")
        body.append(f"<tr>{''.join(tds)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

INTEGER_COLUMNS = ("seeds", "ok", "failed", "params", "processes", "disturbed", "n_base", "n_new")

def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV, counts written as integers (``131``, not the ``131.0`` a NaN-holding column gets),
    and every string on one line without control characters (:func:`seqbench.escape.one_line`)."""
    import pandas as pd

    frame = frame.rename(columns=one_line)
    for column in frame.columns:  # names from a run: no escape sequence or NUL reaches a terminal or a parser
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(lambda v: one_line(v) if isinstance(v, str) else v)
    for column in INTEGER_COLUMNS:
        if column in frame:
            values = pd.to_numeric(frame[column], errors="coerce")
            if (values.dropna() % 1 == 0).all():
                frame[column] = values.astype("Int64")
    return frame.to_csv(index=False)

def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready rows (NaN becomes null)."""
    return [jsonable(r) for r in frame.astype(object).to_dict("records")]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:90em}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left}
th{background:#f0f0f0} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{overflow-x:auto}
.fit{overflow-x:auto} .fit th{vertical-align:bottom} .fit td{white-space:nowrap}
td.clip{max-width:22em;overflow:hidden;text-overflow:ellipsis}
details{margin:0.5em 0 1em} summary{cursor:pointer;color:#444}
.partial{background:#fff3cd;border:1px solid #e0c060;padding:0.6em}
.warning{background:#fde2e1;border:1px solid #d08080;padding:0.6em}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0} .legend{color:#666;font-size:0.85em}
"""

def html_page(title: str, body: str, css: str = "") -> str:
    """One self-contained page: the report's style, plus ``css`` (ours, never from a file)."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html_text(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_CSS}{css}</style></head><body>\n{body}\n</body></html>\n")  # fmt: skip

def png_img(png: bytes, alt: str) -> str:
    return f'<img alt="{html_text(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
