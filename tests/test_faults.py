"""Faults that must end in a clean line, never a traceback or an "internal error" (issue 18).

Each test reproduces one way a run, a plugin, the disk or a results file went wrong, and checks that
seqbench says so in one line with exit 0 or 2 and loses nothing.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys

import pytest

from seqbench.cli import main
from seqbench.results import MAX_ERROR_BYTES, bounded_error, error_reason
from tests.conftest import run_dir_of
from tests.conftest import seqbench as cli
from tests.runfactory import Row, invoke, make_run


def _one_clean_line(stderr: str) -> None:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr


# ------------------------------------------------------------------ a time of exactly zero


@pytest.mark.parametrize("zero", [0.0, -0.0])
def test_a_zero_time_is_missing_in_every_reader(tmp_path, zero):
    path = make_run(tmp_path, "r", [Row(steady_s=zero, first_s=zero), Row(backend="torch", implementation="loop")])
    cells = [json.loads(line) for line in (path / "cells.jsonl").read_text().splitlines()]
    assert {c["steady_epoch_s"] for c in cells if c["backend"] == "numpy"} == {zero}
    commands = [["report", str(path), "--format", f] for f in ("text", "md", "csv", "json", "html")]
    commands += [["history", str(tmp_path), "--format", f] for f in ("text", "md", "csv", "json")]
    commands += [["export", str(path), "--format", f] for f in ("pytest-benchmark", "github-action-benchmark")]
    commands += [["dashboard", str(tmp_path), "-o", str(tmp_path / "site" / "index.html")]]
    for args in commands:
        result = invoke(*args)
        assert result.returncode == 0, (args, result.stderr)
        _one_clean_line(result.stderr)
    report = json.loads(invoke("report", str(path), "--format", "json").stdout)
    numpy_row = next(r for r in report["summary"] if r["backend"] == "numpy")
    assert numpy_row["steady_epoch_ms"] is None and numpy_row["samples_per_s"] is None
    assert next(r for r in report["summary"] if r["backend"] == "torch")["steady_epoch_ms"] > 0


# ------------------------------------------------------------------ output that cannot be written


class _FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("command", [["report", "RUN"], ["report", "RUN", "--format", "csv"], ["list"],
                                     ["history", "ROOT"], ["compare", "RUN", "RUN"]])  # fmt: skip
def test_a_full_disk_behind_stdout_is_exit_2_naming_it(tmp_path, monkeypatch, capsys, command):
    run = make_run(tmp_path, "r", [Row()])
    argv = [str(run) if a == "RUN" else str(tmp_path) if a == "ROOT" else a for a in command]
    monkeypatch.setattr(sys, "stdout", _FullDisk())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "seqbench: error: cannot write standard output: No space left on device\n", err


def test_report_into_dev_full_in_a_real_process(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    run = make_run(tmp_path, "r", [Row()])
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "seqbench", "report", str(run)], stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr == "seqbench: error: cannot write standard output: No space left on device\n"


def test_plots_and_outputs_create_missing_folders_and_refuse_a_file_in_the_way(tmp_path):
    pytest.importorskip("matplotlib")
    run = make_run(tmp_path / "results", "r", [Row()])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for args, path in (
        (["history", str(tmp_path / "results"), "--plot", str(blocker / "x.png")], blocker),
        (["report", str(run), "--plots", str(blocker / "sub")], blocker / "sub"),
        (["report", str(run), "--plots", str(blocker)], blocker),
        (["export", str(run), "--format", "pytest-benchmark", "-o", str(blocker / "x.json")], blocker),
    ):
        result = invoke(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(f"seqbench: error: cannot write {path}") and result.stderr.count("\n") == 1
    made = tmp_path / "new" / "deeper"
    for args in (
        ["history", str(tmp_path / "results"), "--plot", str(made / "trend.png")],
        ["report", str(run), "--plots", str(made / "plots")],
        ["export", str(run), "--format", "pytest-benchmark", "-o", str(made / "bench.json")],
        ["compare", str(run), str(run), "-o", str(made / "compare.txt")],
    ):
        result = invoke(*args)
        assert result.returncode == 0, (args, result.stderr)
    assert {p.name for p in made.iterdir()} == {"trend.png", "plots", "bench.json", "compare.txt"}


# ------------------------------------------------------------------ workers that die loudly


def _cells(result) -> list[dict]:
    return [json.loads(line) for line in (run_dir_of(result) / "cells.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_worker_that_writes_megabytes_and_dies_leaves_a_bounded_error_of_its_own(tmp_path, plugin_env):
    result = cli("run", "--backends", "loud", "--models", "lstm", "--epochs", "2", "--seeds", "2", "--retries", "0",
                 "--no-calibration", "--results-dir", str(tmp_path), env=plugin_env, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    _one_clean_line(result.stderr)
    assert len(result.stderr) + len(result.stdout) < 20_000  # the console carries no megabytes either
    cells = _cells(result)
    assert [c["status"] for c in cells] == ["error", "error"]
    for cell in cells:
        error = cell["error"]
        assert len(error.encode()) <= MAX_ERROR_BYTES
        assert error.startswith("worker exited with code 5\n") and error.endswith("last words of the loud worker")
        assert error.count("says:") <= 1  # never the other worker's output
    assert "[1/2] loud:broken/cpu lstm seed=0  error: worker exited with code 5" in result.stderr
    [log] = (run_dir_of(result) / "logs").iterdir()
    text = log.read_text()
    assert text.count("last words of the loud worker") == 2 and len(text) > 2 * (8 << 20)  # kept whole
    assert "==== loud:broken/cpu lstm seed=1 ====" in text


@pytest.mark.slow
def test_a_worker_killed_by_sigkill_says_so_first_everywhere(tmp_path, plugin_env):
    result = cli("run", "--backends", "killed", "--models", "lstm", "--epochs", "2", "--seeds", "1", "--retries", "0",
                 "--no-calibration", "--results-dir", str(tmp_path), env=plugin_env, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr
    [cell] = _cells(result)
    assert cell["error"].startswith("worker killed by signal 9 (SIGKILL)\n")
    assert "error: np.exp(out, out=out)" in cell["error"]  # its last words follow
    assert "seed=0  error: worker killed by signal 9 (SIGKILL)" in result.stderr  # the console line
    report = invoke("report", str(run_dir_of(result)))
    assert "seed=0: error: worker killed by signal 9 (SIGKILL)" in report.stdout  # the report's failures


def test_an_error_is_bounded_to_its_first_line_and_its_end():
    error = "worker exited with code 5\n" + "x" * (16 << 20) + "\nthe last line"
    bounded = bounded_error(error)
    assert len(bounded.encode()) <= MAX_ERROR_BYTES
    assert bounded.startswith("worker exited with code 5\n[... ") and bounded.endswith("x\nthe last line")
    assert bounded_error("short\ntext") == "short\ntext"
    assert len(bounded_error("é" * 10_000).encode()) <= MAX_ERROR_BYTES  # never a character cut in two


def test_the_reason_of_an_error_is_a_tracebacks_last_line_or_else_its_first():
    assert error_reason("Traceback (most recent call last):\n  File ...\nValueError: boom\n") == "ValueError: boom"
    assert error_reason("worker killed by signal 9 (SIGKILL)\nerror: np.exp(out, out=out)") == \
        "worker killed by signal 9 (SIGKILL)"  # fmt: skip
    assert len(error_reason("y" * 100_000)) <= 300 and error_reason(None) == ""
