"""Keras on the torch engine: the training loop Keras's guide writes for PyTorch.

Imported by :meth:`seqbench_keras.KerasTorchBackend.build`, after ``configure``
set ``KERAS_BACKEND=torch`` and imported keras.

``step`` is Keras's "training loop from scratch" for the torch engine: call
the model, ``loss.backward()``, ``optimizer.apply`` on the gradients, one
batch at a time from Python.  Torch runs eagerly, so there is no whole-epoch
program to compile (``torch.compile`` of a Python loop over batches unrolls
it and recompiles per shape; Keras's ``jit_compile=True`` on torch compiles
the step only).  The loss accumulates on the device: one sync per epoch.
"""

from __future__ import annotations

import keras
import numpy as np
import torch

from seqbench.contract import ModelSpec, Weights
from seqbench_keras.base import EngineModel, length_mask, mask_suffix, network_inputs


class TorchStepModel(EngineModel):
    """``step``: one eager Keras train step per batch, on index slices of data on the device."""

    def __init__(self, spec: ModelSpec, weights: Weights, device: str, engine_facts: dict[str, str]) -> None:
        super().__init__(spec, weights, device, engine_facts)
        self.optimizer.build(self.network.trainable_variables)
        self.loss_fn = keras.losses.MeanSquaredError()
        self.torch_device = torch.device("cuda" if device == "gpu" else "cpu")
        self.x = torch.zeros(0, device=self.torch_device)
        self.y = torch.zeros(0, device=self.torch_device)
        self.mask: torch.Tensor | None = None

    def set_train_data(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        self.x = torch.from_numpy(np.asarray(x, np.float32)).to(self.torch_device)
        self.y = torch.from_numpy(np.asarray(y, np.float32).reshape(-1, 1)).to(self.torch_device)
        mask = length_mask(lengths, self.spec.steps)
        self.mask = None if mask is None else torch.from_numpy(mask).to(self.torch_device)

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        variables = self.network.trainable_variables
        idx = torch.from_numpy(np.asarray(order, np.int64)).to(self.torch_device)
        total = torch.zeros((), device=self.torch_device)
        for batch in idx.split(batch_size):
            inputs = network_inputs(self.x[batch], None if self.mask is None else self.mask[batch])
            loss = self.loss_fn(self.y[batch], self.network(inputs, training=True))
            self.network.zero_grad()
            loss.backward()
            grads = [v.value.grad for v in variables]
            with torch.no_grad():
                self.optimizer.apply(grads, variables)
            total += loss.detach() * len(batch)
        return total.item() / len(order)

    def implementation_path(self) -> str:
        return f"keras-train-step/torch-{self.torch_device.type}{mask_suffix(self.spec)}"

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "device": str(self.torch_device), "threads": str(torch.get_num_threads())}
