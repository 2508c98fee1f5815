"""The conformance kit: proof that a backend runs the same model as the reference.

Run it against your backend with one line in any test file::

    from seqbench.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backends = ("mybackend",)  # None (the default): every registered, available backend

pytest then checks every implementation of the backend that ``supports``
each case: every model kind of :data:`seqbench.contract.KINDS` (RNN, LSTM,
GRU), relu and tanh, both heads, on the inputs the built-in tasks produce
(:data:`SHAPES`):

* ``seed``: the seed notebook's shape and its unscaled arithmetic inputs
  (0 to ~100), 70 samples in batches of 32 (a short last batch of 6);
* ``normal``: N(0, 1) inputs, 32 units, 12 steps, 3 features, batches of 16
  with a short last batch of 4;
* ``adding``: the adding problem's inputs (a value in [0, 1] and a 0/1
  marker per step), 20 steps, tanh;
* ``digits``: a classification head with 10 classes on 8 steps of 8 pixels
  in [0, 1] (scikit-learn's digits when installed, else pixels drawn the
  same way), tanh;
* ``deep``: three stacked layers on N(0, 1) inputs, tanh (layers given each
  other's weights show);
* ``bidir-masked``: two stacked bidirectional layers on the adding problem
  with variable lengths (``min_steps``), tanh: the directions, the padding
  and where each sample's output is read all show.  Backends check these
  only where they declare the shapes (``model_shapes``) and ``supports``
  them.

For each case:

* the trainable parameter count equals the canonical count;
* canonical weights in give the same weights out;
* with the same weights, predictions match the plainly written float64
  model (relative error <= :data:`FORWARD_RTOL`);
* **three epochs** on fixed batch orders, each ending in a short batch, give
  losses and weights that match the reference after every epoch (relative
  error <= :data:`TRAIN_RTOL`): a backend that drops the short batch, or
  resets Adam's moments or step count between ``train_epoch`` calls, fails;
* stacked, bidirectional and variable-length cases: one Adam step on one
  full batch gives the loss and every layer's and direction's weights of
  the reference (relative error <= :data:`TRAIN_RTOL`);
* the same seed twice gives the same loss curve, another seed another one;
* the model names the implementation path it actually ran;
* variable lengths: each sample's prediction, padded, equals its prediction
  run alone without padding (relative error <= :data:`PADDING_RTOL`).

An inference-only backend (``trains = False``: :func:`seqbench.contract.backend_trains`) skips the training
checks (three epochs, the seed's loss curve) and passes every other one: its parameter count, weights and
predictions, with random weights, against the reference.

The training reference is the NumPy model in float64, so the bound
measures the backend's own float32 error.  Relative error is
``max|got - want| / max|want|`` over an array, so entries near zero do not
dominate.

**Tolerances, where two correct float32 codes legitimately differ.**  The
``seed`` inputs with tanh saturate: unscaled inputs give pre-activations of
tens to hundreds, where float32 tanh is exactly +-1 and its derivative
``1 - tanh^2`` is 0 or a few ulps, depending on how the library rounds tanh
near 1 (XLA's CPU tanh returns exactly +-1 from |z| ~ 8, NumPy's only from
~ 10).  Gradients through saturated units then differ between correct codes,
and Adam, which divides by ``sqrt(v)``, turns tiny gradients' differences
into visible weight differences.  Those cases (tanh on ``seed`` inputs) use
:data:`SATURATED_RTOL`, and a failure message says so.

After training, an array whose entries all stay small (a bias, or the
single dense bias, after a few Adam steps of 1e-3) is compared on the scale
:data:`SCALE_FLOOR` rather than its own: Adam amplifies float32 rounding in
near-zero gradients, and torch's loop GRU and the float64 reference were
measured 1.8e-4 apart, relatively, on a dense bias of a few 1e-3 after three
epochs.  One Adam step missed or repeated moves every parameter by about
the learning rate (1e-3), 1e-2 on that scale: still far above the bound.  The kit imports no
framework itself; the backends under test do, in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import numpy as np
import pytest

from seqbench.contract import (
    MODEL_KINDS,
    Backend,
    Model,
    ModelSpec,
    Weights,
    backend_trains,
    model_predictors,
    refusal,
)
from seqbench.harness import initial_weights, run_cell
from seqbench.plugins import load_registry
from seqbench.results import CellConfig
from seqbench.tasks import AddingTask, ArithmeticTask

REFERENCE = "numpy"
FORWARD_RTOL = 1e-5
TRAIN_RTOL = 1e-4
# tanh on unscaled inputs: see "Tolerances" above.
SATURATED_RTOL = 1e-2
# After training, arrays are compared on the scale max(max|want|, SCALE_FLOOR); see "Tolerances".
SCALE_FLOOR = 0.1
EPOCHS = 3
PADDING_RTOL = 1e-6  # padded against unpadded: the same arithmetic on the same real steps


@dataclass(frozen=True)
class Shape:
    """One kind of input the kit trains on: its sizes, its data source, its head."""

    label: str
    units: int
    steps: int
    features: int
    samples: int  # never a multiple of batch: every epoch ends with a short batch
    batch: int
    inputs: str  # "arithmetic", "normal", "adding" or "digits"
    activations: tuple[str, ...] = ("relu", "tanh")
    head: str = "regression"
    outputs: int = 1
    layers: int = 1
    bidirectional: bool = False
    min_steps: int | None = None  # variable lengths, from min_steps to steps (the adding task only)


SHAPES = [
    Shape("seed", 10, 3, 1, 70, 32, "arithmetic"),
    Shape("normal", 32, 12, 3, 100, 16, "normal"),
    Shape("adding", 16, 20, 2, 100, 32, "adding", ("tanh",)),
    Shape("digits", 16, 8, 8, 90, 32, "digits", ("tanh",), "classification", 10),
    Shape("deep", 16, 10, 3, 100, 32, "normal", ("tanh",), layers=3),
    Shape("bidir-masked", 16, 12, 2, 100, 32, "adding", ("tanh",), layers=2, bidirectional=True, min_steps=3),
]
SHAPE = {s.label: s for s in SHAPES}


@dataclass(frozen=True)
class Case:
    backend: str
    implementation: str
    device: str
    spec: ModelSpec
    shape: str
    samples: int
    batch: int

    @property
    def id(self) -> str:
        return f"{self.backend}:{self.implementation}-{self.spec.kind}-{self.spec.activation}-{self.shape}"

    @property
    def saturates(self) -> bool:
        """tanh on unscaled inputs: gradients through saturated units (see the module docstring)."""
        return self.spec.activation == "tanh" and SHAPE[self.shape].inputs == "arithmetic"

    @property
    def train_rtol(self) -> float:
        return SATURATED_RTOL if self.saturates else TRAIN_RTOL


def relative_error(got: np.ndarray, want: np.ndarray, floor: float = 1e-30) -> float:
    """``max|got - want| / max(max|want|, floor)`` over the whole array."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != expected {want.shape}")
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), floor))


