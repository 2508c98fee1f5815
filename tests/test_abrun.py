"""A/B in one run: the ABBA schedule, environments recorded and refused, paired verdicts, adaptive repeats,
and the re-measurement budget."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

import seqbench
from seqbench.errors import UsageError
from seqbench.plugins import load_registry
from seqbench.results import CellConfig, CellRecord
from seqbench.runner import RunConfig, interleave, plan, undecided_rows
from seqbench.stats import SLOWER, UNDECIDED, judge, judge_paired
from seqbench.worker import PROTOCOL, probe_env
from tests.runfactory import invoke

REPO = Path(__file__).resolve().parent.parent
BENCH_PLUGINS = REPO / "benchmarks" / "plugins"  # the "slowed" backend: NumPy plus injected CPU work


def _cell(backend, model, seed):
    return CellConfig("arithmetic", model, backend, "x", "cpu", seed, 10, "relu", 2, 32, 1, {})


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _wrapper(path: Path, **variables: str) -> str:
    """An environment as a user writes one: a script that sets variables and execs Python."""
    exports = "".join(f"export {k}='{v}'\n" for k, v in variables.items())
    return _script(path, f'{exports}exec "{sys.executable}" "$@"\n')


# ------------------------------------------------------------------ schedule


def test_a_and_b_of_a_row_and_seed_run_side_by_side_in_abba_order():
    rows = [[_cell(b, "rnn", s) for s in range(4)] for b in ("numpy", "torch")]
    order = [(c.backend, c.seed, c.env) for c in interleave(rows, ["base", "head"])]
    assert order[:4] == [("numpy", 0, "base"), ("numpy", 0, "head"), ("torch", 0, "base"), ("torch", 0, "head")]
    assert order[4:8] == [("numpy", 1, "head"), ("numpy", 1, "base"), ("torch", 1, "head"), ("torch", 1, "base")]
    numpy = [env for backend, _, env in order if backend == "numpy"]
    assert numpy == ["base", "head", "head", "base", "base", "head", "head", "base"]  # ABBA: linear drift cancels


def test_the_plan_of_an_ab_run_has_every_cell_in_every_environment(monkeypatch):
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    config = RunConfig(backends=("numpy",), models=("rnn",), seeds=2, envs={"a": "python", "b": "python"})
    cells = plan(config, load_registry()).cells
    assert [(c.seed, c.env) for c in cells] == [(0, "a"), (0, "b"), (1, "b"), (1, "a")]


def test_an_ab_run_records_both_environments_and_compare_judges_them_paired(tmp_path, monkeypatch):
    """Real workers in two real environments; B is 60% slower, and the paired gate says so."""
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy,slowed")
    monkeypatch.syspath_prepend(str(BENCH_PLUGINS))  # the parent plans with it, the workers import it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(BENCH_PLUGINS), os.environ.get("PYTHONPATH")])))
    a = _wrapper(tmp_path / "a.sh", SEQBENCH_BENCH_SLOWDOWN="0")
    b = _wrapper(tmp_path / "b.sh", SEQBENCH_BENCH_SLOWDOWN="0.6")
    result = invoke("run", "--backends", "slowed", "--models", "rnn", "--epochs", "6", "--seeds", "4",
                    "--no-calibration", "--env", f"base={a}", "--env", f"head={b}", "--results-dir",
                    str(tmp_path / "r"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    meta = json.loads((run_dir / "run.json").read_text())
    assert list(meta["envs"]) == ["base", "head"] and meta["envs"]["head"]["executable"] == b
    assert meta["envs"]["base"]["protocol"] == PROTOCOL and meta["envs"]["base"]["packages"]["numpy"]
    run = seqbench.load_run(run_dir)
    assert sorted(run.cells["env"]) == ["base"] * 4 + ["head"] * 4
    assert "environment head:" in result.stdout and "@head" in result.stdout
    compared = invoke("compare", str(run_dir), "--base", "base", "--new", "head", "--format", "json")
    doc = json.loads(compared.stdout)
    if compared.returncode == 0 and "disturbed" in doc["summary"]:  # the gate rightly declines to judge
        pytest.skip(f"the machine was too busy for real workers to be judged: {doc['summary']}")
    assert compared.returncode == 1, compared.stdout + compared.stderr
    row = doc["rows"][0]
    assert doc["paired"] is True and row["verdict"] == SLOWER and 2 <= row["n_base"] <= 4  # disturbed pairs left out
    same = invoke("compare", str(run_dir), "--base", "base", "--new", "base")
    assert same.returncode == 2 and "same environment" in same.stderr


def test_compare_of_one_run_without_environments_says_what_to_give(tmp_path):
    from tests.runfactory import Row, make_run

    run = make_run(tmp_path, "one", [Row()])
    result = invoke("compare", str(run))
    assert result.returncode == 2 and "--base ENV --new ENV (it is not an A/B run)" in result.stderr
    named = invoke("compare", str(run), "--base", "x", "--new", "y")
    assert named.returncode == 2 and "no environment 'x'" in named.stderr


# ------------------------------------------------------------------ protocol


def test_an_environment_that_speaks_another_protocol_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    hello = json.dumps({"protocol": PROTOCOL + 7, "seqbench_version": "9.9.9"})
    other = _script(tmp_path / "other.sh", f"echo '{hello}'\n")
    results = tmp_path / "results"
    result = invoke("run", "--backends", "numpy", "--models", "rnn", "--seeds", "1", "--no-calibration",
                    "--env", f"base={sys.executable}", "--env", f"head={other}", "--results-dir", str(results))
    assert result.returncode == 2
    assert f"its seqbench 9.9.9 speaks worker protocol {PROTOCOL + 7}" in result.stderr
    assert f"speaks worker protocol {PROTOCOL}" in result.stderr and "'head'" in result.stderr
    assert not results.exists()  # refused before the run directory, let alone a cell


def test_an_environment_with_a_seqbench_before_the_handshake_is_named_as_protocol_1(tmp_path):
    # an older seqbench: its worker has no --hello (argparse exits 2), but its version can be read
    old = _script(tmp_path / "old.sh", 'case "$*" in *--hello*) exit 2;; *) echo 0.2.0;; esac\n')
    with pytest.raises(UsageError, match=r"its seqbench 0\.2\.0 speaks worker protocol 1 \(no --hello\)"):
        probe_env("base", old, ["numpy"])
    with pytest.raises(UsageError, match="cannot be started"):
        probe_env("base", str(tmp_path / "missing"), ["numpy"])


def test_the_worker_refuses_a_request_of_another_protocol(tmp_path):
    import subprocess

    read_fd, write_fd = os.pipe()
    request = {"protocol": 1, "cell": {"task": "arithmetic", "model": "rnn", "backend": "numpy"}}
    proc = subprocess.run([sys.executable, "-m", "seqbench.worker", "--fd", str(write_fd)], pass_fds=(write_fd,),
                          input=json.dumps(request).encode() + b"\n", capture_output=True, timeout=120)
    os.close(write_fd)
    lines = os.read(read_fd, 1 << 16).decode().splitlines()
    os.close(read_fd)
    assert proc.returncode == 0
    last = json.loads(lines[-1])["record"]
    assert last["status"] == "error" and f"this worker (seqbench {seqbench.__version__}) speaks {PROTOCOL}" in last[
        "error"]


# ------------------------------------------------------------------ paired statistics


def test_a_constant_ratio_under_strong_common_drift_is_found_paired_and_missed_unpaired():
    gen = np.random.default_rng(3)
    drift = np.linspace(1.0, 2.0, 8) * (1 + 0.3 * gen.standard_normal(8)).clip(0.5)  # load moves every pair
    base = list(0.010 * drift * (1 + 0.01 * gen.standard_normal(8)))
    new = list(0.010 * 1.2 * drift * (1 + 0.01 * gen.standard_normal(8)))  # B is 20% slower in every pair
    paired = judge_paired(list(zip(base, new, strict=True)), threshold=0.10)
    unpaired = judge(base, new, threshold=0.10)
    assert paired.verdict == SLOWER and paired.ratio == pytest.approx(1.2, rel=0.02)
    assert unpaired.verdict == UNDECIDED and unpaired.low < 1.0


def test_a_paired_interval_needs_two_pairs():
    assert judge_paired([(1.0, 1.5)], 0.1).verdict == "too few processes"
    assert judge_paired([], 0.1).verdict == "n/a"
    assert math.isnan(judge_paired([(1.0, float("nan"))], 0.1).ratio)


# ------------------------------------------------------------------ adaptive repeats and the budget


def _fake(monkeypatch, steady):
    """Replace the worker: ``steady(cell)`` gives each cell's steady time (and ``disturbed`` on a tuple)."""
    import seqbench.runner as runner

    calls = []

    def fake_worker(cell, plugins, timeout, startup_timeout, log, callbacks, executable=None, child=None):
        calls.append(cell)
        value = steady(cell)
        value, disturbed = value if isinstance(value, tuple) else (value, False)
        return CellRecord(task=cell.task, model=cell.model, backend=cell.backend, implementation=cell.implementation,
                          device=cell.device, seed=cell.seed, env=cell.env, status="ok", steady_epoch_s=value,
                          attempt=cell.attempt, units=cell.units, activation=cell.activation, epochs=cell.epochs,
                          batch_size=cell.batch_size, threads=cell.threads, task_params=dict(cell.task_params),
                          disturbed=disturbed, wait_share=0.4 if disturbed else 0.0)  # fmt: skip

    monkeypatch.setattr(runner, "run_in_worker", fake_worker)
    monkeypatch.setattr(runner, "start_worker", lambda *args: None)  # no process
    monkeypatch.setattr(runner, "probe_env", lambda name, exe, packages: {"executable": exe, "protocol": PROTOCOL})
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy")
    return calls


