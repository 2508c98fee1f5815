"""Readers that scale (issue 18): tables read a column at a time, summaries as group reductions, history in
one pass.  Each test checks that the fast path gives what the plain one gives, on small runs."""

from __future__ import annotations

import io
import json
import math
import os
import stat
from typing import Any

import pandas as pd
import pytest

from seqbench import loader
from seqbench.history import gather, render
from seqbench.keys import COMPLETED
from seqbench.loader import LOADERS, load_run, read_run
from seqbench.results import CELL_COLUMNS, EPOCH_COLUMNS, CellRecord, EpochRecord
from seqbench.views import KEYS, SUMMARY_COLUMNS, cell_view, status_text, summary
from tests.runfactory import Row, invoke, make_run


def _rewrite(path, edit) -> None:
    """Rewrite each row of a JSON Lines file through ``edit(row) -> text of the line``."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(edit(i, row) + "\n" for i, row in enumerate(rows)))


@pytest.fixture
def runs(tmp_path):
    """Runs that take every branch of the column reader: failures, nulls, old rows, numbers the row check
    converts, a cut last line, unknown columns."""
    out = {}
    out["plain"] = make_run(tmp_path, "plain", [Row(model="rnn", failed_seeds=(1,)), Row(model="lstm", gpu_s=0.002,
                                                                                          disturbed_seeds=(0,))])
    out["partial"] = make_run(tmp_path, "partial", [Row(model="gru")], status="running", seeds=4)
    with open(out["partial"] / "cells.jsonl", "a") as f:
        f.write('{"task": "arith')  # a row cut short: left out with a note
    out["odd"] = make_run(tmp_path, "odd", [Row(model="rnn"), Row(model="lstm", failed_seeds=(0, 2))])

    def odd(i: int, row: dict[str, Any]) -> str:
        if i == 0:  # a row written before the optional columns existed
            for name in ("machine", "task_params", "dtype", "attempt", "cold", "env", "metrics", "units"):
                row.pop(name, None)
        if i == 1:  # numbers another tool wrote: an integer as 3.0, an integer metric, an unknown column
            row.update(epochs_run=10.0, metrics={"accuracy": 1}, primary_metric="accuracy", extra={"x": [1]})
        if i == 2:
            return json.dumps(row).replace('"final_loss": 10.0', '"final_loss": NaN')
        return json.dumps(row)

    _rewrite(out["odd"] / "cells.jsonl", odd)
    return out


def _row_frames(path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The frames as load_run built them before the column reader: from the checked rows of read_run."""
    data = read_run(path)
    frames = []
    for rows, columns, record in ((data.cells, CELL_COLUMNS, CellRecord), (data.epochs, EPOCH_COLUMNS, EpochRecord)):
        frame = pd.DataFrame(rows, columns=columns)
        for column in loader._float_columns(record):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        frames.append(frame)
    return frames[0], frames[1], data.notes


@pytest.mark.parametrize("chunk", [2, loader.CHUNK_ROWS])
def test_load_run_reads_columns_as_the_row_reader_reads_rows(runs, monkeypatch, chunk):
    monkeypatch.setattr(loader, "CHUNK_ROWS", chunk)  # 2: batches that the column check takes and refuses
    whole = {path: list(loader._lines(path / "cells.jsonl")) for path in runs.values()}
    monkeypatch.setattr(loader, "BLOCK_BYTES", 7 if chunk == 2 else loader.BLOCK_BYTES)  # lines across blocks
    assert {path: list(loader._lines(path / "cells.jsonl")) for path in runs.values()} == whole
    for path in runs.values():
        cells, epochs, notes = _row_frames(path)
        run = load_run(path)
        pd.testing.assert_frame_equal(run.attempts, cells)
        pd.testing.assert_frame_equal(run.attempt_epochs, epochs)
        assert run.notes == notes
    assert "cut short" in " ".join(load_run(runs["partial"]).notes)


