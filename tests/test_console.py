"""What ``seqbench run`` shows while it works, and the terminal tables: fitted to the width, fastest named."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

import seqbench
from seqbench.console import ConsoleProgress, RunClock, clock, status_text
from seqbench.report import render
from tests.runfactory import Row, make_run


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _cell(seed: int = 0, **more) -> SimpleNamespace:
    return SimpleNamespace(epochs=10, backend="numpy", implementation="reference", device="cpu", model="rnn",
                           seed=seed, attempt=1, task_params={}, **more)


def _record(seed: int = 0) -> SimpleNamespace:
    return SimpleNamespace(backend="numpy", implementation="reference", device="cpu", model="rnn", seed=seed,
                           attempt=1, status="ok", steady_epoch_s=0.0025, primary_metric="accuracy", metrics={},
                           accuracy=0.8, baseline=None, final_loss=0.5, disturbed=False, error=None, epochs=10)


def test_the_live_line_counts_cells_and_epochs_and_gives_elapsed_time_and_an_eta():
    c = RunClock(now=0.0)
    c.first_cell, c.epochs_done, c.epochs_total = 10.0, 5, 20  # 5 epochs in 10 s: 15 left take 30 s
    text = status_text(2, 4, 3, 10, "torch:loop/cpu lstm seed=1", 0.12345, c, now=20.0)
    # the clock first: a narrow terminal cuts the line's end, never the ETA
    assert text == "0:20 elapsed, ETA 0:30  cell 2/4  epoch 3/10  torch:loop/cpu lstm seed=1  loss 0.1235"
    assert clock(3725) == "1:02:05"
    assert "ETA" not in status_text(1, 4, None, 10, "calibrating...", None, RunClock(now=0.0), now=1.0)
    assert status_text(0, 0, None, None, "calibrating...", None, RunClock(now=0.0), now=1.0) == \
        "0:01 elapsed  calibrating..."


def test_not_a_terminal_gives_plain_lines_and_no_live_line():
    out = io.StringIO()
    with ConsoleProgress(stream=out) as progress:
        progress.note("calibrating...")
        progress.cell_started(_cell(), 0, 2)
        progress.epoch(SimpleNamespace(epoch=1, loss=1.0))
        progress.cell_finished(_record(), 1, 2)
    lines = out.getvalue().splitlines()
    assert lines == ["note: calibrating...",
                     "[1/2] numpy:reference/cpu rnn seed=0  ok  steady 2.5 ms/epoch  acc 0.80  loss 0.5"]
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def _visible_after_last_erase(text: str) -> str:
    """What stays on the screen's current line: the text after the last carriage return or line erase."""
    tail = re.split(r"\r|\x1b\[2K", text)[-1]
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", tail)


def test_the_live_line_says_calibrating_and_is_erased_after_ctrl_c():
    out = _Tty()
    progress = ConsoleProgress(stream=out)
    assert progress.live
    progress.note("calibrating...")
    assert "calibrating..." in str(progress._renderable())
    with pytest.raises(KeyboardInterrupt), progress:
        progress.cell_started(_cell(), 0, 3)
        progress.epoch(SimpleNamespace(epoch=4, loss=0.25))
        assert "cell 1/3  epoch 4/10" in str(progress._renderable())
        progress._rich.refresh()
        raise KeyboardInterrupt
    assert "cell 1/3" in out.getvalue()  # it was shown...
    assert _visible_after_last_erase(out.getvalue()).strip() == ""  # ...and nothing of it is left
    progress.close()  # twice is fine


def test_a_finished_cell_prints_above_the_live_line():
    out = _Tty()
    with ConsoleProgress(stream=out) as progress:
        progress.cell_started(_cell(), 0, 1)
        progress.cell_finished(_record(), 1, 1)
    assert "[1/1] numpy:reference/cpu rnn seed=0  ok" in out.getvalue()


def test_quiet_prints_nothing():
    out = _Tty()
    with ConsoleProgress(quiet=True, stream=out) as progress:
        progress.note("calibrating...")
        progress.cell_finished(_record(), 1, 1)
    assert out.getvalue() == ""


@pytest.fixture
def race(tmp_path):
    rows = [Row(backend="numpy", implementation="reference", model="lstm", steady_s=0.0025),
            Row(backend="torch", implementation="loop", model="lstm", steady_s=0.0115),
            Row(backend="keras", implementation="graph", model="lstm", steady_s=0.005),
            Row(backend="numpy", implementation="reference", model="rnn", steady_s=0.002)]
    return seqbench.load_run(make_run(tmp_path, "race", rows, noise=0.0))


def test_the_summary_says_how_much_faster_the_fastest_backend_ran(race):
    from seqbench.views import cell_view, summary

    table = summary(cell_view(race)).set_index(["backend", "model"])
    assert table.loc[("torch", "lstm"), "vs_fastest"] == pytest.approx(4.6)
    assert table.loc[("numpy", "lstm"), "vs_fastest"] == pytest.approx(1.0)
    text = render(race, "text")
    assert ("numpy:reference ran 2.00x (2.00-2.00) faster than keras:graph and 4.60x (4.60-4.60) faster than "
            "torch:loop for lstm") in text
    assert "for rnn" not in text  # one row: no race
    header = next(line for line in text.splitlines() if line.startswith("backend"))
    assert "x vs fastest" in header
    assert re.search(r"torch\s+loop\s+lstm .* 4\.60x", text)


