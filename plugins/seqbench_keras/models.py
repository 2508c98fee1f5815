"""Keras 3 models behind the seqbench contract.

Imported by :meth:`seqbench_keras.KerasBackend.build`, after ``configure``
has set the environment, the threads and the visible devices.  This module
is the TensorFlow engine's; :mod:`seqbench_keras.base` holds what the engines
share, :mod:`seqbench_keras.jax_models` and :mod:`seqbench_keras.torch_models`
the other engines' own loops.

The network is what a Keras user writes for the seed task::

    Sequential([Input((steps, features)), SimpleRNN | LSTM | GRU(units, activation), Dense(outputs)])

trained on the mean squared error (regression) or the softmax cross-entropy
of the logits (classification) with ``keras.optimizers.Adam``, whose update
is the contract's canonical one.  Keras's layout is the canonical weight
layout (the GRU with ``reset_after=True``), so weights cross the contract
unchanged.
"""

from __future__ import annotations

import math
import queue
import threading
import weakref
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from seqbench.contract import ModelSpec, Weights
from seqbench_keras.base import CUDNN_KINDS, EngineModel, length_mask, loss_function, mask_suffix, network_inputs

# model.fit runs "forever" and is stopped from its callback: the harness, not
# fit, decides how many epochs there are.
_FIT_EPOCHS = 2**31 - 1
_STOP_TIMEOUT_S = 60.0


def uses_cudnn(spec: ModelSpec, allow_cudnn: bool) -> bool:
    """Keras's own rule for its cuDNN LSTM and GRU: tanh, sigmoid gates, a bias, no unrolling, a GPU."""
    return (
        allow_cudnn
        and spec.kind in CUDNN_KINDS
        and spec.activation == "tanh"
        and bool(tf.config.get_visible_devices("GPU"))
    )


def _targets(spec: ModelSpec, y: np.ndarray) -> tf.Tensor:
    """Regression targets as ``(n, 1)`` float32; class indices as ``(n,)`` int32."""
    if spec.classification:
        return tf.constant(np.asarray(y).astype(np.int32))
    return tf.constant(np.reshape(y, (-1, 1)), tf.float32)


class KerasModel(EngineModel):
    """What every TensorFlow implementation shares: :class:`EngineModel`, with cuDNN where Keras picks it.

    Subclasses implement :meth:`set_train_data`, :meth:`train_epoch` and
    :meth:`implementation_path`.
    """

    def __init__(self, spec: ModelSpec, weights: Weights, device: str, *, allow_cudnn: bool = True) -> None:
        super().__init__(spec, weights, device, {}, allow_cudnn=allow_cudnn)
        self.cudnn = uses_cudnn(spec, allow_cudnn)

    # TensorFlow's own conversions: keras.ops.convert_to_numpy on a TensorFlow tensor warns under NumPy 2
    # (Keras's __array__ takes no copy keyword).
    def get_weights(self) -> Weights:
        return Weights.from_arrays({name: np.array(v.numpy(), np.float32) for name, v in self.variables.items()})

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        mask = length_mask(lengths, self.spec.steps)
        inputs = network_inputs(tf.constant(x, tf.float32), None if mask is None else tf.constant(mask))
        out = np.asarray(self.network(inputs, training=False), np.float32)
        return out if self.spec.classification else out.reshape(-1)

    def describe(self) -> dict[str, str]:
        return {
            **super().describe(),
            "tensorflow": tf.__version__,
            "intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads()),
            "inter_op_threads": str(tf.config.threading.get_inter_op_parallelism_threads()),
            "weights_device": self.variables["kernel"].value.device,
            "visible_gpus": ",".join(d.name for d in tf.config.get_visible_devices("GPU")) or "none",
            "cudnn": str(self.cudnn),
        }


