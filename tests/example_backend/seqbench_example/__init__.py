"""An example backend: every method of the contract, in a few lines.

It runs the NumPy reference model in float64, the way a real plugin would
wrap its framework: the cheap ``Backend`` lives here and the model is built
in ``build``.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

import seqbench
from seqbench.contract import Availability, ModelSpec, Weights


class Float64Model:
    def __init__(self, spec: ModelSpec, weights: Weights) -> None:
        from seqbench_numpy.model import NumpyModel  # a framework would be imported here

        self._model = NumpyModel(spec, weights, dtype="float64")

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self._model.set_train_data(x, y)

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        return float(self._model.train_epoch(order, batch_size))

    def synchronize(self) -> None:
        pass  # nothing runs asynchronously

    def epoch_gpu_seconds(self) -> float | None:
        return None  # no device timer

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._model.predict(x)

    def get_weights(self) -> Weights:
        return self._model.get_weights()

    def trainable_params(self) -> int:
        return self._model.trainable_params()

    def implementation_path(self) -> str:
        return "numpy-bptt-float64"

    def describe(self) -> dict[str, str]:
        return {"dtype": "float64"}


class ExampleBackend:
    name = "example"
    implementations = ("float64",)
    devices = ("cpu",)

    def availability(self) -> Availability:
        return Availability(True)

    def versions(self) -> dict[str, str]:
        return {"numpy": metadata.version("numpy")}

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        return None if device == "cpu" else "CPU only"

    def configure(self, device: str, threads: int) -> None:
        pass

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Float64Model:
        return Float64Model(spec, weights)


@seqbench.hookimpl
def seqbench_register_backends(register):
    register(ExampleBackend())
