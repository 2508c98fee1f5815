"""Shards, merging them, and the calibration workload."""

from __future__ import annotations

import json
import time

import pytest

import seqbench
from seqbench.calibration import measure, run_calibration
from seqbench.errors import ResultsError, UsageError
from seqbench.machine import machine_id
from seqbench.merge import merge_runs
from seqbench.plugins import load_registry
from seqbench.report import render
from seqbench.runner import RunConfig, plan, select_shard
from seqbench.views import cell_view, summary
from tests.conftest import run_dir_of
from tests.conftest import seqbench as cli
from tests.runfactory import MACHINE, Row, invoke, make_run

# ------------------------------------------------------------------ shards


ROWS = [(b, i, m) for b in ("keras", "numpy", "torch", "zoo") for i in ("", "fast") for m in ("lstm", "rnn")]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 16, 17])
def test_shards_partition_the_matrix(count):
    parts = [select_shard(ROWS, (i, count)) for i in range(1, count + 1)]
    assert set().union(*parts) == set(ROWS)
    assert sum(len(p) for p in parts) == len(ROWS)  # disjoint
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1  # balanced


def test_shards_do_not_depend_on_the_order_rows_are_listed_in():
    assert select_shard(ROWS, (2, 3)) == select_shard(list(reversed(ROWS)), (2, 3))
    assert select_shard(ROWS, None) == set(ROWS)


def test_plan_runs_only_its_shard_and_keeps_every_seed_of_a_row_together(monkeypatch):
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    registry = load_registry()
    cells = {}
    for index in (1, 2):
        cells[index] = plan(RunConfig(backends=("numpy",), seeds=3, shard=(index, 2)), registry).cells
    assert {c.model for c in cells[1]} == {"lstm"} and {c.model for c in cells[2]} == {"rnn"}
    assert sorted(c.seed for c in cells[1]) == [0, 1, 2]
    with pytest.raises(UsageError, match="nothing to run in shard 3/3"):
        plan(RunConfig(backends=("numpy",), shard=(3, 3)), registry)
    with pytest.raises(UsageError, match="--shard"):
        plan(RunConfig(backends=("numpy",), shard=(3, 2)), registry)


def test_bad_shard_argument_is_exit_2(tmp_path):
    for bad in ("0/2", "3/2", "x/2", "2"):
        result = invoke("run", "--backends", "numpy", "--shard", bad, "--results-dir", str(tmp_path))
        assert result.returncode == 2 and "I/N with 1 <= I <= N" in result.stderr, bad
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr  # argparse adds its usage line
    assert not list(tmp_path.iterdir())  # refused before any run directory


# ------------------------------------------------------------------ merging


def _shards(tmp_path, second_machine=None, count=2):
    a = make_run(tmp_path / "s1", "shard-1", [Row(model="lstm", params=491)], shard=(1, count))
    b = make_run(tmp_path / "s2", "shard-2", [Row(model="rnn")], shard=(2, count),
                 machine=second_machine or MACHINE | {"hostname": "box-b"},
                 calibration_s=0.02, started="2026-01-01T10:05:00+0000")  # fmt: skip
    return a, b


def test_merge_combines_shards_and_cells_keep_their_machine(tmp_path):
    a, b = _shards(tmp_path)
    out = tmp_path / "merged"
    result = merge_runs([a, b], out)
    assert result.status == "complete" and result.cells == 6 and result.warnings == []
    run = seqbench.load_run(out)
    ids = {"lstm": machine_id(MACHINE), "rnn": machine_id(MACHINE | {"hostname": "box-b"})}
    for model, mid in ids.items():
        assert set(run.cells[run.cells["model"] == model]["machine"]) == {mid}
    assert set(run.meta["machines"]) == set(ids.values())
    assert run.meta["machines"][ids["rnn"]]["calibration"]["score_s"] == 0.02
    assert [m["run_id"] for m in run.meta["merged_from"]] == ["shard-1", "shard-2"]
    assert len(run.epochs) == 60 and run.meta["config"]["shard"] is None
    header = next(line for line in render(run, "text").splitlines() if line.startswith("backend"))
    assert header.split()[-1] == "machine"  # rows from several machines say which
    table = summary(cell_view(run)).set_index("model")
    # each row in units of its own machine's calibration: 5 ms / 10 ms and 5 ms / 20 ms
    assert table.loc["lstm", "steady_cal"] == pytest.approx(0.5, rel=0.02)
    assert table.loc["rnn", "steady_cal"] == pytest.approx(0.25, rel=0.02)


