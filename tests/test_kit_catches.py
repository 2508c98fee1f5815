"""The conformance kit catches the bugs a contributor planted in a conformant backend and it once missed:
a layer bias never loaded (RNN, GRU) and a head bias never loaded.  The initial weights' biases are zero,
so a check built on them could not see either; the kit's forward and round-trip checks use random weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from seqbench_numpy import NumpyBackend
from seqbench_numpy.model import NumpyModel

import seqbench.testing as kit
from seqbench.contract import ModelSpec
from seqbench.harness import initial_weights


class Planted(NumpyBackend):
    """The NumPy reference with one weight never loaded: it keeps zeros where the canonical weight goes."""

    name = "planted"

    def __init__(self, never_loaded: str) -> None:
        self.never_loaded = never_loaded

    def build(self, implementation, spec, weights, device):
        lost = getattr(weights, self.never_loaded)
        return NumpyModel(spec, replace(weights, **{self.never_loaded: np.zeros_like(lost)}))


def _case(kind: str) -> kit.Case:
    shape = kit.SHAPE["seed"]
    spec = ModelSpec(kind, shape.units, shape.steps, shape.features, "tanh")
    return kit.Case("planted", "reference", "cpu", spec, "seed", shape.samples, shape.batch)


@pytest.mark.parametrize(("kind", "never_loaded"), [("rnn", "bias"), ("gru", "bias"), ("rnn", "dense_bias"),
                                                    ("gru", "dense_bias")])  # fmt: skip
def test_the_kit_fails_a_backend_that_never_loads_a_bias(monkeypatch, kind, never_loaded):
    monkeypatch.setattr(kit, "backend_for", lambda name, device="cpu": Planted(never_loaded))
    case, suite = _case(kind), kit.BackendConformance()
    # the bug is invisible to the initial weights, whose biases are zero: that is how it got through
    initial = initial_weights(case.spec, 1)
    assert not np.any(getattr(initial, never_loaded))
    with pytest.raises(AssertionError, match=rf"^{never_loaded} did not round-trip.*came back as zeros"):
        suite.test_weights_round_trip(case)
    with pytest.raises(AssertionError, match="predictions differ from the reference.*bias or the head's bias"):
        suite.test_forward_matches_reference(case)


def test_a_round_trip_failure_names_the_gate_and_a_wrong_count_gives_both_numbers():
    spec = ModelSpec("lstm", 4, 3)
    weights = kit.random_weights(spec)
    swapped = weights.kernel.copy()
    swapped[:, 4:8], swapped[:, 8:12] = weights.kernel[:, 8:12], weights.kernel[:, 4:8]  # forget <-> candidate
    with pytest.raises(AssertionError, match=r"kernel did not round-trip in gate\(s\) forget, candidate"):
        kit.check_round_trip(spec, weights, replace(weights, kernel=swapped))
    count = rf"trainable_params\(\) is 111, the canonical count .* is {spec.param_count}"
    with pytest.raises(AssertionError, match=count):
        kit.check_parameter_count(spec, 111)
    kit.check_parameter_count(spec, spec.param_count)
    kit.check_round_trip(spec, weights, weights)


class StaleCompiled(NumpyBackend):
    """The NumPy reference with another inference path that runs the weights it was built with, not the
    current ones: like a compiled graph that captured its weights before they were loaded."""

    name = "stale"

    def build(self, implementation, spec, weights, device):
        model = NumpyModel(spec, weights)
        stale = NumpyModel(spec, initial_weights(spec, 0))
        model.predictors = lambda: {"compiled": stale.predict}  # type: ignore[method-assign]
        return model


def test_the_kit_checks_every_other_inference_path_against_the_reference(monkeypatch):
    monkeypatch.setattr(kit, "backend_for", lambda name, device="cpu": StaleCompiled())
    case, suite = _case("lstm"), kit.BackendConformance()
    suite.test_forward_matches_reference(case)  # predict itself is right
    with pytest.raises(AssertionError, match="inference path 'compiled' differs from the reference"):
        suite.test_every_inference_path_matches_reference(case)


# ---- stacked, bidirectional and variable-length models: four bugs the kit must catch (issue 20)


class _DirectionsSwapped(NumpyModel):
    """Concatenates the backward direction's output before the forward one's."""

    def _forward_all(self, first):
        out = super()._forward_all(first)
        h = self.spec.units
        return np.concatenate([out[h:], out[:h]])


class _BackwardOverPadding(NumpyModel):
    """Reverses the whole padded sequence for the backward direction: it starts on the padding."""

    def _reversal(self, batch):
        return None


class _ReadsPaddedLastStep(NumpyModel):
    """Reads every sample's output at the last padded step instead of its last real step."""

    def _final(self, b):
        return b.h[b.x.shape[0]]


