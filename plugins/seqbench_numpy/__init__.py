"""The NumPy reference backend: always available, float32, full BPTT.

It is the yardstick the conformance kit compares every other backend with,
and it is registered through the ``seqbench`` entry-point group exactly like
a third-party backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import seqbench
from seqbench.contract import MODEL_SHAPES, Backend, BackendBase, Model, ModelSpec, Weights


class NumpyBackend(BackendBase):
    # BLAS reads its thread count from the environment the worker sets before NumPy is imported:
    # nothing to configure.
    name = "numpy"
    implementations = ("reference",)
    distributions = ("numpy",)
    model_shapes = MODEL_SHAPES  # every layer count, both directions, variable lengths: see model.py

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        # float64 as well: the conformance kit (seqbench.testing) trains its reference in float64
        return super().supports(implementation, replace(spec, dtype="float32") if spec.dtype == "float64" else spec,
                                device)  # fmt: skip

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        self.check_supported(implementation, spec, device)
        from seqbench_numpy.model import NumpyModel

        return NumpyModel(spec, weights)


@seqbench.hookimpl
def seqbench_register_backends(register: Callable[[Backend], None]) -> None:
    register(NumpyBackend())
