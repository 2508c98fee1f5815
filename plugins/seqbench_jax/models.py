"""JAX models behind :class:`seqbench.contract.Model`; imported on first use.

The network is a pure function of a parameter dict in the canonical (Keras)
layout, so weights cross the contract unchanged.  It is assembled from two
tables keyed by name, so that a new model kind or head is one entry:

* :data:`CELLS`: per kind, the input projection (hoisted out of the time
  loop: one product for every step) and the step function ``lax.scan``
  iterates over time;
* :data:`HEADS`: per head, the output and the per-sample loss.

Training state (parameters, Adam's moments and its step count) lives on the
device and persists across epochs.  Both implementations pad every batch to
``batch_size`` and mask the padding out of the loss, so the short last batch
needs no second program: a padded row adds exactly zero to the loss and the
gradients, and the mean divides by the real rows only.

Stacked, bidirectional and variable-length models run every block (a
layer's direction) with the same cell through :meth:`Network.blocks`: the
parameters of block ``k > 0`` are ``stack[k-1].kernel`` etc. in the flat
dict, the backward direction is ``lax.scan(..., reverse=True)``, and with
variable lengths each scan step is masked: a sample's state stays as it was
at a step past its length (so the backward direction starts at the last
real step, and both end holding each sample's output).

Every matrix product asks for ``Precision.HIGHEST``: on a GPU, XLA's default
float32 product may run in TF32 or bf16 passes, which the conformance kit's
float32 tolerances would not survive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from jax import lax

from seqbench import SeqbenchError
from seqbench.compiled import padded_batches
from seqbench.contract import ModelSpec, OptimizerSpec, Weights
from seqbench_jax.kinds import HEADS as HEAD_NAMES
from seqbench_jax.kinds import KINDS, head_of

Params = dict[str, jax.Array]
Carry = tuple[jax.Array, ...]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"relu": jax.nn.relu, "tanh": jnp.tanh}
_dot = partial(jnp.matmul, precision=lax.Precision.HIGHEST)


def jax_device(device: str) -> jax.Device:
    """The jax device for a seqbench device name; loud if the GPU is missing."""
    if device == "cpu":
        return jax.devices("cpu")[0]
    if device == "gpu":
        try:
            return jax.devices("gpu")[0]
        except RuntimeError as e:
            raise SeqbenchError(
                f"device 'gpu' requested but jax {jax.__version__} sees no GPU "
                "(a CPU-only jaxlib, no CUDA plugin such as jax[cuda12], or no driver)"
            ) from e
    raise SeqbenchError(f"unknown device {device!r} for the jax backend; valid: cpu, gpu")


# ------------------------------------------------------------------ cells, keyed by kind


class Cell(NamedTuple):
    """A recurrent kind: ``project(params, x)`` is every step's input term at once
    (``x (batch, steps, in)`` -> ``(batch, steps, gates*h)``); ``states`` is the
    number of state arrays (the first is the output ``h``); ``step(params, carry,
    xw_t, act)`` advances the state by one time step."""

    project: Callable[[Params, jax.Array], jax.Array]
    states: int
    step: Callable[[Params, Carry, jax.Array, Callable[[jax.Array], jax.Array]], Carry]


def _project(p: Params, x: jax.Array) -> jax.Array:
    return _dot(x, p["kernel"]) + p["bias"]


def _rnn_step(p: Params, carry: Carry, xw_t: jax.Array, act: Callable[[jax.Array], jax.Array]) -> Carry:
    (h,) = carry
    return (act(xw_t + _dot(h, p["recurrent_kernel"])),)


def _lstm_step(p: Params, carry: Carry, xw_t: jax.Array, act: Callable[[jax.Array], jax.Array]) -> Carry:
    h, c = carry
    i, f, g, o = jnp.split(xw_t + _dot(h, p["recurrent_kernel"]), 4, axis=-1)  # canonical gate order
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * act(g)
    return (jax.nn.sigmoid(o) * act(c), c)


def _gru_project(p: Params, x: jax.Array) -> jax.Array:
    return _dot(x, p["kernel"]) + p["bias"][0]  # bias (2, 3h): the input row here, the recurrent row per step


def _gru_step(p: Params, carry: Carry, xw_t: jax.Array, act: Callable[[jax.Array], jax.Array]) -> Carry:
    """Keras's GRU with ``reset_after=True``, gates in the canonical order update, reset, candidate."""
    (h,) = carry
    x_z, x_r, x_h = jnp.split(xw_t, 3, axis=-1)
    h_z, h_r, h_h = jnp.split(_dot(h, p["recurrent_kernel"]) + p["bias"][1], 3, axis=-1)
    z, r = jax.nn.sigmoid(x_z + h_z), jax.nn.sigmoid(x_r + h_r)
    return (z * h + (1 - z) * act(x_h + r * h_h),)


