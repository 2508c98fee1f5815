"""The JAX backend, registered through the ``seqbench`` entry-point group.

Importing this module never imports jax (about 0.7 s, and it probes for
accelerators): ``seqbench list`` and the CLI's start stay light.  jax is
imported in :meth:`JaxBackend.configure`, inside the worker that runs the
cell; the framework code lives in :mod:`seqbench_jax.models`.

Implementations, the default first:

* ``epoch``: a whole training epoch is one XLA program (``lax.scan`` over the
  batches, ``lax.scan`` over time, gradient and Adam inside); the short last
  batch is padded and masked so that one program serves every batch;
* ``step``: one compiled train step per batch, called from a Python loop.

Both run stacked and bidirectional models and variable-length sequences (a
masked ``lax.scan``: path ``...+masked-scan``).

Compilation happens in the first epoch, as the contract asks, and is timed
apart there (ahead-of-time ``jit(...).lower(...).compile()``); ``describe()``
records it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import seqbench
from seqbench.compiled import restrict_affinity
from seqbench.contract import MODEL_SHAPES, Backend, BackendBase, Model, ModelSpec, Weights, module_found

INSTALL_HINT = "pip install -e '.[jax]' -c constraints.txt  (in the seqbench checkout; CPU jaxlib from PyPI)"
# The CUDA plugins jax loads when it finds them (jax[cuda12] / jax[cuda13]).
CUDA_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_plugins.xla_cuda12", "jax_plugins.xla_cuda13")


def no_gpu_reason() -> str | None:
    """Why jax cannot run on a GPU here, judged from cheap facts; configure() asks jax itself."""
    if "jax" in sys.modules:  # already imported: asking jax costs nothing more
        import jax

        try:
            jax.devices("gpu")
        except RuntimeError:
            return f"jax {jax.__version__} sees no GPU"
        return None
    if not any(module_found(m) for m in CUDA_PLUGINS):
        return "no CUDA plugin for jax is installed (pip install 'jax[cuda12]'); this jaxlib runs on the CPU only"
    if sys.platform.startswith("linux") and not Path("/proc/driver/nvidia/version").exists():
        return "no NVIDIA driver is loaded (/proc/driver/nvidia/version is missing)"
    return None


class JaxBackend(BackendBase):
    """The :class:`seqbench.contract.Backend` for JAX; constructing it imports nothing."""

    name = "jax"
    implementations = ("epoch", "step")
    devices = ("cpu", "gpu")
    requires = distributions = ("jax", "jaxlib")
    install_hint = INSTALL_HINT
    model_shapes = MODEL_SHAPES

    def __init__(self) -> None:
        self.affinity: list[int] = []
        self.pool_sized_by_affinity = True

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        basic = super().supports(implementation, spec, device)
        if basic is not None:
            return basic
        from seqbench_jax.kinds import unsupported_kind  # no jax: the tables are plain Python

        return unsupported_kind(spec)

    def no_gpu_reason(self) -> str | None:
        return no_gpu_reason()

    def configure(self, device: str, threads: int) -> None:
        """Pin the CPUs, choose the platform, force float32 products; then import jax.

        Environment first: jax reads ``JAX_PLATFORMS`` and XLA sizes its CPU
        pool when jax is imported.  On the CPU, ``JAX_PLATFORMS=cpu`` also
        spares the worker jax's probe for accelerator plugins.
        """
        self.pool_sized_by_affinity = "jax" not in sys.modules
        self.affinity = restrict_affinity(threads)
        if device == "cpu" and self.pool_sized_by_affinity:
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax

        # TF32 / bf16 passes on a GPU would break the kit's float32 tolerances;
        # the model code also asks for HIGHEST per product, this covers anything else.
        jax.config.update("jax_default_matmul_precision", "highest")
        from seqbench_jax.models import jax_device

        jax_device(device)  # raises a clear SeqbenchError if the GPU is asked for and absent

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        self.check_supported(implementation, spec, device)
        from seqbench_jax.models import build_model

        facts = {
            "cpu_affinity": ",".join(map(str, self.affinity)) or "not set",
            "xla_pool_sized_by_affinity": str(self.pool_sized_by_affinity),
        }
        return build_model(implementation, spec, weights, device, facts)


@seqbench.hookimpl
def seqbench_register_backends(register: Callable[[Backend], None]) -> None:
    register(JaxBackend())
