"""The NumPy reference backend: exact gradients, canonical weights, Adam."""

from __future__ import annotations

import numpy as np
import pytest
from seqbench_numpy.model import NumpyModel

from seqbench.contract import MODEL_KINDS, ModelSpec, Weights
from seqbench.harness import initial_weights
from seqbench.testing import random_weights, reference_forward

CASES = [(k, a) for k in MODEL_KINDS for a in ("relu", "tanh")]
HEADS = [("regression", 1), ("classification", 3)]


def _problem(kind, activation, head="regression", outputs=1):
    spec = ModelSpec(kind, 4, steps=4, features=2, activation=activation, head=head, outputs=outputs)
    w = initial_weights(spec, 0)
    # nonzero biases exercise every gradient path; float64 for finite differences
    gen = np.random.default_rng(1)
    w = Weights(**{k: v.astype(np.float64) + (gen.uniform(-0.2, 0.2, v.shape) if "bias" in k else 0.0)
                   for k, v in w.arrays().items()})  # fmt: skip
    y = gen.integers(0, outputs, 6).astype(np.float64) if head == "classification" else gen.standard_normal(6)
    return spec, w, gen.standard_normal((6, 4, 2)), y


@pytest.mark.parametrize("head,outputs", HEADS)
@pytest.mark.parametrize("kind,activation", CASES)
def test_gradients_match_finite_differences_in_float64(kind, activation, head, outputs):
    spec, w, x, y = _problem(kind, activation, head, outputs)
    _, grad = NumpyModel(spec, w, dtype="float64").loss_and_gradients(x, y)
    eps = 1e-6
    for name, array in w.arrays().items():
        numeric = np.zeros_like(array)
        for ix in np.ndindex(array.shape):
            losses = []
            for sign in (1, -1):
                shifted = {k: v.copy() for k, v in w.arrays().items()}
                shifted[name][ix] += sign * eps
                losses.append(NumpyModel(spec, Weights(**shifted), dtype="float64").loss_and_gradients(x, y)[0])
            numeric[ix] = (losses[0] - losses[1]) / (2 * eps)
        np.testing.assert_allclose(getattr(grad, name), numeric, rtol=1e-5, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("head,outputs", HEADS)
@pytest.mark.parametrize("kind,activation", CASES)
def test_forward_matches_the_plainly_written_model(kind, activation, head, outputs):
    spec = ModelSpec(kind, 5, steps=3, features=2, activation=activation, head=head, outputs=outputs)
    w = random_weights(spec, 2)
    x = np.random.default_rng(0).standard_normal((7, 3, 2)).astype(np.float32)
    np.testing.assert_allclose(NumpyModel(spec, w).predict(x), reference_forward(spec, w, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind,count", [("rnn", 131), ("lstm", 491), ("gru", 401)])
def test_weights_round_trip_and_parameter_count(kind, count):
    spec = ModelSpec(kind, 10, steps=3)
    w = initial_weights(spec, 4)
    model = NumpyModel(spec, w)
    assert model.trainable_params() == spec.param_count == count
    for name, array in model.get_weights().arrays().items():
        np.testing.assert_array_equal(array, getattr(w, name), err_msg=name)


def test_train_epoch_is_adam_on_the_sample_weighted_batch_losses():
    spec = ModelSpec("lstm", 3, steps=2, activation="tanh")
    w = initial_weights(spec, 0)
    gen = np.random.default_rng(0)
    x, y = gen.standard_normal((5, 2, 1)).astype(np.float32), gen.standard_normal(5).astype(np.float32)
    order = np.array([4, 0, 3, 1, 2])
    model = NumpyModel(spec, w, dtype="float64")
    model.set_train_data(x, y)
    loss = model.train_epoch(order, 2)  # batches of 2, 2 and 1

    # the same epoch by hand, from gradients and the Keras Adam formula
    ref = NumpyModel(spec, w, dtype="float64")
    params = {k: v.astype(np.float64) for k, v in w.arrays().items()}
    m = {k: 0.0 for k in params}
    v = {k: 0.0 for k in params}
    total = 0.0
    for step, batch in enumerate([order[:2], order[2:4], order[4:]], 1):
        ref = NumpyModel(spec, Weights(**params), dtype="float64")
        batch_loss, grads = ref.loss_and_gradients(x[batch], y[batch])
        total += batch_loss * len(batch)
        lr = 1e-3 * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
        for k in params:
            g = getattr(grads, k)
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            params[k] = params[k] - lr * m[k] / (np.sqrt(v[k]) + 1e-7)
    assert loss == pytest.approx(total / 5, rel=1e-12)
    for name, array in model.get_weights().arrays().items():
        np.testing.assert_allclose(array, params[name], rtol=1e-6, atol=1e-7, err_msg=name)


def test_training_reduces_the_loss_on_the_seed_task():
    from seqbench.tasks import ArithmeticTask

    data = ArithmeticTask().make(0)
    spec = ModelSpec("lstm", 10, steps=3)
    model = NumpyModel(spec, initial_weights(spec, 0))
    model.set_train_data(data.x_train, data.y_train)
    losses = [model.train_epoch(np.random.default_rng(e).permutation(1000), 32) for e in range(5)]
    assert losses[-1] < losses[0] / 2


def test_training_never_mutates_the_weights_it_was_built_from():
    spec = ModelSpec("rnn", 4, steps=2)
    w = initial_weights(spec, 0)
    before = w.copy()
    model = NumpyModel(spec, w)
    model.set_train_data(np.ones((4, 2, 1), np.float32), np.ones(4, np.float32))
    model.train_epoch(np.arange(4), 2)
    for name, array in before.arrays().items():
        np.testing.assert_array_equal(getattr(w, name), array, err_msg=name)


def test_an_unknown_kind_fails_loudly_instead_of_building_an_rnn():
    spec = ModelSpec("transformer", 4, steps=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown model kind 'transformer'"):
        NumpyModel(spec, random_weights(ModelSpec("rnn", 4, steps=2)))
    with pytest.raises(ValueError, match="unknown model kind"):
        initial_weights(spec, 0)


def test_classification_predicts_logits_and_its_loss_is_softmax_cross_entropy():
    spec = ModelSpec("gru", 4, steps=3, features=2, head="classification", outputs=3)
    w = random_weights(spec, 3)
    x = np.random.default_rng(0).standard_normal((5, 3, 2)).astype(np.float32)
    y = np.array([0, 2, 1, 1, 0], np.float32)
    logits = reference_forward(spec, w, x)
    assert NumpyModel(spec, w).predict(x).shape == (5, 3)
    shifted = logits - logits.max(axis=1, keepdims=True)
    want = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(5), y.astype(int)])
    loss, _ = NumpyModel(spec, w, dtype="float64").loss_and_gradients(x, y)
    assert loss == pytest.approx(want, rel=1e-6)
