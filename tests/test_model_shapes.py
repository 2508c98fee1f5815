"""Stacked, bidirectional and variable-length models (issue 20): the spec, the canonical layout, the NumPy
reference's gradients, the tasks' lengths, the harness and the grid.  Framework backends are checked by the
conformance kit (its ``deep`` and ``bidir-masked`` shapes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from seqbench_numpy.model import NumpyModel

from seqbench.config import RunConfig
from seqbench.contract import BackendBase, ModelSpec, Weights, default_implementation, refusal
from seqbench.efficiency import epoch_flops
from seqbench.grid import expand, varied
from seqbench.harness import initial_weights, run_cell
from seqbench.keys import experiment_label
from seqbench.results import CellConfig, cell_fields
from seqbench.tasks import AddingTask, ArithmeticTask, data_shape
from seqbench.testing import random_weights, reference_forward

SHAPES = [(1, False, True), (1, True, False), (2, True, True), (3, False, True)]


def test_the_default_spec_keeps_its_layout_and_counts():
    for kind, count in (("rnn", 131), ("lstm", 491), ("gru", 401)):
        spec = ModelSpec(kind, 10, 3)
        assert spec.param_count == count and spec.blocks() == [(1, "forward")]
        assert list(spec.weight_shapes()) == ["kernel", "recurrent_kernel", "bias", "dense_kernel", "dense_bias"]
        assert list(initial_weights(spec, 0).arrays()) == list(spec.weight_shapes())


def test_every_layer_and_direction_is_counted_in_the_canonical_order():
    spec = ModelSpec("lstm", 8, 5, 3, layers=2, bidirectional=True)
    assert spec.blocks() == [(1, "forward"), (1, "backward"), (2, "forward"), (2, "backward")]
    shapes = spec.weight_shapes()
    assert shapes["kernel"] == (3, 32) and shapes["stack[0].kernel"] == (3, 32)  # layer 1 reads the features
    assert shapes["stack[1].kernel"] == (16, 32) and shapes["dense_kernel"] == (16, 1)  # above: units * 2
    block1 = 3 * 32 + 8 * 32 + 32
    block2 = 16 * 32 + 8 * 32 + 32
    assert spec.param_count == 2 * block1 + 2 * block2 + 16 + 1
    assert spec.block_name("stack[2].recurrent_kernel") == "layer 2 backward recurrent_kernel"
    w = initial_weights(spec, 0)
    w.check(spec)
    assert len(w.stack) == 3 and Weights.from_arrays(w.arrays()).arrays().keys() == w.arrays().keys()
    # the first block and the head are drawn as a single layer's are: a layer added changes nothing below it
    single = initial_weights(ModelSpec("lstm", 8, 5, 3), 0)
    np.testing.assert_array_equal(w.kernel, single.kernel)
    with pytest.raises(ValueError, match="missing"):
        Weights.of_blocks(w.blocks()[:2], w.dense_kernel, w.dense_bias).check(spec)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional", "variable"), SHAPES)
def test_gradients_of_every_block_match_finite_differences(kind, layers, bidirectional, variable):
    spec = ModelSpec(kind, 3, 5, 2, "tanh", layers=layers, bidirectional=bidirectional, variable_length=variable)
    w = random_weights(spec, 3).map(lambda a: a.astype(np.float64))
    gen = np.random.default_rng(0)
    x, y = gen.standard_normal((4, 5, 2)), gen.standard_normal(4)
    lengths = np.array([5, 3, 1, 4]) if variable else None
    _, grad = NumpyModel(spec, w, dtype="float64").loss_and_gradients(x, y, lengths)
    arrays, eps = w.arrays(), 1e-6
    for name, array in arrays.items():
        for ix in list(np.ndindex(array.shape))[:: max(1, array.size // 5)]:
            losses = []
            for sign in (1, -1):
                shifted = {k: v.copy() for k, v in arrays.items()}
                shifted[name][ix] += sign * eps
                model = NumpyModel(spec, Weights.from_arrays(shifted), dtype="float64")
                losses.append(model.loss_and_gradients(x, y, lengths)[0])
            numeric = (losses[0] - losses[1]) / (2 * eps)
            np.testing.assert_allclose(grad.arrays()[name][ix], numeric, rtol=1e-4, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional", "variable"), SHAPES)
def test_the_reference_is_the_plainly_written_masked_model_and_padding_changes_nothing(kind, layers, bidirectional,
                                                                                       variable):  # fmt: skip
    spec = ModelSpec(kind, 4, 6, 2, "tanh", layers=layers, bidirectional=bidirectional, variable_length=variable)
    w = random_weights(spec, 2).map(lambda a: a.astype(np.float64))
    x = np.random.default_rng(1).standard_normal((5, 6, 2))
    lengths = np.array([6, 2, 1, 5, 3]) if variable else None
    got = NumpyModel(spec, w, dtype="float64").predict(x, lengths)
    np.testing.assert_allclose(got, reference_forward(spec, w, x, lengths), rtol=1e-5, atol=1e-6)
    if variable:  # each sample alone, unpadded: the same prediction to the last bit in float64
        for i, length in enumerate(lengths):
            alone = NumpyModel(replace(spec, steps=int(length), variable_length=False), w, dtype="float64")
            x_alone = np.asarray(x[i : i + 1, :length], np.float64)
            assert abs(float(alone.predict(x_alone)[0]) - float(got[i])) <= 1e-6 * max(1.0, abs(float(got[i])))


def test_min_steps_gives_each_sample_its_length_and_zero_padding():
    fixed = AddingTask().make(0, samples=50, test_samples=10, steps=8)
    assert fixed.lengths_train is None and not data_shape(AddingTask(), {"steps": 8}).variable_length
    data = AddingTask().make(0, samples=200, test_samples=10, steps=8, min_steps=4)
    lengths = data.lengths_train
    assert lengths.dtype == np.int32 and lengths.min() == 4 and lengths.max() == 8
    assert data_shape(AddingTask(), {"steps": 8, "min_steps": 4}).variable_length
    for xi, yi, length in zip(data.x_train, data.y_train, lengths, strict=True):
        assert not np.any(xi[length:]) and xi[:length, 1].sum() == 2  # two markers among the real steps
        assert xi[: length // 2, 1].sum() == 1  # one in each half of the real length
        assert np.isclose(xi[xi[:, 1] == 1, 0].sum(), yi)
    arith = ArithmeticTask().make(0, samples=20, steps=6, min_steps=2)
    for xi, yi, length in zip(arith.x_train, arith.y_train, arith.lengths_train, strict=True):
        assert xi[length - 1, 0] + 1 == yi and not np.any(xi[length:])
    with pytest.raises(ValueError, match="min_steps must be from 2"):
        AddingTask().shape(steps=8, min_steps=1)
    with pytest.raises(ValueError, match="min_steps must be from 1 to steps"):
        ArithmeticTask().shape(steps=3, min_steps=4)


def test_a_backend_that_declares_no_shapes_is_never_asked_to_run_them():
    class Old(BackendBase):
        name = "old"
        implementations = ("plain",)

        def supports(self, implementation, spec, device):
            return None  # says yes to everything, as a backend written before layers existed may

    spec = ModelSpec("lstm", 4, 3)
    assert refusal(Old(), "plain", spec, "cpu") is None
    for shape in ({"layers": 2}, {"bidirectional": True}, {"variable_length": True}):
        why = refusal(Old(), "plain", replace(spec, **shape), "cpu")
        assert why and "model_shapes" in why
        assert default_implementation(Old(), replace(spec, **shape), "cpu") is None


def test_flops_count_every_layer_and_direction_and_the_real_steps():
    one = ModelSpec("lstm", 128, 50, 1)
    assert epoch_flops(one, 8192) == pytest.approx(162e9, rel=0.01)  # the module's worked example, unchanged
    bi = replace(one, layers=2, bidirectional=True)
    h, g = 128, 4
    per_step = 2 * g * h * ((1 + h) * 2 + (2 * h + h) * 2)
    assert epoch_flops(bi, 10, mean_steps=25.0) == pytest.approx(3 * 10 * 25 * per_step + 3 * 10 * 2 * 2 * h)


def test_layers_is_a_grid_and_the_default_experiment_keeps_its_label():
    config = RunConfig(units=(8, 16), layers=(1, 2))
    points = expand(config)
    assert [(p.units, p.layers) for p in points] == [(8, 1), (8, 2), (16, 1), (16, 2)]
    assert varied(config) == ["units", "layers"]
    cell = CellConfig(task="adding", model="lstm", backend="numpy", implementation="reference", device="cpu", seed=0,
                      units=8, activation="tanh", epochs=2, batch_size=16, threads=1, task_params={"steps": 5})
    label = experiment_label(cell_fields(cell))
    assert "layers" not in label and "bidirectional" not in label
    shaped = experiment_label(cell_fields(replace(cell, layers=2, bidirectional=True)))
    assert shaped == f"{label} layers=2 bidirectional=True"


def test_run_cell_trains_a_stacked_bidirectional_variable_length_model():
    from seqbench.plugins import load_registry

    backend = load_registry().backend("numpy")
    cell = CellConfig(task="adding", model="gru", backend="numpy", implementation="reference", device="cpu", seed=0,
                      units=8, activation="tanh", epochs=2, batch_size=32, threads=1, layers=2, bidirectional=True,
                      task_params={"samples": 64, "test_samples": 16, "steps": 10, "min_steps": 4})
    record = run_cell(backend, cell, AddingTask())
    assert record.status == "ok" and record.layers == 2 and record.bidirectional is True
    spec = ModelSpec("gru", 8, 10, 2, "tanh", layers=2, bidirectional=True, variable_length=True)
    assert record.params == spec.param_count
    assert record.flops < epoch_flops(spec, 64)  # the real steps only
    assert record.latency_p50_s is not None  # the inference phase passes the lengths too


def test_a_run_of_stacked_bidirectional_variable_length_models_records_their_shape(tmp_path):
    import json

    from tests.runfactory import invoke

    result = invoke("run", "--backends", "numpy", "--models", "gru", "--task", "adding", "--activation", "tanh",
                    "-P", "steps=6", "-P", "samples=40", "-P", "test_samples=8", "-P", "min_steps=3",
                    "--layers", "1,2", "--bidirectional", "--epochs", "2", "--seeds", "1", "--no-calibration",
                    "--inference", "off", "--results-dir", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run,) = tmp_path.iterdir()
    cells = [json.loads(line) for line in (run / "cells.jsonl").read_text().splitlines()]
    assert sorted((c["layers"], c["bidirectional"], c["task_params"]["min_steps"]) for c in cells) == [
        (1, True, 3), (2, True, 3)]
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["layers"] == [1, 2] and config["bidirectional"] is True
    assert all(c["status"] == "ok" and c["implementation_path"] == "numpy-bptt" for c in cells)
