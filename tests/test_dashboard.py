"""seqbench dashboard: one static page, a trend chart per experiment series, the commit at each point."""

from __future__ import annotations

import re

import pytest

from tests.runfactory import Row, invoke, make_run


@pytest.fixture
def results(tmp_path):
    for i, (commit, slow) in enumerate([("a" * 40, 1.0), ("b" * 40, 1.0), ("c" * 40, 1.5)]):
        rows = [Row(model="rnn", steady_s=0.0025 * slow), Row(backend="torch", implementation="loop", model="rnn",
                steady_s=0.005), Row(model="lstm", steady_s=0.004)]  # fmt: skip
        make_run(tmp_path / "results", f"run{i}", rows, started=f"2026-01-0{i + 1}T10:00:00+0000", commit=commit)
    make_run(tmp_path / "results", "grid", [Row(model="rnn", units=32)], started="2026-01-04T10:00:00+0000",
             commit="d" * 40)  # another experiment: its own chart
    return tmp_path / "results"


def test_dashboard_is_one_self_contained_page_with_a_chart_per_series(results, tmp_path):
    out = tmp_path / "site" / "index.html"
    result = invoke("dashboard", str(results), "-o", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "src=" not in page
    assert page.count("<svg") == 3  # rnn and lstm at units=10, rnn at units=32
    assert "units=32" in page and "arithmetic / lstm" in page
    rnn = page[page.index("arithmetic / rnn"):]
    rnn = rnn[:rnn.index("</svg>")]
    assert rnn.count("<circle") == 6  # two backends x three runs
    for commit in ("aaaaaaa", "bbbbbbb", "ccccccc"):
        assert f">{commit}</text>" in rnn  # the commit under each point
    tips = re.findall(r"<title>([^<]*)</title>", rnn)
    assert any("numpy:reference/cpu at commit cccccccccccc" in t and "over processes" in t for t in tips)
    assert "lower is better" in rnn


def test_a_backend_keeps_its_colour_across_charts(results):
    page = invoke("dashboard", str(results), "-o", "-").stdout
    charts = page.split('<div class="chart">')[1:]
    colours = [dict(re.findall(r'<i style="background:(#[0-9A-Fa-f]{6})"></i>([^<]+)</span>', c)) for c in charts]
    numpy = {next(k for k, v in c.items() if v == "numpy:reference/cpu") for c in colours}
    assert len(numpy) == 1


def test_names_from_files_are_escaped(tmp_path):
    make_run(tmp_path, "r", [Row(backend="<b>x</b>")])
    page = invoke("dashboard", str(tmp_path), "-o", "-").stdout
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_no_runs_is_a_page_that_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("dashboard", str(tmp_path / "empty"), "-o", "-")
    assert result.returncode == 0 and "No runs found." in result.stdout