class GraphModel(KerasModel):
    """The whole epoch in one ``tf.function``, optionally compiled with XLA.

    The batch loop is a graph loop over index slices of tensors already on
    the device, so an epoch is one call from Python.  Full batches and the
    short last batch each have a static shape, which XLA needs.
    """

    def __init__(self, spec: ModelSpec, weights: Weights, device: str, *, xla: bool) -> None:
        super().__init__(spec, weights, device, allow_cudnn=not xla)
        self.xla = xla
        # Variables cannot be created inside the traced loop: build them now.
        self.optimizer.build(self.network.trainable_variables)
        self.loss_fn = loss_function(spec)
        self.data: tuple[tf.Tensor, tf.Tensor, tf.Tensor | None] | None = None
        self.epoch_fns: dict[int, Callable[[tf.Tensor], tf.Tensor]] = {}  # by batch size
        self.loss_device = ""

    def set_train_data(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        device = "/GPU:0" if self.device == "gpu" else "/CPU:0"
        mask = length_mask(lengths, self.spec.steps)
        with tf.device(device):  # identity copies the host constants onto the device
            xs = tf.identity(tf.constant(x, tf.float32))
            ys = tf.identity(_targets(self.spec, y))
            ms = None if mask is None else tf.identity(tf.constant(mask))
        self.data = (xs, ys, ms)
        self.epoch_fns = {}  # they captured the previous data

    def _epoch_fn(self, batch_size: int) -> Callable[[tf.Tensor], tf.Tensor]:
        """The compiled epoch for ``batch_size``, traced on its first call.

        It captures the data and the batch size instead of taking them as
        arguments: on the seed task with XLA, tensor arguments cost 15% of an
        epoch and a Python-int argument 5-9% (against the hand-written loop
        of ``benchmarks/bench_keras.py``).
        """
        if self.data is None:
            raise RuntimeError("set_train_data must come before train_epoch")
        xs, ys, ms = self.data

        def epoch(order: tf.Tensor) -> tf.Tensor:
            return self._epoch(xs, ys, ms, order, batch_size)

        return tf.function(epoch, jit_compile=self.xla)

    def _step(self, x: tf.Tensor, y: tf.Tensor, m: tf.Tensor | None) -> tf.Tensor:
        """One Adam step on the batch ``(x, y)`` (``m``: its mask, for variable lengths); return the loss before
        it."""
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            loss = self.loss_fn(y, self.network(network_inputs(x, m), training=True))
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    def _epoch(self, x: tf.Tensor, y: tf.Tensor, m: tf.Tensor | None, order: tf.Tensor, batch_size: int) -> tf.Tensor:
        n = int(order.shape[0])
        full, rest = divmod(n, batch_size)
        total = tf.constant(0.0)  # float32, like fit's loss tracker

        def rows(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
            return tf.gather(x, idx), tf.gather(y, idx), None if m is None else tf.gather(m, idx)

        for i in tf.range(full):
            idx = tf.slice(order, [i * batch_size], [batch_size])
            total += self._step(*rows(idx)) * batch_size
        if rest:
            idx = order[full * batch_size :]
            total += self._step(*rows(idx)) * rest
        return total / n

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        if batch_size not in self.epoch_fns:
            self.epoch_fns[batch_size] = self._epoch_fn(batch_size)
        loss = self.epoch_fns[batch_size](tf.constant(np.asarray(order, np.int32)))
        self.loss_device = loss.device
        return float(loss)

    def implementation_path(self) -> str:
        return ("tf.function-epoch" + ("+xla" if self.xla else "") + (f"+cudnn-{self.spec.kind}" if self.cudnn else "")
                + mask_suffix(self.spec))  # fmt: skip

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "loss_device": self.loss_device, "jit_compile": str(self.xla)}


class FitModel(KerasModel):
    """``model.fit``, compiled as a Keras user compiles it, on the harness's batches.

    fit runs all its epochs in one call while the harness asks for one epoch
    at a time, so one fit call lives across epochs (:class:`_FitRun`) instead
    of a new ``fit(epochs=1)`` per epoch, which builds a new data pipeline,
    iterator and callback list each time and makes a seed-task epoch about
    three times longer (see ``benchmarks/bench_keras.py``).  The batches are
    index slices of the data in place, not Keras's array pipeline, which
    re-shuffles and re-creates its iterator every epoch.
    """

    def __init__(self, spec: ModelSpec, weights: Weights, device: str) -> None:
        super().__init__(spec, weights, device)
        self.network.compile(optimizer=self.optimizer, loss=loss_function(spec))
        self.x = tf.zeros((0, spec.steps, spec.features))
        self.y = _targets(spec, np.zeros(0, np.float32))
        self.mask: tf.Tensor | None = None
        self.run: _FitRun | None = None
        self._stop_run: weakref.finalize | None = None

    def set_train_data(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        # tf.data runs on the host, as fit's own pipeline for arrays does:
        # batches are gathered there and copied to the device per step.
        mask = length_mask(lengths, self.spec.steps)
        with tf.device("/CPU:0"):
            self.x = tf.constant(x, tf.float32)
            self.y = _targets(self.spec, y)
            self.mask = None if mask is None else tf.constant(mask)
        self._end_run()  # its dataset holds the previous data

    def _end_run(self) -> None:
        if self._stop_run is not None:
            self._stop_run()
        self.run = None

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        shape = (len(order), batch_size)
        if self.run is None or self.run.shape != shape:
            self._end_run()
            self.run = _FitRun(self.network, self.x, self.y, *shape, mask=self.mask)
            # Ends the fit thread when this model goes away or at exit; it
            # holds the run, never this model, so it does not keep it alive.
            self._stop_run = weakref.finalize(self, self.run.stop)
        return self.run.epoch(order)

    def implementation_path(self) -> str:
        return "model.fit" + ("+xla" if self.network.jit_compile else "") + (
            f"+cudnn-{self.spec.kind}" if self.cudnn else ""
        ) + mask_suffix(self.spec)

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "jit_compile": str(self.network.jit_compile)}


class _FitRun(keras.callbacks.Callback):
    """One ``model.fit`` call in a thread of its own, one epoch per :meth:`epoch`.

    fit trains on a dataset that yields, per epoch, the batches of the order
    the caller passed.  At each epoch's end this callback hands the epoch loss
    back and waits for the next order (or ``None``: stop).  The two threads
    take turns, never run together: between epochs fit waits in plain Python,
    with no TensorFlow op pending, so the model may be read or used freely.

    The epoch loss is fit's own: the mean of the batch losses weighted by
    batch size (``Trainer._loss_tracker``, Keras >= 3.2), which is the
    contract's definition.
    """

    def __init__(self, network: keras.Model, x: tf.Tensor, y: tf.Tensor, n: int, batch_size: int, *,
                 mask: tf.Tensor | None = None) -> None:  # fmt: skip
        super().__init__()
        self.shape = (n, batch_size)
        self._orders: queue.Queue[np.ndarray | None] = queue.Queue()  # read by the dataset
        self._next: queue.Queue[np.ndarray | None] = queue.Queue()  # read at each epoch's end
        self._results: queue.Queue[float | BaseException] = queue.Queue()
        dataset = (
            tf.data.Dataset.from_generator(self._generate, output_signature=tf.TensorSpec((n,), tf.int32))
            .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
            # tf.data carries tuples, not lists: the mask input rides as (x, mask)
            .map(lambda idx: (tf.gather(x, idx) if mask is None else (tf.gather(x, idx), tf.gather(mask, idx)),
                              tf.gather(y, idx)))
        )
        steps = math.ceil(n / batch_size)
        self._thread = threading.Thread(
            target=self._fit, args=(network, dataset, steps), name="seqbench-keras-fit", daemon=True
        )

    def _generate(self) -> Iterator[np.ndarray]:
        # Called once: with steps_per_epoch, fit keeps one iterator for all
        # epochs (and, without a tf.distribute strategy, never peeks a batch).
        while (order := self._orders.get()) is not None:
            yield order

    def _fit(self, network: keras.Model, dataset: tf.data.Dataset, steps: int) -> None:
        try:
            network.fit(dataset, epochs=_FIT_EPOCHS, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[self])
        except BaseException as e:  # handed to the caller, who is waiting for a result
            self._results.put(e)
        else:  # read only if fit ended without being told to stop
            self._results.put(RuntimeError("model.fit ended before seqbench stopped it"))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._results.put(float((logs or {})["loss"]))
        order = self._next.get()
        if order is None:
            self.model.stop_training = True
        self._orders.put(order)  # None also ends the generator, should tf.data ask again

    def epoch(self, order: np.ndarray) -> float:
        """Train one epoch on ``order``; return fit's epoch loss."""
        order = np.asarray(order, np.int32)
        if self._thread.ident is None:
            self._orders.put(order)
            self._thread.start()
        elif self._thread.is_alive():
            self._next.put(order)
        else:
            raise RuntimeError("model.fit has already stopped")
        result = self._results.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def stop(self) -> None:
        """End the fit call after its current epoch and wait for its thread."""
        if self._thread.is_alive():
            self._next.put(None)
            self._thread.join(_STOP_TIMEOUT_S)
