"""Cluster runs (seqbench.cluster): a grid as jobs through submitit's local executor, in real processes.

The local executor runs the same path as Slurm (submit, watch, re-submit, cancel, merge); what Slurm alone
would do with it, the job script, is checked through submitit's own rendering, without a cluster.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from seqbench.cli import build_parser, main, run_config
from seqbench.cluster import ClusterOptions, run_arguments, settings, slurm_parameters
from seqbench.history import find_run_dirs
from tests.conftest import read_jsonl

submitit = pytest.importorskip("submitit")

TINY = ["-P", "samples=64", "--epochs", "2", "--seeds", "1", "--retries", "0", "--no-calibration",
        "--inference", "off"]  # fmt: skip
# What a cell measured, apart from its times: equal, cell for cell, however the run was split.
SAME = ("task", "model", "backend", "implementation", "device", "seed", "status", "units", "activation", "epochs",
        "batch_size", "threads", "task_params", "epochs_run", "params", "final_loss", "accuracy", "mse", "mae",
        "probe_prediction", "metrics", "baseline")  # fmt: skip


def _parse(*argv: str):
    return run_config(build_parser().parse_args(["run", *argv]))


@pytest.mark.parametrize("argv", [
    [],
    ["--backends", "numpy,torch:loop", "--models", "gru", "--units", "4,8", "-P", "steps=3,5", "-P", "samples=64",
     "--activation", "relu,tanh", "--batch-size", "16", "--epochs", "4", "--seeds", "2", "--threads", "2",
     "--timeout", "12.5", "--no-calibration", "--inference", "full", "--device", "gpu", "--retries", "0"],
    ["--env", "a=python3", "--env", "b=/opt/venv/bin/python", "--max-seeds", "6", "--threshold", "0.05"],
    ["--seeds", "auto", "--startup-timeout", "30", "--task", "adding"],
])  # fmt: skip
def test_every_job_runs_the_run_it_was_given(argv):
    config = _parse(*argv)
    assert _parse(*run_arguments(config)) == config  # shard and results dir are the job's own


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(["run", "--backends", "numpy", *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--jobs", "2"], "--jobs needs --executor local or --executor slurm"),
    (["--no-exclusive"], "--exclusive needs --executor"),
    (["--executor", "local"], "needs --jobs N"),
    (["--executor", "local", "--jobs", "2", "--shard", "1/2"], "--shard does not go with --executor"),
    (["--executor", "local", "--jobs", "2", "--partition", "gpu"], "--partition is a Slurm option"),
    (["--executor", "local", "--jobs", "2", "--no-exclusive"], "--no-exclusive is a Slurm option"),
    (["--executor", "slurm", "--jobs", "0"], "--jobs must be 1 or more"),
    (["--executor", "local", "--jobs", "5"], "--jobs 5: the run has 2 row(s)"),
    (["--executor", "local", "--resume", "nowhere"], "not a cluster run"),
])  # fmt: skip
def test_bad_combinations_are_one_line_and_exit_2(capsys, tmp_path, argv, says):
    code, err = _cli(capsys, *argv, "--results-dir", str(tmp_path))
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())  # nothing was written


def test_without_submitit_the_error_says_how_to_install_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit now raises ImportError
    code, err = _cli(capsys, "--executor", "local", "--jobs", "2", "--results-dir", str(tmp_path))
    assert code == 2 and "pip install 'seqbench[cluster]'" in err and len(err.strip().splitlines()) == 1


def _job_script(folder: Path, options: ClusterOptions, device: str) -> str:
    """The sbatch script submitit would submit for ``options``' array of jobs, rendered by submitit itself."""
    from submitit.slurm.slurm import SlurmExecutor

    executor = SlurmExecutor(folder=folder / "%j")
    executor.update_parameters(**slurm_parameters(settings(options, int(options.jobs or 0), device)))
    executor.parameters["map_count"] = options.jobs  # what submitit sets when it submits the jobs as one array
    return executor._make_submission_file_text("python -m submitit.core._submit x", "uid")