def test_merge_with_a_missing_shard_is_partial_and_counts_right(tmp_path):
    a, _ = _shards(tmp_path, count=3)
    result = merge_runs([a], tmp_path / "m")
    assert result.status == "partial" and "2 shard(s) missing (2/3, 3/3)" in result.warnings[0]
    text = render(seqbench.load_run(tmp_path / "m"), "text")
    # the missing shards' cells were never planned here: no "3 of 3 cells"
    assert "PARTIAL" in text and "3 cells" in text and " of 3 cells" not in text
    said = invoke("merge", str(a), "-o", str(tmp_path / "m2"))
    assert said.returncode == 0 and "merged 1 of 3 shards: 3 cells, status partial" in said.stderr


def test_merge_of_a_shard_with_an_absurd_count_is_quick(tmp_path):
    a, _ = _shards(tmp_path, count=2)
    meta = json.loads((a / "run.json").read_text())
    meta["shard"] = {"index": 1, "count": 2**62}
    (a / "run.json").write_text(json.dumps(meta))
    result = merge_runs([a], tmp_path / "m")
    assert result.status == "partial" and ", ...)" in result.warnings[0]


def test_merge_copies_only_regular_files_from_logs(tmp_path):
    a, b = _shards(tmp_path)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.pem").write_text("SECRET")
    (a / "logs" / "worker.log").write_text("real log")
    (a / "logs" / "etc").symlink_to(secret)  # a folder link
    (a / "logs" / "key.log").symlink_to(secret / "key.pem")  # a file link
    (a / "logs" / "sub").mkdir()
    (a / "logs" / "sub" / "inner.log").write_text("inner")
    result = merge_runs([a, b], tmp_path / "m")
    copied = tmp_path / "m" / "logs" / a.name
    assert (copied / "worker.log").read_text() == "real log" and (copied / "sub" / "inner.log").is_file()
    assert not (copied / "etc").exists() and not (copied / "key.log").exists()
    assert "SECRET" not in "".join(p.read_text() for p in (tmp_path / "m").rglob("*") if p.is_file())
    assert sum("not a regular file" in w for w in result.warnings) == 2


def test_merge_refuses_a_logs_folder_that_is_a_link(tmp_path):
    a, b = _shards(tmp_path)
    (a / "logs").rmdir()
    (a / "logs").symlink_to(tmp_path)
    result = merge_runs([a, b], tmp_path / "m")
    assert not (tmp_path / "m" / "logs" / a.name).exists()
    assert any("not a regular file" in w for w in result.warnings)


def test_merge_refuses_overlapping_cells_different_experiments_and_existing_output(tmp_path):
    a, b = _shards(tmp_path)
    dup = make_run(tmp_path / "dup", "again", [Row(model="rnn")])
    with pytest.raises(ResultsError, match="is in both"):
        merge_runs([b, dup], tmp_path / "m1")
    other = make_run(tmp_path / "o", "other", [Row(model="gru")], config={"epochs": 5}, epochs=5)
    with pytest.raises(ResultsError, match="different experiments"):
        merge_runs([a, other], tmp_path / "m2")
    (tmp_path / "m3").mkdir()
    (tmp_path / "m3" / "x").write_text("")
    with pytest.raises(ResultsError, match="not empty"):
        merge_runs([a, b], tmp_path / "m3")
    result = invoke("merge", str(a), str(tmp_path / "nothing"), "-o", str(tmp_path / "m4"))
    assert result.returncode == 2 and "no run " in result.stderr  # the readers' own words (resolve_run)
    (tmp_path / "empty").mkdir()
    result = invoke("merge", str(a), str(tmp_path / "empty"), "-o", str(tmp_path / "m4"))
    assert result.returncode == 2 and "is not a seqbench run" in result.stderr


def test_merge_refuses_a_symlink_loop_as_the_readers_do(tmp_path):
    a, b = _shards(tmp_path)
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    for args, named in (
        (["merge", str(a), str(tmp_path / "loop1"), "-o", str(tmp_path / "m")], "loop1"),
        (["merge", str(a), str(b), "-o", str(tmp_path / "loop1")], "loop1"),
        (["merge", str(a), str(b), "-o", str(a / "run.json")], "run.json"),  # a file where the output would go
        (["report", str(tmp_path / "loop1")], "loop1"),
    ):
        result = invoke(*args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("seqbench: error:") and len(result.stderr.splitlines()) == 1
        assert named in result.stderr


def test_merge_cli_prints_the_new_run_directory(tmp_path):
    a, b = _shards(tmp_path)
    result = invoke("merge", str(a), str(b), "-o", str(tmp_path / "m"))
    assert result.returncode == 0 and result.stdout.strip() == str(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "run.json").read_text())["status"] == "complete"


