"""The backend contract: what a plugin implements and the values that cross it.

Only Python scalars and NumPy arrays cross this boundary; no tensor or
framework model ever reaches the harness.  The harness owns the algorithm
(data, initial weights, batch order, epochs, timing, metrics); a backend
fills a small surface:

* :class:`Backend` describes itself without importing its framework and
  builds a :class:`Model` from a :class:`ModelSpec` and canonical weights;
* :class:`Model` trains one epoch on the batch order it is given, predicts,
  exports its weights in the canonical layout and reports what it ran.

The contract changes only by adding: new methods and fields are optional,
have defaults, and carry a ``versionadded`` note.
"""

from __future__ import annotations

import functools
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from seqbench.errors import SeqbenchError
from seqbench.machine import package_versions as installed_versions  # public: plugins record versions

ModelKind = Literal["rnn", "lstm", "gru"]
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh")
DEVICES: tuple[str, ...] = ("cpu", "gpu")
HEADS: tuple[str, ...] = ("regression", "classification")


@dataclass(frozen=True)
class KindInfo:
    """What a model kind is, as data: everything that code branching on the kind needs.

    Attributes:
        name: the kind's name on the command line (``--models``).
        gates: the blocks of ``units`` columns in the kernels, in canonical order.
        bias_rows: 1 for a bias ``(gates*h,)``; 2 for an input and a recurrent
            bias ``(2, gates*h)`` (the GRU with ``reset_after=True``).
        initial_bias: gate name -> the value its bias starts at (others start at 0).
        forward: the recurrence, for readers and implementers.

    .. versionadded:: 0.2
    """

    name: str
    gates: tuple[str, ...]
    bias_rows: int
    initial_bias: dict[str, float]
    forward: str

    def gate_slice(self, gate: str, units: int) -> slice:
        """The columns of ``gate`` in a canonical kernel or bias row."""
        k = self.gates.index(gate)
        return slice(k * units, (k + 1) * units)

    def gate_columns(self, order: Sequence[str], units: int) -> np.ndarray:
        """The canonical columns in a framework's gate ``order``: ``theirs = canonical[..., cols]``.

        ``canonical = theirs[..., np.argsort(cols)]`` goes back.  Integer-array indexing works alike in NumPy,
        torch and jax, so a backend loads and reads its weights with one line each way.  ``order`` names
        every gate of the kind once (torch's GRU: ``("reset", "update", "candidate")``).

        .. versionadded:: 0.3
        """
        if sorted(order) != sorted(self.gates):
            raise ValueError(f"gate order {tuple(order)} is not an order of the {self.name} gates {self.gates}")
        return np.concatenate([np.arange(units) + self.gates.index(gate) * units for gate in order])

    def split_gates(self, array: np.ndarray, units: int) -> dict[str, np.ndarray]:
        """A canonical kernel, recurrent kernel or bias row cut into its gate blocks (last axis), by name:
        for a framework that keeps one parameter per gate (Flax's ``LSTMCell``).

        ``np.concatenate([blocks[g] for g in info.gates], axis=-1)`` joins them again.

        .. versionadded:: 0.3
        """
        return {gate: array[..., self.gate_slice(gate, units)] for gate in self.gates}


# The one table of model kinds.  In the formulas ``act`` is the spec's
# activation, ``sig`` the logistic sigmoid, ``W`` the kernel, ``U`` the
# recurrent kernel, subscripts name a gate's columns, ``*`` is element-wise,
# and the state starts at zero.
KINDS: dict[str, KindInfo] = {
    "rnn": KindInfo(
        "rnn", ("candidate",), 1, {},
        "Keras SimpleRNN: h_t = act(x_t W + h_{t-1} U + b)",
    ),
    "lstm": KindInfo(
        "lstm", ("input", "forget", "candidate", "output"), 1, {"forget": 1.0},
        "Keras LSTM: i, f, o = sig(x_t W_g + h_{t-1} U_g + b_g) for g = input, forget, output; "
        "c_t = f * c_{t-1} + i * act(x_t W_c + h_{t-1} U_c + b_c); h_t = o * act(c_t). "
        "The forget bias starts at 1 (Keras's unit_forget_bias).",
    ),
    "gru": KindInfo(
        "gru", ("update", "reset", "candidate"), 2, {},
        "Keras GRU with reset_after=True (torch's nn.GRU computes the same in gate order reset, update, new): "
        "u, r = sig(x_t W_g + b_in_g + h_{t-1} U_g + b_rec_g) for g = update, reset; "
        "c = act(x_t W_c + b_in_c + r * (h_{t-1} U_c + b_rec_c)); h_t = u * h_{t-1} + (1 - u) * c. "
        "bias[0] is the input bias b_in, bias[1] the recurrent bias b_rec.",
    ),
}  # fmt: skip
MODEL_KINDS: tuple[str, ...] = tuple(KINDS)