def test_the_job_script_asks_for_gpus_a_whole_node_and_a_throttled_array(monkeypatch, tmp_path):
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # "srun is here": no cluster needed
    options = ClusterOptions("slurm", jobs=4, parallel=2, partition="gpu", time_limit=90,
                             sbatch=[("account", "bench"), ("constraint", "h100"), ("requeue", True)])  # fmt: skip
    script = _job_script(tmp_path, options, "gpu")
    lines = set(script.splitlines())
    for line in ("#SBATCH --exclusive", "#SBATCH --gpus-per-node=1", "#SBATCH --array=0-3%2",
                 "#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --account=bench",
                 "#SBATCH --constraint=h100", "#SBATCH --requeue", "#SBATCH --job-name=seqbench"):  # fmt: skip
        assert line in lines, script
    script = _job_script(tmp_path, ClusterOptions("slurm", jobs=3, exclusive=False), "cpu")
    assert "--exclusive" not in script and "gpus" not in script and "#SBATCH --array=0-2%3" in script, script
    assert "#SBATCH --time=1440" in script  # a day by default


# ------------------------------------------------------------------ real runs through the local executor


def _run(*argv: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seqbench", "run", *argv], capture_output=True, text=True, env=env,
                          timeout=timeout)  # fmt: skip


def _cells(run: Path) -> dict[tuple, dict]:
    return {(c["model"], c["units"], json.dumps(c["task_params"], sort_keys=True), c["seed"]): c
            for c in read_jsonl(run / "cells.jsonl")}  # fmt: skip


def _state(run: Path) -> dict:
    return json.loads((run / "jobs" / "cluster.json").read_text())


