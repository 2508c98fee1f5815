"""The runner: one process per repeat, interleaved order, retries, signals, start-up, disk errors, isolation."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from seqbench import threads as thread_policy
from seqbench.plugins import load_registry
from seqbench.results import CellConfig, CellRecord, RunWriter
from seqbench.runner import MAX_SEEDS, RunConfig, interleave, plan
from tests.conftest import read_jsonl
from tests.runfactory import invoke

FAST = ["--epochs", "2", "--seeds", "1", "--retries", "0", "--no-calibration"]


def _cell(backend, model, seed):
    return CellConfig("arithmetic", model, backend, "x", "cpu", seed, 10, "relu", 2, 32, 1, {})


# ------------------------------------------------------------------ plan


def test_interleave_alternates_the_repeats_of_every_row():
    rows = [[_cell(b, "rnn", s) for s in range(3)] for b in ("numpy", "torch", "keras")]
    order = [(c.backend, c.seed) for c in interleave(rows)]
    assert order == [("numpy", 0), ("torch", 0), ("keras", 0), ("numpy", 1), ("torch", 1), ("keras", 1),
                     ("numpy", 2), ("torch", 2), ("keras", 2)]  # fmt: skip


def test_plan_is_interleaved_records_whole_experiments_and_is_linear_in_seeds(monkeypatch):
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    registry = load_registry()
    cells = plan(RunConfig(backends=("numpy",), seeds=3), registry).cells
    assert [(c.model, c.seed) for c in cells] == [("rnn", 0), ("lstm", 0), ("rnn", 1), ("lstm", 1), ("rnn", 2),
                                                  ("lstm", 2)]  # fmt: skip
    assert cells[0].task_params == registry.task("arithmetic").defaults  # defaults filled in
    started = time.perf_counter()
    many = RunConfig(backends=("numpy",), seeds=MAX_SEEDS, units=tuple(range(10, 26)))  # 16 x 2 rows x 1000 seeds
    assert len(plan(many, registry).cells) == 32_000
    assert time.perf_counter() - started < 30  # quadratic planning took 35 s; this is a hang guard, not a timing


def test_the_thread_policy_gives_small_models_one_thread_and_large_ones_every_core(monkeypatch):
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    monkeypatch.setattr(thread_policy, "cores", lambda: 8)
    registry = load_registry()
    seed = plan(RunConfig(backends=("numpy",), models=("lstm",), seeds=1), registry).cells[0]
    large = plan(RunConfig(backends=("numpy",), models=("lstm",), seeds=1, units=128, batch_size=64,
                           activation="tanh"), registry).cells[0]  # fmt: skip
    fixed = plan(RunConfig(backends=("numpy",), models=("lstm",), seeds=1, threads=3), registry).cells[0]
    assert (seed.threads, large.threads, fixed.threads) == (1, 8, 3)
    assert thread_policy.describe(None, 8)["policy"] == "auto" and thread_policy.describe(3, 8)["policy"] == "fixed"


def test_more_threads_than_cores_is_said_before_the_run(monkeypatch):
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    monkeypatch.setattr(thread_policy, "cores", lambda: 2)
    config = RunConfig(backends=("numpy",), models=("rnn",), seeds=1)
    assert not [n for n in plan(replace(config, threads=2), load_registry()).notes if "--threads" in n]
    [note] = [n for n in plan(replace(config, threads=8), load_registry()).notes if "--threads" in n]
    assert note.startswith("--threads 8 is more than the 2 core(s)")


def test_worker_plugins_are_only_its_backends_and_its_tasks(plugin_env, monkeypatch):
    for key in ("SEQBENCH_PLUGINS", "SEQBENCH_DISABLE_PLUGINS"):
        monkeypatch.delenv(key, raising=False)
    registry = load_registry()
    assert registry.plugins_for("numpy", "arithmetic") == ("numpy",)
    assert registry.plugins_for("crashy", "arithmetic") == ("faulty",)
    only = load_registry(only=["numpy"])
    assert set(only.backends) == {"numpy"} and not only.failures  # the broken plugin was never imported


@pytest.mark.slow
def test_a_worker_never_imports_the_other_plugins(tmp_path, plugin_env):
    log = tmp_path / "imports.log"
    env = {**plugin_env, "SEQBENCH_TEST_IMPORT_LOG": str(log)}
    # crashy comes from the plugin "faulty": the parent cannot tell that from the name and loads every plugin
    command = [sys.executable, "-m", "seqbench", "run", *FAST, "--results-dir", str(tmp_path)]
    result = subprocess.run([*command, "--backends", "numpy,crashy", "--models", "rnn"], capture_output=True,
                            text=True, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(log.read_text().split()) == 1  # the parent (which lists every backend), never a worker
    log.unlink()
    result = subprocess.run([*command, "--backends", "numpy"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert not log.exists()  # numpy's plugin is named after it: the parent loads no other plugin either


# ------------------------------------------------------------------ retries


@pytest.mark.slow
def test_a_disturbed_repeat_is_measured_again_and_kept_apart(tmp_path, monkeypatch):
    import seqbench.runner as runner

    calls = []

    def fake_worker(cell, plugins, timeout, startup_timeout, log, callbacks, executable=None, child=None):
        calls.append(cell)
        disturbed = cell.attempt == 1 and cell.seed == 0
        return CellRecord(task=cell.task, model=cell.model, backend=cell.backend, implementation=cell.implementation,
                          device=cell.device, seed=cell.seed, status="ok", steady_epoch_s=0.01, attempt=cell.attempt,
                          disturbed=disturbed, interference=0.9 if disturbed else 0.0)  # fmt: skip

    monkeypatch.setattr(runner, "run_in_worker", fake_worker)
    monkeypatch.setattr(runner, "start_worker", lambda *args: None)  # no process
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    result = invoke("run", "--backends", "numpy", "--models", "rnn", "--seeds", "2", "--no-calibration",
                    "--results-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [(c.seed, c.attempt) for c in calls] == [(0, 1), (1, 1), (0, 2)]  # again, at the end of the queue
    assert "measuring it again at the end" in result.stderr and "DISTURBED" in result.stderr
    run_dir = next(tmp_path.iterdir())
    assert json.loads((run_dir / "run.json").read_text())["retries_run"] == 1
    import seqbench
    from seqbench.views import cell_view

    view = cell_view(seqbench.load_run(run_dir))
    assert len(view) == 2 and not view["disturbed"].any()
    from seqbench.report import render

    assert "2 of 2 cells (1 re-measured after a disturbance)" in render(seqbench.load_run(run_dir), "text")


# ------------------------------------------------------------------ faults


def test_each_row_is_one_write_and_a_full_disk_is_a_clear_error(tmp_path, monkeypatch):
    writer = RunWriter(tmp_path, "r")
    writes = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(data) or real_write(fd, data))
    record = CellRecord(task="t", model="rnn", backend="b", implementation="i", device="cpu", seed=0, status="ok")
    writer.add_cell(record)
    assert len(writes) == 1 and writes[0].endswith(b"\n") and writes[0].count(b"\n") == 1

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    from seqbench.errors import ResultsError

    with pytest.raises(ResultsError, match="cannot write .*cells.jsonl: No space left on device"):
        writer.add_cell(record)


def test_an_interrupted_run_json_write_leaves_no_tmp_file(tmp_path, monkeypatch):
    writer = RunWriter(tmp_path, "r")

    def second_ctrl_c(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", second_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        writer.write_meta({"status": "running"})
    assert not list((tmp_path / "r").glob("*.tmp"))


def test_a_full_disk_mid_run_marks_the_run_failed_and_exits_2(tmp_path, monkeypatch):
    import seqbench.runner as runner

    def full(self, record):
        raise runner.ResultsError(f"cannot write {self.path}/cells.jsonl: No space left on device")

    monkeypatch.setattr(RunWriter, "add_cell", full)
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    result = invoke("run", "--backends", "numpy", "--models", "rnn", *FAST, "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    run_dir = next(tmp_path.iterdir())
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not list(run_dir.glob("*.tmp"))


def _after_first_cell(monkeypatch, action):
    """Run ``action(run_dir)`` once the first cell is written (the results folder changes under a run)."""
    real_add_cell = RunWriter.add_cell

    def add_cell(self, record):
        real_add_cell(self, record)
        if not getattr(self, "_acted", False):
            self._acted = True
            action(self.path)

    monkeypatch.setattr(RunWriter, "add_cell", add_cell)


def _one_error_line(result, *words):
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("seqbench: error: cannot write ") and all(w in line for w in words), line


def test_a_results_folder_deleted_mid_run_is_exit_2_in_one_line(tmp_path, monkeypatch):
    import shutil

    _after_first_cell(monkeypatch, shutil.rmtree)
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    result = invoke("run", "--backends", "numpy", "--models", "rnn", *FAST, "--seeds", "2", "-q",
                    "--results-dir", str(tmp_path))  # fmt: skip
    _one_error_line(result, "numpy-reference-cpu.log", "No such file or directory")
    assert list(tmp_path.iterdir()) == []  # nothing left to mark failed


def test_a_results_folder_made_read_only_mid_run_is_exit_2_and_marked_failed(tmp_path, monkeypatch):
    import builtins

    import seqbench.worker as worker

    def read_only(run_dir):  # what chmod a-w does to a user who is not root: no new file in the folder
        def no_new_file(path, *args, **kwargs):
            if Path(path).parent in (run_dir, run_dir / "logs"):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return builtins.open(path, *args, **kwargs)

        real_write_text = Path.write_text
        monkeypatch.setattr(worker, "open", no_new_file, raising=False)
        monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: no_new_file(self) if self.suffix == ".tmp"
                            else real_write_text(self, *a, **k))  # fmt: skip

    _after_first_cell(monkeypatch, read_only)
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    result = invoke("run", "--backends", "numpy", "--models", "rnn", *FAST, "--seeds", "2", "-q",
                    "--results-dir", str(tmp_path))  # fmt: skip
    _one_error_line(result, "Permission denied")
    run_dir = next(tmp_path.iterdir())
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "failed" and meta["cells_done"] == 1 and len(read_jsonl(run_dir / "cells.jsonl")) == 1
    assert not list(run_dir.glob("*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_results_folder_chmod_read_only_mid_run_is_exit_2_and_marked_failed(tmp_path, monkeypatch):
    def read_only(run_dir):
        for folder in (run_dir / "logs", run_dir):
            folder.chmod(0o555)

    _after_first_cell(monkeypatch, read_only)
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    try:
        result = invoke("run", "--backends", "numpy", "--models", "rnn", *FAST, "--seeds", "2", "-q",
                        "--results-dir", str(tmp_path))  # fmt: skip
        _one_error_line(result, "Permission denied")
        run_dir = next(tmp_path.iterdir())
        assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    finally:
        for folder in tmp_path.rglob("*"):
            if folder.is_dir():
                folder.chmod(0o755)


def test_ctrl_c_during_calibration_marks_the_run_interrupted(tmp_path, monkeypatch):
    import seqbench.runner as runner

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_calibration", interrupted)
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    result = invoke("run", "--backends", "numpy", "--epochs", "2", "--results-dir", str(tmp_path))
    assert result.returncode == 130
    run_dir = next(tmp_path.iterdir())
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"


def _start(tmp_path, env, *args, ignore_sigint=False):
    command = [sys.executable, "-m", "seqbench", "run", *args, "--results-dir", str(tmp_path)]
    if ignore_sigint:  # as a shell starts a background job; no preexec_fn: forking a process that runs jax threads
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return None


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "ignore_sigint"), [(signal.SIGTERM, False), (signal.SIGHUP, False),
                                                      (signal.SIGINT, True)])  # fmt: skip
def test_stop_signals_keep_finished_cells_and_exit_128_plus_the_signal(tmp_path, plugin_env, signum, ignore_sigint):
    # A script's background job starts with SIGINT ignored; CI cancellation sends SIGINT then SIGTERM.
    proc = _start(tmp_path, plugin_env, "--backends", "sleepy", "--epochs", "3", "--seeds", "20", "--retries", "0",
                  "--no-calibration", ignore_sigint=ignore_sigint)  # fmt: skip
    cells = _wait_for(lambda: next((f for f in tmp_path.glob("*/cells.jsonl") if len(read_jsonl(f)) >= 2), None))
    assert cells is not None, "no cell finished in time"
    workers = _children(proc.pid)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, err
    meta = json.loads((cells.parent / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["cells_done"] == len(read_jsonl(cells)) >= 2
    assert not list(cells.parent.glob("*.tmp")) and str(cells.parent) in out
    assert all(_wait_for(lambda w=w: _gone(w), 10) for w in workers)


@pytest.mark.slow
def test_a_killed_parent_takes_its_hung_worker_with_it(tmp_path, plugin_env):
    proc = _start(tmp_path, plugin_env, "--backends", "hangy", "--models", "lstm", *FAST)
    worker = _wait_for(lambda: next(iter(_children(proc.pid)), None))
    assert worker is not None
    time.sleep(1.0)  # the worker is inside its endless epoch now
    proc.kill()  # SIGKILL: no handler runs in the parent
    proc.wait()
    assert _wait_for(lambda: _gone(worker), 10), "the worker outlived its parent"


@pytest.mark.slow
def test_a_worker_exits_when_its_parent_stops_holding_its_stdin(tmp_path, plugin_env):
    # The second line of defence, where PR_SET_PDEATHSIG does not exist: the pipe.
    cell = replace(_cell("hangy", "lstm", 0), implementation="broken")
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-m", "seqbench.worker", "--fd", str(write_fd), "--parent", str(os.getpid())]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=(write_fd,), env=plugin_env)
    os.close(write_fd)
    from dataclasses import asdict

    from seqbench.worker import PROTOCOL

    child.stdin.write(json.dumps({"protocol": PROTOCOL, "plugins": ["faulty"], "cell": asdict(cell)}).encode() + b"\n")
    child.stdin.flush()
    with os.fdopen(read_fd) as pipe:
        assert json.loads(pipe.readline())["event"] == "ready"
        child.stdin.write(b'{"event": "go"}\n')  # ready, it waits for its turn (a worker may start ahead)
        child.stdin.flush()
        assert json.loads(pipe.readline())["event"] == "start"
        child.stdin.close()
        assert child.wait(timeout=10) == 70


@pytest.mark.slow
def test_worker_start_up_has_its_own_allowance(tmp_path, plugin_env):
    env = {**plugin_env, "SEQBENCH_TEST_SLOWSTART": "2"}
    ok = _start(tmp_path / "a", env, "--backends", "slowstart", "--models", "rnn", *FAST, "--timeout", "1")
    out, err = ok.communicate(timeout=60)
    assert ok.returncode == 0, err  # 2 s of start-up did not count against the 1 s cell timeout
    slow = _start(tmp_path / "b", env, "--backends", "slowstart", "--models", "rnn", *FAST,
                  "--startup-timeout", "0.5")  # fmt: skip
    out, err = slow.communicate(timeout=60)
    assert slow.returncode == 1
    [cell] = read_jsonl(next((tmp_path / "b").iterdir()) / "cells.jsonl")
    assert cell["status"] == "timeout" and "did not start within 0.5 s" in cell["error"]


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e12", "soon"])
def test_absurd_timeouts_are_refused(tmp_path, value):
    result = invoke("run", "--backends", "numpy", "--timeout", value, "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "--timeout" in result.stderr and not list(tmp_path.iterdir())


def test_the_matmul_peak_is_measured_per_thread_count_and_each_cell_gets_its_share(tmp_path, monkeypatch):
    import seqbench.runner as runner

    def fake_worker(cell, plugins, timeout, startup_timeout, log, callbacks, executable=None, child=None):
        return CellRecord(task=cell.task, model=cell.model, backend=cell.backend, implementation="reference",
                          device="cpu", seed=cell.seed, status="ok", steady_epoch_s=0.01, gflops_per_s=25.0)

    measured = []
    monkeypatch.setattr(runner, "run_in_worker", fake_worker)
    monkeypatch.setattr(runner, "start_worker", lambda *args: None)  # no process
    monkeypatch.setattr(runner, "run_calibration", lambda: {"version": 1, "score_s": 0.01})
    monkeypatch.setattr(runner, "measure_matmul_peak", lambda threads: measured.append(threads) or 100.0 * threads)
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    result = invoke("run", "--backends", "numpy", "--models", "rnn", "--seeds", "2", "--threads", "2",
                    "--results-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = next(tmp_path.iterdir())
    assert measured == [2] and json.loads((run_dir / "run.json").read_text())["matmul_peak_gflops"] == {"2": 200.0}
    assert {c["peak_share"] for c in read_jsonl(run_dir / "cells.jsonl")} == {0.125}


def _keys(value, prefix=""):
    """Every key path of a JSON document (lists are looked into by their first item)."""
    values_only = ("machine", "packages", "thread_policy", "git", "calibration")  # their keys are the machine's
    if isinstance(value, dict):
        return {f"{prefix}{k}" for k in value} | {p for k, v in value.items() for p in _keys(v, f"{prefix}{k}.")
                                                  if k not in values_only}  # fmt: skip
    return set()


def test_the_test_factory_writes_what_seqbench_run_writes(tmp_path, monkeypatch):
    """Field for field, apart from values: run.json (and its config), the cells' and the epochs' columns."""
    from tests.runfactory import Row, make_run

    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    result = invoke("run", "--backends", "numpy", "--models", "rnn", *FAST, "--results-dir", str(tmp_path / "real"))
    assert result.returncode == 0, result.stderr
    real = next((tmp_path / "real").iterdir())
    made = make_run(tmp_path / "made", "r", [Row()], seeds=1, epochs=2)
    real_meta, made_meta = (json.loads((d / "run.json").read_text()) for d in (real, made))
    real_keys = _keys(real_meta) - {"remeasured", "remeasured.repeats", "remeasured.processes",
                                    "remeasured.budget_processes", "remeasured.left_disturbed", "remeasured.why"}
    assert _keys(made_meta) == real_keys  # the runner adds only what the run itself measured again
    for table in ("cells.jsonl", "epochs.jsonl"):
        real_row, made_row = (json.loads((d / table).read_text().splitlines()[0]) for d in (real, made))
        assert list(made_row) == list(real_row), table


def test_a_worker_started_ahead_waits_ready_until_its_turn_and_files_its_own_log(tmp_path):
    """Start-ups may overlap each other, never a measurement: a ready worker runs nothing before go."""
    from seqbench.worker import start_worker

    log = tmp_path / "numpy.log"
    log.write_text("earlier output\n")
    first = start_worker(_cell("numpy", "rnn", 0), ("numpy",), log)
    second = start_worker(_cell("numpy", "rnn", 1), ("numpy",), log)  # same backend, at the same time
    for child in (first, second):
        child.wait_ready(child.spawned_at + 60)
        assert child.ready and [m["event"] for m in child.backlog] == ["ready"]
    assert [m["event"] for m in first.read(0) or []] == ["ready"]  # the backlog, handed out once
    assert first.read(1.0) == []  # a whole second and nothing after ready: no go yet
    first.go()
    events = []
    while "cell" not in events:
        events += [m["event"] for m in first.read(30) or []]
    assert events[0] == "start"
    first.stop(grace=5)
    first.file_log()
    second.stop()
    second.file_log()
    text = log.read_text()
    assert text.startswith("earlier output\n") and text.count("==== ") == 2  # each worker's output whole
    assert not list(tmp_path.glob(".*.part"))
