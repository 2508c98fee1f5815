"""What every Keras engine shares: the network, its canonical weights, prediction, ``fit`` per epoch.

Imports keras (with whatever engine ``configure`` selected) and NumPy only,
never an engine directly, so TensorFlow, jax and torch each stay out of the
others' workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np

from seqbench.contract import ModelSpec, Weights


def _simple_rnn(spec: ModelSpec, allow_cudnn: bool, **common: object) -> keras.layers.Layer:
    return keras.layers.SimpleRNN(spec.units, **common)


def _lstm(spec: ModelSpec, allow_cudnn: bool, **common: object) -> keras.layers.Layer:
    return keras.layers.LSTM(
        spec.units,
        recurrent_activation="sigmoid",
        unit_forget_bias=False,  # the harness loads the forget bias with the other weights
        # XLA cannot compile the cuDNN op; "auto" is Keras's default.
        use_cudnn="auto" if allow_cudnn else False,
        **common,
    )


def _gru(spec: ModelSpec, allow_cudnn: bool, **common: object) -> keras.layers.Layer:
    return keras.layers.GRU(
        spec.units,
        recurrent_activation="sigmoid",
        reset_after=True,  # the canonical layout: bias (2, 3h); also what cuDNN computes
        use_cudnn="auto" if allow_cudnn else False,
        **common,
    )


# One Keras layer per kind of seqbench.contract.KINDS; a kind missing here is refused by supports().
LAYERS: dict[str, Callable[..., keras.layers.Layer]] = {"rnn": _simple_rnn, "lstm": _lstm, "gru": _gru}
CUDNN_KINDS = ("lstm", "gru")


def build_network(spec: ModelSpec, *, allow_cudnn: bool = True) -> keras.Sequential:
    """The seed notebook's model for ``spec``, with zero weights.

    The harness loads every weight, so Keras's random initialisers would only
    cost time; zeros also make a weight that failed to load obvious.
    """
    if spec.kind not in LAYERS:
        raise ValueError(f"the keras backend has no layer for model {spec.kind!r}")
    zeros = {"kernel_initializer": "zeros", "bias_initializer": "zeros", "dtype": spec.dtype}
    recurrent = {**zeros, "activation": spec.activation, "recurrent_initializer": "zeros"}
    layer = LAYERS[spec.kind](spec, allow_cudnn, **recurrent)
    return keras.Sequential(
        [keras.Input((spec.steps, spec.features), dtype=spec.dtype), layer, keras.layers.Dense(spec.outputs, **zeros)]
    )


def loss_function(spec: ModelSpec) -> keras.losses.Loss:
    """Mean squared error, or softmax cross-entropy of logits against class indices; both batch means."""
    if spec.classification:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def canonical_variables(network: keras.Sequential) -> dict[str, keras.Variable]:
    """The network's variables by canonical name (Keras's layout is the canonical one)."""
    recurrent, dense = network.layers
    return {
        "kernel": recurrent.cell.kernel,
        "recurrent_kernel": recurrent.cell.recurrent_kernel,
        "bias": recurrent.cell.bias,
        "dense_kernel": dense.kernel,
        "dense_bias": dense.bias,
    }


def assign_weights(variables: dict[str, keras.Variable], weights: Weights, spec: ModelSpec) -> None:
    """Load canonical weights into :func:`canonical_variables`."""
    weights.check(spec)
    for name, array in weights.arrays().items():
        variables[name].assign(np.asarray(array, np.float32))


def keras_adam(spec: ModelSpec) -> keras.optimizers.Optimizer:
    o = spec.optimizer
    return keras.optimizers.Adam(learning_rate=o.learning_rate, beta_1=o.beta1, beta_2=o.beta2, epsilon=o.epsilon)


class EngineModel:
    """The network, its weights, prediction and facts, on any Keras engine.

    Subclasses implement :meth:`set_train_data`, :meth:`train_epoch` and
    :meth:`implementation_path`, and may add facts to :meth:`describe`.
    """

    def __init__(self, spec: ModelSpec, weights: Weights, device: str, engine_facts: dict[str, str], *,
                 allow_cudnn: bool = True) -> None:  # fmt: skip
        weights.check(spec)
        self.spec = spec
        self.device = device
        self.engine_facts = engine_facts
        self.network = build_network(spec, allow_cudnn=allow_cudnn)
        self.variables = canonical_variables(self.network)
        self.set_weights(weights)
        self.optimizer = keras_adam(spec)

    def set_weights(self, weights: Weights) -> None:
        assign_weights(self.variables, weights, self.spec)

    def get_weights(self) -> Weights:
        arrays = {n: np.array(keras.ops.convert_to_numpy(v.value), np.float32) for n, v in self.variables.items()}
        return Weights(**arrays)

    def trainable_params(self) -> int:
        return sum(math.prod(v.shape) for v in self.network.trainable_variables)

    def synchronize(self) -> None:
        pass  # train_epoch returns a Python float, which waits for the epoch's last op

    def epoch_gpu_seconds(self) -> float | None:
        return None  # neither jax nor Keras offers a device-event timer that does not perturb the epoch

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._shaped(keras.ops.convert_to_numpy(self.network(np.asarray(x, np.float32), training=False)))

    def _shaped(self, out: object) -> np.ndarray:
        out = np.asarray(out).astype(np.float32)
        return out if self.spec.classification else out.reshape(-1)

    def predictors(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Keras's own inference entry points, next to :meth:`predict`'s direct call: ``model.predict`` (what
        the tutorial calls: batches of 32 through a data adapter, callbacks and a compiled predict step) and
        ``predict_on_batch`` (the compiled step on one batch), so that their per-call overhead shows."""
        network = self.network
        return {
            "model.predict": lambda x: self._shaped(network.predict(np.asarray(x, np.float32), verbose=0)),
            "predict_on_batch": lambda x: self._shaped(network.predict_on_batch(np.asarray(x, np.float32))),
        }

    def describe(self) -> dict[str, str]:
        return {"keras": keras.__version__, "keras_engine": keras.backend.backend(), **self.engine_facts}


class EpochFitModel(EngineModel):
    """``fit``: ``model.fit(x[order], y[order], batch_size, epochs=1, shuffle=False)`` per epoch.

    A Keras user's ``fit`` on NumPy arrays: Keras's array adapter slices the
    batches on the host and hands them to the engine.  One fit call per epoch,
    because the harness hands out one epoch's order at a time: the long-lived
    fit of the TensorFlow backend (:class:`seqbench_keras.models.FitModel`)
    feeds a generator across epochs, and on a GPU Keras's jax iterator reads one
    batch ahead, past the epoch's end, before the next order exists.  The
    compiled train step persists across calls (``make_train_function`` caches it).
    The epoch loss is fit's own: batch losses weighted by batch size (Keras >= 3.2).
    """

    def __init__(self, spec: ModelSpec, weights: Weights, device: str, engine_facts: dict[str, str]) -> None:
        super().__init__(spec, weights, device, engine_facts)
        self.network.compile(optimizer=self.optimizer, loss=loss_function(spec))
        self.x = np.zeros((0, spec.steps, spec.features), np.float32)
        self.y = np.zeros((0, 1), np.float32)

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = np.asarray(x, np.float32)
        self.y = np.asarray(y, np.float32).reshape(-1, 1)

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        history = self.network.fit(
            self.x[order], self.y[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0
        )
        return float(history.history["loss"][0])

    def implementation_path(self) -> str:
        return f"model.fit(epochs=1)/{keras.backend.backend()}" + ("+jit" if self.network.jit_compile else "")

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "jit_compile": str(self.network.jit_compile)}
