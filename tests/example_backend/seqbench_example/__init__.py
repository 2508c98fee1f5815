"""An example backend: every method of the contract, in a few lines.

It runs the NumPy reference model in float64, the way a real plugin would
wrap its framework: the cheap ``Backend`` lives here and the model is built
in ``build``.
"""

from __future__ import annotations

import numpy as np

import seqbench
from seqbench.contract import BackendBase, ModelBase, ModelSpec, Weights


class Float64Model(ModelBase):
    path = "numpy-bptt-float64"  # synchronous, no device timer: ModelBase's defaults serve

    def __init__(self, spec: ModelSpec, weights: Weights) -> None:
        from seqbench_numpy.model import NumpyModel  # a framework would be imported here

        self._model = NumpyModel(spec, weights, dtype="float64")

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self._model.set_train_data(x, y)

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        return float(self._model.train_epoch(order, batch_size))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._model.predict(x)

    def get_weights(self) -> Weights:
        return self._model.get_weights()

    def trainable_params(self) -> int:
        return self._model.trainable_params()

    def describe(self) -> dict[str, str]:
        return {"dtype": "float64"}


class ExampleBackend(BackendBase):
    name = "example"
    implementations = ("float64",)
    distributions = ("numpy",)  # versions() records it; availability() needs nothing beyond NumPy

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        return None if device == "cpu" else "CPU only"

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Float64Model:
        self.check_supported(implementation, spec, device)  # BackendBase: one error type for every backend
        return Float64Model(spec, weights)


@seqbench.hookimpl
def seqbench_register_backends(register):
    register(ExampleBackend())
