"""What every Keras engine shares: the network, its canonical weights, prediction, ``fit`` per epoch.

Imports keras (with whatever engine ``configure`` selected) and NumPy only,
never an engine directly, so TensorFlow, jax and torch each stay out of the
others' workers.

Stacked, bidirectional and variable-length models are what a Keras user
writes for them: a functional model of ``layers`` recurrent layers (all but
the last ``return_sequences=True``), each wrapped in
``Bidirectional(merge_mode="concat")`` when bidirectional, and for variable
lengths a second input, the boolean mask ``(batch, steps)`` made from the
lengths, passed to every recurrent layer (``layer(h, mask=mask)``): Keras's
masked recurrence keeps a sample's state through a masked step, so the
backward layer (``go_backwards``) starts at each sample's last real step.
The mask comes from the lengths rather than from ``Masking``'s zero test,
because a real step may be all zeros (the arithmetic task's first number
is 0).  A single unidirectional layer on fixed lengths stays the
``Sequential`` model it always was.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np

from seqbench.contract import ModelSpec, Weights
from seqbench_keras import hidden_modules, other_engines


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


def build_network(spec: ModelSpec, *, allow_cudnn: bool = True) -> keras.Model:
    """The seed notebook's model for ``spec``, with zero weights (stacked, bidirectional and masked as the
    module says).

    The harness loads every weight, so Keras's random initialisers would only
    cost time; zeros also make a weight that failed to load obvious.
    """
    if spec.kind not in LAYERS:
        raise ValueError(f"the keras backend has no layer for model {spec.kind!r}")
    zeros = {"kernel_initializer": "zeros", "bias_initializer": "zeros", "dtype": spec.dtype}
    recurrent = {**zeros, "activation": spec.activation, "recurrent_initializer": "zeros"}
    x = keras.Input((spec.steps, spec.features), dtype=spec.dtype)
    if not (spec.stacked or spec.variable_length):
        layer = LAYERS[spec.kind](spec, allow_cudnn, **recurrent)
        return keras.Sequential([x, layer, keras.layers.Dense(spec.outputs, **zeros)])
    mask = keras.Input((spec.steps,), dtype="bool") if spec.variable_length else None
    h = x
    for layer_number in range(1, spec.layers + 1):
        layer = LAYERS[spec.kind](spec, allow_cudnn, return_sequences=layer_number < spec.layers, **recurrent)
        if spec.bidirectional:
            # Bidirectional copies the layer through Keras's serialization, which asks whether TensorFlow is
            # installed by importing it: on the jax and torch engines that would bring it into the worker.
            with hidden_modules(other_engines(keras.backend.backend())):
                layer = keras.layers.Bidirectional(layer, merge_mode="concat")
        h = layer(h) if mask is None else layer(h, mask=mask)
    out = keras.layers.Dense(spec.outputs, **zeros)(h)
    return keras.Model(x if mask is None else [x, mask], out)


def length_mask(lengths: np.ndarray | None, steps: int) -> np.ndarray | None:
    """The mask input of a variable-length network, ``(n, steps)`` bool, from the lengths; None without."""
    if lengths is None:
        return None
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


def network_inputs(x: object, mask: object | None) -> object:
    """What the network takes: ``x``, or ``[x, mask]`` for a variable-length one."""
    return x if mask is None else [x, mask]


def loss_function(spec: ModelSpec) -> keras.losses.Loss:
    """Mean squared error, or softmax cross-entropy of logits against class indices; both batch means."""
    if spec.classification:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def canonical_variables(network: keras.Model) -> dict[str, keras.Variable]:
    """The network's variables by canonical name (Keras's layout is the canonical one): each recurrent
    layer's cells in the order of ``ModelSpec.blocks`` (a ``Bidirectional``'s forward, then backward layer)."""
    cells = []
    for layer in network.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            cells += [layer.forward_layer.cell, layer.backward_layer.cell]
        elif isinstance(layer, keras.layers.RNN):
            cells.append(layer.cell)
    dense = network.layers[-1]
    names = ["", *(f"stack[{i}]." for i in range(len(cells) - 1))]
    variables = {}
    for prefix, cell in zip(names, cells, strict=True):
        variables.update({prefix + "kernel": cell.kernel, prefix + "recurrent_kernel": cell.recurrent_kernel,
                          prefix + "bias": cell.bias})  # fmt: skip
        if not prefix:  # the head's two follow the first block, as in Weights.arrays
            variables.update({"dense_kernel": dense.kernel, "dense_bias": dense.bias})
    return variables


def assign_weights(variables: dict[str, keras.Variable], weights: Weights, spec: ModelSpec) -> None:
    """Load canonical weights into :func:`canonical_variables`."""
    weights.check(spec)
    for name, array in weights.arrays().items():
        variables[name].assign(np.asarray(array, np.float32))


def mask_suffix(spec: ModelSpec) -> str:
    """What a path adds for variable lengths: Keras's masked recurrence."""
    return "+mask" if spec.variable_length else ""


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
        return Weights.from_arrays(arrays)

    def trainable_params(self) -> int:
        return sum(math.prod(v.shape) for v in self.network.trainable_variables)

    def synchronize(self) -> None:
        pass  # train_epoch returns a Python float, which waits for the epoch's last op

    def epoch_gpu_seconds(self) -> float | None:
        return None  # neither jax nor Keras offers a device-event timer that does not perturb the epoch

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        return self._shaped(keras.ops.convert_to_numpy(self.network(self._inputs(x, lengths), training=False)))

    def _inputs(self, x: np.ndarray, lengths: np.ndarray | None) -> object:
        return network_inputs(np.asarray(x, np.float32), length_mask(lengths, self.spec.steps))

    def _shaped(self, out: object) -> np.ndarray:
        out = np.asarray(out).astype(np.float32)
        return out if self.spec.classification else out.reshape(-1)

    def predictors(self) -> dict[str, Callable[..., np.ndarray]]:
        """Keras's own inference entry points, next to :meth:`predict`'s direct call: ``model.predict`` (what
        the tutorial calls: batches of 32 through a data adapter, callbacks and a compiled predict step) and
        ``predict_on_batch`` (the compiled step on one batch), so that their per-call overhead shows.  Each
        takes ``lengths=`` as :meth:`predict` does."""
        network = self.network

        def keras_predict(x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
            return self._shaped(network.predict(self._inputs(x, lengths), verbose=0))

        def on_batch(x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
            return self._shaped(network.predict_on_batch(self._inputs(x, lengths)))

        return {"model.predict": keras_predict, "predict_on_batch": on_batch}

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
        self.mask: np.ndarray | None = None

    def set_train_data(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        self.x = np.asarray(x, np.float32)
        self.y = np.asarray(y, np.float32).reshape(-1, 1)
        self.mask = length_mask(lengths, self.spec.steps)

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        inputs = network_inputs(self.x[order], None if self.mask is None else self.mask[order])
        history = self.network.fit(inputs, self.y[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        return float(history.history["loss"][0])

    def implementation_path(self) -> str:
        return (f"model.fit(epochs=1)/{keras.backend.backend()}" + ("+jit" if self.network.jit_compile else "")
                + mask_suffix(self.spec))  # fmt: skip

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "jit_compile": str(self.network.jit_compile)}