def _processes_with(mark: str) -> list[str]:
    """Command lines of the live processes whose environment holds ``mark`` (this test's jobs, workers...)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and mark.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # gone, or not ours
            continue
    return found


@pytest.mark.slow
def test_three_jobs_merge_into_the_run_that_one_machine_makes(tmp_path):
    grid = ["--backends", "numpy", "--models", "rnn,lstm,gru", "--units", "4,8", "-P", "steps=3,5", *TINY]
    alone = _run(*grid, "--results-dir", str(tmp_path / "alone"))
    assert alone.returncode == 0, alone.stderr
    split = _run(*grid, "--executor", "local", "--jobs", "3", "--results-dir", str(tmp_path / "jobs"))
    assert split.returncode == 0, split.stderr
    assert "jobs: 0 pending, 0 running, 3 done, 0 failed  cells 12/12" in split.stderr
    run = Path(split.stdout.strip().splitlines()[-1])
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "complete" and meta["missing_shards"] == []
    assert sorted(p["shard"]["index"] for p in meta["merged_from"]) == [1, 2, 3]
    assert meta["cluster"]["settings"]["parallel"] == 1  # locally, one job at a time
    merged, single = _cells(run), _cells(Path(alone.stdout.strip().splitlines()[-1]))
    assert len(merged) == len(single) == 12  # 3 models x 2 units x 2 steps
    for key, cell in single.items():
        assert {f: merged[key][f] for f in SAME} == {f: cell[f] for f in SAME}, key
        assert merged[key]["machine"]  # each job recorded its machine
    # one job at a time: each started after the one before had ended
    runs = sorted((json.loads(p.read_text()) for p in run.glob("jobs/shards/*/attempt-1/*/run.json")),
                  key=lambda m: m["started"])  # fmt: skip
    assert all(a["ended"] <= b["started"] for a, b in zip(runs, runs[1:], strict=False))
    assert find_run_dirs([tmp_path / "jobs"]) == [run]  # history counts the merged run, not its shards again


@pytest.mark.slow
def test_a_killed_job_is_submitted_again_and_the_run_completes(tmp_path, plugin_env):
    env = {**plugin_env, "SEQBENCH_TEST_FATAL_ONCE": str(tmp_path / "killed-once")}
    result = _run("--backends", "fatal,numpy", "--models", "rnn,lstm", *TINY, "--executor", "local", "--jobs", "2",
                  "--results-dir", str(tmp_path / "results"), env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "killed-once").exists()  # the first job of shard 1 was killed
    assert "shard 1/2 (job" in result.stderr and "killed by SIGKILL" in result.stderr
    assert "submitting it again (retry 1 of 2)" in result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "complete" and len(read_jsonl(run / "cells.jsonl")) == 4
    attempts = meta["cluster"]["shards"]["1"]["attempts"]
    assert [a["status"] for a in attempts] == ["failed", "ended"] and attempts[0]["exit_code"] == -signal.SIGKILL


@pytest.mark.slow
def test_a_job_that_always_fails_leaves_a_partial_run_naming_its_shard(tmp_path, plugin_env):
    result = _run("--backends", "fatal,numpy", "--models", "rnn,lstm", *TINY, "--executor", "local", "--jobs", "2",
                  "--job-retries", "1", "--results-dir", str(tmp_path), env=plugin_env)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "shard 1/2 failed" in result.stderr and "partial" in result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "partial" and meta["missing_shards"] == [1]
    shard = meta["cluster"]["shards"]["1"]
    assert shard["status"] == "failed" and len(shard["attempts"]) == 2  # the first job and one retry
    assert {c["backend"] for c in read_jsonl(run / "cells.jsonl")} == {"fatal", "numpy"}  # shard 2's rows
    assert "PARTIAL" in subprocess.run([sys.executable, "-m", "seqbench", "report", str(run)], capture_output=True,
                                       text=True, timeout=120).stdout  # fmt: skip


def _start_slow_run(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
    """A cluster run whose shard 1 (numpy) is quick and shard 2 (sleepy) slow (about 15 s: long enough for a
    resume to find its job still running); returned once shard 2's first cell has finished."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqbench", "run", "--backends", "numpy,sleepy", "--models", "rnn", "--epochs", "3",
         "--seeds", "16", "--retries", "0", "--no-calibration", "--inference", "off", "-P", "samples=64",
         "--executor", "local", "--jobs", "2", "--results-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        cells = list(tmp_path.glob("*/jobs/shards/2/attempt-1/*/cells.jsonl"))
        if cells and read_jsonl(cells[0]):
            return proc, cells[0].parents[5]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"shard 2 never started: {proc.communicate()[1]}")


@pytest.mark.slow
def test_sigterm_to_the_parent_cancels_its_jobs_and_no_job_process_outlives_it(tmp_path, plugin_env):
    mark = f"SEQBENCH_TEST_MARK={uuid.uuid4().hex}"
    proc, run = _start_slow_run(tmp_path, {**plugin_env, mark.split("=")[0]: mark.split("=")[1]})
    assert any("--shard 2/2" in c for c in _processes_with(mark))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert _processes_with(mark) == []  # no controller, job, seqbench run or worker is left
    assert "every job cancelled" in err and f"--resume {run}" in err
    assert not (run / "run.json").exists()  # nothing merged: it is for --resume
    assert _state(run)["shards"]["2"]["attempts"][-1]["status"] == "cancelled"


@pytest.mark.slow
def test_resume_after_the_parent_died_submits_only_the_unfinished_shards(tmp_path, plugin_env):
    mark = f"SEQBENCH_TEST_MARK={uuid.uuid4().hex}"
    env = {**plugin_env, mark.split("=")[0]: mark.split("=")[1]}
    proc, run = _start_slow_run(tmp_path, env)
    proc.kill()  # the parent dies; its job for shard 2 runs on, orphaned
    proc.wait()  # not communicate(): the orphans hold the parent's pipes open until they end
    for pipe in (proc.stdout, proc.stderr):
        pipe.close()
    shard1 = _state(run)["shards"]["1"]
    assert [a["status"] for a in shard1["attempts"]] == ["ended"]
    first = [p for p in run.glob("jobs/shards/1/attempt-1/*") if p.is_dir()]
    result = _run("--executor", "local", "--resume", run.name, "--results-dir", str(tmp_path), "--epochs", "1",
                  env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr and "1 of 2 shard(s) complete, submitting 1" in result.stderr
    state = _state(run)
    assert len(state["shards"]["1"]["attempts"]) == 1  # shard 1 was not run again
    assert [a["status"] for a in state["shards"]["2"]["attempts"]] == ["cancelled", "ended"]  # the orphan stopped
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "complete" and meta["config"]["epochs"] == 3  # the run's own options, from RUN
    assert first[0].name in {p["run_id"] for p in meta["merged_from"]}
    assert len(read_jsonl(run / "cells.jsonl")) == 32
    assert _processes_with(mark) == []