CELLS: dict[str, Cell] = {
    "rnn": Cell(_project, 1, _rnn_step),
    "lstm": Cell(_project, 2, _lstm_step),
    "gru": Cell(_gru_project, 1, _gru_step),
}


# ------------------------------------------------------------------ heads, keyed by name


class Head(NamedTuple):
    """An output head: ``output(params, h)`` and ``loss(out, y)`` per sample."""

    output: Callable[[Params, jax.Array], jax.Array]
    loss: Callable[[jax.Array, jax.Array], jax.Array]


def _regression_output(p: Params, h: jax.Array) -> jax.Array:
    return (_dot(h, p["dense_kernel"]) + p["dense_bias"])[:, 0]


def _logits(p: Params, h: jax.Array) -> jax.Array:
    return _dot(h, p["dense_kernel"]) + p["dense_bias"]


def _cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Softmax cross-entropy of the logits against class indices (carried as floats), per sample."""
    picked = jnp.take_along_axis(logits, y.astype(jnp.int32)[:, None], axis=-1)[:, 0]
    return jax.nn.logsumexp(logits, axis=-1) - picked


HEADS: dict[str, Head] = {
    "regression": Head(_regression_output, lambda out, y: jnp.square(out - y)),
    "classification": Head(_logits, _cross_entropy),
}

assert set(CELLS) == set(KINDS) and set(HEADS) == set(HEAD_NAMES), "kinds.py and models.py disagree"


def _lookup(table: dict[str, Any], name: str, what: str) -> Any:
    if name not in table:  # fail loudly: never fall back to another kind
        raise SeqbenchError(f"the jax backend has no {what} {name!r}; valid: {', '.join(table)}")
    return table[name]


# ------------------------------------------------------------------ the network and its training


class Network:
    """The pure functions of one spec: forward, masked loss, one Adam step, one epoch."""

    def __init__(self, spec: ModelSpec) -> None:
        self.cell: Cell = _lookup(CELLS, spec.kind, "model kind")
        self.head: Head = _lookup(HEADS, head_of(spec), "head")
        self.act = _lookup(ACTIVATIONS, spec.activation, "activation")
        self.units = spec.units
        self.opt: OptimizerSpec = spec.optimizer
        self.spec = spec
        # the name prefix of each block's three parameters, in the order of ModelSpec.blocks
        self.prefixes = ["", *(f"stack[{i}]." for i in range(len(spec.blocks()) - 1))]

    def forward(self, p: Params, x: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
        """``x (batch, steps, in)`` (and each sample's length, for variable-length data) -> the head's output
        for each sample."""
        if self.spec.stacked or lengths is not None:
            return self.head.output(p, self.blocks(p, x, lengths))
        xw = jnp.swapaxes(self.cell.project(p, x), 0, 1)  # time-major, for lax.scan
        zeros = jnp.zeros((x.shape[0], self.units), x.dtype)
        carry0 = (zeros,) * self.cell.states

        def step(carry: Carry, xw_t: jax.Array) -> tuple[Carry, None]:
            return self.cell.step(p, carry, xw_t, self.act), None

        carry, _ = lax.scan(step, carry0, xw)
        return self.head.output(p, carry[0])

    def blocks(self, p: Params, x: jax.Array, lengths: jax.Array | None) -> jax.Array:
        """Every layer and direction over ``x (batch, steps, in)``, masked past each sample's length; the last
        layer's final states, forward first, ``(batch, units * directions)``."""
        steps = x.shape[1]
        valid = None if lengths is None else jnp.arange(steps)[:, None] < lengths[None, :]  # (steps, batch)
        zeros = jnp.zeros((x.shape[0], self.units), x.dtype)
        seq, k = x, 0
        for _ in range(self.spec.layers):
            outputs, finals = [], []
            for direction in range(self.spec.directions):
                block = {name: p[self.prefixes[k] + name] for name in ("kernel", "recurrent_kernel", "bias")}
                k += 1
                xw = jnp.swapaxes(self.cell.project(block, seq), 0, 1)

                def step(carry: Carry, inputs: tuple, block: Params = block) -> tuple[Carry, jax.Array]:
                    xw_t, keep = inputs
                    new = self.cell.step(block, carry, xw_t, self.act)
                    if keep is not None:
                        new = tuple(jnp.where(keep[:, None], n, c) for n, c in zip(new, carry, strict=True))
                    return new, new[0]

                carry, hs = lax.scan(step, (zeros,) * self.cell.states, (xw, valid), reverse=direction == 1)
                outputs.append(jnp.swapaxes(hs, 0, 1))
                finals.append(carry[0])
            seq = jnp.concatenate(outputs, axis=-1)
        return jnp.concatenate(finals, axis=-1)

    def loss(self, p: Params, x: jax.Array, y: jax.Array, lengths: jax.Array | None, mask: jax.Array) -> jax.Array:
        """Mean loss over the rows where ``mask`` is 1; padded rows add exactly zero."""
        return jnp.sum(mask * self.head.loss(self.forward(p, x, lengths), y)) / jnp.sum(mask)

    def adam(self, p: Params, g: Params, state: tuple) -> tuple[Params, tuple]:
        """The update of :class:`OptimizerSpec`, with the bias correction in float32 as Keras computes it."""
        t, m, v = state
        t = t + 1
        tf = t.astype(jnp.float32)
        new = {name: self.opt.update(p[name], g[name], m[name], v[name], tf, jnp.sqrt) for name in p}
        p, m, v = ({name: step[k] for name, step in new.items()} for k in range(3))
        return p, (t, m, v)

    def train_step(self, p: Params, opt: tuple, x: jax.Array, y: jax.Array, lengths: jax.Array | None,
                   idx: jax.Array, mask: jax.Array):  # fmt: skip
        """One Adam step on the batch ``idx`` of the data on the device; the loss before it, times its rows."""
        batch_lengths = None if lengths is None else lengths[idx]
        loss, grads = jax.value_and_grad(self.loss)(p, x[idx], y[idx], batch_lengths, mask)
        p, opt = self.adam(p, grads, opt)
        return p, opt, loss * jnp.sum(mask)

    def epoch(self, p: Params, opt: tuple, x: jax.Array, y: jax.Array, lengths: jax.Array | None,
              idx: jax.Array, mask: jax.Array):  # fmt: skip
        """A whole epoch: ``lax.scan`` over the rows of ``idx (batches, batch_size)``."""

        def body(carry: tuple, batch: tuple[jax.Array, jax.Array]) -> tuple[tuple, None]:
            p, opt, total = carry
            p, opt, weighted = self.train_step(p, opt, x, y, lengths, *batch)
            return (p, opt, total + weighted), None

        (p, opt, total), _ = lax.scan(body, (p, opt, jnp.float32(0.0)), (idx, mask))
        return p, opt, total / jnp.sum(mask)

    def step_at(self, p: Params, opt: tuple, total: jax.Array, x: jax.Array, y: jax.Array, lengths: jax.Array | None,
                idx: jax.Array, mask: jax.Array, i: jax.Array):  # fmt: skip
        """Batch ``i`` of the padded epoch: the per-batch program of ``step``."""
        p, opt, weighted = self.train_step(p, opt, x, y, lengths, idx[i], mask[i])
        return p, opt, total + weighted


class JaxModel:
    """A built jax model: see :class:`seqbench.contract.Model` for the contract.

    Subclasses compile their training program(s) on first use in
    :meth:`train_epoch`, timed by :meth:`_compile`.
    """

    path = ""

    def __init__(self, spec: ModelSpec, weights: Weights, device: str, facts: dict[str, str]) -> None:
        weights.check(spec)
        self.spec = spec
        self.device = jax_device(device)
        self.net = Network(spec)
        self.facts = facts
        self.params: Params = {k: jax.device_put(np.asarray(a, np.float32), self.device)
                               for k, a in weights.arrays().items()}  # fmt: skip
        zeros = jax.tree.map(jnp.zeros_like, self.params)
        self.opt = (jax.device_put(jnp.int32(0), self.device), zeros, jax.tree.map(jnp.zeros_like, self.params))
        self.x = self.y = jnp.zeros(0)
        self.lengths: jax.Array | None = None  # each training sample's length (variable-length data)
        self.programs: dict[tuple, Any] = {}  # compiled training programs, by data and batch shape
        self.trace_lower_s = 0.0
        self.compile_s = 0.0
        self._predict = jax.jit(self.net.forward)

    def _lengths(self, lengths: np.ndarray | None) -> jax.Array | None:
        return None if lengths is None else jax.device_put(np.asarray(lengths, np.int32), self.device)

    def set_train_data(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        self.x = jax.device_put(np.asarray(x, np.float32), self.device)
        self.y = jax.device_put(np.asarray(y, np.float32).reshape(-1), self.device)
        self.lengths = self._lengths(lengths)

    def _compile(self, fn: Callable, *args: Any, donate: tuple[int, ...]) -> Any:
        """Compile ``fn`` for ``args`` ahead of time, timing tracing+lowering and XLA's compilation apart.

        jax has no public per-call compile figure (``jax.monitoring`` events exist
        but their names are internal); timing the two AOT stages is exact and
        public.  The time falls inside the first epoch, where the harness expects it.
        """
        t0 = time.perf_counter()
        lowered = jax.jit(fn, donate_argnums=donate).lower(*args)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        self.trace_lower_s += t1 - t0
        self.compile_s += time.perf_counter() - t1
        return compiled

    def synchronize(self) -> None:
        jax.block_until_ready(self.params)

    def epoch_gpu_seconds(self) -> float | None:
        # jax has no public device-event timer (like CUDA events in torch); its
        # profiler traces would perturb the epoch they measure.  The harness's wall
        # clock includes synchronize(), so it is the honest figure.
        return None

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        raise NotImplementedError  # each implementation below compiles its own program

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """The jitted forward pass (a new input shape compiles once: the first call at it holds the compile)."""
        out = self._predict(self.params, jax.device_put(np.asarray(x, np.float32), self.device),
                            self._lengths(lengths))  # fmt: skip
        return np.asarray(out, np.float32)

    def predictors(self) -> dict[str, Callable[..., np.ndarray]]:
        """The same forward pass without jit, op by op: what jit saves a call."""

        def eager(x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
            with jax.disable_jit():
                return np.asarray(self.net.forward(self.params, jax.device_put(np.asarray(x, np.float32), self.device),
                                                   self._lengths(lengths)), np.float32)  # fmt: skip

        return {"no jit": eager}

    def get_weights(self) -> Weights:
        return Weights.from_arrays({k: np.array(v, np.float32) for k, v in self.params.items()})  # np.array copies

    def trainable_params(self) -> int:
        return sum(int(v.size) for v in self.params.values())

    def implementation_path(self) -> str:
        masked = "+masked-scan" if self.spec.variable_length else ""
        return f"{self.path}{masked}/{self.device.platform}"

    def describe(self) -> dict[str, str]:
        return {
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "device": f"{self.device.platform}:{self.device.id} ({self.device.device_kind})",
            "matmul_precision": "highest",
            # AOT stages timed inside epoch 1 (see _compile); 0 until the first epoch ran.
            "compile_s": f"{self.trace_lower_s + self.compile_s:.4f}",
            "trace_lower_s": f"{self.trace_lower_s:.4f}",
            "xla_compile_s": f"{self.compile_s:.4f}",
            "programs_compiled": str(len(self.programs)),
            "persistent_compilation_cache": str(jax.config.jax_compilation_cache_dir or "off"),
            "last_batch": "padded and masked",
            **self.facts,
        }


class EpochModel(JaxModel):
    """``epoch``: one XLA program per epoch; one host call and one sync per epoch."""

    path = "jit-epoch(lax.scan)"

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        idx, mask = padded_batches(order, batch_size)
        key = (self.x.shape, idx.shape)
        idx_d, mask_d = jax.device_put(idx, self.device), jax.device_put(mask, self.device)
        args = (self.params, self.opt, self.x, self.y, self.lengths, idx_d, mask_d)
        if key not in self.programs:
            self.programs[key] = self._compile(self.net.epoch, *args, donate=(0, 1))
        self.params, self.opt, loss = self.programs[key](*args)
        return float(loss)


class StepModel(JaxModel):
    """``step``: one compiled train step per batch, dispatched from Python.

    The epoch's padded order goes to the device once; each call indexes its
    batch there, and the loss accumulates on the device (one sync per epoch).
    """

    path = "jit-step"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._indices: list[jax.Array] = []

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        idx, mask = padded_batches(order, batch_size)
        key = (self.x.shape, idx.shape)
        if len(self._indices) != len(idx):  # device scalars made once, not one transfer per batch
            self._indices = [jax.device_put(np.int32(i), self.device) for i in range(len(idx))]
        idx_d, mask_d = jax.device_put(idx, self.device), jax.device_put(mask, self.device)
        total = jax.device_put(np.float32(0.0), self.device)
        if key not in self.programs:
            args = (self.params, self.opt, total, self.x, self.y, self.lengths, idx_d, mask_d, self._indices[0])
            self.programs[key] = self._compile(self.net.step_at, *args, donate=(0, 1, 2))
        program = self.programs[key]
        for i in self._indices:
            self.params, self.opt, total = program(self.params, self.opt, total, self.x, self.y, self.lengths, idx_d,
                                                   mask_d, i)  # fmt: skip
        return float(total) / len(order)


MODELS: dict[str, type[JaxModel]] = {"epoch": EpochModel, "step": StepModel}


def build_model(implementation: str, spec: ModelSpec, weights: Weights, device: str,
                facts: dict[str, str]) -> JaxModel:  # fmt: skip
    """Build ``implementation`` (a key of :data:`MODELS`) of ``spec`` on ``device`` holding ``weights``."""
    return _lookup(MODELS, implementation, "implementation")(spec, weights, device, facts)
