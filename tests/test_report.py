"""seqbench report: the summary view, its renderings, plots, and bad input."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

import seqbench
from seqbench.report import render
from seqbench.results import FORMAT_VERSION
from seqbench.views import cell_view, failures, summary
from tests.conftest import run_dir_of
from tests.conftest import seqbench as cli
from tests.runfactory import Row, invoke, make_run

ROWS = [Row(model="rnn", steady_s=0.004), Row(model="lstm", steady_s=0.006, params=491, failed_seeds=(2,),
                                               accuracy=[0.5, 0.7, 0.0])]  # fmt: skip


@pytest.fixture
def run_path(tmp_path: Path) -> Path:
    return make_run(tmp_path, "r1", ROWS)


def _row(table, model):
    return table[table["model"] == model].iloc[0]


def test_summary_is_over_processes_and_keeps_the_first_epoch_apart(run_path):
    run = seqbench.load_run(run_path)
    table = summary(cell_view(run))
    rnn = _row(table, "rnn")
    per_process = run.cells[run.cells["model"] == "rnn"]["steady_epoch_s"]  # one repeat = one process
    assert rnn["steady_epoch_ms"] == pytest.approx(np.median(per_process) * 1e3)
    assert rnn["processes"] == 3 and rnn["disturbed"] == 0
    assert rnn["steady_min_ms"] == pytest.approx(per_process.min() * 1e3)
    assert rnn["steady_max_ms"] == pytest.approx(per_process.max() * 1e3)
    assert rnn["first_epoch_ms"] == pytest.approx(50.0)  # first epochs are not steady ones
    assert (rnn["accuracy"], rnn["accuracy_min"], rnn["accuracy_max"]) == (0.8, 0.4, 0.9)
    assert rnn["status"] == "ok" and rnn["seeds"] == 3 and rnn["failed"] == 0
    assert rnn["steady_cal"] == pytest.approx(np.median(per_process) / 0.01)  # calibration units
    assert rnn["samples_per_s"] == pytest.approx(1000 / np.median(per_process))  # the same median as steady


def test_disturbed_repeats_are_counted_and_marked(tmp_path):
    run = seqbench.load_run(make_run(tmp_path, "d", [Row(model="rnn", disturbed_seeds=(2,))]))
    assert _row(summary(cell_view(run)), "rnn")["disturbed"] == 1
    text = render(run, "text")
    assert "DISTURBED: 1 of the measurements behind this table waited for a CPU" in text
    assert re.search(r"[\d)]\*", text)  # the steady figure carries the mark


def test_rows_of_different_experiments_are_apart(tmp_path):
    run = seqbench.load_run(make_run(tmp_path, "g", [Row(model="rnn"), Row(model="rnn", units=64)]))
    table = summary(cell_view(run))
    assert len(table) == 2 and table["experiment"].str.contains("units=64").sum() == 1
    assert render(run, "text").count("task arithmetic:") == 2


def test_failed_seeds_are_counted_not_hidden_and_excluded_from_times_and_accuracy(run_path):
    run = seqbench.load_run(run_path)
    cells = cell_view(run)
    lstm = _row(summary(cells), "lstm")
    assert lstm["status"] == "2 ok, 1 error" and lstm["failed"] == 1 and lstm["ok"] == 2
    assert lstm["accuracy"] == pytest.approx(0.6)  # median of seeds 0 and 1 only
    assert lstm["processes"] == 2  # the failed seed's 3 epochs are not timings
    bad = failures(cells)
    assert len(bad) == 1 and bad.iloc[0]["seed"] == 2 and bad.iloc[0]["reason"] == "ValueError: boom"


def test_text_report_has_a_table_per_task_with_spread_and_the_failure_reason(run_path):
    text = render(seqbench.load_run(run_path), "text")
    assert "task arithmetic" in text
    header = next(line for line in text.splitlines() if line.startswith("backend"))
    for column in ("status", "params", "accuracy", "final loss", "first ms", "steady ms", "cpu ms", "samples/s",
                   "peak MB", "steady/cal"):  # fmt: skip
        assert column in header
    assert "gpu ms" not in header  # no device timings recorded
    assert re.search(r"lstm .* 2 ok, 1 error", text)
    assert re.search(r"0\.80 \(0\.40-0\.90\)", text)  # median (min-max) over seeds
    assert "seed=2: error: ValueError: boom" in text
    assert "PARTIAL" not in text


def test_gpu_time_is_shown_where_recorded(tmp_path):
    path = make_run(tmp_path, "g", [Row(device="gpu", gpu_s=0.002)])
    text = render(seqbench.load_run(path), "text")
    assert "gpu ms" in text and re.search(r"\b2\.00\b", text)


def test_markdown_csv_and_json_carry_the_same_rows(run_path):
    run = seqbench.load_run(run_path)
    md = render(run, "md")
    compact, full = [block.splitlines() for block in md.split("\n\n") if block.startswith("|")]
    assert len(compact) == 4 and set(compact[1]) <= set("|-:")  # header, rule, two rows
    assert compact[0] == "| backend | model | accuracy | steady ms | status |"  # status: a seed failed
    assert len(full) == 4 and "| final loss |" in full[0]  # every column, folded under <details>
    assert md.count("<details><summary>All columns</summary>") == 1
    rows = list(csv.DictReader(io.StringIO(render(run, "csv"))))
    assert {r["model"] for r in rows} == {"rnn", "lstm"}
    assert float(next(r for r in rows if r["model"] == "rnn")["accuracy"]) == 0.8
    doc = json.loads(render(run, "json"))
    assert {r["model"] for r in doc["summary"]} == {"rnn", "lstm"}
    assert doc["failures"][0]["reason"] == "ValueError: boom"
    assert doc["run"]["partial"] is False
    assert "NaN" not in render(run, "json")  # missing values are null


def test_html_is_one_self_contained_page_with_embedded_png_plots(run_path):
    page = render(seqbench.load_run(run_path), "html")
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4  # steady time, first vs steady, loss curves, accuracy
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert not re.search(r'(src|href)="(https?:|/)', page)  # nothing external


def test_interrupted_run_reports_what_it_has_marked_partial(tmp_path):
    path = make_run(tmp_path, "cut", [Row()], status="interrupted", planned=6)
    result = invoke("report", str(path))
    assert result.returncode == 0
    assert "PARTIAL" in result.stdout and "3 of 6 cells" in result.stdout and "interrupted" in result.stdout
    assert re.search(r"numpy\s+reference\s+rnn", result.stdout)
    doc = json.loads(invoke("report", str(path), "--format", "json").stdout)
    assert doc["run"]["partial"] is True and doc["run"]["cells_done"] == 3


def test_run_that_never_finished_is_partial(tmp_path):
    path = make_run(tmp_path, "dead", [Row()], status="running")
    assert "PARTIAL: the run never finished" in render(seqbench.load_run(path), "text")


def test_report_defaults_to_the_newest_run_and_writes_output_and_plots(tmp_path):
    make_run(tmp_path, "zzz-older", [Row(model="rnn")], started="2026-01-01T10:00:00+0000")
    make_run(tmp_path, "aaa-newer", [Row(model="lstm")], started="2026-02-01T10:00:00+0000")
    out = tmp_path / "out" / "report.md"
    result = invoke("report", "--results-dir", str(tmp_path), "--format", "md", "-o", str(out),
                 "--plots", str(tmp_path / "plots"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "aaa-newer" in out.read_text() and "| lstm |" in out.read_text()
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "accuracy.png", "first_vs_steady.png", "loss_curves.png", "steady_time.png"]


def test_empty_results_dir_is_a_clear_error(tmp_path):
    result = invoke("report", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "no runs in" in result.stderr


# ------------------------------------------------------------------ bad input


def test_a_path_that_is_not_a_run_is_exit_2(tmp_path):
    result = invoke("report", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"seqbench: error: {tmp_path} is not a seqbench run: no run.json"


def test_a_newer_format_version_is_a_clear_error(run_path):
    meta = json.loads((run_path / "run.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (run_path / "run.json").write_text(json.dumps(meta))
    result = invoke("report", str(run_path))
    assert result.returncode == 2
    assert f"results format {FORMAT_VERSION + 1}" in result.stderr and "upgrade seqbench" in result.stderr


def test_a_truncated_table_is_an_error_naming_the_file_and_line(run_path):
    text = (run_path / "cells.jsonl").read_text()
    (run_path / "cells.jsonl").write_text(text[: len(text) - 40])  # a writer killed mid-line
    result = invoke("report", str(run_path))
    assert result.returncode == 2
    assert "cells.jsonl: line 6 is not valid JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_hand_edited_table_missing_a_column_is_an_error_naming_the_file(run_path):
    lines = (run_path / "epochs.jsonl").read_text().splitlines()
    row = json.loads(lines[4])
    del row["wall_s"]
    lines[4] = json.dumps(row)
    (run_path / "epochs.jsonl").write_text("\n".join(lines) + "\n")
    result = invoke("report", str(run_path))
    assert result.returncode == 2 and "epochs.jsonl: line 5: lacks column(s) wall_s" in result.stderr


def test_old_runs_without_machine_or_calibration_still_report(tmp_path):
    path = make_run(tmp_path, "old", [Row()], calibration_s=None)
    lines = [json.loads(line) for line in (path / "cells.jsonl").read_text().splitlines()]
    (path / "cells.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "machine"}) + "\n"
                                              for r in lines))  # fmt: skip
    text = render(seqbench.load_run(path), "text")
    assert "steady/cal" not in text and re.search(r"numpy\s+reference\s+rnn", text)


# ------------------------------------------------------------------ a real run


@pytest.mark.slow
def test_real_numpy_run_reports_in_every_format(tmp_path):
    run = cli("run", "--backends", "numpy", "--epochs", "4", "--seeds", "2", "--results-dir", str(tmp_path), "-q")
    assert run.returncode == 0, run.stderr
    path = run_dir_of(run)
    meta = json.loads((path / "run.json").read_text())
    assert meta["calibration"]["score_s"] > 0 and meta["machine_id"]
    cells = [json.loads(line) for line in (path / "cells.jsonl").read_text().splitlines()]
    assert {c["machine"] for c in cells} == {meta["machine_id"]}
    for fmt in ("text", "md", "csv", "json", "html"):
        result = cli("report", str(path), "--format", fmt)
        assert result.returncode == 0, (fmt, result.stderr)
        assert "rnn" in result.stdout and "lstm" in result.stdout


def test_html_cells_do_not_wrap_so_rows_are_even(run_path):
    page = render(seqbench.load_run(run_path), "html", plots=False)
    assert '<div class="fit"><table>' in page and ".fit td{white-space:nowrap}" in page


@pytest.mark.parametrize(("value", "spec", "shown"), [(1e308, ".2f", "1e+308"), (-1e308, ",.0f", "-1e+308"),
                                                      (1e308, "+.1%", "+inf%"), (0.5, "+.1%", "+50.0%"),
                                                      (float("inf"), ".2f", "inf"), (1234.5, ",.0f", "1,234")])
def test_a_huge_number_is_written_short(value, spec, shown):
    from seqbench.formatting import fmt_ms, fmt_num, fmt_ratio

    assert fmt_num(value, spec) == shown
    assert fmt_ms(1e308) == "1e+308" and fmt_ms(714.2) == "714"
    assert fmt_ratio(2e20) == "2e+20x"


@pytest.fixture
def extreme(tmp_path):
    """A run whose records hold 1e308: a time of 1e308 ms and, in another run, an accuracy of 1e308."""
    make_run(tmp_path / "results", "time", [Row(steady_s=1e305, first_s=1e305), Row(backend="torch",
             implementation="loop")])  # fmt: skip
    make_run(tmp_path / "results", "metric", [Row(accuracy=[1e308, 0.5, -1e308]), Row(backend="torch",
             implementation="loop")], started="2026-01-02T10:00:00+0000")  # fmt: skip
    return tmp_path / "results"


@pytest.mark.filterwarnings("error")  # an overflow warning fails the test
@pytest.mark.parametrize("run", ["time", "metric"])
def test_extreme_values_are_reported_without_a_crash_a_warning_or_a_wall_of_digits(extreme, tmp_path, run):
    pytest.importorskip("matplotlib")
    for args in (["report", str(extreme / run)], ["report", str(extreme / run), "--format", "html"],
                 ["report", str(extreme / run), "--plots", str(tmp_path / run)],
                 ["history", str(extreme)], ["dashboard", str(extreme), "-o", "-"]):  # fmt: skip
        result = invoke(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert not re.search(r"\d{20}", result.stdout), args
    assert "1e+308" in invoke("report", str(extreme / run)).stdout


def test_the_html_table_fits_a_laptop_screen_and_keeps_every_column_a_click_away(tmp_path):
    rows = [Row(backend=b, implementation=i, model=m, gpu_s=0.001, failed_seeds=(2,) if b == "torch" else (),
                disturbed_seeds=(1,)) for b, i in (("numpy", "reference"), ("torch", "loop"), ("jax", "scan"))
            for m in ("rnn", "lstm", "gru")]  # fmt: skip
    run = seqbench.load_run(make_run(tmp_path, "wide", rows))
    from seqbench.report import HTML_WIDTH, display_table
    from seqbench.tables import table_width

    full = display_table(summary(cell_view(run)))
    assert table_width(full) > HTML_WIDTH and len(full.columns) >= 17  # the table the issue saw scroll sideways
    page = render(run, "html", plots=False)
    tables = re.findall(r"<table>.*?</table>", page)
    main, more = ([re.findall(r"<th>([^<]*)</th>", t) for t in tables])
    assert not page.count('class="scroll"') and page.count('class="fit"') == 2
    assert {"backend", "model", "status", "accuracy", "steady ms", "x vs fastest"} <= set(main)
    assert table_width(full[main]) <= HTML_WIDTH
    assert set(main) | set(more) == set(full.columns)  # nothing is lost: the rest opens under the table
    assert "<summary>More columns: path" in page and '<td class="clip" title="numpy-path">' in page
