"""The conformance kit: proof that a backend runs the same model as the reference.

Run it against your backend with one line in any test file::

    from seqbench.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backends = ("mybackend",)  # None (the default): every registered, available backend

pytest then checks every implementation of the backend that ``supports`` each
model spec, on the seed shapes and on a larger one:

* the trainable parameter count equals the canonical count;
* canonical weights in give the same weights out;
* with the same weights, predictions match the NumPy reference
  (relative error <= 1e-5 in float32 on the CPU);
* one epoch on a fixed batch order leaves weights (and a loss) that match
  the reference (relative error <= 1e-4);
* the same seed twice gives the same loss curve, another seed another one;
* the model names the implementation path it actually ran.

Relative error here is ``max|got - want| / max|want|`` over an array, so
entries near zero do not dominate.  The kit imports no framework itself;
the backends under test do, in this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pytest

from seqbench.contract import Backend, ModelSpec, Weights
from seqbench.harness import initial_weights, run_cell
from seqbench.plugins import load_registry
from seqbench.results import CellConfig
from seqbench.tasks import ArithmeticTask

REFERENCE = "numpy"
FORWARD_RTOL = 1e-5
TRAIN_RTOL = 1e-4

# (label, units, steps, features, samples, batch): the seed shape and a larger one
SHAPES = [("seed", 10, 3, 1, 64, 32), ("larger", 32, 12, 3, 96, 16)]


@dataclass(frozen=True)
class Case:
    backend: str
    implementation: str
    device: str
    spec: ModelSpec
    shape: str
    samples: int
    batch: int

    @property
    def id(self) -> str:
        return f"{self.backend}:{self.implementation}-{self.spec.kind}-{self.spec.activation}-{self.shape}"


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != expected {want.shape}")
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def random_weights(spec: ModelSpec, seed: int = 1) -> Weights:
    """Weights that are non-zero everywhere, biases included, so a weight that failed to load shows."""
    gen = np.random.default_rng(seed)
    return Weights(**{k: gen.uniform(-0.5, 0.5, s).astype(np.float32) for k, s in spec.weight_shapes().items()})


def _rnn_step(act, z, zh, h, c):  # noqa: ANN001, ANN202
    z = z + zh
    return act(z), c


def _lstm_step(act, z, zh, h, c):  # noqa: ANN001, ANN202
    i, f, g, o = np.split(z + zh, 4, axis=1)  # canonical gate order
    c = _sig(f) * c + _sig(i) * act(g)
    return _sig(o) * act(c), c


def _gru_step(act, z, zh, h, c):  # noqa: ANN001, ANN202
    # z holds x W + b_in, zh holds h U + b_rec (reset_after=True)
    xu, xr, xc = np.split(z, 3, axis=1)
    hu, hr, hc = np.split(zh, 3, axis=1)
    u, r = _sig(xu + hu), _sig(xr + hr)
    cand = act(xc + r * hc)
    return u * h + (1 - u) * cand, c


def _sig(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# One plainly written step per kind of seqbench.contract.KINDS; a kind missing here fails loudly.
_STEPS = {"rnn": _rnn_step, "lstm": _lstm_step, "gru": _gru_step}


def reference_forward(spec: ModelSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
    """The canonical model written out plainly, in float64: a check independent of any backend.

    Returns ``(n,)`` for a regression head and the logits ``(n, outputs)`` for
    a classification head, as :meth:`Model.predict` does.
    """
    if spec.kind not in _STEPS:
        raise ValueError(f"the kit has no reference forward for model kind {spec.kind!r}")
    step = _STEPS[spec.kind]
    act = np.tanh if spec.activation == "tanh" else (lambda z: np.maximum(z, 0.0))
    k, r, b, dk, db = (np.asarray(a, np.float64) for a in weights.arrays().values())
    b_in, b_rec = (b, 0.0) if spec.info.bias_rows == 1 else (b[0], b[1])
    h = np.zeros((len(x), spec.units))
    c = np.zeros_like(h)
    for t in range(x.shape[1]):
        h, c = step(act, np.asarray(x[:, t], np.float64) @ k + b_in, h @ r + b_rec, h, c)
    out = h @ dk + db
    return out if spec.classification else out[:, 0]


def assert_weights_close(got: Weights, want: Weights, rtol: float, what: str) -> None:
    for name, array in want.arrays().items():
        err = relative_error(getattr(got, name), array)
        assert err <= rtol, f"{what}: {name} differs from the reference (relative error {err:.2e} > {rtol:g})"


@cache
def _registry():  # noqa: ANN202 - one registry per test session
    return load_registry()


_configured: set[tuple[str, str]] = set()


def backend_for(name: str, device: str = "cpu") -> Backend:
    """The registered backend ``name``, configured once per process and device."""
    backend = _registry().backend(name)
    if (name, device) not in _configured:
        backend.configure(device, 2)
        _configured.add((name, device))
    return backend


def cases(backends: tuple[str, ...] | None, devices: tuple[str, ...]) -> list[Any]:
    """Every (backend, implementation, spec) case, as pytest params; unsupported ones skip."""
    reg = _registry()
    names = sorted(reg.backends) if backends is None else list(backends)
    params = []
    for name in names:
        backend = reg.backend(name)
        availability = backend.availability()
        for device in devices:
            for implementation in backend.implementations:
                for shape, units, steps, features, samples, batch in SHAPES:
                    for kind in ("rnn", "lstm"):
                        for activation in ("relu", "tanh"):
                            spec = ModelSpec(kind, units, steps, features, activation)  # type: ignore[arg-type]
                            case = Case(name, implementation, device, spec, shape, samples, batch)
                            why = (
                                f"{name} is not available: {availability.reason}"
                                if not availability.available
                                else backend.supports(implementation, spec, device)
                            )
                            marks = [pytest.mark.skip(reason=why)] if why else []
                            params.append(pytest.param(case, id=case.id, marks=marks))
    return params


def _data(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gen = np.random.default_rng(7)
    s = case.spec
    x = gen.standard_normal((case.samples, s.steps, s.features)).astype(np.float32)
    y = gen.standard_normal(case.samples).astype(np.float32)
    return x, y, gen.permutation(case.samples)


def _build(name: str, implementation: str, case: Case, weights: Weights) -> Any:
    return backend_for(name, case.device).build(implementation, case.spec, weights, case.device)


class BackendConformance:
    """Subclass in a test module; set ``backends`` to the names to check."""

    backends: tuple[str, ...] | None = None
    devices: tuple[str, ...] = ("cpu",)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case" in metafunc.fixturenames:
            metafunc.parametrize("case", cases(self.backends, self.devices))

    def test_parameter_count_is_canonical(self, case: Case) -> None:
        model = _build(case.backend, case.implementation, case, initial_weights(case.spec, 0))
        assert model.trainable_params() == case.spec.param_count

    def test_weights_round_trip(self, case: Case) -> None:
        weights = initial_weights(case.spec, 1)
        model = _build(case.backend, case.implementation, case, weights)
        out = model.get_weights()
        for name, array in weights.arrays().items():
            got = getattr(out, name)
            assert isinstance(got, np.ndarray), f"{name} is {type(got).__name__}, not a NumPy array"
            np.testing.assert_array_equal(got, array, err_msg=name)

    def test_forward_matches_reference(self, case: Case) -> None:
        weights = initial_weights(case.spec, 2)
        x, _, _ = _data(case)
        want = _build(REFERENCE, "reference", case, weights).predict(x)
        got = _build(case.backend, case.implementation, case, weights).predict(x)
        assert isinstance(got, np.ndarray) and got.shape == (len(x),)
        err = relative_error(got, want)
        assert err <= FORWARD_RTOL, f"predictions differ from the reference: relative error {err:.2e}"

    def test_one_epoch_matches_reference(self, case: Case) -> None:
        weights = initial_weights(case.spec, 3)
        x, y, order = _data(case)
        results = []
        for name, impl in ((REFERENCE, "reference"), (case.backend, case.implementation)):
            model = _build(name, impl, case, weights)
            model.set_train_data(x, y)
            loss = model.train_epoch(order, case.batch)
            model.synchronize()
            results.append((loss, model.get_weights()))
        (want_loss, want), (got_loss, got) = results
        assert abs(got_loss - want_loss) <= TRAIN_RTOL * abs(want_loss), (got_loss, want_loss)
        assert_weights_close(got, want, TRAIN_RTOL, "after one epoch")

    def test_seed_determines_the_loss_curve(self, case: Case) -> None:
        if case.shape != "seed":
            pytest.skip("checked on the seed shape")
        backend = backend_for(case.backend, case.device)

        def curve(seed: int) -> list[float]:
            cell = CellConfig("arithmetic", case.spec.kind, case.backend, case.implementation, case.device,
                              seed, case.spec.units, case.spec.activation, 3, case.batch, 2)  # fmt: skip
            losses: list[float] = []
            run_cell(backend, cell, ArithmeticTask(), lambda e: losses.append(e.loss))
            return losses

        first, again, other = curve(0), curve(0), curve(1)
        np.testing.assert_allclose(again, first, rtol=1e-6, err_msg="same seed, different loss curve")
        assert relative_error(np.array(other), np.array(first)) > 1e-3, "another seed gave the same curve"

    def test_reports_the_implementation_path(self, case: Case) -> None:
        model = _build(case.backend, case.implementation, case, initial_weights(case.spec, 0))
        path = model.implementation_path()
        assert isinstance(path, str) and path.strip(), "implementation_path() must name what ran"
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in model.describe().items())
