"""The Keras backend: layout, forward, training epochs and the harness, against NumPy.

TensorFlow's import and each model's first trace dominate the time here, so
every test builds the smallest model that shows its point.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import seqbench_keras
from seqbench_keras import KerasBackend  # imports no TensorFlow
from seqbench_numpy import NumpyBackend
from seqbench_numpy.model import NumpyModel

from seqbench import SeqbenchError
from seqbench.contract import MODEL_KINDS, ModelSpec
from seqbench.harness import initial_weights, run_cell
from seqbench.keys import Status
from seqbench.results import CellConfig
from seqbench.tasks import ArithmeticTask
from seqbench.testing import random_weights, reference_forward, relative_error

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # before TensorFlow's import, which importorskip does
tf = pytest.importorskip("tensorflow")

pytestmark = [pytest.mark.slow, pytest.mark.framework]

IMPLEMENTATIONS = KerasBackend.implementations
KINDS_ACTIVATIONS = [(k, a) for k in MODEL_KINDS for a in ("relu", "tanh")]
SAMPLES, BATCH = 100, 32  # a short last batch of 4: a plain mean of batch losses is 1-20% off
# Weights and losses after training, relative to the reference (the conformance kit's bound).
TRAIN_RTOL = 1e-4


def seed_spec(kind: str, activation: str = "relu") -> ModelSpec:
    return ModelSpec(kind, units=10, steps=3, activation=activation)  # type: ignore[arg-type]








def fit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "seqbench-keras-fit"]


@pytest.fixture(scope="module")
def backend() -> KerasBackend:
    b = KerasBackend()
    b.configure("cpu", 2)  # what the conformance kit asks for too: TF takes one setting per process
    return b


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    d = ArithmeticTask().make(0, samples=SAMPLES)
    return d.x_train, d.y_train


def test_import_and_registration_load_no_framework() -> None:
    code = (
        "import sys, seqbench_keras; found = []\n"
        "seqbench_keras.seqbench_register_backends(found.append)\n"
        "assert [b.name for b in found] == ['keras', 'keras-jax', 'keras-torch'], found\n"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), 'framework imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_availability_versions_and_configuration(backend: KerasBackend) -> None:
    assert backend.availability().available
    versions = backend.versions()
    assert "keras" in versions and {"tensorflow", "tensorflow-cpu"} & set(versions), versions
    assert tf.config.threading.get_intra_op_parallelism_threads() == 2
    assert tf.config.threading.get_inter_op_parallelism_threads() == 2
    assert not tf.config.get_visible_devices("GPU")


def test_missing_or_old_framework_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "tensorflow" else real_find_spec(name)
    )
    missing = KerasBackend().availability()
    assert not missing.available and "tensorflow" in missing.reason
    assert missing.install_hint.startswith("pip install -e '.[keras]'")
    monkeypatch.undo()
    monkeypatch.setattr(seqbench_keras, "_installed", lambda dist: "3.1.0" if dist == "keras" else None)
    assert KerasBackend().availability().available
    assert "keras>=3.2" in (KerasBackend().supports("fit", seed_spec("rnn"), "cpu") or "")
    assert KerasBackend().supports("graph", seed_spec("rnn"), "cpu") is None
    monkeypatch.setattr(seqbench_keras, "_installed", lambda dist: "2.15.0" if dist == "keras" else None)
    assert "Keras 3" in KerasBackend().availability().reason


def test_supports_names_the_reason(backend: KerasBackend) -> None:
    for impl in IMPLEMENTATIONS:
        for kind, activation in KINDS_ACTIVATIONS:
            assert backend.supports(impl, seed_spec(kind, activation), "cpu") is None
    spec = seed_spec("rnn")
    assert "implementation" in (backend.supports("eager", spec, "cpu") or "")
    assert "device" in (backend.supports("graph", spec, "tpu") or "")
    assert "activation" in (backend.supports("graph", seed_spec("rnn", "sigmoid"), "cpu") or "")
    float64 = ModelSpec("rnn", 10, 3, dtype="float64")
    assert "float32" in (backend.supports("graph", float64, "cpu") or "")
    with pytest.raises(SeqbenchError, match="keras:eager cannot run rnn/relu on cpu: unknown implementation"):
        backend.build("eager", spec, initial_weights(spec, 0), "cpu")


def test_configure_gpu_without_gpu_is_a_clear_error(backend: KerasBackend) -> None:
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(SeqbenchError, match="sees no GPU"):
        backend.configure("gpu", 2)


def test_configure_refuses_other_threads_once_started(backend: KerasBackend) -> None:
    tf.zeros(1)  # starts the runtime, as building any model would
    with pytest.raises(SeqbenchError, match="already started"):
        backend.configure("cpu", 1)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind, params", [("rnn", 131), ("lstm", 491), ("gru", 401)])
def test_param_count_and_weight_round_trip(backend: KerasBackend, kind: str, params: int, impl: str) -> None:
    spec = seed_spec(kind)
    weights = random_weights(spec)
    model = backend.build(impl, spec, weights, "cpu")
    assert model.trainable_params() == spec.param_count == params
    out = model.get_weights()
    for name, array in weights.arrays().items():
        got = getattr(out, name)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32, name
        np.testing.assert_array_equal(got, array, err_msg=name)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind, activation", KINDS_ACTIVATIONS)
def test_forward_matches_numpy(backend: KerasBackend, data: tuple, kind: str, activation: str, impl: str) -> None:
    spec = seed_spec(kind, activation)
    weights = random_weights(spec, seed=2)
    x = data[0] / 50  # the task's inputs, scaled so that tanh does not saturate
    got = backend.build(impl, spec, weights, "cpu").predict(x)
    assert isinstance(got, np.ndarray) and got.shape == (len(x),)
    assert relative_error(got, reference_forward(spec, weights, x)) <= 1e-5


# Every implementation on the seed's relu models; tanh through the graph loop.
TRAIN_COMBOS = [(k, "relu", i) for k in MODEL_KINDS for i in IMPLEMENTATIONS] + [
    ("rnn", "tanh", "graph"),
    ("lstm", "tanh", "graph"),
    ("gru", "tanh", "graph"),
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_classification_head_matches_numpy(backend: KerasBackend, impl: str) -> None:
    spec = ModelSpec("gru", 6, steps=4, features=3, activation="tanh", head="classification", outputs=4)
    weights = random_weights(spec)
    gen = np.random.default_rng(5)
    x = gen.normal(size=(40, 4, 3)).astype(np.float32)
    y = gen.integers(0, 4, 40).astype(np.float32)
    model, reference = backend.build(impl, spec, weights, "cpu"), NumpyModel(spec, weights)
    got = model.predict(x)
    assert got.shape == (40, 4)
    assert relative_error(got, reference_forward(spec, weights, x)) <= 1e-5
    order = gen.permutation(40)
    for epoch in (1, 2):
        losses = []
        for m in (reference, model):
            if epoch == 1:
                m.set_train_data(x, y)
            losses.append(m.train_epoch(order, 16))  # 40 = 2 * 16 + 8: a short last batch
        assert abs(losses[1] - losses[0]) <= TRAIN_RTOL * abs(losses[0]), (epoch, losses)
    for name, array in reference.get_weights().arrays().items():
        assert relative_error(getattr(model.get_weights(), name), array) <= TRAIN_RTOL, name


@pytest.mark.parametrize("kind, activation, impl", TRAIN_COMBOS)
def test_epochs_match_numpy_reference(
    backend: KerasBackend, data: tuple, kind: str, activation: str, impl: str
) -> None:
    """Two epochs: the second shows that epochs chain (the fit thread's hand-over)."""
    spec = seed_spec(kind, activation)
    weights = initial_weights(spec, 3)
    gen = np.random.default_rng(4)
    orders = [gen.permutation(SAMPLES) for _ in range(2)]
    reference = NumpyModel(spec, weights)
    model = backend.build(impl, spec, weights, "cpu")
    for m in (reference, model):
        m.set_train_data(*data)
    for epoch, order in enumerate(orders, 1):
        want, got = reference.train_epoch(order, BATCH), model.train_epoch(order, BATCH)
        model.synchronize()
        assert isinstance(got, float)
        assert abs(got - want) <= TRAIN_RTOL * abs(want), f"epoch {epoch}: loss {got} != reference {want}"
        for name, array in reference.get_weights().arrays().items():
            err = relative_error(getattr(model.get_weights(), name), array)
            assert err <= TRAIN_RTOL, f"epoch {epoch}: {name} relative error {err:.2e}"


def test_fit_follows_a_new_batch_size_and_ends_its_thread(backend: KerasBackend, data: tuple) -> None:
    spec = seed_spec("rnn")
    weights = initial_weights(spec, 5)
    reference = NumpyModel(spec, weights)
    model = backend.build("fit", spec, weights, "cpu")
    reference.set_train_data(*data)
    model.set_train_data(*data)
    order = np.random.default_rng(6).permutation(SAMPLES)
    for batch in (BATCH, 50):  # a new batch size needs a new fit call
        want, got = reference.train_epoch(order, batch), model.train_epoch(order, batch)
        assert abs(got - want) <= TRAIN_RTOL * abs(want), (batch, got, want)
    assert relative_error(model.get_weights().kernel, reference.get_weights().kernel) <= TRAIN_RTOL
    gc.collect()  # earlier tests' models
    assert len(fit_threads()) == 1
    del model
    gc.collect()
    assert not fit_threads(), "the fit thread outlived its model"


@pytest.mark.parametrize("impl", ["graph", "fit"])
def test_new_train_data_replaces_the_old(backend: KerasBackend, data: tuple, impl: str) -> None:
    spec = seed_spec("rnn")
    weights = initial_weights(spec, 7)
    reference = NumpyModel(spec, weights)
    model = backend.build(impl, spec, weights, "cpu")
    order = np.random.default_rng(8).permutation(SAMPLES)
    for x, y in (data, (data[0][::-1] / 2, data[1][::-1] / 2)):  # same shapes, other values
        reference.set_train_data(x, y)
        model.set_train_data(x, y)
        want, got = reference.train_epoch(order, BATCH), model.train_epoch(order, BATCH)
        assert abs(got - want) <= TRAIN_RTOL * abs(want), (got, want)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_run_cell_through_the_harness_matches_numpy(backend: KerasBackend, impl: str) -> None:
    def cell(backend_name: str, implementation: str) -> CellConfig:
        return CellConfig("arithmetic", "lstm", backend_name, implementation, "cpu", seed=0, units=10,
                          activation="relu", epochs=3, batch_size=32, threads=2,
                          task_params={"samples": 200})  # fmt: skip

    got = run_cell(backend, cell("keras", impl), ArithmeticTask())
    want = run_cell(NumpyBackend(), cell("numpy", "reference"), ArithmeticTask())
    assert got.status == Status.OK and got.epochs_run == 3
    assert got.params == 491
    assert got.implementation_path == {"graph": "tf.function-epoch", "xla": "tf.function-epoch+xla",
                                       "fit": "model.fit"}[impl]  # fmt: skip
    assert got.details is not None and got.details["weights_device"].endswith("CPU:0")
    assert got.details["intra_op_threads"] == "2" and got.details["keras_engine"] == "tensorflow"
    assert abs(got.final_loss - want.final_loss) <= TRAIN_RTOL * abs(want.final_loss)
    assert got.probe_prediction == pytest.approx(want.probe_prediction, rel=TRAIN_RTOL)
