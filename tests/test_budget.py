"""Sizes that cannot fit are refused in milliseconds, naming the parameter; bad numbers are exit 2."""

from __future__ import annotations

import pytest

from seqbench.budget import check_memory, estimate
from seqbench.errors import UsageError
from seqbench.tasks import ArithmeticTask
from tests.runfactory import invoke

GB = 1024**3


def test_the_seed_run_fits_easily():
    need = estimate(ArithmeticTask(), {}, 10, 32, ("rnn", "lstm"))
    assert need.total < 10 * 1024**2
    check_memory(ArithmeticTask(), {}, 10, 32, ("rnn", "lstm"), total=1 * GB)


@pytest.mark.parametrize(
    "params,units,batch,named",
    [
        ({"samples": 1_000_000_000}, 10, 32, "-P samples=1000000000"),
        ({"steps": 10_000_000}, 10, 32, "-P steps=10000000"),
        ({}, 1_000_000, 32, "--units 1000000"),
        ({"samples": 10_000_000}, 10, 100_000_000, "--batch-size 100000000"),
    ],
)
def test_a_size_that_cannot_fit_names_its_parameter(params, units, batch, named):
    expected = f"^{named}: a cell would need about .* more than 50% of this machine's 8.0 GB"
    with pytest.raises(UsageError, match=expected):
        check_memory(ArithmeticTask(), params, units, batch, ("lstm",), total=8 * GB)


def test_the_cli_refuses_a_billion_samples_before_making_any_data(tmp_path, monkeypatch):
    monkeypatch.setattr("seqbench.budget.memory_total", lambda: 8 * GB)
    monkeypatch.setattr(ArithmeticTask, "make", lambda *a, **k: pytest.fail("made the data"))
    result = invoke("run", "--backends", "numpy", "-P", "samples=1000000000", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "-P samples=1000000000: a cell would need about" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e12", "0", "-5", "ten"])
def test_timeout_must_be_finite_and_sane(tmp_path, value):
    result = invoke("run", "--backends", "numpy", "--timeout", value, "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "--timeout" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--threshold", "--accuracy-tolerance"])
@pytest.mark.parametrize("value", ["nan", "NaN%", "inf", "-0.1", "1e9", "ten"])
def test_compare_thresholds_must_be_finite_and_sane(tmp_path, option, value):
    result = invoke("compare", str(tmp_path), str(tmp_path), option, value)
    assert result.returncode == 2 and option in result.stderr and "Traceback" not in result.stderr


def test_compare_help_says_95_percent_once(capsys):
    from seqbench.cli import main

    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the description anywhere
    assert "95% interval" in out and "%%" not in out
