"""The command line in this process (fast): usage errors, options anywhere, pipes, bugs, listing."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest

from seqbench.cli import EXIT_BROKEN_PIPE, EXIT_BUG, main
from tests.runfactory import Row, invoke, make_run


def test_help_and_list_import_no_framework_and_no_pandas(plugin_env):
    code = (
        "import sys\nfrom seqbench.cli import main\n"
        "for argv in (['--help'], ['list'], ['run', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'keras', 'pandas', 'matplotlib', 'rich') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=plugin_env)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--backends", "nope"], "unknown backend 'nope'; valid: "),
        (["--backends", "numpy:fast"], "has no implementation 'fast'; valid: reference"),
        (["--models", "cnn"], "unknown model 'cnn'; valid: rnn, lstm, gru"),
        (["--task", "sorting"], "unknown task 'sorting'; valid: adding, arithmetic, digits"),
        (["--device", "tpu"], "unknown device 'tpu'; valid: cpu, gpu, auto"),
        (["--activation", "gelu"], "unknown activation 'gelu'; valid: relu, tanh"),
        (["--epochs", "0"], "--epochs must be positive, got 0"),
        (["--units", "-3"], "--units must be positive, got -3"),
        (["--batch-size", "0"], "--batch-size must be positive, got 0"),
        (["--seeds", "0"], "--seeds must be positive, got 0"),
        (["--epochs", "ten"], "invalid int value: 'ten'"),
        (["-P", "colour=3"], "task 'arithmetic' has no parameter 'colour'"),
        (["-P", "steps=0"], "steps must be positive"),
        (["--backends", "numpy", "--device", "gpu"], "numpy cannot run rnn"),
        (["--timeout", "nan"], "--timeout: must be a finite number above 0"),
        (["--seeds", "1000000000"], "--seeds must be at most 1,000, got 1,000,000,000"),
        (["--seeds", "auto", "--max-seeds", "5000"], "--max-seeds must be at most 1,000"),
        (["--epochs", "99999999999999999999999"], "--epochs must be at most 100,000"),
        (["--threads", "10000"], "--threads must be at most 1,024, got 10,000"),
        (["--layers", "0"], "--layers must be positive, got 0"),
        (["-P", "min_steps=5"], "min_steps must be from 1 to steps (3), got 5"),
        (["--task", "digits", "-P", "min_steps=2"], "task 'digits' has no parameter 'min_steps'"),
        (["--task", "adding", "-P", "steps=10", "-P", "min_steps=1"], "min_steps must be from 2 to steps (10)"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2_and_runs_nothing(tmp_path, args, message):
    result = invoke("run", *args, "--results-dir", str(tmp_path))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("seqbench: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_debug_is_accepted_after_the_command_too(tmp_path):
    result = invoke("report", str(tmp_path), "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr  # --debug shows it
    assert "unrecognized arguments" not in result.stderr
    assert invoke("--debug", "report", str(tmp_path)).returncode == 2
    assert "Traceback" not in invoke("report", str(tmp_path)).stderr
    run = invoke("run", "--debug", "--epochs", "0", "--results-dir", str(tmp_path / "r"))
    assert run.returncode == 2 and "--epochs must be positive" in run.stderr and "Traceback" in run.stderr


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_list_into_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["list"]) == EXIT_BROKEN_PIPE
    assert "Traceback" not in capsys.readouterr().err


def test_list_piped_into_head_in_a_real_pipe():
    head = subprocess.run(f"{sys.executable} -m seqbench list | head -1", shell=True, capture_output=True,
                          text=True)  # fmt: skip
    assert head.stdout.startswith("Backends:") and "Traceback" not in head.stderr


def test_a_bug_is_one_line_and_never_exit_1(monkeypatch, tmp_path):
    run = make_run(tmp_path, "r", [Row()])

    def boom(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr("seqbench.comparison.compare_runs", boom)
    result = invoke("compare", str(run), str(run))
    assert result.returncode == EXIT_BUG != 1  # compare's 1 means "regression" alone
    assert result.stderr.startswith("seqbench: internal error") and len(result.stderr.splitlines()) == 1


def test_list_marks_a_device_not_usable_here_and_names_the_defaults(monkeypatch, capsys):
    import seqbench_torch

    monkeypatch.setattr(seqbench_torch, "_no_cuda_reason", lambda: "no NVIDIA driver found")
    monkeypatch.setenv("SEQBENCH_PLUGINS", "numpy,torch")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "devices: cpu, gpu (not here: no NVIDIA driver found)" in out
    assert "default: rnn loop; lstm loop (relu), fused (tanh)" in out
    assert "default: rnn reference; lstm reference" in out


@pytest.mark.parametrize("age", ["30m", "90min", "2h", "1d", "1w"])
def test_history_since_takes_minutes_hours_days_and_weeks(tmp_path, age):
    import pandas as pd

    now = pd.Timestamp.now(tz="UTC")
    make_run(tmp_path, "old", [Row()], started=(now - pd.Timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S%z"))
    make_run(tmp_path, "new", [Row()], started=(now - pd.Timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S%z"))
    result = invoke("history", str(tmp_path), "--since", age, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert '"run_id": "new"' in result.stdout and '"run_id": "old"' not in result.stdout


@pytest.mark.parametrize("bad", ["30x", "soon", "nat", "99999999999999d", "99999-01-01"])
def test_history_since_rejects_what_it_cannot_read(tmp_path, bad):
    result = invoke("history", str(tmp_path), "--since", bad)
    assert result.returncode == 2 and "--since" in result.stderr


def test_samples_per_second_agrees_with_the_steady_time(tmp_path):
    from seqbench import load_run
    from seqbench.views import cell_view, summary

    run = load_run(make_run(tmp_path, "r", [Row(steady_s=0.005)], noise=0.3, seed=3))
    row = summary(cell_view(run)).iloc[0]
    # each cell ran 1000 samples per epoch: samples/s is 1000 over the very median the steady column shows
    assert row["samples_per_s"] == pytest.approx(1000 / (row["steady_epoch_ms"] / 1e3))


def test_csv_writes_counts_as_integers(tmp_path):
    run = make_run(tmp_path, "r", [Row(params=66689, failed_seeds=(0,))])
    text = invoke("report", str(run), "--format", "csv").stdout
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["params"] == "66689" and row["seeds"] == "3" and row["failed"] == "1"
    history = invoke("history", str(tmp_path), "--format", "csv").stdout
    assert ",66689," in history and "66689.0" not in history


def test_one_epoch_and_a_run_compared_with_itself_are_said_not_accepted_in_silence(tmp_path):
    """--epochs 1 has no steady epochs to rank by; compare R R compares every row with itself: both say so."""
    from tests.runfactory import Row, make_run

    run = make_run(tmp_path, "one-epoch", [Row(), Row(backend="torch", implementation="loop")], epochs=1,
                   config={"epochs": 1})  # fmt: skip
    report = invoke("report", str(run))
    assert report.returncode == 0 and "NO STEADY TIMES: the run trained 1 epoch per cell" in report.stdout
    same = invoke("compare", str(run), str(run))
    assert same.returncode == 0 and "BASE and NEW are the same run (one-epoch)" in same.stdout + same.stderr
    from seqbench.plugins import load_registry
    from seqbench.runner import RunConfig, plan

    notes = plan(RunConfig(backends=("numpy",), epochs=1, seeds=1), load_registry()).notes
    assert any(n.startswith("--epochs 1: steady times come from epochs 2..N") for n in notes)
