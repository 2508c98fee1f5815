"""Keras on one non-TensorFlow engine, run by tests/test_keras_engines.py in a process of its own.

Keras fixes its engine at import, so these checks cannot share the main test
process (where Keras runs on TensorFlow).  ``SEQBENCH_TEST_KERAS_BACKEND``
names the backend (``keras-jax`` or ``keras-torch``).  Not collected by
default: the file name does not start with ``test_``.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from seqbench.contract import ModelSpec
from seqbench.harness import batch_orders, initial_weights
from seqbench.tasks import ArithmeticTask
from seqbench.testing import BackendConformance, backend_for, relative_error

NAME = os.environ.get("SEQBENCH_TEST_KERAS_BACKEND", "keras-jax")
ENGINE = NAME.removeprefix("keras-")


class TestKit(BackendConformance):
    backends = (NAME,)


@pytest.fixture(scope="module")
def backend():  # noqa: ANN201
    return backend_for(NAME)


def test_engine_is_selected_and_recorded(backend) -> None:  # noqa: ANN001
    import keras

    assert keras.backend.backend() == ENGINE
    spec = ModelSpec("rnn", 10, 3)
    for impl in backend.implementations:
        facts = backend.build(impl, spec, initial_weights(spec, 0), "cpu").describe()
        assert facts["keras_engine"] == ENGINE and facts[ENGINE] == backend.versions()[ENGINE], facts
    assert ENGINE in backend.versions() and "keras" in backend.versions()


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_three_epochs_with_a_short_batch_match_numpy(backend, kind: str) -> None:  # noqa: ANN001
    """1000 = 31 * 32 + 8: the short last batch, and Adam's state across epochs, against float64 NumPy."""
    from seqbench_numpy.model import NumpyModel

    spec = ModelSpec(kind, 10, 3)  # type: ignore[arg-type]
    data = ArithmeticTask().make(0)
    w0 = initial_weights(spec, 0)
    for impl in backend.implementations:
        ours, reference = backend.build(impl, spec, w0, "cpu"), NumpyModel(spec, w0, dtype="float64")
        for model in (ours, reference):
            model.set_train_data(data.x_train, data.y_train)
        for order in batch_orders(0, len(data.y_train), 3):
            got, want = ours.train_epoch(order, 32), reference.train_epoch(order, 32)
            assert got == pytest.approx(want, rel=1e-4), impl
        expected = reference.get_weights()
        for name, value in ours.get_weights().arrays().items():
            assert relative_error(value, getattr(expected, name)) <= 1e-4, (impl, name)
        np.testing.assert_allclose(ours.predict(data.x_test), reference.predict(data.x_test), rtol=1e-3)


def test_no_tensorflow_in_this_process() -> None:
    """Keras on jax or torch must not bring TensorFlow into the worker (two frameworks in one process)."""
    assert "tensorflow" not in sys.modules