def kind_info(kind: str) -> KindInfo:
    """The table entry of ``kind``; ``ValueError`` naming the valid kinds for an unknown one.

    .. versionadded:: 0.2
    """
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; valid: {', '.join(KINDS)}") from None


@dataclass(frozen=True)
class OptimizerSpec:
    """Adam as every backend must run it: Keras's defaults (docs/writing-a-backend.md).

    The update every backend must apply, per parameter ``w`` with gradient
    ``g`` at step ``t`` (1-based)::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
        w -= lr_t * m / (sqrt(v) + epsilon)
    """

    name: str = "adam"
    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-7

    def update(self, w: Any, g: Any, m: Any, v: Any, t: Any, sqrt: Callable[[Any], Any]) -> tuple[Any, Any, Any]:
        """One step of the update above for one parameter: ``(w, m, v)`` after step ``t`` (1-based).

        For arrays of any framework: it uses arithmetic and ``sqrt`` alone (``np.sqrt``, ``jnp.sqrt``; for torch
        a ``sqrt`` that takes a Python float too).  Where it matters: epsilon is added to ``sqrt(v)`` with the
        bias correction folded into the step size, as Keras does; optax's ``adam`` and ``torch.optim.Adam`` add
        it to ``sqrt(v_hat)``, which the conformance kit tells apart.

        .. versionadded:: 0.3
        """
        m = self.beta1 * m + (1 - self.beta1) * g
        v = self.beta2 * v + (1 - self.beta2) * g * g
        lr_t = self.learning_rate * sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
        return w - lr_t * m / (sqrt(v) + self.epsilon), m, v


