"""Faults that must end in a clean line, never a traceback or an "internal error" (issue 18).

Each test reproduces one way a run, a plugin, the disk or a results file went wrong, and checks that
seqbench says so in one line with exit 0 or 2 and loses nothing.
"""

from __future__ import annotations

import json

import pytest

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
