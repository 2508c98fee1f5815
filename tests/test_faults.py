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
