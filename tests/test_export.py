"""seqbench export: the JSON that pytest-benchmark and github-action-benchmark read."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import seqbench
from seqbench.export import benchmark_stats, export
from tests.runfactory import Row, invoke, make_run


@pytest.fixture
def run_path(tmp_path):
    return make_run(tmp_path, "r", [Row(model="rnn", steady_s=0.004), Row(model="lstm", steady_s=0.006,
                                                                          failed_seeds=(1,))])  # fmt: skip


@pytest.mark.parametrize("n", [1, 2, 5, 8, 9, 10, 11, 27])
def test_stats_equal_pytest_benchmarks_own(n):
    stats_mod = pytest.importorskip("pytest_benchmark.stats")
    data = list(np.random.default_rng(n).lognormal(-5, 0.3, n))
    theirs = stats_mod.Stats()
    for v in data:
        theirs.update(v)
    ours = benchmark_stats(data)
    for name in stats_mod.Stats.fields:
        assert ours[name] == pytest.approx(getattr(theirs, name)), name


def test_pytest_benchmark_export_has_one_benchmark_per_row_and_a_round_per_process(run_path):
    doc = json.loads(export(seqbench.load_run(run_path), "pytest-benchmark"))
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(doc)
    by_name = {b["name"]: b for b in doc["benchmarks"]}
    rnn = by_name["steady_epoch[arithmetic-rnn-numpy-reference-cpu]"]
    assert rnn["stats"]["rounds"] == 3 and rnn["stats"]["median"] == pytest.approx(0.004, rel=0.02)
    assert by_name["steady_epoch[arithmetic-lstm-numpy-reference-cpu]"]["stats"]["rounds"] == 2  # 2 ok seeds
    table = seqbench.summary(seqbench.load_run(run_path))  # the same value the report shows
    shown = float(table[table["model"] == "rnn"]["steady_epoch_ms"].iloc[0])
    assert rnn["stats"]["median"] * 1e3 == pytest.approx(shown)
    assert doc["commit_info"]["id"] == "a" * 40


def test_pytest_benchmark_reads_and_compares_the_export(run_path, tmp_path):
    pytest.importorskip("pytest_benchmark")
    out = tmp_path / "0001_seqbench.json"
    assert invoke("export", str(run_path), "--format", "pytest-benchmark", "-o", str(out)).returncode == 0
    again = tmp_path / "0002_seqbench.json"  # (pytest-benchmark cannot compare a file with itself)
    again.write_text(out.read_text())
    result = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(out), str(again),
                             "--columns", "min,median,rounds"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "steady_epoch[arithmetic-rnn-numpy-reference-cpu]" in result.stdout
    assert "Failed to load" not in result.stdout + result.stderr


def test_github_action_benchmark_export_is_custom_smaller_is_better(run_path):
    result = invoke("export", str(run_path), "--format", "github-action-benchmark")
    assert result.returncode == 0
    entries = json.loads(result.stdout)
    assert isinstance(entries, list) and len(entries) == 2
    for entry in entries:
        assert set(entry) == {"name", "unit", "value", "range", "extra"}
        assert isinstance(entry["value"], float) and entry["unit"] == "ms" and isinstance(entry["range"], str)
    rnn = next(e for e in entries if " rnn " in e["name"])
    assert rnn["value"] == pytest.approx(4.0, rel=0.02)
    assert len({e["name"] for e in entries}) == 2


def test_normalized_export_is_in_calibration_units(run_path):
    entries = json.loads(export(seqbench.load_run(run_path), "github-action-benchmark", normalize=True))
    rnn = next(e for e in entries if " rnn " in e["name"])
    assert rnn["unit"] == "cal" and rnn["value"] == pytest.approx(0.4, rel=0.02)  # 4 ms / 10 ms


def test_export_of_a_run_with_nothing_timed_is_exit_2(tmp_path):
    path = make_run(tmp_path, "bad", [Row(failed_seeds=(0, 1, 2))])
    result = invoke("export", str(path), "--format", "github-action-benchmark")
    assert result.returncode == 2 and "no completed cell" in result.stderr


def test_normalized_series_have_their_own_unit_suffixed_names(run_path):
    run = seqbench.load_run(run_path)
    ms = json.loads(export(run, "github-action-benchmark"))
    cal = json.loads(export(run, "github-action-benchmark", normalize=True))
    assert all(e["name"].endswith("steady epoch") for e in ms)
    assert all(e["name"].endswith("steady epoch (cal)") and e["unit"] == "cal" for e in cal)
    assert not {e["name"] for e in ms} & {e["name"] for e in cal}  # never one series in two units


def test_pytest_benchmark_refuses_calibration_units_it_would_show_as_seconds(run_path):
    result = invoke("export", str(run_path), "--format", "pytest-benchmark", "--normalize")
    assert result.returncode == 2 and "shows every value as seconds" in result.stderr


def test_pytest_benchmark_commit_info_is_the_runs_and_the_version_the_installed_one(tmp_path):
    from importlib import metadata

    path = make_run(tmp_path, "r", [Row()])
    meta = json.loads((path / "run.json").read_text())
    meta["git"] = {"commit": "c" * 40, "dirty": True, "time": "2026-01-02T03:04:05+00:00",
                   "author_time": "2026-01-01T00:00:00+00:00", "branch": "main"}
    (path / "run.json").write_text(json.dumps(meta))
    doc = json.loads(export(seqbench.load_run(path), "pytest-benchmark"))
    assert doc["commit_info"] == {"id": "c" * 40, "time": "2026-01-02T03:04:05+00:00",
                                  "author_time": "2026-01-01T00:00:00+00:00", "dirty": True,
                                  "project": "seqbench", "branch": "main"}
    assert doc["version"] == metadata.version("pytest-benchmark")


def test_a_run_records_the_commit_time_and_branch(tmp_path):
    import subprocess

    from seqbench.machine import git_commit

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "trunk")
    (tmp_path / "f").write_text("x")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "m")
    info = git_commit(tmp_path)
    assert info is not None and info["branch"] == "trunk" and info["time"] and info["author_time"]
    assert len(info["commit"]) == 40 and info["dirty"] is False


def test_names_carry_the_experiment_when_a_run_has_several(tmp_path):
    path = make_run(tmp_path, "grid", [Row(units=10), Row(units=20)])
    run = seqbench.load_run(path)
    names = [e["name"] for e in json.loads(export(run, "github-action-benchmark"))]
    assert len(set(names)) == 2 and any("units=10" in n for n in names) and any("units=20" in n for n in names)
    bench = json.loads(export(run, "pytest-benchmark"))["benchmarks"]
    assert len({b["name"] for b in bench}) == 2 and all("units=" in b["name"] for b in bench)
    single = [e["name"] for e in json.loads(export(seqbench.load_run(make_run(tmp_path, "one", [Row()])),
                                                   "github-action-benchmark"))]
    assert "units=" not in single[0]


def test_a_run_whose_tables_were_cut_to_nothing_exports_nothing_with_exit_2(tmp_path):
    # found by the damaged-run property test: empty tables have untyped columns that pandas refused to join
    run = make_run(tmp_path, "cut", [Row()])
    (run / "cells.jsonl").write_text("")
    (run / "epochs.jsonl").write_text("")
    for fmt in ("pytest-benchmark", "github-action-benchmark"):
        result = invoke("export", str(run), "--format", fmt)
        assert result.returncode == 2 and "no completed cell" in result.stderr
