"""Analytic FLOPs per epoch, GFLOP/s and the matmul peak measurement."""

from __future__ import annotations

import pytest

from seqbench.contract import ModelSpec
from seqbench.efficiency import (
    epoch_flops,
    gflops_per_s,
    head_flops,
    measure_matmul_peak,
    recurrent_flops,
    share_of_peak,
)
from seqbench.errors import SeqbenchError


def test_the_larger_lstm_configuration_is_162_gflop_per_epoch_as_design_md_says():
    spec = ModelSpec("lstm", 128, steps=50, features=1, activation="tanh")
    assert recurrent_flops(spec, 8192) == 3 * 8192 * 50 * 2 * 4 * 128 * 129
    assert epoch_flops(spec, 8192) / 1e9 == pytest.approx(162.3, abs=0.1)


@pytest.mark.parametrize("kind,gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_flops_scale_with_the_kinds_gates_and_the_head_with_its_outputs(kind, gates):
    spec = ModelSpec(kind, 16, steps=10, features=8, head="classification", outputs=10)
    assert recurrent_flops(spec, 100) == 3 * 100 * 10 * 2 * gates * 16 * (8 + 16)
    assert head_flops(spec, 100) == 3 * 100 * 2 * 16 * 10


def test_rates_and_shares_are_none_without_a_time_or_a_peak():
    assert gflops_per_s(2e9, 0.5) == 4.0
    assert gflops_per_s(2e9, None) is None and gflops_per_s(2e9, 0.0) is None
    assert share_of_peak(50.0, 200.0) == 0.25
    assert share_of_peak(None, 200.0) is None and share_of_peak(50.0, None) is None


def test_matmul_peak_is_measured_in_a_subprocess_and_is_a_positive_rate():
    peak = measure_matmul_peak(1, size=64, seconds=0.0)
    assert isinstance(peak, float) and peak > 0


def test_a_failed_peak_measurement_is_a_seqbench_error(monkeypatch):
    import seqbench.efficiency as efficiency

    monkeypatch.setattr(efficiency, "_PEAK_SCRIPT", "raise SystemExit('no BLAS here')")
    with pytest.raises(SeqbenchError, match="no BLAS here"):
        measure_matmul_peak(1, size=8, seconds=0.0)
    with pytest.raises(ValueError):
        measure_matmul_peak(0)
