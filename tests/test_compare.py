"""seqbench compare: the statistics, the verdicts, the exit codes, the warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest

import seqbench
from seqbench.compare import FEW, SAME, SLOWER, UNCLEAR, compare_runs, judge_times, mann_whitney_p, render
from seqbench.errors import ResultsError
from tests.runfactory import MACHINE, PACKAGES, Row, invoke, make_run

# ------------------------------------------------------------------ statistics


@pytest.mark.parametrize("sizes", [(3, 3), (4, 5), (9, 9), (27, 27)])
def test_mann_whitney_matches_scipy_exact(sizes):
    stats = pytest.importorskip("scipy.stats")
    gen = np.random.default_rng(sum(sizes))
    a, b = gen.standard_normal(sizes[0]), gen.standard_normal(sizes[1]) + 0.7
    expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
    assert mann_whitney_p(a, b) == pytest.approx(expected, rel=1e-9)


def test_mann_whitney_with_ties_matches_scipy_asymptotic():
    stats = pytest.importorskip("scipy.stats")
    gen = np.random.default_rng(3)
    a, b = np.round(gen.standard_normal(30), 1), np.round(gen.standard_normal(25) + 0.4, 1)
    expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
    assert mann_whitney_p(a, b) == pytest.approx(expected, rel=1e-9)


def _seeds(gen, median, spread, seeds=3, epochs=9):
    return [median * (1 + spread * gen.standard_normal(epochs)) for _ in range(seeds)]


def test_a_clear_slowdown_beyond_the_threshold_is_called_slower():
    gen = np.random.default_rng(0)
    t = judge_times(_seeds(gen, 5.0, 0.01), _seeds(gen, 6.0, 0.01), threshold=0.10)
    assert t.verdict == SLOWER and t.ratio == pytest.approx(1.2, rel=0.02)
    assert 1.10 < t.low <= t.ratio <= t.high and t.p < 0.001 and t.n_base == t.n_new == 27


def test_a_small_real_change_within_the_threshold_is_same():
    gen = np.random.default_rng(1)
    t = judge_times(_seeds(gen, 5.0, 0.01), _seeds(gen, 5.2, 0.01), threshold=0.10)
    assert t.verdict == SAME and t.p < 0.001  # significant, but within the threshold


def test_tiny_samples_are_never_a_regression_however_large_the_ratio():
    gen = np.random.default_rng(2)
    t = judge_times(_seeds(gen, 5.0, 0.01, seeds=1, epochs=2), _seeds(gen, 10.0, 0.01, seeds=1, epochs=2), 0.10)
    assert t.ratio > 1.9 and t.verdict == FEW


def test_a_slowdown_that_only_some_seeds_show_is_unclear_not_slower():
    wobble = np.array([0.0, 0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.0])
    base = [5.0 + wobble, 5.0 + wobble, 5.0 + wobble]
    new = [5.0 + wobble, 6.5 + wobble, 6.5 + wobble]  # pooled epochs: clearly slower; seeds: not all of them
    t = judge_times(base, new, threshold=0.10)
    assert t.ratio == pytest.approx(1.3, rel=0.01) and t.p < 0.001
    assert t.low < 1.05 and t.verdict == UNCLEAR  # resampling seeds widens the interval: no regression


def test_noise_as_large_as_the_change_is_not_a_regression():
    gen = np.random.default_rng(4)
    verdicts = {judge_times(_seeds(gen, 5, 0.4, epochs=4), _seeds(gen, 6, 0.4, epochs=4), 0.10, seed=i).verdict
                for i in range(20)}  # fmt: skip
    assert SLOWER not in verdicts


# ------------------------------------------------------------------ comparing runs


def _pair(tmp_path, new_rows, base_rows=None, **new_kwargs):
    base_rows = base_rows or [Row(model="rnn"), Row(model="lstm", steady_s=0.008, params=491)]
    base = make_run(tmp_path, "base", base_rows, seed=1)
    new = make_run(tmp_path, "new", new_rows, seed=2, **new_kwargs)
    return base, new


def test_equal_runs_have_no_regression_and_exit_0(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn"), Row(model="lstm", steady_s=0.008, params=491)])
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    assert c.exit_code == 0 and list(c.table["verdict"]) == [SAME, SAME]
    assert c.warnings == []
    result = invoke("compare", str(base), str(new))
    assert result.returncode == 0 and "no regression in 2 matched rows" in result.stdout


def test_a_slower_cell_is_a_regression_and_exit_1(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn", steady_s=0.0065), Row(model="lstm", steady_s=0.008, params=491)])
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    rnn = c.table[c.table["model"] == "rnn"].iloc[0]
    assert rnn["verdict"] == SLOWER and rnn["regression"] and rnn["ratio"] == pytest.approx(1.3, rel=0.02)
    assert c.table[c.table["model"] == "lstm"].iloc[0]["verdict"] == SAME
    result = invoke("compare", str(base), str(new))
    assert result.returncode == 1
    assert "REGRESSION: slower x1.3" in result.stdout and "REGRESSION in 1 of 2 matched rows" in result.stdout


def test_the_threshold_option_decides(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn", steady_s=0.0065), Row(model="lstm", steady_s=0.008, params=491)])
    assert invoke("compare", str(base), str(new), "--threshold", "50%").returncode == 0
    assert invoke("compare", str(base), str(new), "--threshold", "0.2").returncode == 1


def test_an_accuracy_drop_beyond_the_tolerance_is_a_regression(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn", accuracy=[0.3, 0.6, 0.7]),
                                 Row(model="lstm", steady_s=0.008, params=491)])  # fmt: skip
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    rnn = c.table[c.table["model"] == "rnn"].iloc[0]
    assert rnn["accuracy_change"] == pytest.approx(-0.2) and "accuracy -0.200" in rnn["reasons"]
    assert c.exit_code == 1
    assert compare_runs(seqbench.load_run(base), seqbench.load_run(new), accuracy_tolerance=0.25).exit_code == 0


def test_a_newly_failing_cell_is_a_regression(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn", failed_seeds=(1,)), Row(model="lstm", steady_s=0.008, params=491)])
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    rnn = c.table[c.table["model"] == "rnn"].iloc[0]
    assert rnn["newly_failed"] == "1" and rnn["new_status"] == "2 ok, 1 error" and c.exit_code == 1
    assert "3 ok -> 2 ok, 1 error" in render(c, "text")


def test_parameter_change_and_unmatched_rows_are_reported_not_failed(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn", params=141), Row(model="lstm", steady_s=0.008, params=491,
                                                                   backend="other")])  # fmt: skip
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    assert c.exit_code == 0
    assert set(c.table["match"]) == {"matched", "only in BASE", "only in NEW"}
    text = render(c, "text")
    assert "131 -> 141" in text and "parameter count changed 131 -> 141" in text


def test_two_runs_with_no_matching_cells_say_so_and_exit_2(tmp_path):
    base, new = _pair(tmp_path, [Row(backend="torch", implementation="cell")])
    with pytest.raises(ResultsError, match="no cells match"):
        compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    result = invoke("compare", str(base), str(new))
    assert result.returncode == 2 and "no cells match" in result.stderr


def test_different_machines_and_library_versions_are_warned_loudly(tmp_path):
    other = MACHINE | {"cpu": "Other CPU 9000", "hostname": "box-b"}
    base, new = _pair(tmp_path, [Row(model="rnn"), Row(model="lstm", steady_s=0.008, params=491)],
                      machine=other, packages=PACKAGES | {"numpy": "2.5.0"})  # fmt: skip
    result = invoke("compare", str(base), str(new))
    assert result.returncode == 0
    assert "WARNING: different machines: cpu Test CPU 3000 -> Other CPU 9000" in result.stdout
    assert "WARNING: different library versions: numpy 2.4.6 -> 2.5.0" in result.stdout
    md = invoke("compare", str(base), str(new), "--format", "md")
    assert "> **Warning:** different machines" in md.stdout and "WARNING: different machines" in md.stderr
    doc = json.loads(invoke("compare", str(base), str(new), "--format", "json").stdout)
    assert any("different library versions" in w for w in doc["warnings"]) and doc["regression"] is False


def test_normalize_compares_in_calibration_units(tmp_path):
    # NEW ran on a machine that is 1.5x slower at everything: its calibration says so too.
    base, new = _pair(tmp_path, [Row(model="rnn", steady_s=0.0075), Row(model="lstm", steady_s=0.012, params=491)],
                      calibration_s=0.015, machine=MACHINE | {"cpu": "Slow CPU"})  # fmt: skip
    assert invoke("compare", str(base), str(new)).returncode == 1
    result = invoke("compare", str(base), str(new), "--normalize")
    assert result.returncode == 0 and "base cal" in result.stdout, result.stdout
    assert "calibration workload took 1.50x" in result.stdout


def test_a_partial_new_run_is_compared_with_a_warning(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn")], status="interrupted", planned=6)
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    assert any("NEW is partial" in w for w in c.warnings) and c.exit_code == 0
    assert c.table[c.table["model"] == "lstm"].iloc[0]["match"] == "only in BASE"


def test_a_busy_machine_is_named_when_the_hardware_is_the_same(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn"), Row(model="lstm", steady_s=0.008, params=491)],
                      calibration_s=0.02)  # fmt: skip
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    assert any("on the same hardware: the machine was busier" in w for w in c.warnings)
