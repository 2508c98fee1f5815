"""Tasks, initial weights, batch order and the epoch loop."""

from __future__ import annotations

import numpy as np
import pytest
from seqbench_numpy import NumpyBackend

from seqbench.contract import ModelSpec, Weights
from seqbench.harness import batch_orders, initial_weights, run_cell
from seqbench.results import CellConfig
from seqbench.tasks import ArithmeticTask, regression_metrics


def test_arithmetic_defaults_are_the_notebooks():
    data = ArithmeticTask().make(0)
    assert data.x_train.shape == (1000, 3, 1) and data.y_train.shape == (1000,)
    assert data.x_train.dtype == np.float32
    starts = data.x_train[:, 0, 0]
    assert starts.min() >= 0 and starts.max() < 100
    np.testing.assert_array_equal(data.x_train[:, :, 0] - starts[:, None], np.tile([0, 1, 2], (1000, 1)))
    np.testing.assert_array_equal(data.y_train, starts + 3)
    np.testing.assert_array_equal(data.probe_x[0, :, 0], [10, 11, 12])
    assert data.probe_y == 13


def test_arithmetic_length_and_size_are_configurable_and_seeded():
    task = ArithmeticTask()
    data = task.make(5, steps=50, samples=64)
    assert data.x_train.shape == (64, 50, 1) and data.probe_y == 60
    np.testing.assert_array_equal(task.make(5, steps=50, samples=64).x_train, data.x_train)
    assert not np.array_equal(task.make(6, steps=50, samples=64).x_train, data.x_train)
    with pytest.raises(ValueError, match="samples must be positive"):
        task.make(0, samples=0)
    with pytest.raises(ValueError, match="unknown parameter"):
        task.make(0, colour=3)


def test_metrics_accuracy_counts_predictions_within_half_of_the_target():
    m = regression_metrics(np.array([1.4, 2.6, 3.0, 10.0]), np.array([1, 2, 3, 4]))
    assert m["accuracy"] == 0.5
    assert m["mae"] == pytest.approx((0.4 + 0.6 + 0 + 6) / 4)
    assert m["mse"] == pytest.approx((0.16 + 0.36 + 0 + 36) / 4)


@pytest.mark.parametrize("kind,params", [("rnn", 131), ("lstm", 491)])
def test_seed_configuration_parameter_counts(kind, params):
    assert ModelSpec(kind, 10, steps=3).param_count == params


def test_initial_weights_follow_the_canonical_recipe():
    spec = ModelSpec("lstm", 16, steps=3, features=2)
    w = initial_weights(spec, 0)
    w.check(spec)
    assert all(a.dtype == np.float32 for a in w.arrays().values())
    limit = np.sqrt(6 / (2 + 64))
    assert np.abs(w.kernel).max() <= limit
    # orthogonal recurrent kernel: (16, 64) has orthonormal rows
    np.testing.assert_allclose(w.recurrent_kernel @ w.recurrent_kernel.T, np.eye(16), atol=1e-5)
    np.testing.assert_array_equal(w.bias, np.r_[np.zeros(16), np.ones(16), np.zeros(32)])
    assert not w.dense_bias.any()
    again, other = initial_weights(spec, 0), initial_weights(spec, 1)
    assert all(np.array_equal(a, b) for a, b in zip(w.arrays().values(), again.arrays().values(), strict=True))
    assert not np.array_equal(w.kernel, other.kernel)


def test_weights_check_names_the_wrong_array():
    spec = ModelSpec("rnn", 10, steps=3)
    w = initial_weights(spec, 0)
    bad = Weights(**{**w.arrays(), "bias": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="'bias' has shape"):
        bad.check(spec)


def test_batch_orders_are_seeded_permutations():
    orders = list(batch_orders(3, 100, 4))
    assert all(sorted(o) == list(range(100)) for o in orders)
    assert not np.array_equal(orders[0], orders[1])
    assert all(np.array_equal(a, b) for a, b in zip(orders, batch_orders(3, 100, 4), strict=True))


def _cell(model="lstm", seed=0, epochs=4, **kw):
    return CellConfig("arithmetic", model, "numpy", "reference", "cpu", seed, 10, "relu", epochs, 32, 1, kw)


def test_run_cell_records_every_epoch_and_keeps_the_first_apart():
    seen = []
    record = run_cell(NumpyBackend(), _cell(), ArithmeticTask(), seen.append)
    assert record.status == "ok" and record.epochs_run == 4 == len(seen)
    assert [e.epoch for e in seen] == [1, 2, 3, 4]
    assert record.first_epoch_s == seen[0].wall_s
    assert record.steady_epoch_s == pytest.approx(float(np.median([e.wall_s for e in seen[1:]])))
    assert record.params == 491 and record.implementation_path == "numpy-bptt"
    assert record.final_loss == seen[-1].loss
    assert 0 <= record.accuracy <= 1 and record.probe_target == 13
    assert record.samples_per_s == pytest.approx(1000 / record.steady_epoch_s)
    assert record.peak_rss_mb > 0 and all(e.cpu_s >= 0 and e.gpu_s is None for e in seen)


def test_same_seed_same_loss_curve_other_seed_other_curve():
    def curve(seed):
        seen = []
        run_cell(NumpyBackend(), _cell(seed=seed, epochs=3), ArithmeticTask(), seen.append)
        return [e.loss for e in seen]

    assert curve(1) == curve(1)
    assert curve(1) != curve(2)


def test_a_backend_may_prefer_a_default_implementation_per_spec():
    from seqbench.contract import default_order

    class Plain(NumpyBackend):
        implementations = ("a", "b")

    class Choosy(Plain):
        def default_implementation(self, spec, device):
            return "b" if spec.kind == "rnn" else None

    rnn, lstm = ModelSpec("rnn", 4, steps=2), ModelSpec("lstm", 4, steps=2)
    assert default_order(Plain(), rnn, "cpu") == ["a", "b"]
    assert default_order(Choosy(), rnn, "cpu") == ["b", "a"]
    assert default_order(Choosy(), lstm, "cpu") == ["a", "b"]


def test_unsupported_basics_names_what_no_backend_can_run():
    from seqbench.contract import unsupported_basics

    b, spec = NumpyBackend(), ModelSpec("rnn", 4, steps=2)
    assert unsupported_basics(b, "reference", spec, "cpu") is None
    assert "unknown implementation 'x'" in unsupported_basics(b, "x", spec, "cpu")
    assert "device 'gpu' is not one of cpu" in unsupported_basics(b, "reference", spec, "gpu")
    assert "activation 'gelu'" in unsupported_basics(b, "reference", ModelSpec("rnn", 4, 2, activation="gelu"), "cpu")
    assert "float32 only" in unsupported_basics(b, "reference", ModelSpec("rnn", 4, 2, dtype="float64"), "cpu")
