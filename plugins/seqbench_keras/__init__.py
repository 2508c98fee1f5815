"""Keras 3 on each of its engines: ``keras`` (TensorFlow), ``keras-jax`` and ``keras-torch``.

Registered through the ``seqbench`` entry-point group like any third-party
backend.  Importing this module is cheap: the engine and Keras are imported
by :meth:`KerasBackend.configure`, in the worker, and the framework code lives
in :mod:`seqbench_keras.models` (TensorFlow), :mod:`seqbench_keras.jax_models`,
:mod:`seqbench_keras.torch_models` and :mod:`seqbench_keras.base` (shared),
imported by :meth:`KerasBackend.build`.

Keras picks its engine once per process, at import (``KERAS_BACKEND``), so
each engine is a backend of its own and a worker runs exactly one: the three
can be compared side by side, from the same weights, as any backends can.

``keras`` (TensorFlow) implementations, the default first:

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

``keras-jax``: ``epoch`` (the whole epoch as one XLA program through Keras's
stateless API, ``lax.scan`` over batches) and ``fit``.  ``keras-torch``:
``step`` (Keras's eager train step for torch, one batch at a time) and
``fit``.  On those two engines ``fit`` is called once per epoch (see
:class:`seqbench_keras.base.EpochFitModel`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import seqbench
from seqbench.compiled import restrict_affinity
from seqbench.contract import (
    MODEL_SHAPES,
    Availability,
    Backend,
    BackendBase,
    Model,
    ModelSpec,
    Weights,
    installed_versions,
    no_nvidia_driver,
)

INSTALL_HINT = "pip install -e '.[keras]' -c constraints.txt  (in the seqbench checkout)"
# Keras weights the epoch loss of fit by batch size since 3.2 (keras-team/keras#19363);
# before, a short last batch counted as much as a full one.
FIT_MIN_KERAS = (3, 2)
_TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")
# What Keras imports at start-up only to offer integrations a cell never uses (see KerasBackend._import_keras),
# and what each engine needs of the frameworks it could import.
KERAS_OPTIONAL = ("sklearn", "pandas", "matplotlib", "PIL")
ENGINE_MODULES = {"tensorflow": ("tensorflow",), "jax": ("jax", "scipy"), "torch": ("torch",)}
# The Keras layer of each model kind (seqbench_keras.models.LAYERS builds them).
KERAS_LAYERS = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU(reset_after=True)"}


@contextmanager
def hidden_modules(modules: Iterable[str]) -> Iterator[None]:
    """Hide ``modules`` that are not imported yet for the duration: Python's own convention, a ``None`` in
    ``sys.modules`` is a module that is absent, which Keras checks for.  Visible again afterwards."""
    hidden = [m for m in dict.fromkeys(modules) if m not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))  # type: ignore[arg-type]  # None: "absent", by convention
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def other_engines(engine: str) -> list[str]:
    """The modules of every engine but ``engine`` (and none that ``engine`` needs itself)."""
    return [m for name, modules in ENGINE_MODULES.items() if name != engine for m in modules
            if m not in ENGINE_MODULES[engine]]  # fmt: skip


def _release(version: str) -> tuple[int, ...]:
    """``"3.15.1"`` -> ``(3, 15)``: enough to compare with a floor."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def _installed(distribution: str) -> str | None:
    return installed_versions([distribution]).get(distribution)


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


class KerasBackend(BackendBase):
    """Keras 3 on TensorFlow, on the CPU or one GPU; the engine subclasses below change the engine."""

    name = "keras"
    engine = "tensorflow"
    implementations: tuple[str, ...] = ("graph", "xla", "fit")
    devices = ("cpu", "gpu")
    install_hint = INSTALL_HINT
    model_shapes = MODEL_SHAPES  # Bidirectional(merge_mode="concat"), stacked layers, the mask input (base.py)
    requires: tuple[str, ...] = ("tensorflow", "keras")
    regression_only: tuple[str, ...] = ()  # implementations whose hand-written loss is MSE
    distributions: tuple[str, ...] = (*_TENSORFLOW_DISTRIBUTIONS, "keras")

    def availability(self) -> Availability:
        found = super().availability()
        keras_version = _installed("keras")
        if found.available and (keras_version is None or _release(keras_version) < (3,)):
            return Availability(False, f"Keras 3 is required, found {keras_version or 'unknown'}", self.install_hint)
        return found

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        basic = super().supports(implementation, spec, device)
        if basic is not None:
            return basic
        if spec.kind not in KERAS_LAYERS:
            return f"the keras backend has no layer for model {spec.kind!r}"
        if spec.classification and implementation in self.regression_only:
            return f"{self.name}:{implementation} computes the regression head (MSE) only; use fit"
        keras_version = _installed("keras") or ""
        if implementation == "fit" and _release(keras_version) < FIT_MIN_KERAS:
            floor = ".".join(map(str, FIT_MIN_KERAS))
            return f"fit needs keras>={floor} to report a sample-weighted epoch loss, found {keras_version}"
        return None

    def no_gpu_reason(self) -> str | None:
        return no_gpu_reason()  # cheap facts; TensorFlow says for real in configure()

    def _import_keras(self) -> object:
        """Select this backend's engine, then import keras; refuse a process already on another engine.

        Keras probes its optional integrations at import (scikit-learn wrappers, pandas inputs, orbax
        checkpoints through jax, plots, image loading, and the other engines' frameworks): about 1.4 s of a
        keras-torch worker's 3.6 s start-up, and as much for TensorFlow, none of it used by a cell.  They are
        hidden for the import alone (Python's own convention: a ``None`` in ``sys.modules`` is a module that
        is absent, which Keras checks for) and visible again after it, so a task that needs one still has it.
        """
        os.environ["KERAS_BACKEND"] = self.engine
        with hidden_modules([*KERAS_OPTIONAL, *other_engines(self.engine)]):
            import keras

        if keras.backend.backend() != self.engine:
            raise seqbench.SeqbenchError(
                f"keras was imported with the {keras.backend.backend()!r} engine before the {self.name} "
                f"backend could select {self.engine!r}; Keras cannot switch engines in a process"
            )
        return keras

    def configure(self, device: str, threads: int) -> None:
        """Import TensorFlow with ``threads`` intra- and inter-op threads on ``device``.

        ``threads <= 0`` keeps TensorFlow's own choice.  TensorFlow fixes these
        settings when its runtime starts: a second call with other values in
        one process raises :class:`seqbench.SeqbenchError`.
        """
        # Both must be set before the first import: TF logs on import, and
        # Keras picks its backend once, at import.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        self._import_keras()
        import tensorflow as tf

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
        self.check_supported(implementation, spec, device)
        from seqbench_keras.models import FitModel, GraphModel

        if implementation == "fit":
            return FitModel(spec, weights, device)
        return GraphModel(spec, weights, device, xla=implementation == "xla")