@dataclass(frozen=True)
class ModelSpec:
    """One recurrent layer of ``units`` followed by a dense head.

    The recurrence of each kind is stated in :data:`KINDS`: ``activation``
    applies to the RNN update, to the LSTM's candidate and cell output and to
    the GRU's candidate; gates use sigmoid.

    The head (``head``, ``outputs``):

    * ``"regression"``: ``Dense(1)``; the loss is the mean squared error of the
      single output against the target; :meth:`Model.predict` returns ``(n,)``.
    * ``"classification"``: ``Dense(outputs)`` giving logits; the loss is the
      mean softmax cross-entropy against the integer class in the target
      (``y`` holds class indices as float32); :meth:`Model.predict` returns
      the logits ``(n, outputs)``.

    The shape of the model (:meth:`blocks`):

    * ``layers``: recurrent layers stacked; layer ``k > 1`` reads the whole output sequence of layer ``k - 1``.
    * ``bidirectional``: each layer runs a forward and a backward direction, each with its own weights, and
      concatenates their outputs, forward first (Keras's ``Bidirectional(merge_mode="concat")``); a layer's
      output, and the head's input, is then ``units * directions`` wide.
    * ``variable_length``: each sample has its own length, at most ``steps``; the harness pads the sequences
      at the end with zeros and hands the model the lengths (``set_train_data(..., lengths=)``,
      ``predict(..., lengths=)``).  The forward direction's output is its state after the sample's last real
      step; the backward direction reads the valid steps from the last to the first and its output is its
      state after the first; padding never enters either.

    .. versionadded:: 0.2 ``head`` and ``outputs``; the ``"gru"`` kind.
    .. versionadded:: 0.4 ``layers``, ``bidirectional`` and ``variable_length``.
    """

    kind: ModelKind
    units: int
    steps: int
    features: int = 1
    activation: str = "relu"
    dtype: str = "float32"
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    head: str = "regression"
    outputs: int = 1
    layers: int = 1
    bidirectional: bool = False
    variable_length: bool = False

    @property
    def info(self) -> KindInfo:
        """This kind's entry of :data:`KINDS` (``ValueError`` if unknown)."""
        return kind_info(self.kind)

    @property
    def gates(self) -> int:
        return len(self.info.gates)

    @property
    def classification(self) -> bool:
        return self.head == "classification"

    @property
    def directions(self) -> int:
        """2 for a bidirectional model, else 1.

        .. versionadded:: 0.4
        """
        return 2 if self.bidirectional else 1

    @property
    def stacked(self) -> bool:
        """More than one recurrent block: several layers or two directions.

        .. versionadded:: 0.4
        """
        return self.layers > 1 or self.bidirectional

    def blocks(self) -> list[tuple[int, str]]:
        """Every recurrent block as ``(layer, direction)``, in the canonical order: layer-major (1 first),
        ``"forward"`` then ``"backward"`` within a layer.  The first is :class:`Weights`' own kernel,
        recurrent kernel and bias; the others are :attr:`Weights.stack`, in this order.

        .. versionadded:: 0.4
        """
        directions = ("forward", "backward")[: self.directions]
        return [(layer, d) for layer in range(1, self.layers + 1) for d in directions]

    def block_shapes(self, layer: int) -> dict[str, tuple[int, ...]]:
        """The canonical shapes of one block of ``layer`` (1-based): its input is the features for layer 1,
        ``units * directions`` above it.

        .. versionadded:: 0.4
        """
        g, h = self.gates, self.units
        rows = self.info.bias_rows
        width = self.features if layer == 1 else h * self.directions
        return {
            "kernel": (width, g * h),
            "recurrent_kernel": (h, g * h),
            "bias": (g * h,) if rows == 1 else (rows, g * h),
        }

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical (Keras) shapes, named as :meth:`Weights.arrays` names them: the first block's three and
        the head's two, then ``stack[i].kernel`` etc. for each further block (:meth:`blocks`)."""
        shapes = {**self.block_shapes(1), "dense_kernel": (self.units * self.directions, self.outputs),
                  "dense_bias": (self.outputs,)}  # fmt: skip
        for i, (layer, _) in enumerate(self.blocks()[1:]):
            shapes.update({f"stack[{i}].{k}": v for k, v in self.block_shapes(layer).items()})
        return shapes

    def block_name(self, name: str) -> str:
        """A weight's name from :meth:`weight_shapes` in words: ``stack[0].kernel`` is
        ``layer 1 backward kernel`` in a bidirectional model (for messages).

        .. versionadded:: 0.4
        """
        head, dot, field_name = name.rpartition(".")
        if not dot:
            return name if not self.stacked or name.startswith("dense") else f"layer 1 forward {name}"
        layer, direction = self.blocks()[int(head[len("stack[") : -1]) + 1]
        return f"layer {layer} {direction} {field_name}"

    @property
    def param_count(self) -> int:
        """Trainable parameters in the canonical layout (RNN 131, LSTM 491, GRU 401 for the seed), every
        layer and direction counted."""
        return sum(int(np.prod(s)) for s in self.weight_shapes().values())