def test_adaptive_repeats_stop_early_when_every_row_is_decided(tmp_path, monkeypatch):
    calls = _fake(monkeypatch, lambda cell: 0.010 * (1.3 if cell.env == "head" else 1.0))
    result = invoke("run", "--backends", "numpy", "--models", "rnn,lstm", "--seeds", "auto", "--no-calibration",
                    "--env", "base=python", "--env", "head=python", "--results-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(calls) == 2 * 2 * 3  # 3 pairs per row decided it: nothing added
    assert "every row decided" in result.stderr


def test_an_ab_run_decides_by_default_and_a_run_of_one_keeps_three_seeds(tmp_path, monkeypatch):
    _fake(monkeypatch, lambda cell: 0.010)
    ab = invoke("run", "--backends", "numpy", "--models", "rnn", "--no-calibration", "--env", "a=python",
                "--env", "b=python", "--results-dir", str(tmp_path / "ab"))  # fmt: skip
    one = invoke("run", "--backends", "numpy", "--models", "rnn", "--no-calibration", "--results-dir",
                 str(tmp_path / "one"))  # fmt: skip
    assert ab.returncode == 0 and one.returncode == 0, ab.stderr + one.stderr
    config = {name: json.loads(next((tmp_path / name).iterdir()).joinpath("run.json").read_text())["config"]
              for name in ("ab", "one")}  # fmt: skip
    assert config["ab"]["adaptive"] is True and config["one"]["adaptive"] is False and config["one"]["seeds"] == 3


def test_adaptive_repeats_stop_at_the_cap(tmp_path, monkeypatch):
    noise = np.random.default_rng(0)
    calls = _fake(monkeypatch, lambda cell: 0.010 * float(np.exp(0.5 * noise.standard_normal())))
    result = invoke("run", "--backends", "numpy", "--models", "rnn", "--seeds", "auto", "--max-seeds", "6",
                    "--no-calibration", "--env", "base=python", "--env", "head=python", "--results-dir",
                    str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted({c.seed for c in calls}) == [0, 1, 2, 3, 4, 5] and len(calls) == 12
    assert [c.env for c in calls if c.seed == 3] == ["head", "base"]  # added pairs keep the ABBA order
    meta = json.loads((next(tmp_path.iterdir()) / "run.json").read_text())
    assert meta["adaptive"]["repeats_added"] == 3 and meta["adaptive"]["undecided"] == ["numpy:reference/cpu rnn"]
    assert meta["cells_planned"] == 12 and "still undecided at --max-seeds 6" in result.stderr


def test_a_run_of_one_environment_adds_repeats_until_its_times_are_precise(monkeypatch):
    row = _cell("numpy", "rnn", 0)

    def record(seed, value):
        cell = CellConfig(**{**vars(row), "seed": seed})
        return cell, CellRecord(**cell.repeat_fields(), status="ok", steady_epoch_s=value)

    steady = [record(s, 0.010 * (1 + 0.001 * s)) for s in range(3)]
    noisy = [record(s, v) for s, v in enumerate([0.010, 0.016, 0.008])]
    assert undecided_rows([row], steady, [], 0.10) == []
    assert undecided_rows([row], noisy, [], 0.10) == [row]


def test_re_measurement_stays_within_half_the_planned_processes(tmp_path, monkeypatch):
    calls = _fake(monkeypatch, lambda cell: (0.010, True))  # every measurement waits for a CPU
    result = invoke("run", "--backends", "numpy", "--models", "rnn,lstm", "--seeds", "3", "--no-calibration",
                    "--results-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(calls) == 6 + 3  # 6 planned, and at most half of that again
    meta = json.loads((next(tmp_path.iterdir()) / "run.json").read_text())
    assert meta["retries_run"] == 3 and meta["remeasured"]["left_disturbed"] == 6
    assert "re-measured 3 repeat(s) (3 processes, budget 3)" in result.stderr


def test_an_ab_pair_is_measured_again_together(tmp_path, monkeypatch):
    calls = _fake(monkeypatch, lambda cell: (0.010, cell.attempt == 1 and cell.seed == 1 and cell.env == "head"))
    result = invoke("run", "--backends", "numpy", "--models", "rnn", "--seeds", "2", "--no-calibration",
                    "--env", "base=python", "--env", "head=python", "--results-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [(c.seed, c.env, c.attempt) for c in calls] == [(0, "base", 1), (0, "head", 1), (1, "head", 1),
                                                           (1, "base", 1), (1, "head", 2), (1, "base", 2)]
    assert "(with its A/B pair)" in result.stderr
    run = seqbench.load_run(next(tmp_path.iterdir()))
    assert len(run.cells) == 4 and set(run.cells[run.cells["seed"] == 1]["attempt"]) == {2}
    assert len(run.attempts) == 6


def test_another_environment_never_imports_the_seqbench_of_the_working_directory(tmp_path, monkeypatch):
    # a checkout's own package next to where the run starts: `python -m` would put it first on the path
    fake = tmp_path / "seqbench"
    fake.mkdir()
    (fake / "__init__.py").write_text("__version__ = 'checkout'\n")
    (fake / "worker.py").write_text("print('{\"protocol\": 99, \"seqbench_version\": \"checkout\"}')\n")
    monkeypatch.chdir(tmp_path)
    other = _wrapper(tmp_path / "env.sh")
    facts = probe_env("base", other, ["numpy"])
    assert facts["protocol"] == PROTOCOL and facts["seqbench_version"] == seqbench.__version__


def test_the_shards_of_an_ab_run_merge_into_one_that_compare_judges_paired(tmp_path, monkeypatch):
    _fake(monkeypatch, lambda cell: 0.010 * (1.5 if cell.env == "head" else 1.0) * (1 + 0.01 * cell.seed))
    for shard in ("1/2", "2/2"):
        result = invoke("run", "--backends", "numpy", "--models", "rnn,lstm", "--seeds", "3", "--no-calibration",
                        "--env", "base=python", "--env", "head=python", "--shard", shard, "--results-dir",
                        str(tmp_path / "shards"))  # fmt: skip
        assert result.returncode == 0, result.stderr
    merged = invoke("merge", *map(str, (tmp_path / "shards").iterdir()), "-o", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr
    assert list(json.loads((tmp_path / "merged" / "run.json").read_text())["envs"]) == ["base", "head"]
    compared = invoke("compare", str(tmp_path / "merged"), "--format", "json")  # two environments: base, head
    doc = json.loads(compared.stdout)
    assert compared.returncode == 1 and doc["envs"] == ["base", "head"]
    assert [r["verdict"] for r in doc["rows"]] == [SLOWER, SLOWER]