def test_merge_counts_cells_as_the_report_does_remeasurements_left_out(tmp_path):
    a, b = _shards(tmp_path)
    rows = (a / "cells.jsonl").read_text().splitlines()
    again = json.loads(rows[0]) | {"attempt": 2}  # a disturbed repeat measured a second time
    (a / "cells.jsonl").write_text("\n".join([*rows, json.dumps(again)]) + "\n")
    said = invoke("merge", str(a), str(b), "-o", str(tmp_path / "m"))
    assert said.returncode == 0 and "merged 2 of 2 shards: 6 of 6 cells, status complete" in said.stderr
    assert "complete, 6 of 6 cells" in invoke("report", str(tmp_path / "m")).stdout


# ------------------------------------------------------------------ calibration


def test_calibration_workload_is_short_and_recorded_with_its_parts():
    result = measure()
    assert {"score_s", "python_s", "small_ops_s", "matmul_s", "matmul_gflops"} <= set(result)
    assert all(result[k] > 0 for k in ("python_s", "small_ops_s", "matmul_s"))
    low, high = sorted((result["python_s"], result["small_ops_s"], result["matmul_s"]))[::2]
    assert low <= result["score_s"] <= high  # a geometric mean
    t0 = time.perf_counter()
    child = run_calibration()
    assert "error" not in child and child["threads"] == 1
    assert time.perf_counter() - t0 < 5  # ~0.4 s on a 2-core VM


def test_a_failed_calibration_is_recorded_not_fatal(monkeypatch):
    monkeypatch.setattr("sys.executable", "/nonexistent/python")
    assert "error" in run_calibration()


@pytest.mark.slow
def test_sharded_real_runs_merge_into_one_report_and_compare_clean(tmp_path):
    for index in (1, 2):
        result = cli("run", "--backends", "numpy", "--epochs", "4", "--seeds", "2", "--shard", f"{index}/2",
                     "--results-dir", str(tmp_path / f"shard{index}"), "-q")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads((run_dir_of(result) / "run.json").read_text())["shard"] == {"index": index, "count": 2}
    shards = [next((tmp_path / f"shard{i}").iterdir()) for i in (1, 2)]
    merged = cli("merge", *map(str, shards), "-o", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr
    report = cli("report", str(tmp_path / "merged"))
    assert "rnn" in report.stdout and "lstm" in report.stdout and "PARTIAL" not in report.stdout
    compare = cli("compare", str(tmp_path / "merged"), str(tmp_path / "merged"))
    assert compare.returncode == 0 and "2 matched rows" in compare.stdout


def _reseed(run, seed: int) -> None:
    """Give the run's one repeat another seed (as if it were another repeat of the same row)."""
    cells = run / "cells.jsonl"
    rows = [json.loads(line) | {"seed": seed} for line in cells.read_text().splitlines()]
    cells.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_gpu_row_is_never_merged_across_gpu_models(tmp_path):
    gpu = Row(backend="torch", implementation="fused", device="gpu", gpu_s=0.001)
    a100 = make_run(tmp_path, "a100", [gpu], seeds=1, machine={**MACHINE, "gpus": ["NVIDIA A100-SXM4-80GB"]})
    h100 = make_run(tmp_path, "h100", [gpu], seeds=1, machine={**MACHINE, "hostname": "box-b",
                                                              "gpus": ["NVIDIA H100 80GB HBM3"]})  # fmt: skip
    _reseed(h100, 1)
    with pytest.raises(ResultsError, match="ran on different GPUs.*A100.*H100"):
        merge_runs([a100, h100], tmp_path / "out")
    twin = make_run(tmp_path, "twin", [gpu], seeds=1, machine={**MACHINE, "hostname": "box-c",
                                                               "gpus": ["NVIDIA A100-SXM4-80GB"]})  # fmt: skip
    _reseed(twin, 1)
    assert merge_runs([a100, twin], tmp_path / "ok").cells == 2  # another node of the same GPU model