@dataclass(frozen=True)
class LayerWeights:
    """One recurrent block (a layer's direction) in the canonical layout: as :class:`Weights`' first three.

    .. versionadded:: 0.4
    """

    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class Weights:
    """Canonical weights (Keras layout).

    RNN: ``kernel (in, h)``, ``recurrent_kernel (h, h)``, ``bias (h,)``.
    LSTM: ``kernel (in, 4h)``, ``recurrent_kernel (h, 4h)``, ``bias (4h,)``
    with gates in the order input, forget, candidate, output.
    GRU: ``kernel (in, 3h)``, ``recurrent_kernel (h, 3h)``, ``bias (2, 3h)``
    (input bias, recurrent bias) with gates in the order update, reset,
    candidate (Keras, ``reset_after=True``).
    Head: ``dense_kernel (h * directions, outputs)``, ``dense_bias (outputs,)``.
    :meth:`ModelSpec.weight_shapes` gives every shape.

    A stacked or bidirectional model (:meth:`ModelSpec.blocks`): the first three fields are layer 1's forward
    direction, and ``stack`` holds every further block in the canonical order (layer-major, forward then
    backward): ``(layer 1 backward, layer 2 forward, layer 2 backward, ...)`` when bidirectional,
    ``(layer 2, layer 3, ...)`` when not.  Layer ``k > 1``'s kernel is ``(h * directions, g*h)``: its rows
    take the layer below's forward outputs, then its backward outputs.  A single layer has ``stack == ()``.

    .. versionadded:: 0.4 ``stack``.
    """

    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    dense_kernel: np.ndarray
    dense_bias: np.ndarray
    stack: tuple[LayerWeights, ...] = ()

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name, as :meth:`ModelSpec.weight_shapes` names them (``stack[i].kernel`` ...):
        a single layer's are the five fields, so ``Weights(**arrays())`` rebuilds it
        (:meth:`from_arrays` rebuilds any)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stack"}
        for i, block in enumerate(self.stack):
            out.update({f"stack[{i}].{f.name}": getattr(block, f.name) for f in fields(block)})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Weights:
        """The weights whose :meth:`arrays` are ``arrays``.

        .. versionadded:: 0.4
        """
        count = len({k.partition(".")[0] for k in arrays if k.startswith("stack[")})
        stack = tuple(LayerWeights(*(arrays[f"stack[{i}].{f.name}"] for f in fields(LayerWeights)))
                      for i in range(count))  # fmt: skip
        return cls(arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"], arrays["dense_kernel"],
                   arrays["dense_bias"], stack)  # fmt: skip

    def blocks(self) -> list[LayerWeights]:
        """Every recurrent block in the order of :meth:`ModelSpec.blocks`, the first one included.

        .. versionadded:: 0.4
        """
        return [LayerWeights(self.kernel, self.recurrent_kernel, self.bias), *self.stack]

    @classmethod
    def of_blocks(cls, blocks: Sequence[LayerWeights], dense_kernel: np.ndarray, dense_bias: np.ndarray) -> Weights:
        """The weights of ``blocks`` (in the order of :meth:`ModelSpec.blocks`) and the head.

        .. versionadded:: 0.4
        """
        first = blocks[0]
        return cls(first.kernel, first.recurrent_kernel, first.bias, dense_kernel, dense_bias, tuple(blocks[1:]))

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> Weights:
        """The weights with ``fn`` applied to every array (a copy, a cast).

        .. versionadded:: 0.4
        """
        return Weights.from_arrays({k: fn(v) for k, v in self.arrays().items()})

    def copy(self) -> Weights:
        return self.map(lambda a: np.array(a, copy=True))

    def check(self, spec: ModelSpec) -> None:
        """Raise ``ValueError`` naming the first array whose shape is wrong."""
        arrays = self.arrays()
        for name, shape in spec.weight_shapes().items():
            if name not in arrays:
                raise ValueError(f"weight {name!r} ({spec.block_name(name)}) is missing: {spec.layers} layer(s), "
                                 f"{spec.directions} direction(s) need {len(spec.blocks())} blocks")  # fmt: skip
            got = tuple(np.shape(arrays[name]))
            if got != shape:
                raise ValueError(f"weight {name!r} has shape {got}, expected {shape}")
        extra = sorted(set(arrays) - set(spec.weight_shapes()))
        if extra:
            raise ValueError(f"weights {', '.join(extra)} are more blocks than the spec has")


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and if not why and how to fix it."""

    available: bool
    reason: str = ""
    install_hint: str = ""


@runtime_checkable
class Model(Protocol):
    """A built model, owned by one worker process.

    The harness calls, in order: :meth:`set_train_data` once, then per epoch
    :meth:`train_epoch` and :meth:`synchronize` inside the timed region and
    :meth:`epoch_gpu_seconds` after it, then :meth:`predict`.
    """

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        """Keep the training set (``x (n, steps, features)``, ``y (n,)``, float32).

        For a classification head ``y`` holds the class indices (0 to
        ``outputs - 1``) as float32.

        Called before any timing: copy it to the device here, so that a
        batch is an index slice of data already in place.

        For a ``variable_length`` spec the harness passes ``lengths=`` too: each sample's real length, int32
        ``(n,)``, from 1 to ``steps``; ``x`` is zero past it.  A model of a fixed-length spec is never given
        lengths, so a backend that predates them needs no such parameter (:data:`MODEL_SHAPES`).

        .. versionadded:: 0.4 ``lengths`` (keyword, for a ``variable_length`` spec only).
        """

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        """Train one epoch and return its loss.

        Batches are ``order[i:i + batch_size]`` for ``i = 0, batch_size, ...``
        (the last one may be short: it is trained too), one Adam step each.
        The returned loss is the sample-weighted mean of the batch losses,
        each measured before its step: ``sum(loss_b * len_b) / len(order)``.

        The optimiser's state (Adam's moments and step count) persists across
        calls: three calls of one epoch each train exactly as one run of three
        epochs.  Resetting it per call is a bug the conformance kit catches.
        """

    def synchronize(self) -> None:
        """Return only when all queued device work has finished."""

    def epoch_gpu_seconds(self) -> float | None:
        """Device time of the last :meth:`train_epoch`, or None if not measured."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return predictions as a float NumPy array: ``(n,)`` for a regression
        head, the logits ``(n, outputs)`` for a classification head.

        For a ``variable_length`` spec the harness passes ``lengths=`` (int32 ``(n,)``), as to
        :meth:`set_train_data`.

        .. versionadded:: 0.4 ``lengths``.
        """

    def get_weights(self) -> Weights:
        """Return the current weights in the canonical layout, as NumPy arrays."""

    def trainable_params(self) -> int:
        """Count the parameters the framework itself will train."""

    def implementation_path(self) -> str:
        """Name what actually ran (e.g. ``"numpy-bptt"``, ``"cudnn"``)."""

    def describe(self) -> dict[str, str]:
        """Free-form facts worth recording with the cell, as strings.

        For example the device the framework placed the ops on, whether TF32
        is enabled, or how long compilation took.  May be empty.
        """


@runtime_checkable
class Backend(Protocol):
    """A registered backend.  Cheap to construct: no framework import.

    Attributes:
        name: unique, lower case, used on the command line (``--backends``).
        implementations: the named ways it can run a model; the first one
            that :meth:`supports` a spec is the default.
        devices: a subset of :data:`DEVICES`.
    """

    # Read-only, so that a plugin's tuples (``implementations = ("a", "b")``) satisfy the protocol.
    @property
    def name(self) -> str: ...
    @property
    def implementations(self) -> Sequence[str]: ...
    @property
    def devices(self) -> Sequence[str]: ...

    def availability(self) -> Availability:
        """Tell whether the framework is installed, without importing it."""

    def versions(self) -> dict[str, str]:
        """Versions of the packages this backend runs on (no framework import)."""

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        """Return None if the combination can run, else the reason it cannot."""

    def configure(self, device: str, threads: int) -> None:
        """Prepare the worker process once: thread pools, device, log level.

        Called in the worker before the first model is built; this is where
        the framework is imported.
        """

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        """Return a model of ``spec`` holding exactly ``weights``."""


# The model shapes beyond one unidirectional layer on fixed-length sequences (ModelSpec's layers,
# bidirectional and variable_length).  A backend lists those it can run in its optional attribute
# ``model_shapes``; one that lists none (every backend written before 0.4) is never asked to run them.
MODEL_SHAPES: tuple[str, ...] = ("layers", "bidirectional", "variable_length")


def unsupported_shape(backend: Backend, spec: ModelSpec) -> str | None:
    """Why ``backend`` cannot run the shape of ``spec`` as far as its ``model_shapes`` say, or None.

    A backend that does not list a shape (``model_shapes``, default none) is refused it whatever its
    ``supports`` says: a model written for one layer would silently run one.  Call :func:`refusal` rather
    than this: it asks ``supports`` too.

    .. versionadded:: 0.4
    """
    declared = set(getattr(backend, "model_shapes", ()))
    if spec.layers < 1:
        return f"layers must be at least 1, got {spec.layers}"
    wanted = {"layers": spec.layers > 1, "bidirectional": spec.bidirectional,
              "variable_length": spec.variable_length}  # fmt: skip
    missing = [name for name in MODEL_SHAPES if wanted[name] and name not in declared]
    if missing:
        what = {"layers": f"{spec.layers} layers", "bidirectional": "bidirectional",
                "variable_length": "variable-length sequences"}  # fmt: skip
        return (f"the {backend.name} backend does not run {' or '.join(what[m] for m in missing)} "
                f"(its model_shapes list {', '.join(sorted(declared)) or 'none'})")
    return None


def refusal(backend: Backend, implementation: str, spec: ModelSpec, device: str) -> str | None:
    """Why ``backend`` cannot run ``spec`` with ``implementation`` on ``device``, or None: the model shapes
    it declares (:func:`unsupported_shape`), then its own :meth:`Backend.supports`.  What the planner, the
    default choice and the conformance kit ask.

    .. versionadded:: 0.4
    """
    return unsupported_shape(backend, spec) or backend.supports(implementation, spec, device)


def unsupported_basics(backend: Backend, implementation: str, spec: ModelSpec, device: str) -> str | None:
    """The checks every ``supports`` starts with: a known implementation, device,
    model kind and activation, and float32.  Returns the reason, or None.

    .. versionadded:: 0.1
    """
    if implementation not in backend.implementations:
        return f"unknown implementation {implementation!r}; valid: {', '.join(backend.implementations)}"
    if device not in backend.devices:
        return f"device {device!r} is not one of {', '.join(backend.devices)}"
    if spec.kind not in MODEL_KINDS:
        return f"model {spec.kind!r} is not one of {', '.join(MODEL_KINDS)}"
    if spec.head not in HEADS:
        return f"head {spec.head!r} is not one of {', '.join(HEADS)}"
    if spec.activation not in ACTIVATIONS:
        return f"activation {spec.activation!r} is not one of {', '.join(ACTIVATIONS)}"
    if spec.dtype != "float32":
        return f"the {backend.name} backend computes in float32 only"
    return None


def module_found(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (a dotted name imports its parents).

    .. versionadded:: 0.3
    """
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # a dotted name whose parent is missing; a broken __spec__
        return False


