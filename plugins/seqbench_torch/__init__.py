"""The PyTorch backend, registered through the ``seqbench`` entry-point group.

Importing this module never imports torch (about 0.8 s): ``seqbench list``
and the CLI's start stay light.  torch is imported in :meth:`TorchBackend.configure`
and :meth:`TorchBackend.build`, inside the worker that runs the cell; the
framework code lives in :mod:`seqbench_torch.models`.

Implementations (the default is the fastest that supports the spec, see
:meth:`TorchBackend.default_implementation`):

* ``fused``: ``nn.RNN`` (tanh or relu) / ``nn.LSTM`` / ``nn.GRU`` (tanh only);
  oneDNN runs the LSTM on CPU, cuDNN all three on GPU.
* ``loop``: our own cell stepped in Python; any activation, so it runs the
  seed's relu LSTM.

Both run stacked and bidirectional models and variable-length sequences: ``fused``
through ``num_layers``, ``bidirectional`` and ``pack_padded_sequence`` (path
``nn.LSTM/packed/...``), ``loop`` by masking each step (``python-loop/masked``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import seqbench
from seqbench.contract import (
    MODEL_SHAPES,
    Backend,
    BackendBase,
    Model,
    ModelSpec,
    Weights,
    installed_versions,
    no_nvidia_driver,
)

INSTALL_HINT = (
    "pip install -e '.[torch]' -c constraints.txt  (in the seqbench checkout; for the small CPU-only "
    "build first: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)"
)
# Per model kind: torch's fused layer and the activations it computes.  A kind
# missing here is refused by supports() (no silent fallback to another layer).
FUSED_LAYERS = {"rnn": ("nn.RNN", ("tanh", "relu")), "lstm": ("nn.LSTM", ("tanh",)), "gru": ("nn.GRU", ("tanh",))}


def _torch_version() -> str | None:
    return installed_versions(["torch"]).get("torch")


def _no_cuda_reason() -> str | None:
    """Why CUDA cannot work here, judged cheaply; :meth:`TorchBackend.configure` checks for real."""
    if "torch" in sys.modules:  # already imported: asking torch itself costs nothing more
        import torch

        return None if torch.cuda.is_available() else "torch.cuda.is_available() is False"
    version = _torch_version()
    if version is None:
        return "torch is not installed"
    if "+cpu" in version:
        return f"the installed torch {version} is a CPU-only build"
    if "+rocm" in version:  # ROCm builds also answer to "cuda"; their driver is not NVIDIA's
        return None
    return no_nvidia_driver()


class TorchBackend(BackendBase):
    """The :class:`seqbench.contract.Backend` for PyTorch; constructing it imports nothing."""

    name = "torch"
    implementations = ("fused", "loop")
    devices = ("cpu", "gpu")
    requires = distributions = ("torch",)
    install_hint = INSTALL_HINT
    model_shapes = MODEL_SHAPES

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        basic = super().supports(implementation, spec, device)
        if basic is not None:
            return basic
        if implementation == "fused":
            if spec.kind not in FUSED_LAYERS:
                return f"torch has no fused layer for model {spec.kind!r}"
            layer, fused = FUSED_LAYERS[spec.kind]
            if spec.activation not in fused:
                return f"{layer} computes {' or '.join(fused)} only; 'loop' runs {spec.activation!r}"
        return None

    def no_gpu_reason(self) -> str | None:
        return _no_cuda_reason()

    def default_implementation(self, spec: ModelSpec, device: str) -> str:
        """``loop`` for an RNN on the CPU, else ``fused`` where it applies.

        Measured here (2 threads, 10 units): on the CPU ``nn.RNN`` runs ATen's own
        step loop, no faster than ours (seed task 12.1 vs 9.6 ms per epoch, equal
        at 50 steps), while oneDNN's ``nn.LSTM`` is 3-6x faster than our loop from
        20 steps on.  On a GPU cuDNN serves both.
        """
        return "loop" if spec.kind == "rnn" and device == "cpu" else "fused"

    def configure(self, device: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != threads:
            try:
                torch.set_num_interop_threads(threads)
            except RuntimeError:
                # Settable once per process, before any inter-op work; a worker that
                # runs a second cell keeps the first value, which describe() records.
                pass
        # Fair float32 on Ampere and later: TF32 products would be faster and less exact.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        from seqbench_torch.models import torch_device

        torch_device(device)  # raises a clear SeqbenchError if the GPU is asked for and absent

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        self.check_supported(implementation, spec, device)
        from seqbench_torch.models import build_model

        return build_model(implementation, spec, weights, device)


@seqbench.hookimpl
def seqbench_register_backends(register: Callable[[Backend], None]) -> None:
    register(TorchBackend())
