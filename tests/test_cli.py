"""The command line end to end, in real subprocesses, with real worker processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import seqbench
from tests.conftest import read_jsonl, run_dir_of
from tests.conftest import seqbench as cli

pytestmark = pytest.mark.slow
FAST = ["--epochs", "2", "--seeds", "1", "--retries", "0"]  # a busy test machine must not add cells


def test_version():
    result = cli("--version")
    assert result.returncode == 0 and seqbench.__version__ in result.stdout


def test_list_shows_backends_availability_hints_tasks_and_plugin_failures(plugin_env):
    result = cli("list", env=plugin_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "numpy" in out and "implementations: reference" in out and "devices: cpu" in out
    assert "absent" in out and "NOT AVAILABLE: the absent framework is not installed" in out
    assert "install: pip install absent-framework" in out
    assert "arithmetic" in out and "steps=3" in out
    assert 'Error loading backend plugin "broken"' in out


def test_run_numpy_end_to_end_writes_a_complete_pandas_loadable_record(tmp_path):
    result = cli("run", "--backends", "numpy", "--epochs", "3", "--seeds", "2", "--retries", "0",
                 "--results-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(result)
    assert run_dir.parent == tmp_path
    assert "[4/4] numpy:reference/cpu lstm seed=1  ok" in result.stderr  # progress
    assert "numpy-bptt" in result.stdout and "accuracy" in result.stdout  # summary

    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["format_version"] == 1 and meta["status"] == "complete"
    assert meta["config"]["epochs"] == 3 and meta["config"]["threads"] is None  # None: the auto policy
    assert meta["thread_policy"]["policy"] == "auto" and meta["thread_policy"]["cores"] >= 1
    assert meta["machine"]["cores"] and meta["machine"]["python"] and meta["packages"]["numpy"]
    assert meta["started"] and meta["ended"] and meta["cells_done"] == 4

    run = seqbench.load_run(run_dir)
    required = ["task", "model", "backend", "implementation", "device", "seed", "status", "error", "params",
                "accuracy", "mse", "mae", "probe_prediction", "first_epoch_s", "steady_epoch_s", "cpu_s",
                "samples_per_s", "peak_rss_mb"]  # fmt: skip
    assert set(required) <= set(run.cells.columns)
    assert len(run.cells) == 4 and set(run.cells.status) == {"ok"}
    assert sorted(run.cells.params.unique()) == [131, 491]
    assert set(["backend", "implementation", "model", "device", "seed", "epoch", "loss", "wall_s", "cpu_s",
                "gpu_s"]) <= set(run.epochs.columns)  # fmt: skip
    assert len(run.epochs) == 12
    # plain JSON Lines: pandas reads the tables directly
    assert len(pd.read_json(run_dir / "cells.jsonl", lines=True)) == 4


def test_requested_unavailable_backend_is_exit_2_with_install_hint(tmp_path, plugin_env):
    result = cli("run", "--backends", "absent", "--results-dir", str(tmp_path), env=plugin_env)
    assert result.returncode == 2
    assert "'absent' is not available" in result.stderr and "pip install absent-framework" in result.stderr


def test_all_skips_unavailable_backends_with_a_visible_note(tmp_path, plugin_env):
    env = {**plugin_env, "SEQBENCH_DISABLE_PLUGINS": "torch,keras"}
    result = cli("run", "--backends", "all", "--models", "rnn", *FAST, "--results-dir", str(tmp_path),
                 "--timeout", "20", env={**env, "SEQBENCH_PLUGINS": "numpy,faulty"}, timeout=120)  # fmt: skip
    assert "note: backend 'absent' is not available" in result.stderr and "skipped" in result.stderr
    assert "numpy:reference/cpu rnn seed=0  ok" in result.stderr


def test_unwritable_results_directory_fails_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("run", "--backends", "numpy", "--results-dir", str(blocker / "sub"))
    assert result.returncode == 2
    assert "cannot write results to" in result.stderr and "[1/" not in result.stderr


def test_crash_hang_death_and_nan_are_recorded_and_the_run_goes_on(tmp_path, plugin_env):
    result = cli("run", "--backends", "crashy,dying,hangy,nanny,numpy", *FAST, "--timeout", "3",
                 "--results-dir", str(tmp_path), env=plugin_env, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr
    cells = {(c["backend"], c["model"]): c for c in read_jsonl(run_dir_of(result) / "cells.jsonl")}
    assert len(cells) == 10
    assert cells["crashy", "rnn"]["status"] == "ok"
    crash = cells["crashy", "lstm"]
    assert crash["status"] == "error" and "RuntimeError: crashy backend failed on purpose" in crash["error"]
    assert "Traceback" in crash["error"]
    assert cells["dying", "lstm"]["status"] == "error"
    assert "worker exited with code 3" in cells["dying", "lstm"]["error"]
    assert cells["dying", "rnn"]["status"] == "ok"
    assert cells["hangy", "lstm"]["status"] == "timeout" and "killed" in cells["hangy", "lstm"]["error"]
    assert cells["hangy", "rnn"]["status"] == "ok"
    assert {cells["nanny", m]["status"] for m in ("rnn", "lstm")} == {"diverged"}
    assert cells["nanny", "rnn"]["epochs_run"] == 2
    assert {cells["numpy", m]["status"] for m in ("rnn", "lstm")} == {"ok"}


def test_diverged_cells_alone_still_exit_0(tmp_path, plugin_env):
    result = cli("run", "--backends", "nanny", *FAST, "--results-dir", str(tmp_path), env=plugin_env)
    assert result.returncode == 0, result.stderr
    assert "diverged" in result.stderr


def test_ctrl_c_keeps_finished_cells_and_marks_the_run_interrupted(tmp_path, plugin_env):
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqbench", "run", "--backends", "sleepy", "--epochs", "3", "--seeds", "20",
         "--results-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=plugin_env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    cells_file = None
    while time.monotonic() < deadline:
        found = list(tmp_path.glob("*/cells.jsonl"))
        if found and len(read_jsonl(found[0])) >= 2:
            cells_file = found[0]
            break
        time.sleep(0.1)
    assert cells_file is not None, "no cell finished in time"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    meta = json.loads((cells_file.parent / "run.json").read_text())
    kept = read_jsonl(cells_file)
    assert meta["status"] == "interrupted" and meta["cells_done"] == len(kept) >= 2
    assert all(c["status"] == "ok" for c in kept)
    assert str(cells_file.parent) in out