class ModelBase:
    """Defaults for a model's optional members, so that a backend writes only what is its own.

    Subclass it (the :class:`Model` protocol still types the result):
    :meth:`synchronize` waits for nothing (a synchronous framework),
    :meth:`epoch_gpu_seconds` measures nothing, :meth:`implementation_path`
    says :attr:`path`, and :meth:`describe` records nothing.

    .. versionadded:: 0.3
    """

    path = ""  # what implementation_path() says; the class's name when empty

    def synchronize(self) -> None:
        """Nothing is queued: return at once (override for an asynchronous framework)."""

    def epoch_gpu_seconds(self) -> float | None:
        return None

    def implementation_path(self) -> str:
        return self.path or type(self).__name__

    def describe(self) -> dict[str, str]:
        return {}

    def predictors(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """None besides :meth:`predict` (see :func:`model_predictors`)."""
        return {}


def model_predictors(model: Model) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The other ways ``model`` can run its forward pass: the optional member ``predictors()``, by name.

    :meth:`Model.predict` is the path a backend measures by default.  A framework often has others that
    people deploy with, each with its own per-call cost: Keras's ``model.predict`` and ``predict_on_batch``
    next to a direct call, ``torch.compile`` next to the eager module.  Each predictor takes and returns
    what ``predict`` does (``lengths=`` too, for a ``variable_length`` spec), on the model's current
    weights.  The harness times each one like ``predict`` under ``--inference full`` (its first call apart:
    a compile happens there) and the conformance kit
    checks each against the NumPy reference.  A path that fails, or that silently does not do what it
    says (a compile that falls back to eager), raises, or records why in ``describe()``.

    .. versionadded:: 0.4
    """
    predictors = getattr(model, "predictors", None)
    return dict(predictors()) if predictors is not None else {}


class BackendBase:
    """Defaults for a backend, so that a new one declares data and writes ``build``.

    * :meth:`availability`: every module in :attr:`requires` can be found
      (without importing it), else the missing ones and :attr:`install_hint`;
    * :meth:`versions`: the installed versions of :attr:`distributions` (``installed_versions``);
    * :meth:`supports`: :func:`unsupported_basics`, then on ``gpu`` :meth:`no_gpu_reason` (extend it with
      ``super()``);
    * :meth:`no_gpu_reason`: :func:`no_nvidia_driver` (a framework adds what it knows of its own build);
    * :meth:`check_supported`: what ``build`` calls first, raising one error type for every backend;
    * :meth:`configure`: nothing (import the framework and set its thread pools here);
    * :attr:`trains`: True; an inference-only backend sets it False (:func:`backend_trains`).

    .. versionadded:: 0.3
    """

    name = ""
    implementations: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    # False for an inference-only backend (a deployment runtime): see backend_trains().  .. versionadded:: 0.3
    trains = True
    # The shapes of MODEL_SHAPES it can run (some implementation of it; supports() says which).  .. versionadded:: 0.4
    model_shapes: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # top-level modules that must be importable
    distributions: tuple[str, ...] = ()  # packages whose versions a run records
    install_hint = ""

    def availability(self) -> Availability:
        missing = [m for m in self.requires if not module_found(m)]
        if missing:
            return Availability(False, f"{' and '.join(missing)} not installed", self.install_hint)
        return Availability(True)

    def versions(self) -> dict[str, str]:
        return installed_versions(list(self.distributions))

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        reason = unsupported_basics(self, implementation, spec, device)
        if reason is None and device == "gpu":
            reason = self.no_gpu_reason()
        return reason

    def no_gpu_reason(self) -> str | None:
        """Why this backend cannot use a GPU here, from cheap facts: never import the framework for it.

        ``--device auto`` and ``seqbench list`` trust the answer; ``configure`` checks for real in the worker.
        """
        return no_nvidia_driver()

    def check_supported(self, implementation: str, spec: ModelSpec, device: str) -> None:
        """Raise :class:`~seqbench.errors.SeqbenchError` naming the reason when :meth:`supports` refuses."""
        reason = refusal(self, implementation, spec, device)
        if reason is not None:
            raise SeqbenchError(f"{self.name}:{implementation} cannot run {spec.kind}/{spec.activation} on {device}: "
                                f"{reason}")  # fmt: skip

    def configure(self, device: str, threads: int) -> None:
        """Nothing to prepare (the worker has already set the thread variables of seqbench.threads)."""

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        """What every backend writes itself: a model of ``spec`` holding exactly ``weights``."""
        raise NotImplementedError(f"backend {self.name!r} does not define build()")


def backend_trains(backend: Backend) -> bool:
    """Whether ``backend`` trains: the optional attribute ``trains`` (:class:`BackendBase` says True).

    An inference-only backend (``trains = False``, e.g. a deployment runtime) builds a model holding the
    canonical initial weights it is given and only predicts: the harness runs no epoch for it and times its
    inference alone (no training figures, never a failure for want of them); its model's ``set_train_data``
    and ``train_epoch`` are never called, and the conformance kit checks its forward pass but not training.

    .. versionadded:: 0.3
    """
    return bool(getattr(backend, "trains", True))


def default_order(backend: Backend, spec: ModelSpec, device: str) -> list[str]:
    """The implementations to try, in order, when the user names none.

    A backend may define the optional ``default_implementation(spec, device)
    -> str | None`` when the fastest choice depends on the spec; otherwise (or
    when it returns None) the order of ``implementations`` decides.  The first
    one that :meth:`Backend.supports` the spec is the default.

    .. versionadded:: 0.1
    """
    order = list(backend.implementations)
    prefer = getattr(backend, "default_implementation", None)
    choice = prefer(spec, device) if prefer is not None else None
    if choice in order:
        order.remove(choice)
        order.insert(0, choice)
    return order


def default_implementation(backend: Backend, spec: ModelSpec, device: str) -> str | None:
    """The implementation a run picks for ``spec`` on ``device`` when none is named, or None.

    .. versionadded:: 0.1
    """
    return next((i for i in default_order(backend, spec, device) if refusal(backend, i, spec, device) is None), None)


def device_unavailable(backend: Backend, device: str) -> str | None:
    """None if ``backend`` can run some seed-size model on ``device`` here, else why not (its first reason).

    .. versionadded:: 0.1
    """
    reasons = []
    for kind in typing.get_args(ModelKind):
        for activation in ACTIVATIONS:
            spec = ModelSpec(kind=kind, units=10, steps=3, activation=activation)
            for implementation in backend.implementations:
                why = backend.supports(implementation, spec, device)
                if why is None:
                    return None
                reasons.append(why)
    return reasons[0] if reasons else "no implementation"


@functools.lru_cache(maxsize=1)
def no_nvidia_driver() -> str | None:
    """Why no NVIDIA GPU can be used here, judged from cheap facts; None when a driver is present.

    For a backend's :meth:`Backend.supports` on ``device="gpu"``: it must answer
    without importing its framework, and ``--device auto`` trusts the answer
    (a backend that says yes on a machine without a GPU makes every cell fail).
    The facts: the platform, ``/proc/driver/nvidia/version`` (the loaded kernel
    driver) and whether ``libcuda`` (the driver's user-space library, also how
    WSL2 exposes a GPU) can be found.  Costs a few milliseconds, once.

    .. versionadded:: 0.1
    """
    if sys.platform == "darwin":
        return "macOS has no CUDA (NVIDIA) GPU support"
    if Path("/proc/driver/nvidia/version").exists():
        return None
    import ctypes.util  # here, not at the top: the CLI's start path imports this module

    if ctypes.util.find_library("cuda") is not None:
        return None
    return "no NVIDIA driver found (no /proc/driver/nvidia/version, no libcuda)"
