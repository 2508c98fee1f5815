"""The NumPy reference backend: always available, float32, full BPTT.

It is the yardstick the conformance kit compares every other backend with,
and it is registered through the ``seqbench`` entry-point group exactly like
a third-party backend.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

import seqbench
from seqbench.contract import Availability, Backend, Model, ModelSpec, Weights, unsupported_basics


class NumpyBackend:
    name = "numpy"
    implementations = ("reference",)
    devices = ("cpu",)

    def availability(self) -> Availability:
        return Availability(True)

    def versions(self) -> dict[str, str]:
        return {"numpy": metadata.version("numpy")}

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        return unsupported_basics(self, implementation, spec, device)

    def configure(self, device: str, threads: int) -> None:
        # BLAS reads its thread count from the environment the worker sets
        # (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS) before NumPy is imported.
        pass

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        from seqbench_numpy.model import NumpyModel

        return NumpyModel(spec, weights)


@seqbench.hookimpl
def seqbench_register_backends(register: Callable[[Backend], None]) -> None:
    register(NumpyBackend())
