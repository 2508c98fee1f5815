"""Keras on the jax engine: a whole epoch as one XLA program, through Keras's stateless API.

Imported by :meth:`seqbench_keras.KerasJaxBackend.build`, after ``configure``
set ``KERAS_BACKEND=jax`` and imported keras.

``epoch`` is how Keras's own jax trainer trains (``stateless_call`` under
``jax.value_and_grad``, then ``optimizer.stateless_apply``), with the batch
loop moved inside the compiled program: ``lax.scan`` over the padded batches,
the short last batch masked out of the loss.  Its cost next to the plain
``jax`` backend is what Keras's layers and optimiser add to one XLA program.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from seqbench.compiled import padded_batches
from seqbench.contract import ModelSpec, Weights
from seqbench_keras.base import EngineModel, length_mask, mask_suffix, network_inputs


class JaxEpochModel(EngineModel):
    """``epoch``: one jitted program per epoch; the state lives as jax arrays between epochs."""

    def __init__(self, spec: ModelSpec, weights: Weights, device: str, engine_facts: dict[str, str]) -> None:
        super().__init__(spec, weights, device, engine_facts)
        self.optimizer.build(self.network.trainable_variables)
        self.device_ = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        self.state = self._read_state()
        self.x = self.y = jnp.zeros(0)
        self.mask: jax.Array | None = None
        self.programs: dict[tuple, Any] = {}
        self.trace_lower_s = self.compile_s = 0.0
        self._stale = False  # the Keras variables lag behind self.state
        self._forward: Any = None  # the jitted prediction, made on first use

    def _read_state(self) -> tuple:
        put = lambda v: jax.device_put(v.value, self.device_)  # noqa: E731
        return (
            [put(v) for v in self.network.trainable_variables],
            [put(v) for v in self.network.non_trainable_variables],
            [put(v) for v in self.optimizer.variables],
        )

    def _sync(self) -> None:
        """Write the trained state back into the Keras variables (for weights and prediction)."""
        if self._stale:
            trainable, non_trainable, _ = self.state
            for v, value in zip(self.network.trainable_variables, trainable, strict=True):
                v.assign(value)
            for v, value in zip(self.network.non_trainable_variables, non_trainable, strict=True):
                v.assign(value)
            self._stale = False

    def set_weights(self, weights: Weights) -> None:
        super().set_weights(weights)
        if hasattr(self, "state"):
            self.state = self._read_state()

    def get_weights(self) -> Weights:
        self._sync()
        return super().get_weights()

    def predictors(self) -> dict[str, Callable[..., np.ndarray]]:
        self._sync()  # Keras's own entry points read the Keras variables, which lag behind the trained state
        return super().predictors()

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """The network's stateless call on the trained state, jitted as Keras's jax trainer jits its
        ``predict_step`` (calling the Keras model directly would run it op by op: 50-120 ms a sample)."""
        if self._forward is None:
            network = self.network

            def forward(trainable: list, non_trainable: list, xb: Any) -> jax.Array:
                return network.stateless_call(trainable, non_trainable, xb, training=False)[0]

            self._forward = jax.jit(forward)
        trainable, non_trainable, _ = self.state
        inputs = network_inputs(np.asarray(x, np.float32), length_mask(lengths, self.spec.steps))
        out = np.asarray(self._forward(trainable, non_trainable, jax.device_put(inputs, self.device_)), np.float32)
        return out if self.spec.classification else out.reshape(-1)

    def set_train_data(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        self.x = jax.device_put(np.asarray(x, np.float32), self.device_)
        self.y = jax.device_put(np.asarray(y, np.float32).reshape(-1), self.device_)
        mask = length_mask(lengths, self.spec.steps)
        self.mask = None if mask is None else jax.device_put(mask, self.device_)

    def _epoch(self, state: tuple, x: jax.Array, y: jax.Array, steps_mask: jax.Array | None, idx: jax.Array,
               mask: jax.Array):  # fmt: skip
        network, optimizer = self.network, self.optimizer

        def loss_fn(trainable: list, non_trainable: list, xb: Any, yb: jax.Array, m: jax.Array):
            pred, non_trainable = network.stateless_call(trainable, non_trainable, xb, training=True)
            # Keras's "sum_over_batch_size" would divide by the padded size: mean over real rows.
            return jnp.sum(m * jnp.square(pred[:, 0] - yb)) / jnp.sum(m), non_trainable

        def body(carry: tuple, batch: tuple) -> tuple[tuple, None]:
            (trainable, non_trainable, opt), total = carry
            i, m = batch
            xb = network_inputs(x[i], None if steps_mask is None else steps_mask[i])
            (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, non_trainable, xb,
                                                                                      y[i], m)  # fmt: skip
            trainable, opt = optimizer.stateless_apply(opt, grads, trainable)
            return ((trainable, non_trainable, opt), total + loss * jnp.sum(m)), None

        (state, total), _ = lax.scan(body, (state, jnp.float32(0.0)), (idx, mask))
        return state, total / jnp.sum(mask)

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        idx, mask = padded_batches(order, batch_size)
        args = (self.state, self.x, self.y, self.mask, jax.device_put(idx, self.device_),
                jax.device_put(mask, self.device_))  # fmt: skip
        key = (self.x.shape, idx.shape)
        if key not in self.programs:  # compiled ahead of time, inside epoch 1, and timed (describe())
            t0 = time.perf_counter()
            lowered = jax.jit(self._epoch, donate_argnums=(0,)).lower(*args)
            t1 = time.perf_counter()
            self.programs[key] = lowered.compile()
            self.trace_lower_s += t1 - t0
            self.compile_s += time.perf_counter() - t1
        self.state, loss = self.programs[key](*args)
        self._stale = True
        return float(loss)

    def implementation_path(self) -> str:
        return f"jit-epoch(lax.scan, stateless_call){mask_suffix(self.spec)}/{self.device_.platform}"

    def describe(self) -> dict[str, str]:
        return {
            **super().describe(),
            "device": f"{self.device_.platform}:{self.device_.id} ({self.device_.device_kind})",
            "matmul_precision": str(jax.config.jax_default_matmul_precision),
            "compile_s": f"{self.trace_lower_s + self.compile_s:.4f}",
            "trace_lower_s": f"{self.trace_lower_s:.4f}",
            "xla_compile_s": f"{self.compile_s:.4f}",
            "last_batch": "padded and masked",
        }
