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


class _OptaxAdam(NumpyModel):
    """Adam as optax and torch.optim write it: epsilon added to sqrt(v_hat)."""

    def _adam(self):
        o = self.spec.optimizer
        self.step += 1
        for p, g, m, v in zip(self.params, self.grads, self.m, self.v, strict=True):
            m *= o.beta1
            m += (1 - o.beta1) * g
            v *= o.beta2
            v += (1 - o.beta2) * (g * g)
            p -= o.learning_rate * (m / (1 - o.beta1**self.step)) / (np.sqrt(v / (1 - o.beta2**self.step)) + o.epsilon)


class _RecurrentBiasNotTrained(NumpyModel):
    """The GRU's recurrent bias (bias row 1) never receives its gradient."""

    def _adam(self):
        self.grads[2][1] = 0
        super()._adam()


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


@pytest.mark.parametrize("shape", ["normal", "adding", "digits"])
@pytest.mark.parametrize("broken, cause", [
    (_DropsShortBatch, "Likely cause: every full batch agrees: the short last batch must be trained"),
    (_ResetsAdam, "Likely cause: epoch 1 agrees and epoch 2 does not: the optimiser's state"),
    (_OptaxAdam, "Likely cause: one Adam step moves .* the right way by the wrong amount: the optimiser itself. "
                 "Adam adds epsilon to sqrt"),
    (_RecurrentBiasNotTrained, r"Likely cause: one Adam step from the same weights leaves \d+ of \d+ entries of bias "
                               r"\(gates update, reset, candidate\) in row 1 .*not trained"),
])  # fmt: skip
def test_a_training_failure_names_its_cause_not_always_the_short_batch(shape, broken, cause):
    """Each planted bug gets its own diagnosis (the kit once blamed "the short last batch" for all of them)."""
    case = _case(shape)
    with pytest.raises(AssertionError, match=cause):
        compare_training(lambda w: broken(case.spec, w), case)


def test_a_training_failure_names_the_weights_and_gates_that_differ():
    case = _case("normal", "lstm")
    names = r"^epoch 1: loss .* against the reference's .*; kernel \(gates [a-z, ]+\)"
    with pytest.raises(AssertionError, match=names):
        compare_training(lambda w: _OptaxAdam(case.spec, w), case)
