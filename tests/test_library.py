"""The library as a notebook uses it: load_run by directory, run id or newest; summary and compare."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import seqbench
from seqbench.errors import ResultsError
from tests.runfactory import Row, invoke, make_run


@pytest.fixture
def results(tmp_path):
    make_run(tmp_path, "20260101-old", [Row()], started="2026-01-01T10:00:00+0000")
    make_run(tmp_path, "20260102-new", [Row(steady_s=0.01)], started="2026-01-02T10:00:00+0000")
    return tmp_path


def test_load_run_takes_a_directory_a_run_id_or_the_newest(results, monkeypatch):
    assert seqbench.load_run(results / "20260101-old").path.name == "20260101-old"
    assert seqbench.load_run("20260101-old", results_dir=results).path.name == "20260101-old"
    assert seqbench.load_run("latest", results_dir=results).path.name == "20260102-new"
    monkeypatch.chdir(results.parent)
    (results.parent / "results").symlink_to(results)
    assert seqbench.load_run().path.name == "20260102-new"  # ./results by default


def test_load_run_names_what_it_could_not_find(results):
    with pytest.raises(ResultsError, match=r"no run 'nope': not a directory, and no such run id in"):
        seqbench.load_run("nope", results_dir=results)
    with pytest.raises(ResultsError, match="no runs in"):
        seqbench.load_run(results_dir=results / "empty")


def test_report_takes_a_run_id(results):
    out = invoke("report", "20260101-old", "--results-dir", str(results))
    assert out.returncode == 0 and "run 20260101-old" in out.stdout


def test_gpu_s_is_a_float_column_on_a_cpu_run(results):
    run = seqbench.load_run("latest", results_dir=results)
    assert run.cells["gpu_s"].dtype == "float64" and run.cells["gpu_s"].isna().all()
    assert run.epochs["gpu_s"].dtype == "float64" and run.cells["cpu_s"].dtype == "float64"
    assert run.cells["status"].tolist() == ["ok"] * 3  # strings stay strings


def test_summary_and_compare_are_public(results):
    table = seqbench.summary(results / "20260102-new")
    assert table.iloc[0]["steady_epoch_ms"] == pytest.approx(10, rel=0.05)
    c = seqbench.compare(results / "20260101-old", seqbench.load_run(results / "20260102-new"))
    assert c.exit_code == 1 and c.table.iloc[0]["verdict"] == "slower"


def test_importing_seqbench_loads_no_pandas():
    code = "import sys, seqbench; seqbench.summary; seqbench.load_run; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_seqbench_compare_is_a_function_that_importing_the_module_does_not_replace(results):
    import seqbench.comparison  # noqa: F401 - a submodule named like the function would replace it here

    assert "compare" in seqbench.__all__ and inspect.isfunction(seqbench.compare)
    assert seqbench.comparison.compare_runs

    c = seqbench.compare(results / "20260101-old", results / "20260102-new", threshold=0.5)
    assert c.exit_code == 1 and c.threshold == 0.5