class KerasJaxBackend(KerasBackend):
    """Keras 3 on jax (XLA).  Threads are set by CPU affinity, as for the ``jax`` backend."""

    name = "keras-jax"
    engine = "jax"
    implementations = ("epoch", "fit")
    regression_only = ("epoch",)
    install_hint = "pip install -e '.[keras-jax]'  (in the seqbench checkout)"
    requires = ("jax", "jaxlib", "keras")
    distributions = ("jax", "jaxlib", "keras")

    def __init__(self) -> None:
        self.facts: dict[str, str] = {}

    def no_gpu_reason(self) -> str | None:
        from seqbench_jax import no_gpu_reason  # the jax backend's cheap check, no jax import

        return no_gpu_reason()

    def configure(self, device: str, threads: int) -> None:
        import sys

        sized = "jax" not in sys.modules
        affinity = restrict_affinity(threads)  # XLA ignores OMP_*; see seqbench.compiled
        if device == "cpu" and sized:
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
        self._import_keras()
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")  # float32 products on a GPU too
        from seqbench_jax.models import jax_device

        jax_device(device)
        self.facts = {
            "jax": jax.__version__,
            "cpu_affinity": ",".join(map(str, affinity)) or "not set",
            "xla_pool_sized_by_affinity": str(sized),
        }

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        self.check_supported(implementation, spec, device)
        from seqbench_keras.base import EpochFitModel
        from seqbench_keras.jax_models import JaxEpochModel

        model = JaxEpochModel if implementation == "epoch" else EpochFitModel
        return model(spec, weights, device, self.facts)


class KerasTorchBackend(KerasBackend):
    """Keras 3 on PyTorch (eager)."""

    name = "keras-torch"
    engine = "torch"
    implementations = ("step", "fit")
    regression_only = ("step",)
    install_hint = "pip install -e '.[keras-torch]' -c constraints.txt  (in the seqbench checkout)"
    requires = ("torch", "keras")
    distributions = ("torch", "keras")

    def __init__(self) -> None:
        self.facts: dict[str, str] = {}

    def no_gpu_reason(self) -> str | None:
        from seqbench_torch import _no_cuda_reason  # the torch backend's cheap check, no torch import

        return _no_cuda_reason()

    def configure(self, device: str, threads: int) -> None:
        if device == "cpu":
            # Keras's torch engine puts everything on CUDA whenever torch sees it.
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        self._import_keras()
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        torch.backends.cuda.matmul.allow_tf32 = False  # fair float32, as the torch backend
        torch.backends.cudnn.allow_tf32 = False
        if device == "gpu" and not torch.cuda.is_available():
            raise seqbench.SeqbenchError(f"device 'gpu' requested but torch {torch.__version__} sees no CUDA device")
        self.facts = {"torch": torch.__version__, "tf32_matmul": str(torch.backends.cuda.matmul.allow_tf32)}

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        self.check_supported(implementation, spec, device)
        from seqbench_keras.base import EpochFitModel
        from seqbench_keras.torch_models import TorchStepModel

        model = TorchStepModel if implementation == "step" else EpochFitModel
        return model(spec, weights, device, self.facts)


BACKENDS = (KerasBackend, KerasJaxBackend, KerasTorchBackend)


@seqbench.hookimpl
def seqbench_register_backends(register: Callable[[Backend], None]) -> None:
    for backend in BACKENDS:
        register(backend())
