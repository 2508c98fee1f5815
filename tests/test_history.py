"""seqbench history: every run found, in time order, as a trend per row."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from seqbench.errors import UsageError
from seqbench.history import find_run_dirs, gather, level_changes, level_shifts, parse_since, render, trend
from tests.runfactory import Row, invoke, make_run


@pytest.fixture
def results(tmp_path):
    """Three runs in nested folders whose names sort against their start times."""
    make_run(tmp_path / "ci" / "b", "zz-first", [Row(model="rnn", steady_s=0.005), Row(model="lstm", steady_s=0.01)],
             started="2026-01-01T10:00:00+0000", commit="1" * 40)  # fmt: skip
    make_run(tmp_path / "ci" / "a", "mm-second", [Row(model="rnn", steady_s=0.006), Row(model="lstm", steady_s=0.01)],
             started="2026-01-05T10:00:00+0000", commit="2" * 40, calibration_s=0.012)  # fmt: skip
    make_run(tmp_path, "aa-third", [Row(model="rnn", steady_s=0.0075, accuracy=[0.1, 0.2, 0.3])],
             started="2026-01-09T10:00:00+0000", commit="3" * 40)  # fmt: skip
    return tmp_path


def test_runs_are_found_recursively_and_ordered_by_start_time(results):
    assert len(find_run_dirs([results])) == 3
    h = gather([results])
    assert list(h.runs["run_id"]) == ["zz-first", "mm-second", "aa-third"]
    assert list(h.runs["commit"].str[:1]) == ["1", "2", "3"]
    rnn = h.long[h.long["model"] == "rnn"].sort_values("order")
    assert list(rnn["steady_epoch_ms"].round(1)) == [5.0, 6.0, 7.5]


def _series(wide, row):
    (name,) = [n for n in wide.index if f" {row} [" in n]  # one series per row and experiment
    return wide.loc[name]


def test_trend_has_one_column_per_run_and_the_change(results):
    h = gather([results])
    wide = trend(h, "steady_epoch_ms")
    assert list(wide.columns) == [*h.runs["run_label"], "change"]
    rnn = _series(wide, "numpy:reference/cpu rnn")
    assert rnn["change"] == pytest.approx(0.5, rel=0.02)  # 5.0 ms -> 7.5 ms
    lstm = _series(wide, "numpy:reference/cpu lstm")
    assert pd.isna(lstm.iloc[2])  # absent from the third run
    text = render(h, "text")
    assert "+50" in text and "accuracy (median over seeds)" in text and "aa-third" in text


def test_normalized_history_divides_by_each_runs_calibration(results):
    h = gather([results])
    wide = trend(h, "steady_cal")
    rnn = _series(wide, "numpy:reference/cpu rnn")
    assert list(rnn.iloc[:3].round(2)) == [0.5, 0.5, 0.75]  # 5/10, 6/12, 7.5/10


def test_since_and_filters(results):
    h = gather([results], since=parse_since("2026-01-04"), models=["lstm"])
    assert list(h.runs["run_id"]) == ["mm-second"] and set(h.long["model"]) == {"lstm"}
    assert gather([results], backends=["torch"]).runs.empty
    with pytest.raises(UsageError):
        parse_since("last tuesday")
    assert parse_since("7d") < pd.Timestamp.now(tz="UTC")


def test_an_unreadable_run_is_skipped_and_named(results):
    broken = results / "broken"
    broken.mkdir()
    (broken / "run.json").write_text('{"format_version": 99}')
    result = invoke("history", str(results))
    assert result.returncode == 0
    assert "skipped" in result.stderr and "results format 99" in result.stderr
    assert "3 runs" in result.stdout


def test_cli_formats_and_plot(results, tmp_path):
    rows = list(csv.DictReader(io.StringIO(invoke("history", str(results), "--format", "csv").stdout)))
    assert len(rows) == 5 and {"run_id", "started", "steady_epoch_ms", "accuracy"} <= set(rows[0])
    doc = json.loads(invoke("history", str(results), "--format", "json", "--model", "rnn").stdout)
    assert len(doc["runs"]) == 3 and len(doc["rows"]) == 3
    md = invoke("history", str(results), "--format", "md", "--plot", str(tmp_path / "trend.png"))
    assert md.returncode == 0 and "| row |" in md.stdout
    assert (tmp_path / "trend.png").read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in invoke("history", str(results), "--format", "html").stdout


def test_runs_from_several_machines_suggest_normalizing(results):
    make_run(results, "other-box", [Row(model="rnn")], started="2026-01-10T10:00:00+0000",
             machine={"hostname": "box-z", "cpu": "Z"})  # fmt: skip
    assert "--normalize" in render(gather([results]), "text")


def test_a_missing_folder_is_exit_2(tmp_path):
    result = invoke("history", str(tmp_path / "nope"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_a_run_of_another_experiment_is_another_series(results):
    make_run(results, "other-units", [Row(model="rnn", units=128)], started="2026-01-09T10:00:00+0000")
    h = gather([results])
    wide = trend(h, "steady_epoch_ms")
    rows = [n for n in wide.index if " numpy:reference/cpu rnn [" in n]
    assert len(rows) == 2 and sum("units=128" in n for n in rows) == 1
    other = wide.loc[next(n for n in rows if "units=128" in n)]
    assert other.drop("change").notna().sum() == 1  # it never joins the 10-unit trend


@pytest.mark.parametrize(("values", "shifts"), [
    ([2.5, 2.5, 3.75], [(2, 1.5)]),                              # a step at the newest run
    ([5.0, 5.3, 4.8, 5.2, 4.9, 5.5, 5.1], []),                   # noise within 10%
    ([5.0, 5.0, 8.0, 5.0, 5.0], []),                             # one odd run inside a series moves nothing
    ([5.0, 5.1, 4.9, 7.5, 7.4, 7.6, 3.7, 3.8], [(3, 1.5), (6, 0.61)]),  # up, then down
    ([5.0, float("nan"), 5.1, 7.5, 1e308, 7.4], [(3, 1.48)]),    # gaps and broken values are skipped
    ([5.0, 6.0, 4.5, 5.8, 4.6, 6.1], []),                        # +-20% back and forth: noise, not a level
    ([], []), ([3.0], []),
])  # fmt: skip
def test_level_shifts_find_where_a_series_changed_level(values, shifts):
    found = level_shifts(values)
    assert [i for i, _ in found] == [i for i, _ in shifts]
    assert [round(r, 2) for _, r in found] == [r for _, r in shifts]


def test_level_changes_name_the_row_and_the_run(tmp_path):
    for i, slow in enumerate([1.0, 1.0, 1.0, 1.5, 1.5]):
        make_run(tmp_path, f"r{i}", [Row(model="rnn", steady_s=0.004 * slow), Row(model="lstm", steady_s=0.006)],
                 started=f"2026-01-0{i + 1}T10:00:00+0000", commit=f"{i}" * 40, noise=0.0)  # fmt: skip
    h = gather([tmp_path])
    changes = level_changes(h)
    assert len(changes) == 1
    (c,) = changes.to_dict("records")
    assert c["model"] == "rnn" and c["run_label"].endswith("3333333") and c["ratio"] == pytest.approx(1.5, rel=0.01)
    assert c["before"] == pytest.approx(4.0, rel=0.01) and c["after"] == pytest.approx(6.0, rel=0.01)


@pytest.fixture
def crowded(tmp_path):
    """Two tasks x two models x two experiments x five backend series over three runs: 40 rows."""
    series = [("numpy", "reference"), ("torch", "loop"), ("torch", "cudnn"), ("jax", "scan"), ("keras", "graph")]
    for i in range(3):
        rows = [Row(backend=b, implementation=im, model=m, task=t, units=u, steady_s=0.002 * (k + 1))
                for k, (b, im) in enumerate(series) for m in ("rnn", "lstm") for t in ("arithmetic", "adding")
                for u in (10, 32)]  # fmt: skip
        make_run(tmp_path, f"r{i}", rows, seeds=1, epochs=3, started=f"2026-01-0{i + 1}T10:00:00+0000",
                 commit=f"{i}" * 40)  # fmt: skip
    return tmp_path


def test_the_history_plot_has_a_panel_per_experiment_and_model_and_one_short_legend(crowded):
    pytest.importorskip("matplotlib")
    from seqbench.plots import history_figure
    from tests.test_plots import _overprinted

    h = gather([crowded])
    assert h.long["row"].nunique() == 40
    fig = history_figure(h.long, "steady_epoch_ms", "steady epoch (ms)", level_changes(h))
    fig.savefig(io.BytesIO(), format="png")  # lays the figure out
    titles = sorted(ax.get_title() for ax in fig.axes if ax.get_title())
    assert len(titles) == 8 and "arithmetic / rnn\nunits=32" in titles  # the experiments differ in units only
    (legend,) = fig.legends
    entries = [t.get_text() for t in legend.get_texts()]
    assert len(entries) == 5 and "numpy:reference/cpu" in entries and not any("[" in e for e in entries)
    legend_box = legend.get_window_extent()
    for ax in fig.axes:
        box = ax.get_window_extent()
        assert not box.overlaps(legend_box)  # the legend is beside the panels, never over them
        if ax.get_title():
            assert box.height > 120  # a time axis is a panel, not a strip
    assert _overprinted(fig) == []


def test_a_history_of_many_backends_caps_its_legend(tmp_path):
    pytest.importorskip("matplotlib")
    from seqbench.plots import HISTORY_LEGEND_CAP, history_figure

    rows = [Row(backend=f"b{k:02d}", implementation="x") for k in range(HISTORY_LEGEND_CAP + 3)]
    make_run(tmp_path, "r", rows, seeds=1, epochs=3)
    h = gather([tmp_path])
    (legend,) = history_figure(h.long, "steady_epoch_ms", "ms").legends
    entries = [t.get_text() for t in legend.get_texts()]
    assert len(entries) == HISTORY_LEGEND_CAP + 1 and entries[-1].startswith("and 3 more")


def test_history_filters_are_spelled_as_run_spells_them_and_the_old_names_still_work():
    from seqbench.cli import build_parser

    parser = build_parser()
    plural = parser.parse_args(["history", "--backends", "numpy,torch", "--models", "rnn", "--tasks", "adding"])
    singular = parser.parse_args(["history", "--backend", "numpy,torch", "--model", "rnn", "--task", "adding"])
    assert (plural.backend, plural.model, plural.task) == (("numpy", "torch"), ("rnn",), ("adding",))
    assert (singular.backend, singular.model, singular.task) == (plural.backend, plural.model, plural.task)
    from seqbench.keys import CellKey, RowKey

    assert CellKey is RowKey  # the old name of the row key keeps working