def random_weights(spec: ModelSpec, seed: int = 1) -> Weights:
    """Weights that are non-zero everywhere, biases included, so a weight that failed to load shows."""
    gen = np.random.default_rng(seed)
    shapes = spec.weight_shapes()
    return Weights.from_arrays({k: gen.uniform(-0.5, 0.5, s).astype(np.float32) for k, s in shapes.items()})


def _rnn_step(act, z, zh, h, c):  # noqa: ANN001, ANN202
    z = z + zh
    return act(z), c


def _lstm_step(act, z, zh, h, c):  # noqa: ANN001, ANN202
    i, f, g, o = np.split(z + zh, 4, axis=1)  # canonical gate order
    c = _sig(f) * c + _sig(i) * act(g)
    return _sig(o) * act(c), c


def _gru_step(act, z, zh, h, c):  # noqa: ANN001, ANN202
    # z holds x W + b_in, zh holds h U + b_rec (reset_after=True)
    xu, xr, xc = np.split(z, 3, axis=1)
    hu, hr, hc = np.split(zh, 3, axis=1)
    u, r = _sig(xu + hu), _sig(xr + hr)
    cand = act(xc + r * hc)
    return u * h + (1 - u) * cand, c


def _sig(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# One plainly written step per kind of seqbench.contract.KINDS; a kind missing here fails loudly.
_STEPS = {"rnn": _rnn_step, "lstm": _lstm_step, "gru": _gru_step}


def reference_forward(spec: ModelSpec, weights: Weights, x: np.ndarray,
                      lengths: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The canonical model written out plainly, in float64: a check independent of any backend.

    Returns ``(n,)`` for a regression head and the logits ``(n, outputs)`` for
    a classification head, as :meth:`Model.predict` does.

    Stacked, bidirectional and variable-length models are written as Keras runs them with a mask: each
    direction visits every step in its own time order, and a step past a sample's length keeps that sample's
    state as it was; the backward direction visits the steps from the last to the first.  (The NumPy
    reference backend computes the same differently: see its module.)
    """
    if spec.kind not in _STEPS:
        raise ValueError(f"the kit has no reference forward for model kind {spec.kind!r}")
    step = _STEPS[spec.kind]
    act = np.tanh if spec.activation == "tanh" else (lambda z: np.maximum(z, 0.0))
    n, steps = len(x), x.shape[1]
    valid = np.ones((n, steps), bool) if lengths is None else np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
    seq = np.asarray(x, np.float64)
    blocks = iter(weights.blocks())
    for _ in range(spec.layers):
        outputs, finals = [], []
        for direction in range(spec.directions):
            block = next(blocks)
            k, r, b = (np.asarray(a, np.float64) for a in (block.kernel, block.recurrent_kernel, block.bias))
            b_in, b_rec = (b, 0.0) if spec.info.bias_rows == 1 else (b[0], b[1])
            h = np.zeros((n, spec.units))
            c = np.zeros_like(h)
            out = np.zeros((n, steps, spec.units))
            for t in range(steps) if direction == 0 else range(steps - 1, -1, -1):
                h_new, c_new = step(act, seq[:, t] @ k + b_in, h @ r + b_rec, h, c)
                keep = valid[:, t, None]
                h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
                out[:, t] = h
            outputs.append(out)
            finals.append(h)
        seq = np.concatenate(outputs, axis=2)
    out = np.concatenate(finals, axis=1) @ np.asarray(weights.dense_kernel, np.float64) + weights.dense_bias
    return out if spec.classification else out[:, 0]


STACK_CAUSES = (
    " Stacked, bidirectional or variable-length: the directions' outputs concatenated backward first, the "
    "backward direction run over the padding (it must start at each sample's last real step), the output read "
    "at the padded last step instead of each sample's last real step, or layers given each other's weights "
    "(Weights.stack is layer-major, forward then backward: ModelSpec.blocks)"
)
FORWARD_CAUSES = (
    "Likely causes: the gate order (canonical: see seqbench.contract.KINDS), the bias layout (one bias row, or "
    "the GRU's input and recurrent rows with reset_after=True), a bias or the head's bias never loaded, the "
    "activation applied to the wrong terms"
)


def check_parameter_count(spec: ModelSpec, got: int) -> None:
    """Fail, with both numbers and the likely cause, unless ``got`` is the canonical parameter count."""
    want = spec.param_count
    if int(got) != want:
        shapes = ", ".join(f"{spec.block_name(k)} {v}" for k, v in spec.weight_shapes().items())
        raise AssertionError(
            f"trainable_params() is {got}, the canonical count for {spec.kind} with {spec.units} units is {want} "
            f"({shapes}): a second bias vector counted (torch's bias_hh), a frozen weight counted, or a weight missing"
        )


def gate_differences(spec: ModelSpec, name: str, got: np.ndarray, want: np.ndarray, rtol: float = 0.0) -> str:
    """Which gate blocks of a kernel or bias differ (``input, forget``), or "" where ``name`` has no gates.

    ``rtol`` 0: any difference; else a block differs by more than ``rtol`` of the whole array's scale
    (``max(max|want|, SCALE_FLOOR)``, as :func:`compare_training` measures).
    """
    info, h = spec.info, spec.units
    if name.rpartition(".")[2] not in ("kernel", "recurrent_kernel", "bias") or got.shape != want.shape:
        return ""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bound = rtol * max(float(np.max(np.abs(want), initial=0.0)), SCALE_FLOOR) if rtol else 0.0
    blocks = info.split_gates(np.abs(got - want), h)
    return ", ".join(gate for gate, diff in blocks.items() if np.max(diff, initial=0.0) > bound)


def check_round_trip(spec: ModelSpec, weights: Weights, got: Weights) -> None:
    """Fail unless ``got`` (from ``get_weights()``) equals ``weights`` exactly, naming the weight and the gates."""
    arrays = got.arrays()
    missing = sorted(set(weights.arrays()) - set(arrays))
    if missing:
        raise AssertionError(f"get_weights() lacks {', '.join(spec.block_name(m) for m in missing)}: every layer "
                             "and direction must come back (Weights.stack, in the order of ModelSpec.blocks)")
    for name, array in weights.arrays().items():
        value = arrays[name]
        if not isinstance(value, np.ndarray):
            raise AssertionError(f"{name} is {type(value).__name__}, not a NumPy array")
        if value.shape != array.shape:
            raise AssertionError(f"{name} has shape {value.shape}, the canonical shape is {array.shape}")
        if not np.array_equal(value, array):
            gates = gate_differences(spec, name, value, array)
            where = f" in gate(s) {gates}" if gates else ""
            zero = " (it came back as zeros: never loaded?)" if not np.any(value) else ""
            raise AssertionError(
                f"{name} did not round-trip{where}{zero}{_words(spec, name)}: largest difference "
                f"{float(np.max(np.abs(value.astype(np.float64) - array))):.3g}; a permuted gate order, a "
                "transposed matrix or a bias row in the wrong place"
            )


def _words(spec: ModelSpec, name: str) -> str:
    """`` (layer 2 backward kernel)`` for a weight of a further block, else ""."""
    return f" ({spec.block_name(name)})" if name.startswith("stack[") else ""


def assert_weights_close(got: Weights, want: Weights, rtol: float, what: str) -> None:
    arrays = got.arrays()
    for name, array in want.arrays().items():
        err = relative_error(arrays[name], array)
        assert err <= rtol, f"{what}: {name} differs from the reference (relative error {err:.2e} > {rtol:g})"


@cache
def _registry():  # noqa: ANN202 - one registry per test session
    return load_registry()


_configured: set[tuple[str, str]] = set()


def backend_for(name: str, device: str = "cpu") -> Backend:
    """The registered backend ``name``, configured once per process and device."""
    backend = _registry().backend(name)
    if (name, device) not in _configured:
        backend.configure(device, 2)
        _configured.add((name, device))
    return backend


def cases(backends: tuple[str, ...] | None, devices: tuple[str, ...]) -> list[Any]:
    """Every (backend, implementation, spec) case, as pytest params; unsupported ones skip."""
    reg = _registry()
    names = sorted(reg.backends) if backends is None else list(backends)
    params = []
    for name in names:
        backend = reg.backend(name)
        availability = backend.availability()
        for device in devices:
            for implementation in backend.implementations:
                for shape in SHAPES:
                    for kind in MODEL_KINDS:
                        for activation in shape.activations:
                            spec = ModelSpec(kind, shape.units, shape.steps, shape.features, activation,  # type: ignore[arg-type]
                                             head=shape.head, outputs=shape.outputs, layers=shape.layers,
                                             bidirectional=shape.bidirectional,
                                             variable_length=shape.min_steps is not None)  # fmt: skip
                            case = Case(name, implementation, device, spec, shape.label, shape.samples, shape.batch)
                            why = (
                                f"{name} is not available: {availability.reason}"
                                if not availability.available
                                else refusal(backend, implementation, spec, device)
                            )
                            marks = [pytest.mark.skip(reason=why)] if why else []
                            params.append(pytest.param(case, id=case.id, marks=marks))
    return params


def _digits(n: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pixels as the digits have them: integers 0..16, scaled
        return gen.integers(0, 17, (n, 8, 8)) / 16.0, gen.integers(0, 10, n)
    bunch = load_digits()
    return bunch.images[:n] / 16.0, bunch.target[:n]


def case_lengths(case: Case) -> np.ndarray | None:
    """Each sample's length for a variable-length case (the adding task's, int32), else None."""
    shape = SHAPE[case.shape]
    if shape.min_steps is None:
        return None
    return AddingTask().make(7, samples=case.samples, steps=shape.steps, min_steps=shape.min_steps).lengths_train


def lengths_kw(case: Case) -> dict[str, Any]:
    """``{"lengths": ...}`` for a variable-length case, else nothing (as the harness calls a model)."""
    lengths = case_lengths(case)
    return {} if lengths is None else {"lengths": lengths}


def case_data(case: Case) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The case's inputs, targets and one batch order per epoch (float32, seeded); zero past each sample's
    length in a variable-length case (:func:`case_lengths`)."""
    shape, n = SHAPE[case.shape], case.samples
    gen = np.random.default_rng(7)
    if shape.inputs == "arithmetic":
        data = ArithmeticTask().make(7, samples=n, steps=shape.steps)
        x, y = data.x_train, data.y_train
    elif shape.inputs == "adding":
        extra = {} if shape.min_steps is None else {"min_steps": shape.min_steps}
        data = AddingTask().make(7, samples=n, steps=shape.steps, **extra)
        x, y = data.x_train, data.y_train
    elif shape.inputs == "digits":
        x, y = _digits(n, gen)
    else:
        x = gen.standard_normal((n, shape.steps, shape.features))
        y = gen.standard_normal(n)
    orders = [gen.permutation(n) for _ in range(EPOCHS)]
    return np.asarray(x, np.float32), np.asarray(y, np.float32), orders


def _pair(build: Callable[[Weights], Model], case: Case, weights: Weights, x: np.ndarray,
          y: np.ndarray) -> tuple[Model, Model]:  # fmt: skip
    """The float64 reference (reached through the registry like any backend) and the model, both holding
    ``weights`` and the training data."""
    reference = backend_for(REFERENCE).build("reference", replace(case.spec, dtype="float64"), weights, "cpu")
    model = build(weights)
    for m in (reference, model):
        m.set_train_data(x, y, **lengths_kw(case))
    return reference, model


def _weights_off(case: Case, got: Weights, want: Weights, rtol: float) -> list[str]:
    """The weights (with the gates where they differ) further from the reference than ``rtol``."""
    off = []
    arrays = got.arrays()
    for name, array in want.arrays().items():
        if relative_error(arrays[name], array, floor=SCALE_FLOOR) > rtol:
            gates = gate_differences(case.spec, name, arrays[name], array, rtol)
            label = case.spec.block_name(name)
            off.append(f"{label} (gates {gates})" if gates else label)
    return off


def _not_trained(spec: ModelSpec, before: Weights, ref: Weights, got: Weights) -> str:
    """The weights one Adam step left where they were while the reference moved them ("" if none).

    Adam moves a weight with any gradient by about the learning rate, so a weight that stays put where the
    reference moved it by a tenth of that got no gradient at all (saturation alone cannot do it).
    """
    moved_by = 0.1 * spec.optimizer.learning_rate
    still = []
    refs, gots = ref.arrays(), got.arrays()
    for name, start in before.arrays().items():
        d_ref = np.asarray(refs[name], np.float64) - start
        frozen = (np.asarray(gots[name], np.float64) == start) & (np.abs(d_ref) > moved_by)
        if np.any(frozen):
            gates = gate_differences(spec, name, np.where(frozen, 1.0, 0.0), np.zeros(frozen.shape))
            where = f" (gates {gates})" if gates else ""
            if frozen.ndim == 2 and name.endswith("bias") and not name.startswith("dense"):  # the GRU's two rows
                rows = [str(r) for r in range(len(frozen)) if frozen[r].any()]
                where += f" in row {', '.join(rows)} (row 0 is the input bias, row 1 the recurrent bias)"
            still.append(f"{int(frozen.sum())} of {frozen.size} entries of {spec.block_name(name)}{where}")
    return ", ".join(still)


def _first_step_cause(before: Weights, ref: Weights, got: Weights, off: list[str]) -> str:
    """Why one Adam step from the same weights on the same full batch lands elsewhere (all weights train)."""
    moved = []
    refs, gots = ref.arrays(), got.arrays()
    for name, start in before.arrays().items():
        d_ref = np.asarray(refs[name], np.float64) - start
        d_got = np.asarray(gots[name], np.float64) - start
        moved.append(bool(np.all(np.sign(d_got) == np.sign(d_ref))))
    if all(moved):
        return (f"one Adam step moves {', '.join(off)} the right way by the wrong amount: the optimiser itself. "
                "Adam adds epsilon to sqrt(v) with the bias correction folded into the step size "
                "(OptimizerSpec.update, as Keras); optax's adam and torch.optim.Adam add it to sqrt(v_hat). "
                "Or the learning rate or a beta differs")
    return (f"one Adam step from the same weights on the same batch differs in {', '.join(off)}: the gradient "
            "(the backward pass of those weights; for the GRU, reset_after=True puts the recurrent bias inside "
            "the reset gate)")


def diagnose_training(build: Callable[[Weights], Model], case: Case, epoch: int) -> str:
    """Why ``build``'s training left the reference at ``epoch``, found by training both again on smaller probes.

    One full batch (the loss, then one Adam step), then one epoch of full batches only; what first differs
    names the cause: the forward pass, a weight that is not trained, Adam's update, the step count or moments
    within an epoch, the short last batch, or the state carried between ``train_epoch`` calls.
    """
    weights = initial_weights(case.spec, 3)
    x, y, orders = case_data(case)
    rtol = case.train_rtol
    one = orders[0][: case.batch]
    reference, model = _pair(build, case, weights, x, y)
    want_loss, got_loss = reference.train_epoch(one, case.batch), model.train_epoch(one, case.batch)
    model.synchronize()
    if abs(got_loss - want_loss) > rtol * abs(want_loss):
        return f"the loss of one batch before any update differs: the forward pass or the loss. {FORWARD_CAUSES}"
    ref_weights, got_weights = reference.get_weights(), model.get_weights()
    still = _not_trained(case.spec, weights, ref_weights, got_weights)
    if still:
        return (f"one Adam step from the same weights leaves {still} where they were, which the reference moved: "
                "a weight that is not trained (frozen, detached, not registered as a parameter, or its gradient "
                "never reaches it)")
    # one step from the same weights: float32 rounding alone stays far inside TRAIN_RTOL, saturation or not
    off = _weights_off(case, got_weights, ref_weights, min(rtol, TRAIN_RTOL))
    if off:
        return _first_step_cause(weights, ref_weights, got_weights, off)
    full = orders[0][: len(orders[0]) - len(orders[0]) % case.batch]
    reference, model = _pair(build, case, weights, x, y)
    want_loss, got_loss = reference.train_epoch(full, case.batch), model.train_epoch(full, case.batch)
    model.synchronize()
    off = _weights_off(case, model.get_weights(), reference.get_weights(), rtol)
    if off or abs(got_loss - want_loss) > rtol * abs(want_loss):
        return ("one step agrees but an epoch of full batches does not: Adam's step count or moments are not "
                "carried from one batch to the next (or the batches are not taken in the order given)")
    if epoch == 1:
        return ("every full batch agrees: the short last batch must be trained, and its loss weighted by its "
                "length in the epoch's mean")
    return (f"epoch 1 agrees and epoch {epoch} does not: the optimiser's state (Adam's moments and step) must "
            "persist across train_epoch calls")


def compare_training(build: Callable[[Weights], Model], case: Case) -> None:
    """Train ``build(weights)`` for :data:`EPOCHS` epochs beside the float64 reference; assert they agree.

    Every epoch ends with a short batch, and epochs are separate ``train_epoch``
    calls, so the optimiser's state must persist from one call to the next.  A failure names the weights and
    gates that differ and the cause that :func:`diagnose_training` finds.
    """
    weights = initial_weights(case.spec, 3)
    x, y, orders = case_data(case)
    assert len(x) % case.batch, "the kit's cases end every epoch with a short batch"
    reference, model = _pair(build, case, weights, x, y)
    rtol = case.train_rtol
    why = " (tanh on unscaled inputs saturates: see seqbench.testing)" if case.saturates else ""
    for epoch, order in enumerate(orders, 1):
        want_loss, got_loss = reference.train_epoch(order, case.batch), model.train_epoch(order, case.batch)
        model.synchronize()
        off = _weights_off(case, model.get_weights(), reference.get_weights(), rtol)
        if abs(got_loss - want_loss) <= rtol * abs(want_loss) and not off:
            continue
        what = f"loss {got_loss!r} against the reference's {want_loss!r}"
        if off:
            what += f"; {', '.join(off)} further than {rtol:g} from the reference"
        raise AssertionError(f"epoch {epoch}: {what}{why}. Likely cause: {diagnose_training(build, case, epoch)}")


def _build(name: str, implementation: str, case: Case, weights: Weights) -> Any:
    return backend_for(name, case.device).build(implementation, case.spec, weights, case.device)


def _skip_unless_it_trains(case: Case) -> None:
    if not backend_trains(backend_for(case.backend, case.device)):
        pytest.skip(f"{case.backend} is inference only (trains = False): no training to check")


class BackendConformance:
    """Subclass in a test module; set ``backends`` to the names to check."""

    backends: tuple[str, ...] | None = None
    devices: tuple[str, ...] = ("cpu",)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case" in metafunc.fixturenames:
            metafunc.parametrize("case", cases(self.backends, self.devices))

    def test_parameter_count_is_canonical(self, case: Case) -> None:
        model = _build(case.backend, case.implementation, case, initial_weights(case.spec, 0))
        check_parameter_count(case.spec, model.trainable_params())

    def test_weights_round_trip(self, case: Case) -> None:
        # random, non-zero everywhere: the initial biases are zero, so a bias never loaded would pass with them
        weights = random_weights(case.spec, 1)
        model = _build(case.backend, case.implementation, case, weights)
        check_round_trip(case.spec, weights, model.get_weights())

    def test_forward_matches_reference(self, case: Case) -> None:
        weights = random_weights(case.spec, 2)  # non-zero biases and head bias: each must reach the output
        x, _, _ = case_data(case)
        want = reference_forward(case.spec, weights, x, case_lengths(case))
        got = _build(case.backend, case.implementation, case, weights).predict(x, **lengths_kw(case))
        shape = (len(x), case.spec.outputs) if case.spec.classification else (len(x),)
        assert isinstance(got, np.ndarray) and got.shape == shape, f"predict() returned shape {np.shape(got)}"
        err = relative_error(got, want)
        assert err <= FORWARD_RTOL, (
            f"predictions differ from the reference: relative error {err:.2e} > {FORWARD_RTOL:g}. {FORWARD_CAUSES}"
            + (STACK_CAUSES if case.spec.stacked or case.spec.variable_length else "")
        )

    def test_padding_does_not_change_the_output(self, case: Case) -> None:
        lengths = case_lengths(case)
        if lengths is None:
            pytest.skip("a fixed-length case has no padding")
        weights = random_weights(case.spec, 2)
        x, _, _ = case_data(case)
        backend = backend_for(case.backend, case.device)
        model = backend.build(case.implementation, case.spec, weights, case.device)
        present = sorted(set(lengths.tolist()))
        # the shortest, a middle and the longest length: each is a new shape, which a compiled backend compiles
        for length in dict.fromkeys([present[0], present[len(present) // 2], present[-1]]):
            rows = np.flatnonzero(lengths == length)
            # the same samples cut to their length: a fixed-length model where the backend has one, else the
            # variable-length one with every length at its steps
            spec = replace(case.spec, steps=length, variable_length=False)
            kw: dict[str, Any] = {}
            if refusal(backend, case.implementation, spec, case.device) is not None:
                spec, kw = replace(spec, variable_length=True), {"lengths": lengths[rows]}
            alone = backend.build(case.implementation, spec, weights, case.device).predict(x[rows, :length], **kw)
            # the same rows both ways: one batch size, so float32 products sum in the same order
            # on the scale max(max|want|, SCALE_FLOOR): outputs near zero come from intermediates of order 0.1-1,
            # whose float32 rounding (6e-8) two shapes of one product may round differently
            padded = model.predict(x[rows], **{"lengths": lengths[rows]})
            err = relative_error(padded, alone, floor=SCALE_FLOOR)
            assert err <= PADDING_RTOL, (
                f"the samples of length {length} predict differently padded to {case.spec.steps} steps than alone "
                f"(relative error {err:.2e} > {PADDING_RTOL:g}): the padding enters the model. {STACK_CAUSES}"
            )

    def test_every_inference_path_matches_reference(self, case: Case) -> None:
        # Each of the model's other predictors (model.predict, torch.compile...) on the same weights and input.
        if case.shape not in ("seed", "bidir-masked"):
            pytest.skip("checked on the seed shape and the stacked, bidirectional, masked one: a path compiles per "
                        "model, and the forward check covers the other shapes")
        weights = random_weights(case.spec, 2)
        x, _, _ = case_data(case)
        want = reference_forward(case.spec, weights, x, case_lengths(case))
        paths = model_predictors(_build(case.backend, case.implementation, case, weights))
        if not paths:
            pytest.skip(f"{case.backend}:{case.implementation} has no other inference path")
        for name, predict in paths.items():
            err = relative_error(np.asarray(predict(x, **lengths_kw(case))).reshape(np.shape(want)), want)
            assert err <= FORWARD_RTOL, (
                f"inference path {name!r} differs from the reference: relative error {err:.2e} > {FORWARD_RTOL:g}"
            )

    def test_three_epochs_match_reference(self, case: Case) -> None:
        _skip_unless_it_trains(case)
        compare_training(lambda weights: _build(case.backend, case.implementation, case, weights), case)

    def test_one_training_step_matches_reference(self, case: Case) -> None:
        """One Adam step on one full batch, from the same weights: the loss before it and every weight after.

        For stacked, bidirectional and variable-length cases, where a layer's or a direction's gradient
        that goes astray shows in its own weights after one step, before three epochs blur it.
        """
        _skip_unless_it_trains(case)
        if not (case.spec.stacked or case.spec.variable_length):
            pytest.skip("a single layer's first step is checked by the three epochs (and their diagnosis)")
        build = lambda weights: _build(case.backend, case.implementation, case, weights)  # noqa: E731
        weights = initial_weights(case.spec, 3)
        x, y, orders = case_data(case)
        reference, model = _pair(build, case, weights, x, y)
        one = orders[0][: case.batch]
        want, got = reference.train_epoch(one, case.batch), model.train_epoch(one, case.batch)
        model.synchronize()
        off = _weights_off(case, model.get_weights(), reference.get_weights(), TRAIN_RTOL)
        assert abs(got - want) <= TRAIN_RTOL * abs(want) and not off, (
            f"one step: loss {got!r} against the reference's {want!r}"
            + (f"; {', '.join(off)} further than {TRAIN_RTOL:g} from the reference" if off else "")
            + f". {STACK_CAUSES}"
        )

    def test_seed_determines_the_loss_curve(self, case: Case) -> None:
        _skip_unless_it_trains(case)
        if case.shape != "seed" or case.spec.kind != "lstm":
            pytest.skip("checked on the seed shape's LSTM: the epoch loop is the harness's, whatever the kind")
        backend = backend_for(case.backend, case.device)

        def curve(seed: int) -> list[float]:
            cell = CellConfig(task="arithmetic", model=case.spec.kind, backend=case.backend,
                              implementation=case.implementation, device=case.device, seed=seed,
                              units=case.spec.units, activation=case.spec.activation, epochs=3,
                              batch_size=case.batch, threads=2)  # fmt: skip
            losses: list[float] = []
            run_cell(backend, cell, ArithmeticTask(), lambda e: losses.append(e.loss))
            return losses

        first, again, other = curve(0), curve(0), curve(1)
        np.testing.assert_allclose(again, first, rtol=1e-6, err_msg="same seed, different loss curve")
        assert relative_error(np.array(other), np.array(first)) > 1e-3, "another seed gave the same curve"

    def test_reports_the_implementation_path(self, case: Case) -> None:
        model = _build(case.backend, case.implementation, case, initial_weights(case.spec, 0))
        path = model.implementation_path()
        assert isinstance(path, str) and path.strip(), "implementation_path() must name what ran"
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in model.describe().items())
