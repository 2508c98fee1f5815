"""Make text from a results file safe for the output it goes to.

Every string a renderer takes from a run (names, statuses, error lines,
host names, versions, paths) may have been written by someone else: a run
directory is downloaded from CI, merged from shards, or edited by hand.  Each
output has one function here, and every renderer uses it:

* :func:`terminal`: ANSI escape sequences and other control characters are
  removed (they could move the cursor, recolour or retitle the terminal, or
  hide text); so are the Unicode bidirectional overrides that can make text
  read differently from what it is.
* :func:`one_line`: the same, and line breaks become spaces (table cells,
  list items, one-line messages).
* :func:`markdown`: for GitHub-flavoured Markdown (a PR comment, the job
  summary).  Characters that start inline constructs (links, images, raw
  HTML, code, emphasis, math, table pipes, entities) are backslash-escaped;
  text at the start of a line cannot open a block (heading, quote, list,
  fence); ``@`` gets a zero-width space after it, so that neither a mention
  nor an e-mail link is made; ``://`` and ``www.`` are broken so that no bare
  URL becomes a link.  The result renders as the original text.
* :func:`html_text`: ``html.escape`` of :func:`terminal`'s result.
* :func:`mathtext`: a label for matplotlib, where ``$...$`` would otherwise be
  parsed as mathtext (and a bad expression would stop the report).
"""

from __future__ import annotations

import html
import re
from typing import Any

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC strings, and two-character escapes.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_BREAKS = re.compile(r"[\t\n\r\f\v\u2028\u2029\x85]+")

# Inline Markdown: every character that can open or close something. Backslash first.
_MD_INLINE = re.compile(r"([\\`*_\[\]<>!~&$|{}])")
_MD_AUTOLINK = re.compile(r"(?i)(://|www\.)")
# At the start of a line: headings, quotes, lists, fences, thematic breaks, tables, HTML blocks.
_MD_LINE_START = re.compile(r"^(\s*)([#>+\-=*_`~|<]|\d+[.)])")
ZWSP = "\u200b"


def terminal(text: Any) -> str:
    """``text`` as a string without escape sequences or control characters (tab and newline stay)."""
    return _CONTROL.sub("", _ANSI.sub("", str(text)))


def one_line(text: Any) -> str:
    """:func:`terminal`, with every run of line breaks and tabs made one space."""
    return _BREAKS.sub(" ", terminal(text).replace("\r", " "))


def markdown(text: Any, line_start: bool = True) -> str:
    """``text`` as Markdown that renders as exactly this text, on one line.

    ``line_start=False`` for a table cell, where no block can open (and ``0.5`` stays unescaped).
    """
    plain = one_line(text).strip()  # leading spaces could make an indented code block
    escaped = _MD_INLINE.sub(r"\\\1", plain)
    escaped = _MD_AUTOLINK.sub(lambda m: m[1].replace(":", "\\:").replace(".", "\\."), escaped)
    escaped = escaped.replace("@", "@" + ZWSP)
    if not line_start:
        return escaped
    return _MD_LINE_START.sub(lambda m: m[1].lstrip() + "\\" + m[2] if not m[2][0].isdigit()
                              else m[1].lstrip() + m[2][:-1] + "\\" + m[2][-1], escaped)  # fmt: skip


def html_text(text: Any) -> str:
    """``text`` for HTML element content or a quoted attribute."""
    return html.escape(terminal(text))


def mathtext(text: Any) -> str:
    """A matplotlib label that shows ``text`` literally (no ``$...$`` mathtext)."""
    # matplotlib parses mathtext only where unescaped dollars pair up; other backslashes stay literal
    return terminal(text).replace("$", r"\$")


__all__ = ["html_text", "markdown", "mathtext", "one_line", "terminal"]