def test_a_bad_value_is_the_same_error_from_either_reader(runs, monkeypatch):
    monkeypatch.setattr(loader, "CHUNK_ROWS", 3)
    _rewrite(runs["plain"] / "cells.jsonl", lambda i, row: json.dumps(row | ({"seed": "x"} if i == 4 else {})))
    with pytest.raises(loader.ResultsError) as by_row:
        read_run(runs["plain"])
    with pytest.raises(loader.ResultsError) as by_column:
        load_run(runs["plain"])
    assert str(by_column.value) == str(by_row.value)
    assert "line 5: seed must be an integer" in str(by_column.value)


def test_every_field_of_the_tables_is_checked_a_column_at_a_time():
    """A field type the column check does not know would send every row to the row-by-row check."""
    for table in (LOADERS[1].cells, LOADERS[1].epochs):
        assert [c.field.name for c in table.columns if c.kind == "other"] == []


def _summary_by_group(cells: pd.DataFrame) -> pd.DataFrame:
    """The summary as it was computed before, one pandas group at a time: the oracle for the reductions."""
    from seqbench.views import _numeric, primary_scores, vs_fastest

    def med(v: pd.Series) -> float:
        v = v.dropna()
        return float(v.median()) if len(v) else math.nan

    def agg(v: pd.Series, how: str) -> float:
        v = v.dropna()
        return float(getattr(v, how)()) if len(v) else math.nan

    cells = _numeric(cells, ["params", "accuracy", "final_loss", "first_epoch_s", "steady_epoch_s", "cpu_s", "gpu_s",
                             "samples_per_s", "peak_rss_mb", "baseline", "gflops_per_s", "peak_share"])
    cells["_metric"], cells["_score"] = primary_scores(cells)
    for column in ("baseline", "gflops_per_s", "peak_share"):
        if column not in cells:
            cells[column] = math.nan
    rows = []
    for key, group in cells.groupby(KEYS, sort=True, dropna=False):
        ok = group[group["status"].isin(COMPLETED)]
        cold = ok[ok["cold"].ne(False)]
        steady = ok["steady_epoch_s"].dropna()
        samples = (ok["samples_per_s"] * ok["steady_epoch_s"]).dropna()
        rows.append(dict(zip(KEYS, key, strict=True)) | dict(
            seeds=len(group), ok=len(ok), failed=len(group) - len(ok), status=status_text(group["status"]),
            params=agg(ok["params"] if not ok.empty else group["params"], "max"), accuracy=med(ok["accuracy"]),
            accuracy_min=agg(ok["accuracy"], "min"), accuracy_max=agg(ok["accuracy"], "max"),
            final_loss=med(ok["final_loss"]), metric=",".join(sorted({str(m) for m in group["_metric"]})),
            score=med(ok["_score"]), score_min=agg(ok["_score"], "min"), score_max=agg(ok["_score"], "max"),
            baseline=med(ok["baseline"]), gflops_per_s=med(ok["gflops_per_s"]), peak_share=med(ok["peak_share"]),
            first_epoch_ms=med(cold["first_epoch_s"]) * 1e3, first_epoch_min_ms=agg(cold["first_epoch_s"], "min") * 1e3,
            first_epoch_max_ms=agg(cold["first_epoch_s"], "max") * 1e3, steady_epoch_ms=med(steady) * 1e3,
            steady_min_ms=agg(steady, "min") * 1e3, steady_max_ms=agg(steady, "max") * 1e3, processes=len(steady),
            disturbed=int(ok["disturbed"].sum()), cpu_ms=med(ok["cpu_s"]) * 1e3, gpu_ms=med(ok["gpu_s"]) * 1e3,
            samples_per_s=med(samples) / med(steady) if len(samples) else math.nan,
            peak_rss_mb=agg(ok["peak_rss_mb"], "max"), steady_cal=med(ok["steady_epoch_s"] / ok["calibration_s"]),
            implementation_path=",".join(sorted({str(p) for p in ok["implementation_path"].dropna()})),
            machine=",".join(sorted({str(m) for m in group["machine"].dropna()})),
            latency_first_ms=med(cold["latency_first_s"]) * 1e3, latency_p50_ms=med(ok["latency_p50_s"]) * 1e3,
            latency_min_ms=agg(ok["latency_p50_s"], "min") * 1e3, latency_max_ms=agg(ok["latency_p50_s"], "max") * 1e3,
            latency_p90_ms=med(ok["latency_p90_s"]) * 1e3, latency_p99_ms=med(ok["latency_p99_s"]) * 1e3,
            latency_cal=med(ok["latency_p50_s"] / ok["calibration_s"]), throughput_per_s=med(ok["throughput_per_s"]),
            inference_only=bool(len(ok)) and bool(ok["inference_only"].eq(True).all()),
        ))  # fmt: skip
    table = pd.DataFrame(rows, columns=KEYS + SUMMARY_COLUMNS)
    table["vs_fastest"] = vs_fastest(table)
    return table


