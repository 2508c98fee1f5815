"""The adding problem, the digits, arithmetic's scaling, the metrics table and the scores the harness records."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from seqbench_numpy import NumpyBackend

from seqbench.contract import ModelSpec
from seqbench.efficiency import epoch_flops
from seqbench.errors import UsageError
from seqbench.harness import model_spec, run_cell
from seqbench.results import CellConfig
from seqbench.tasks import METRICS, AddingTask, ArithmeticTask, DigitsTask, TaskData, primary_metric, score

has_sklearn = importlib.util.find_spec("sklearn") is not None


def test_adding_problem_has_two_markers_one_per_half_and_sums_their_values():
    data = AddingTask().make(0, steps=20, samples=500, test_samples=50)
    x, y = data.x_train, data.y_train
    assert x.shape == (500, 20, 2) and x.dtype == np.float32 and y.shape == (500,)
    values, markers = x[:, :, 0], x[:, :, 1]
    assert values.min() >= 0 and values.max() <= 1
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers[:, :10].sum(axis=1), 1)
    np.testing.assert_array_equal(markers[:, 10:].sum(axis=1), 1)
    np.testing.assert_allclose(y, (values * markers).sum(axis=1), rtol=1e-6)
    assert data.probe_y == pytest.approx(1.1) and data.probe_x.shape == (1, 20, 2)
    np.testing.assert_array_equal(AddingTask().make(0, steps=20, samples=500).x_train, x)


def test_adding_problem_trivial_baseline_is_one_sixth():
    task = AddingTask()
    data = task.make(1, steps=10, samples=2000, test_samples=4000)
    scores = score(task, data, lambda x: np.full(len(x), 1.0))
    assert scores.primary == "mse" and scores.higher_is_better is False
    assert scores.baseline == pytest.approx(1 / 6, abs=0.01)
    assert scores.metrics["mse"] == pytest.approx(1 / 6, abs=0.01)


def test_adding_problem_refuses_too_short_sequences():
    with pytest.raises(ValueError, match="steps >= 2"):
        AddingTask().make(0, steps=1)


def test_arithmetic_scale_divides_inputs_and_targets_but_metrics_stay_in_integers():
    task = ArithmeticTask()
    plain, scaled = task.make(0), task.make(0, scale=100)
    np.testing.assert_allclose(scaled.x_train * 100, plain.x_train, rtol=1e-6)
    np.testing.assert_allclose(scaled.y_train * 100, plain.y_train, rtol=1e-6)
    assert scaled.target_scale == 100 and plain.target_scale == 1
    # a model off by 0.004 in scaled units is off by 0.4 in the task's: still right
    s = score(task, scaled, lambda x: x[:, -1, 0] + 0.006)
    assert s.metrics["accuracy"] == 1.0 and s.metrics["mse"] == pytest.approx(0.16, rel=1e-3)
    assert s.probe_target == pytest.approx(13) and s.probe_prediction == pytest.approx(12.6, rel=1e-4)


def test_every_metric_has_a_direction_and_tasks_name_only_known_metrics():
    for task in (ArithmeticTask(), AddingTask(), DigitsTask()):
        assert set(task.metric_names) <= set(METRICS)
        assert task.primary_metric in task.metric_names
    assert primary_metric(AddingTask()) == ("mse", False)
    assert primary_metric(ArithmeticTask()) == ("accuracy", True)

    class Legacy:  # a plugin task written before 0.2 declares nothing
        pass

    assert primary_metric(Legacy()) == ("accuracy", True)  # type: ignore[arg-type]


def test_classification_accuracy_is_the_argmax_and_the_baseline_the_majority_class():
    y = np.array([0, 1, 1, 2], np.float32)
    data = TaskData(np.zeros((4, 2, 1), np.float32), y, np.zeros((4, 2, 1), np.float32), y,
                    np.zeros((1, 2, 1), np.float32), 2.0, head="classification", outputs=3)  # fmt: skip
    task = DigitsTask()
    logits = np.array([[3, 0, 0], [0, 2, 1], [1, 0, 0], [0, 0, 5]], np.float32)
    s = score(task, data, lambda x: logits[: len(x)])
    assert s.metrics["accuracy"] == 0.75 and s.baseline == 0.5
    assert s.probe_prediction == 0.0 and s.probe_target == 2.0
    assert s.metrics["cross_entropy"] > 0


@pytest.mark.skipif(not has_sklearn, reason="needs scikit-learn (the data extra)")
def test_digits_are_8_steps_of_8_pixels_and_10_classes():
    data = DigitsTask().make(0)
    assert data.x_train.shape == (1437, 8, 8) and data.x_test.shape == (360, 8, 8)
    assert data.head == "classification" and data.outputs == 10
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1
    assert set(np.unique(data.y_train)) == set(range(10))
    spec = model_spec(CellConfig("digits", "gru", "numpy", "reference", "cpu", 0, 16, "tanh", 1, 32, 1), data)
    assert spec.head == "classification" and spec.outputs == 10 and spec.features == 8
    assert not np.array_equal(DigitsTask().make(1).y_test, data.y_test)


def test_digits_without_scikit_learn_is_a_clear_usage_error():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from seqbench.tasks import DigitsTask\n"
        "from seqbench.errors import UsageError\n"
        "try:\n    DigitsTask().make(0)\nexcept UsageError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "needs scikit-learn" in out and "'.[data]'" in out
    assert issubclass(UsageError, Exception)


def test_a_cell_records_every_metric_the_primary_one_its_baseline_and_flops():
    cell = CellConfig("adding", "gru", "numpy", "reference", "cpu", 0, 8, "tanh", 2, 32, 1,
                      {"steps": 6, "samples": 96, "test_samples": 40})  # fmt: skip
    record = run_cell(NumpyBackend(), cell, AddingTask())
    assert record.params == 3 * (2 * 8 + 8 * 8 + 2 * 8) + 9
    assert set(record.metrics) == {"mse", "mae"} and record.mse == record.metrics["mse"]
    assert record.accuracy is None
    assert record.primary_metric == "mse" and record.higher_is_better is False
    assert record.baseline == pytest.approx(1 / 6, abs=0.08)
    assert record.flops == epoch_flops(ModelSpec("gru", 8, 6, features=2), 96)
    assert record.gflops_per_s == pytest.approx(record.flops / record.steady_epoch_s / 1e9)


@pytest.mark.skipif(not has_sklearn, reason="needs scikit-learn (the data extra)")
def test_a_digits_cell_trains_a_classifier_end_to_end():
    cell = CellConfig("digits", "lstm", "numpy", "reference", "cpu", 0, 16, "tanh", 3, 64, 1)
    record = run_cell(NumpyBackend(), cell, DigitsTask())
    assert record.status == "ok" and record.primary_metric == "accuracy"
    assert set(record.metrics) == {"accuracy", "cross_entropy"}
    assert record.accuracy > record.baseline  # three epochs already beat guessing the majority digit
    assert record.probe_prediction in range(10)


def _cells(**extra):
    import pandas as pd

    from seqbench.results import CellRecord, as_row

    rows = []
    for seed, mse in enumerate([0.02, 0.04, 0.03]):
        rows.append(as_row(CellRecord("adding", "gru", "numpy", "reference", "cpu", seed, "ok", params=297,
                                      final_loss=mse, mse=mse, mae=0.1, steady_epoch_s=0.5, first_epoch_s=0.6,
                                      **{"metrics": {"mse": mse, "mae": 0.1}, "primary_metric": "mse",
                                         "higher_is_better": False, "baseline": 0.167, "gflops_per_s": 12.0,
                                         **extra})))  # fmt: skip
    return pd.DataFrame(rows)


def test_reports_show_the_primary_metric_beside_its_baseline_and_the_gflops():
    from pathlib import Path

    import pandas as pd

    from seqbench.report import RIGHT, display_table
    from seqbench.results import Run
    from seqbench.tables import text_table
    from seqbench.views import cell_view, summary

    table = summary(cell_view(Run(Path("r"), {"config": {}}, _cells(), pd.DataFrame())))
    row = table.iloc[0]
    assert row["metric"] == "mse" and row["score"] == pytest.approx(0.03) and row["baseline"] == pytest.approx(0.167)
    shown = display_table(table)
    assert shown.iloc[0]["mse"] == "0.03 (0.02-0.04)" and shown.iloc[0]["baseline"] == "0.167"
    assert shown.iloc[0]["GFLOP/s"] == "12" and "% peak" not in shown
    assert "accuracy" not in shown.columns
    assert "baseline" in text_table(shown, RIGHT)


def test_reports_read_cells_written_before_metrics_existed_as_accuracy():
    from seqbench.views import primary_scores

    cells = _cells().drop(columns=["metrics", "primary_metric"])
    cells["accuracy"] = 0.5
    names, values = primary_scores(cells)
    assert set(names) == {"accuracy"} and set(values) == {0.5}