class _LayersSwapped(NumpyModel):
    """Gives layer 1's forward block layer 2's recurrent weights and the reverse, and exports them as loaded
    (so the weights round-trip: only what the model computes shows the bug)."""

    def _swap(self):
        dirs = self.spec.directions
        for i in (1, 2):  # the recurrent kernel and bias have the same shape in every layer
            self.params[i], self.params[3 * dirs + i] = self.params[3 * dirs + i], self.params[i]

    def __init__(self, spec, weights, dtype=None):
        super().__init__(spec, weights, dtype)
        self._swap()

    def get_weights(self):
        self._swap()
        try:
            return super().get_weights()
        finally:
            self._swap()


class PlantedModel(NumpyBackend):
    name = "planted"

    def __init__(self, model_class) -> None:
        self.model_class = model_class

    def build(self, implementation, spec, weights, device):
        return self.model_class(spec, weights, "float64" if spec.dtype == "float64" else None)


def _stack_case(kind: str) -> kit.Case:
    shape = kit.SHAPE["bidir-masked"]
    spec = ModelSpec(kind, shape.units, shape.steps, shape.features, "tanh", layers=shape.layers,
                     bidirectional=shape.bidirectional, variable_length=True)
    return kit.Case("planted", "reference", "cpu", spec, "bidir-masked", shape.samples, shape.batch)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bug", [_DirectionsSwapped, _BackwardOverPadding, _ReadsPaddedLastStep, _LayersSwapped],
                         ids=["directions-swapped", "backward-over-padding", "padded-last-step", "layers-swapped"])
def test_the_kit_fails_a_stacked_bidirectional_masked_model_with_a_planted_bug(monkeypatch, kind, bug):
    reference = NumpyBackend()
    monkeypatch.setattr(kit, "backend_for",
                        lambda name, device="cpu": reference if name == kit.REFERENCE else PlantedModel(bug))
    case, suite = _stack_case(kind), kit.BackendConformance()
    suite.test_weights_round_trip(case)  # every bug keeps the weights: only the computation shows it
    with pytest.raises(AssertionError, match="predictions differ from the reference.*backward direction run over"):
        suite.test_forward_matches_reference(case)
    with pytest.raises(AssertionError, match="one step: loss"):
        suite.test_one_training_step_matches_reference(case)
    with pytest.raises(AssertionError, match="epoch 1: loss"):
        suite.test_three_epochs_match_reference(case)
    if bug in (_BackwardOverPadding, _ReadsPaddedLastStep):  # the bugs of the padding itself
        with pytest.raises(AssertionError, match="padded to 12 steps than alone"):
            suite.test_padding_does_not_change_the_output(case)


def test_the_planted_models_are_the_reference_where_their_bug_cannot_show():
    # without padding the two padding bugs are the reference itself: the kit's failures above are the bugs'
    shape = kit.SHAPE["bidir-masked"]
    spec = ModelSpec("lstm", shape.units, shape.steps, shape.features, "tanh", layers=2, bidirectional=True)
    weights = kit.random_weights(spec, 2)
    x = np.random.default_rng(0).standard_normal((5, shape.steps, shape.features)).astype(np.float32)
    want = NumpyModel(spec, weights).predict(x)
    for bug in (_BackwardOverPadding, _ReadsPaddedLastStep):
        np.testing.assert_array_equal(bug(spec, weights).predict(x), want)
    assert np.max(np.abs(_DirectionsSwapped(spec, weights).predict(x) - want)) > 1e-3
    assert np.max(np.abs(_LayersSwapped(spec, weights).predict(x) - want)) > 1e-3