@pytest.mark.parametrize("width", [80, 100, 160])
def test_every_line_fits_the_terminal_and_the_left_out_columns_are_named(race, width):
    text = render(race, "text", width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    header = next(line for line in text.splitlines() if line.startswith("backend"))
    for column in ("model", "accuracy", "steady ms", "x vs fastest"):  # what is never left out
        assert column in header
    if width == 80:
        assert "left out to fit 80 columns: path, peak MB" in text.replace("\n  ", " ")
        assert "path" not in header


def test_without_a_width_every_column_stays(race):
    text = render(race, "text")
    header = next(line for line in text.splitlines() if line.startswith("backend"))
    assert "path" in header and "left out" not in text


def test_report_fits_a_terminal_and_keeps_everything_in_a_file(tmp_path, monkeypatch):
    import sys

    from seqbench.cli_reports import terminal_width
    from tests.runfactory import invoke

    path = make_run(tmp_path, "r", [Row(), Row(backend="torch", implementation="loop")])
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr("seqbench.cli_reports.sys.stdout", _Tty())
    assert terminal_width() == 80
    monkeypatch.undo()
    monkeypatch.setenv("COLUMNS", "80")  # exported by some library, but the output is a file or a pipe
    assert terminal_width() is None
    monkeypatch.setattr("seqbench.cli_reports.terminal_width", lambda: 80)
    narrow = invoke("report", str(path))
    assert narrow.returncode == 0 and max(map(len, narrow.stdout.splitlines())) <= 80
    monkeypatch.undo()
    wide = invoke("report", str(path))
    assert "path" in wide.stdout and "left out" not in wide.stdout
    assert sys.stdout is not None


def test_the_race_sentence_says_how_sure_it_is(tmp_path):
    """A ratio carries its 95% interval over processes; one whose interval reaches 1 is "within the noise"."""
    from seqbench.report import race_lines

    rows = [Row(backend="jax", implementation="epoch", model="lstm", steady_s=0.00166),
            Row(backend="keras-jax", implementation="epoch", model="lstm", steady_s=0.00170),
            Row(backend="torch", implementation="loop", model="lstm", steady_s=0.004)]
    run = seqbench.load_run(make_run(tmp_path, "close", rows, seeds=4, noise=0.2))
    text = render(run, "text")
    assert re.search(r"jax:epoch ran as fast as keras-jax:epoch \(1\.\d\dx \(0\.\d\d-\d\.\d\d\): within the noise\) "
                     r"and 2\.\d\dx \(\d\.\d\d-\d\.\d\d\) faster than torch:loop for lstm", text), text
    from seqbench.views import cell_view, summary

    assert "too few processes" in race_lines(summary(cell_view(run)))[0]  # no per-process times given


def test_at_80_columns_a_cell_line_breaks_between_fields_never_inside_a_word():
    from seqbench.console import cell_line, fit

    record = _record()
    record.clean_epochs, record.epochs_run, record.wait_share = 7, 10, 0.02
    record.backend, record.implementation = "keras-torch", "step"
    record.task_params, record.units = {"steps": 50}, 64
    one = cell_line(record, 7, 12, axes=("task.steps", "units"))
    assert "\n" not in one and one.startswith("[7/12] keras-torch:step/cpu rnn steps=50 units=64 seed=0  ok")
    fitted = cell_line(record, 7, 12, width=80, axes=("task.steps", "units"))
    lines = fitted.splitlines()
    assert len(one) > 80 and len(lines) > 1 and all(len(line) <= 80 for line in lines)
    assert lines[1].startswith("    ") and " ".join(fitted.split()) == " ".join(one.split())  # same words, all whole
    long_note = fit(["note: " + "word " * 40], 80).splitlines()
    assert all(len(line) <= 80 for line in long_note) and len(long_note) == 3


def _cell_with_steps() -> SimpleNamespace:
    cell = _cell(1)
    cell.task_params = {"steps": 50}
    return cell


def test_a_live_terminal_fits_notes_and_cells_to_its_width_and_names_the_grid_point():
    out = _Tty()
    with ConsoleProgress(stream=out, axes=("task.steps",)) as progress:
        progress._console.width = 60  # a narrow terminal
        progress.cell_started(_cell_with_steps(), 0, 2)
        assert progress._what == "numpy:reference/cpu rnn steps=50 seed=1"
        progress.note("numpy:reference/cpu rnn seed=1: waited for a CPU 40% of the time: measuring it again at the end")
        record = _record(1)
        record.task_params = {"steps": 50}
        progress.cell_finished(record, 1, 2)
    printed = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in out.getvalue().replace("\r", "\n").splitlines()]
    kept = [line.rstrip() for line in printed if line.strip() and "elapsed" not in line]
    assert any(line.startswith("[1/2] numpy:reference/cpu rnn steps=50 seed=1") for line in kept), kept
    assert all(len(line) <= 60 for line in kept), kept
