"""The Keras 3 (TensorFlow) backend.

Registered through the ``seqbench`` entry-point group like any third-party
backend.  Importing this module is cheap: TensorFlow and Keras are imported
by :meth:`KerasBackend.configure`, in the worker, and the framework code lives
in :mod:`seqbench_keras.models`, imported by :meth:`KerasBackend.build`.

Implementations, the default first:

* ``graph``: the whole epoch is one ``tf.function`` (a graph loop over index
  slices of data already on the device: gradient tape, Keras's Adam);
* ``xla``: the same function compiled with XLA (``jit_compile=True``);
* ``fit``: ``model.fit``, as Keras users train, on the harness's batch order.

``graph`` is the default although ``xla``'s steady epochs are 3-4 times
faster on the seed task: compiling with XLA makes the first epoch 2-3 times
longer (about 2.5 s against 1 s), so over the seed's 10 epochs ``graph``
finishes first; on the large LSTM the two are within 5%.  Keras's own
``jit_compile="auto"`` leaves XLA off on CPU-only machines as well.  Figures:
``benchmarks/bench_keras.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Callable
from importlib import metadata

import seqbench
from seqbench.contract import (
    Availability,
    Backend,
    Model,
    ModelSpec,
    Weights,
    no_nvidia_driver,
    unsupported_basics,
)

INSTALL_HINT = "pip install -e '.[keras]' -c constraints.txt  (in the seqbench checkout)"
# Keras weights the epoch loss of fit by batch size since 3.2 (keras-team/keras#19363);
# before, a short last batch counted as much as a full one.
FIT_MIN_KERAS = (3, 2)
_TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")
# The Keras layer of each model kind (seqbench_keras.models.LAYERS builds them).
KERAS_LAYERS = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU(reset_after=True)"}


def _release(version: str) -> tuple[int, ...]:
    """``"3.15.1"`` -> ``(3, 15)``: enough to compare with a floor."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def no_gpu_reason() -> str | None:
    """Why TensorFlow cannot use a GPU here, from cheap facts (no TensorFlow import, ~1 ms).

    ``configure`` checks for real in the worker; this is what ``supports`` (and
    so ``--device auto``) answers from: the installed build, then the driver.
    """
    if "tensorflow" in sys.modules:  # already imported: asking it costs nothing more
        import tensorflow as tf

        return None if tf.config.list_physical_devices("GPU") else "TensorFlow sees no GPU"
    if _installed("tensorflow") is None:  # tensorflow-cpu, or tensorflow-macos, ...
        builds = [d for d in ("tensorflow-cpu", "tensorflow-macos", "tensorflow-intel") if _installed(d)]
        if not builds:
            return "TensorFlow is not installed"
        return f"the installed TensorFlow ({', '.join(builds)}) is a CPU-only build"
    if sys.platform == "win32":
        return "TensorFlow 2.11 and later has no GPU support on native Windows (use WSL2)"
    return no_nvidia_driver()


class KerasBackend:
    """Keras 3 on TensorFlow, on the CPU or one GPU."""

    name = "keras"
    implementations = ("graph", "xla", "fit")
    devices = ("cpu", "gpu")

    def availability(self) -> Availability:
        missing = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m) is None]
        if missing:
            return Availability(False, f"{' and '.join(missing)} not installed", INSTALL_HINT)
        keras_version = _installed("keras")
        if keras_version is None or _release(keras_version) < (3,):
            return Availability(False, f"Keras 3 is required, found {keras_version or 'unknown'}", INSTALL_HINT)
        return Availability(True)

    def versions(self) -> dict[str, str]:
        found = {d: _installed(d) for d in (*_TENSORFLOW_DISTRIBUTIONS, "keras")}
        return {d: v for d, v in found.items() if v is not None}

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        basic = unsupported_basics(self, implementation, spec, device)
        if basic is not None:
            return basic
        if spec.kind not in KERAS_LAYERS:
            return f"the keras backend has no layer for model {spec.kind!r}"
        keras_version = _installed("keras") or ""
        if implementation == "fit" and _release(keras_version) < FIT_MIN_KERAS:
            floor = ".".join(map(str, FIT_MIN_KERAS))
            return f"fit needs keras>={floor} to report a sample-weighted epoch loss, found {keras_version}"
        if device == "gpu":
            return no_gpu_reason()
        return None

    def configure(self, device: str, threads: int) -> None:
        """Import TensorFlow with ``threads`` intra- and inter-op threads on ``device``.

        ``threads <= 0`` keeps TensorFlow's own choice.  TensorFlow fixes these
        settings when its runtime starts: a second call with other values in
        one process raises :class:`seqbench.SeqbenchError`.
        """
        # Both must be set before the first import: TF logs on import, and
        # Keras picks its backend once, at import.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import keras
        import tensorflow as tf

        if keras.backend.backend() != "tensorflow":
            raise seqbench.SeqbenchError(
                f"keras was imported with the {keras.backend.backend()!r} backend before the "
                "keras backend plugin could select 'tensorflow'; Keras cannot switch backends in a process"
            )
        try:
            if threads > 0:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            if device == "cpu":
                tf.config.set_visible_devices([], "GPU")
        except RuntimeError as e:
            raise seqbench.SeqbenchError(
                f"TensorFlow already started in this process with other settings; cannot configure "
                f"device={device} threads={threads}: {e}"
            ) from e
        if device == "gpu" and not tf.config.list_physical_devices("GPU"):
            raise seqbench.SeqbenchError(
                f"device 'gpu' requested but TensorFlow {tf.__version__} sees no GPU "
                "(a CPU-only build such as tensorflow-cpu, or no CUDA driver)"
            )

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        from seqbench_keras.models import FitModel, GraphModel

        reason = self.supports(implementation, spec, device)
        if reason:
            raise ValueError(reason)
        if implementation == "fit":
            return FitModel(spec, weights, device)
        return GraphModel(spec, weights, device, xla=implementation == "xla")


@seqbench.hookimpl
def seqbench_register_backends(register: Callable[[Backend], None]) -> None:
    register(KerasBackend())
