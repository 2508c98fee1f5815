"""Every registered backend passes the conformance kit, the reference included."""

import numpy as np
import pytest
from seqbench_numpy.model import NumpyModel

from seqbench.contract import ModelSpec
from seqbench.plugins import load_registry
from seqbench.testing import SHAPE, BackendConformance, Case, compare_training

# Keras fixes its engine per process and runs on TensorFlow here: Keras on the
# other engines passes the same kit in a process of its own (test_keras_engines.py).
OWN_PROCESS = {"keras-jax", "keras-torch"}


@pytest.mark.slow
class TestEveryBackend(BackendConformance):
    backends = tuple(sorted(set(load_registry().backends) - OWN_PROCESS))


# ---- the kit catches the two faults a contributor's JAX backend slipped past it (issue 9)



class _DropsShortBatch(NumpyModel):
    def train_epoch(self, order, batch_size):
        full = len(order) - len(order) % batch_size
        return super().train_epoch(order[:full], batch_size)


class _ResetsAdam(NumpyModel):
    def train_epoch(self, order, batch_size):
        self.step = 0
        self.m = [np.zeros_like(m) for m in self.m]
        self.v = [np.zeros_like(v) for v in self.v]
        return super().train_epoch(order, batch_size)


def _case(shape: str, kind: str = "gru", activation: str = "tanh") -> Case:
    s = SHAPE[shape]
    spec = ModelSpec(kind, s.units, s.steps, s.features, activation, head=s.head, outputs=s.outputs)
    return Case("numpy", "reference", "cpu", spec, shape, s.samples, s.batch)


@pytest.mark.parametrize("shape", ["seed", "normal", "adding", "digits"])
def test_the_kit_passes_a_correct_float32_model(shape):
    case = _case(shape)
    compare_training(lambda w: NumpyModel(case.spec, w), case)


@pytest.mark.parametrize("shape", ["normal", "adding", "digits"])
@pytest.mark.parametrize("broken, message", [(_DropsShortBatch, "short last batch"),
                                             (_ResetsAdam, "must persist across train_epoch")])  # fmt: skip
def test_the_kit_catches_a_dropped_short_batch_and_a_reset_optimiser(shape, broken, message):
    case = _case(shape)
    with pytest.raises(AssertionError, match=message):
        compare_training(lambda w: broken(case.spec, w), case)