def test_the_summary_is_what_a_loop_over_its_groups_gives(runs, tmp_path):
    noisy = make_run(tmp_path, "noisy", [Row(model="rnn", steady_s=0.004), Row(backend="torch", implementation="loop",
                     model="rnn", steady_s=0.002, failed_seeds=(2,)), Row(model="lstm", disturbed_seeds=(0, 1))],
                     seeds=6, process_noise=0.2)  # fmt: skip
    for path in [*runs.values(), noisy]:
        cells = cell_view(load_run(path))
        pd.testing.assert_frame_equal(summary(cells), _summary_by_group(cells))


@pytest.fixture
def history(tmp_path):
    for i in range(6):
        rows = [Row(model="rnn", steady_s=0.005 + i / 1000, failed_seeds=(i % 3,)),
                Row(backend="torch", implementation="loop", model="rnn", units=10 + 10 * (i % 2))]
        make_run(tmp_path / f"ci{i % 2}", f"run{i}", rows,
                 started=f"2026-01-0{i + 1}T10:00:00+0000", commit=str(i) * 40, seed=i)  # fmt: skip
    return tmp_path


def test_history_in_one_pass_is_each_runs_own_summary(history):
    h = gather([history])
    assert len(h.runs) == 6
    for path in h.runs["path"]:
        alone = summary(cell_view(load_run(path))).drop(columns=["implementation_path"])
        mine = h.long[h.long["run_id"] == os.path.basename(path)][alone.columns]
        pd.testing.assert_frame_equal(mine.sort_values(KEYS).reset_index(drop=True),
                                      alone.sort_values(KEYS).reset_index(drop=True))  # fmt: skip


def test_history_shows_the_files_as_they_are_now(history):
    """No cache to go stale: a table changed after a history was read shows in the next one."""
    before = gather([history])
    cells = history / "ci0" / "run0" / "cells.jsonl"
    _rewrite(cells, lambda i, row: json.dumps(row | {"steady_epoch_s": 1.0}))
    after = gather([history])
    run0 = before.long["run_id"] == "run0"
    assert not after.long[run0]["steady_epoch_ms"].equals(before.long[run0]["steady_epoch_ms"])
    assert set(after.long[run0 & after.long["ok"].gt(0)]["steady_epoch_ms"]) == {1000.0}
    pd.testing.assert_frame_equal(after.long[~run0], before.long[~run0])


def _tree(root) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_a_read_only_results_folder_is_read_and_left_as_it_was(history):
    files = _tree(history)
    modes = {p: os.stat(p).st_mode for p in files}
    for path in sorted(files, reverse=True):
        os.chmod(path, modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    os.chmod(history, os.stat(history).st_mode & ~stat.S_IWUSR)
    try:
        assert invoke("history", str(history)).returncode == 0
        assert invoke("dashboard", str(history), "-o", "-").returncode == 0
        assert invoke("report", str(history / "ci0" / "run0")).returncode == 0
        assert _tree(history) == files  # the readers wrote nothing (root may write anyway: this is the check)
    finally:
        os.chmod(history, os.stat(history).st_mode | stat.S_IWUSR)
        for path, mode in modes.items():
            os.chmod(path, mode)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_history_counts_the_runs_read_on_a_terminal_only(history, monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    h = gather([history])
    shown = __import__("sys").stderr.getvalue()
    assert "reading runs: 0/6" in shown and shown.endswith("\r")  # the line is erased at the end
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert render(gather([history]), "csv") == render(h, "csv")
    assert __import__("sys").stderr.getvalue() == ""
    result = invoke("history", str(history))  # the CLI's stderr here is no terminal
    assert result.returncode == 0 and "reading runs" not in result.stderr
