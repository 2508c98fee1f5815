"""seqbench dashboard: one static page, trends first, a chart per experiment series, filters, level changes."""

from __future__ import annotations

import re

import pytest

from seqbench.chart import BACKEND_COLORS
from tests.runfactory import Row, invoke, make_run


@pytest.fixture
def results(tmp_path):
    for i, (commit, slow) in enumerate([("a" * 40, 1.0), ("b" * 40, 1.0), ("c" * 40, 1.5)]):
        rows = [Row(model="rnn", steady_s=0.0025 * slow), Row(backend="torch", implementation="loop", model="rnn",
                steady_s=0.005), Row(model="lstm", steady_s=0.004)]  # fmt: skip
        make_run(tmp_path / "results", f"run{i}", rows, started=f"2026-01-0{i + 1}T10:00:00+0000", commit=commit)
    make_run(tmp_path / "results", "grid", [Row(model="rnn", units=32)], started="2026-01-04T10:00:00+0000",
             commit="d" * 40)  # another experiment, seen once: its own chart, after the trends  # fmt: skip
    return tmp_path / "results"


def _charts(page: str) -> list[str]:
    return re.findall(r'<div class="chart" .*?</svg>', page)


def _chart(page: str, model: str, tag: str) -> str:
    (chart,) = [c for c in _charts(page) if f"<h3>arithmetic / {model}</h3>" in c and f">{tag}</p>" in c]
    return chart


def test_dashboard_is_one_self_contained_page_with_a_chart_per_series(results, tmp_path):
    out = tmp_path / "site" / "index.html"
    result = invoke("dashboard", str(results), "-o", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    for fetch in ("src=", "<link", 'href="http', "url(", "@import", "<iframe"):  # nothing to fetch: works offline
        assert fetch not in page, fetch
    assert page.count("<svg") == len(_charts(page)) == 3  # rnn and lstm at units=10, rnn at units=32
    rnn = _chart(page, "rnn", "units=10")
    assert rnn.count("<circle") == 6  # two backends x three runs
    tips = re.findall(r"<title>([^<]*)</title>", rnn)
    assert any("numpy:reference/cpu at commit cccccccccccc" in t and "over processes" in t for t in tips)
    assert "lower is better" in rnn


def test_each_run_has_its_own_label_under_the_axis(results):
    rnn = _chart(invoke("dashboard", str(results), "-o", "-").stdout, "rnn", "units=10")
    labels = re.findall(r"<tspan[^>]*>([^<]*)</tspan><tspan[^>]*>([^<]*)</tspan>", rnn)
    assert labels == [("01-01 10:00", "aaaaaaa"), ("01-02 10:00", "bbbbbbb"), ("01-03 10:00", "ccccccc")]


def test_many_runs_are_labelled_sparsely_the_newest_always(tmp_path):
    for i in range(30):
        make_run(tmp_path, f"r{i:02d}", [Row()], seeds=1, epochs=3, started=f"2026-01-{i + 1:02d}T10:00:00+0000",
                 commit=f"{i:02d}" * 20)  # fmt: skip
    from seqbench.dashboard import CHART_W, LABEL_W, MARGIN_L, MARGIN_R

    (chart,) = _charts(invoke("dashboard", str(tmp_path), "-o", "-").stdout)
    labels = re.findall(r"<tspan[^>]*>([^<]*)</tspan><tspan", chart)
    assert 2 <= len(labels) <= (CHART_W - MARGIN_L - MARGIN_R) / LABEL_W and labels[-1] == "01-30 10:00"
    assert chart.count("<circle") == 30  # every run is still a point, named in its tooltip


def test_trends_come_first_and_a_single_run_waits_folded_at_the_end(results):
    page = invoke("dashboard", str(results), "-o", "-").stdout
    first, *_, last = _charts(page)
    assert "<h3>arithmetic / rnn</h3>" in first and ">units=10</p>" in first  # a trend, and it changed level
    assert ">units=32</p>" in last
    assert page.index("<h2>Trends</h2>") < page.index("Experiments seen in one run only (1)") < page.index(last)
    assert page.index("<h2>Level changes</h2>") < page.index("<h2>Trends</h2>")


def test_a_level_change_is_marked_where_history_finds_it(results):
    from seqbench.history import gather, level_changes

    (change,) = level_changes(gather([results])).to_dict("records")
    assert change["model"] == "rnn" and change["backend"] == "numpy" and change["ratio"] == pytest.approx(1.5, 0.02)
    page = invoke("dashboard", str(results), "-o", "-").stdout
    rnn = _chart(page, "rnn", "units=10")
    (marker,) = re.findall(r'<polygon class="level-change".*?<title>([^<]*)</title>', rnn)
    assert marker.startswith("numpy:reference/cpu: level changed +50% at this run")
    assert 'class="level-change"' not in _chart(page, "lstm", "units=10")
    listed = re.findall(r'<ul class="changes"><li[^>]*>(.*?)</li>', page)[0]
    assert 'href="#' in listed and "+50%" in listed and "01-03 10:00 ccccccc" in listed


def test_filters_cover_task_experiment_model_and_backend(results):
    page = invoke("dashboard", str(results), "-o", "-").stdout
    assert re.findall(r'<select name="(\w+)">', page) == ["task", "experiment", "model"]
    assert re.findall(r'<input type="checkbox" value="([^"]+)" checked>', page) == ["numpy", "torch"]
    assert 'data-task="arithmetic"' in _chart(page, "rnn", "units=32") and "<script>" in page
    assert 'data-backend="torch"' in _chart(page, "rnn", "units=10")


def test_a_backend_keeps_its_colour_across_charts_and_the_run_plots(results):
    page = invoke("dashboard", str(results), "-o", "-").stdout
    keys = [dict(re.findall(r'<i class="swatch" style="background:(#[0-9A-Fa-f]{6})"></i>([^<]+)</span>', c))
            for c in page.split('<div class="chart"')[1:]]  # fmt: skip
    assert {k for c in keys for k, v in c.items() if v == "numpy:reference/cpu"} == {BACKEND_COLORS["numpy"]}
    pytest.importorskip("matplotlib")
    import seqbench
    from seqbench import plots

    figure = plots.run_figures(seqbench.load_run(results / "run0"))["steady_time"]
    legend = figure.axes[0].get_legend()
    from matplotlib.colors import to_hex

    handles = zip(legend.legend_handles, legend.get_texts(), strict=True)
    shown = {t.get_text(): to_hex(h.get_color()) for h, t in handles}
    assert shown["numpy:reference/cpu"].upper() == BACKEND_COLORS["numpy"].upper()  # the same blue in the report


def test_names_from_files_are_escaped(tmp_path):
    make_run(tmp_path, "r", [Row(backend="<b>x</b>")])
    page = invoke("dashboard", str(tmp_path), "-o", "-").stdout
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_a_time_no_axis_can_draw_is_left_out_with_a_note(tmp_path):
    make_run(tmp_path, "r0", [Row(), Row(backend="torch", implementation="loop")])
    make_run(tmp_path, "r1", [Row(steady_s=1e305), Row(backend="torch", implementation="loop")],
             started="2026-01-02T10:00:00+0000")  # fmt: skip
    result = invoke("dashboard", str(tmp_path), "-o", "-")
    assert result.returncode == 0 and "left out: 1 ms value that cannot be drawn" in result.stdout


def test_no_runs_is_a_page_that_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("dashboard", str(tmp_path / "empty"), "-o", "-")
    assert result.returncode == 0 and "No runs found." in result.stdout
