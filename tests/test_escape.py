"""Strings from a results file, escaped for each output: Markdown, HTML, the terminal, matplotlib."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

import seqbench
from seqbench.escape import html_text, markdown, mathtext, one_line, terminal
from seqbench.report import render
from tests.runfactory import MACHINE, Row, invoke, make_run

# What a hostile run puts in every string it controls.
EVIL = ("x|y\r\n# Heading\n![img](http://e.test/i.png) [link](http://e.test) <img src=x onerror=alert(1)> "
        "<details><summary>s</summary> @octocat `code` **bold** $x^2$ www.e.test http://e.test a@e.test "
        "\x1b[2J\x1b]0;title\x07\x1b[31mred\u202e")  # fmt: skip


def commonmark(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(text)


def test_markdown_renders_as_the_text_itself_and_nothing_more():
    html = commonmark(markdown(EVIL))
    assert html.count("<p>") == 1 and not re.search(r"<(a|img|h\d|details|code|strong|em|table)\b", html)
    for piece in ("# Heading", "![img](http://e.test/i.png)", "<img src=x", "`code`", "**bold**", "$x^2$"):
        assert piece.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in html.replace("\u200b", "")
    assert "\x1b" not in html and "\r" not in html and "\u202e" not in html


def test_markdown_breaks_mentions_and_bare_links_that_github_would_make():
    text = markdown("@octocat www.e.test http://e.test a@e.test")
    assert "@octocat" not in text and "@\u200boctocat" in text  # no mention, no e-mail link
    assert "www.e" not in text and "http://" not in text


@pytest.mark.parametrize("start", ["# h", "> q", "- l", "+ l", "* l", "1. l", "3) l", "```", "~~~", "<div>", "    code",
                                   "---", "==="])  # fmt: skip
def test_markdown_at_the_start_of_a_line_opens_no_block(start):
    html = commonmark(f"- {markdown(start)}")
    assert html.count("<li>") == 1 and not re.search(r"<(h\d|blockquote|ol|pre|code|div|hr)\b", html)
    assert not re.search(r"<ul>\s*<li>\s*<ul>", html)


def test_terminal_keeps_text_and_drops_escapes_and_controls():
    assert terminal("a\x1b[31mred\x1b[0m\x1b]0;t\x07b\x07\x00c\u202ed\tline\n") == "aredbcd\tline\n"
    assert one_line("a\r\nb\tc\n\nd") == "a b c d"


def test_html_text_escapes_and_drops_controls():
    assert html_text("<b a='x'>&\x1b[31m") == "&lt;b a=&#x27;x&#x27;&gt;&amp;"


def test_mathtext_shows_dollars_literally():
    assert mathtext("$x^{$") == r"\$x^{\$"


@pytest.fixture
def evil_run(tmp_path: Path) -> Path:
    row = Row(backend="np" + EVIL[:30], implementation="ref|x\r\n# H", model="$x^{$ <details>", failed_seeds=(1,))
    machine = MACHINE | {"hostname": "host @octocat <img src=x>", "cpu": EVIL}
    path = make_run(tmp_path, "evil", [row], machine=machine, packages={"numpy": "2 ![i](http://e.test/i.png)"},
                    config={"activation": "relu # <h1>x</h1>"})  # fmt: skip
    lines = (path / "cells.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    for r in rows:
        if r["status"] == "error":
            r["error"] = "Traceback\n" + EVIL.replace("\n", " ")
    (path / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rendered_md_is_inert(md: str, ours: int, details: int = 0) -> None:
    html = commonmark(md)
    assert len(re.findall(r"<h\d", html)) == ours, html  # only the headings the renderer wrote
    assert not re.search(r"<(a|img)\b", html), html
    # only the <details> blocks the renderer wrote (the PR comment's folded tables)
    assert len(re.findall(r"<details\b", html)) == len(re.findall(r"<summary\b", html)) == details, html
    assert "\x1b" not in md and "\r" not in md and "@octocat" not in md


def test_report_markdown_escapes_info_lines_headings_cells_and_failures(evil_run):
    run = seqbench.load_run(evil_run)
    md = render(run, "md")
    from seqbench.views import cell_view, summary

    experiments = summary(cell_view(run)).groupby(["task", "experiment"]).ngroups
    # the run title and one heading and one folded full table per task and experiment
    _rendered_md_is_inert(md, ours=1 + experiments, details=experiments)
    tables = [block.splitlines() for block in md.split("\n\n") if block.startswith("|")]
    assert tables
    for table in tables:  # no row breaks out of its table
        assert len({line.count(" | ") for line in table[:1] + table[2:]}) == 1, table


def test_report_text_strips_terminal_escapes_and_html_escapes_everything(evil_run):
    run = seqbench.load_run(evil_run)
    text = render(run, "text")
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\x07" not in text
    page = render(run, "html", plots=False)
    assert "<img src=x" not in page and "<details>" not in page and "\x1b" not in page


def test_a_dollar_in_a_name_does_not_break_the_html_plots(evil_run):
    pytest.importorskip("matplotlib")
    page = render(seqbench.load_run(evil_run), "html", plots=True)
    assert page.count("data:image/png;base64,") >= 3 and "No plots" not in page


def test_compare_markdown_escapes_its_warnings_and_names(tmp_path):
    base = make_run(tmp_path, "base", [Row()], machine=MACHINE | {"hostname": "[a](http://e.test) @octocat"})
    new = make_run(tmp_path, "new", [Row()], machine=MACHINE | {"hostname": "<img src=x> # h"},
                   packages={"numpy": "9 ![i](http://e.test/i.png)", "seqbench": "0.1.0", "pandas": "3.1.1"})
    result = invoke("compare", str(base), str(new), "--format", "md")
    assert result.returncode == 0, result.stderr
    assert "different hosts" in result.stdout and "different library versions" in result.stdout
    _rendered_md_is_inert(result.stdout, ours=1, details=1)


def test_history_markdown_and_text_escape_names(evil_run):
    md = invoke("history", str(evil_run.parent), "--format", "md")
    assert md.returncode == 0, md.stderr
    _rendered_md_is_inert(md.stdout, ours=4)
    text = invoke("history", str(evil_run.parent))
    assert "\x1b" not in text.stdout and "\r" not in text.stdout


def test_error_lines_and_warnings_on_stderr_are_one_clean_line(tmp_path):
    run = make_run(tmp_path, "r", [Row()])
    meta = json.loads((run / "run.json").read_text())
    meta["shard"] = {"index": 1, "count": 2}
    meta["status"] = "weird\x1b[2J\nsecond line"
    (run / "run.json").write_text(json.dumps(meta))
    result = invoke("merge", str(run), "-o", str(tmp_path / "m"))
    assert result.returncode == 0 and "\x1b" not in result.stderr
    assert all(line.startswith(("seqbench: WARNING", "merged")) for line in result.stderr.splitlines())


def test_a_table_cell_opens_no_block_so_numbers_stay_plain():
    assert markdown("0.65 (0.40-0.90)", line_start=False) == "0.65 (0.40-0.90)"
    assert markdown("1. x") == "1\\. x"


def test_report_and_history_csv_carry_no_escapes_or_nul_bytes(tmp_path):
    row = Row(backend="np\x1b]0;owned\x07\x1b[2J\x00x", device="cpu\x00\x1b[31m\r\nz")
    path = make_run(tmp_path, "r", [row])
    for result in (invoke("report", str(path), "--format", "csv"), invoke("history", str(tmp_path), "--format", "csv")):
        assert result.returncode == 0, result.stderr
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", result.stdout.replace("\r\n", "\n")), result.stdout
        assert "npx" in result.stdout and "cpu z" in result.stdout  # the text stays, on one line
