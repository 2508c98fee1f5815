"""seqbench compare: the statistics, the verdicts, the exit codes, the warnings."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import seqbench
from seqbench.compare_report import render
from seqbench.comparison import compare_runs
from seqbench.errors import ResultsError
from seqbench.stats import DISTURBED, FASTER, FEW, SAME, SLOWER, UNDECIDED, judge, t_ppf, t_sf
from tests.runfactory import MACHINE, PACKAGES, Row, invoke, make_run

# ------------------------------------------------------------------ statistics over processes


@pytest.mark.parametrize("df", [1, 2, 3.7, 4, 9, 30, 250])
def test_student_t_matches_scipy(df):
    stats = pytest.importorskip("scipy.stats")
    for q in (0.6, 0.9, 0.975, 0.995):
        assert t_ppf(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-7)
    for t in (-4.0, -0.3, 0.0, 1.1, 2.9, 12.0):
        assert t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-8, abs=1e-14)


def _processes(gen, median, spread, n=3):
    """One steady time per worker process: the unit of repetition."""
    return list(median * np.exp(spread * gen.standard_normal(n)))


def test_a_clear_slowdown_beyond_the_threshold_is_called_slower():
    gen = np.random.default_rng(0)
    t = judge(_processes(gen, 5.0, 0.02), _processes(gen, 6.5, 0.02), threshold=0.10)
    assert t.verdict == SLOWER and t.ratio == pytest.approx(1.3, rel=0.05)
    assert 1.10 < t.low <= t.ratio <= t.high and t.p < 0.01 and t.n_base == t.n_new == 3


def test_a_clear_speedup_is_faster_and_equal_processes_are_same():
    gen = np.random.default_rng(1)
    assert judge(_processes(gen, 5.0, 0.02), _processes(gen, 3.5, 0.02), 0.10).verdict == FASTER
    assert judge(_processes(gen, 5.0, 0.01), _processes(gen, 5.0, 0.01), 0.10).verdict == SAME


def test_one_process_a_side_is_never_judged_however_large_the_ratio():
    t = judge([5.0], [10.0], 0.10)
    assert t.ratio == pytest.approx(2.0) and t.verdict == FEW


def test_epochs_that_agree_within_a_process_do_not_hide_variation_between_processes():
    # The first release pooled epochs: 27 samples at +-1% made a 14% process-to-process wobble look
    # like a confident 1.14x regression.  Over processes the same data is undecided.
    base, new = [5.0, 5.6, 4.9], [5.7, 5.0, 5.8]
    t = judge(base, new, threshold=0.10)
    assert t.ratio > 1.05 and t.low < 1.0 < t.high and t.verdict == UNDECIDED


def test_a_disturbed_side_is_said_not_judged_even_when_it_looks_slower():
    t = judge([5.0, 5.1, 4.9], [50.0, 51.0, 49.0], 0.10, disturbed=True)
    assert t.ratio > 9 and t.verdict == DISTURBED


def test_identical_noisy_pairs_almost_never_cry_wolf():
    # 2,000 A/A pairs with 14% variation between processes: the false-regression rate stays
    # within what a 2.5% one-sided interval beyond a 10% threshold allows.
    gen = np.random.default_rng(4)
    verdicts = [judge(_processes(gen, 5, 0.14), _processes(gen, 5, 0.14), 0.10).verdict for _ in range(2000)]
    assert verdicts.count(SLOWER) / len(verdicts) < 0.02


def test_a_thirty_percent_slowdown_is_caught_with_process_noise_of_five_percent():
    gen = np.random.default_rng(5)
    verdicts = [judge(_processes(gen, 5, 0.05, n=5), _processes(gen, 6.5, 0.05, n=5), 0.10).verdict
                for _ in range(500)]  # fmt: skip
    assert verdicts.count(SLOWER) / len(verdicts) > 0.9 and FASTER not in verdicts and SAME not in verdicts


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
    assert rnn["n_base"] == rnn["n_new"] == 3  # one value per process, not 27 pooled epochs
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
    assert "ok -> 2 ok, 1 error" in render(c, "text")


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


def test_disturbed_processes_are_left_out_while_two_clean_ones_remain(tmp_path):
    # one disturbed repeat of three: judged from the two clean ones (here a real 30% slowdown)
    base, new = _pair(tmp_path, [Row(model="rnn", steady_s=0.0065, disturbed_seeds=(1,)),
                                 Row(model="lstm", steady_s=0.008, params=491)])  # fmt: skip
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    rnn = c.table[c.table["model"] == "rnn"].iloc[0]
    assert rnn["verdict"] == "slower" and rnn["regression"] and rnn["new_disturbed"] == 1


def test_disturbed_rows_are_not_regressions_unless_strict(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn", steady_s=0.0065, disturbed_seeds=(1, 2)),
                                 Row(model="lstm", steady_s=0.008, params=491)])  # fmt: skip
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    rnn = c.table[c.table["model"] == "rnn"].iloc[0]
    assert rnn["verdict"] == DISTURBED and not rnn["regression"] and rnn["new_disturbed"] == 2
    result = invoke("compare", str(base), str(new))
    assert result.returncode == 0, result.stdout
    assert "could not be judged (1 disturbed)" in result.stdout and "(2 disturbed)" in result.stdout
    strict = invoke("compare", str(base), str(new), "--strict")
    assert strict.returncode == 1 and "disturbed (--strict)" in strict.stdout


def test_undecided_rows_exit_0_and_say_so_in_words(tmp_path):
    base = make_run(tmp_path, "base", [Row(model="rnn")], seed=1, process_noise=0.3)
    new = make_run(tmp_path, "new", [Row(model="rnn", steady_s=0.0058)], seed=2, process_noise=0.3)
    result = invoke("compare", str(base), str(new))
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    assert c.table.iloc[0]["verdict"] == UNDECIDED and result.returncode == 0
    assert "undecided" in result.stdout and "more --seeds" in result.stdout
    assert invoke("compare", str(base), str(new), "--strict").returncode == 1


def test_different_experiments_are_refused_naming_what_differs(tmp_path):
    base = make_run(tmp_path, "base", [Row(model="rnn")], seed=1)
    new = make_run(tmp_path, "new", [Row(model="rnn", units=32)], seed=2)
    with pytest.raises(ResultsError, match="different experiments .*units 10 -> 32"):
        compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    result = invoke("compare", str(base), str(new))
    assert result.returncode == 2 and "units 10 -> 32" in result.stderr


def test_a_retried_repeat_counts_by_its_undisturbed_attempt(tmp_path):
    base, new = _pair(tmp_path, [Row(model="rnn", disturbed_seeds=(0,)), Row(model="lstm", steady_s=0.008,
                                                                              params=491)])  # fmt: skip
    # the runner measured seed 0 again, undisturbed: that attempt replaces the disturbed one
    rows = [json.loads(line) for line in (new / "cells.jsonl").read_text().splitlines()]
    again = dict(next(r for r in rows if r["model"] == "rnn" and r["seed"] == 0))
    again.update(attempt=2, disturbed=False, interference=0.0)
    with open(new / "cells.jsonl", "a") as f:
        f.write(json.dumps(again) + "\n")
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    rnn = c.table[c.table["model"] == "rnn"].iloc[0]
    assert rnn["verdict"] == SAME and rnn["n_new"] == 3 and rnn["new_disturbed"] == 0


def _pr_comment(tmp_path):
    rows = [Row(backend="numpy", model="rnn", steady_s=0.0025), Row(backend="numpy", model="lstm", steady_s=0.004),
            Row(backend="torch", implementation="loop", model="lstm", steady_s=0.011)]
    slow = [Row(backend=r.backend, implementation=r.implementation, model=r.model,
                steady_s=r.steady_s * (3.69 if r.backend == "torch" else 1.0)) for r in rows]
    base = make_run(tmp_path, "base", rows, process_noise=0.02, seed=1)
    new = make_run(tmp_path, "new", slow, process_noise=0.02, seed=2)
    c = compare_runs(seqbench.load_run(base), seqbench.load_run(new))
    return c, render(c, "md")


def test_pr_comment_leads_with_a_compact_table_verdict_first_every_column_named(tmp_path):
    _, md = _pr_comment(tmp_path)
    compact, details = [block.splitlines() for block in md.split("\n\n") if block.startswith("|")]
    assert compact[0] == "| verdict | backend | model | new/base (95% CI) | accuracy change |"
    assert compact[2].startswith("| REGRESSION: slower x3.") and "torch:loop/cpu | lstm" in compact[2]  # worst first
    for table in (compact, details):
        assert all(name.strip() for name in table[0].strip("|").split("|"))  # no nameless column
    ratios = re.findall(r"\| (\d+\.\d+) \((\d+\.\d+)-(\d+\.\d+)\) \|", md)
    assert len(ratios) == 3 and all(len(x.split(".")[1]) == 3 for r in ratios for x in r)  # three decimals
    p_values = [line.split("|")[6].strip() for line in details[2:]]
    assert all(re.fullmatch(r"<0\.001|\d\.\d{3}", p.replace("\\", "")) for p in p_values), p_values
    assert md.index("<details>") < md.index(details[0]) < md.index("</details>")
    assert "- experiment 1: arithmetic, units=10" in md


def test_pr_comment_sums_up_with_the_geometric_mean_of_the_ratios(tmp_path):
    from seqbench.comparison import geometric_mean_ratio

    c, md = _pr_comment(tmp_path)
    g, n = geometric_mean_ratio(c)
    ratios = c.table["ratio"].dropna().to_numpy(float)
    assert n == 3 and g == pytest.approx(float(np.prod(ratios)) ** (1 / 3))
    assert f"geometric mean of new/base over 3 matched rows: {g:.3f} ({g - 1:.1%} slower)" in md
