"""The contract's base classes: a backend declares data and writes build; a model writes what is its own."""

from __future__ import annotations

import pytest

from seqbench import Backend, BackendBase, Model, ModelBase, SeqbenchError
from seqbench.contract import ModelSpec, installed_versions
from seqbench.harness import initial_weights
from seqbench.plugins import load_registry


class Tiny(BackendBase):
    name = "tiny"
    implementations = ("plain",)
    requires = ("numpy", "surely_not_installed_module")
    distributions = ("numpy", "surely-not-installed-dist")
    install_hint = "pip install surely-not-installed"


def test_a_backend_base_gives_availability_versions_supports_and_configure():
    backend = Tiny()
    assert isinstance(backend, Backend)
    a = backend.availability()
    assert not a.available and a.reason == "surely_not_installed_module not installed"
    assert a.install_hint == "pip install surely-not-installed"
    assert list(backend.versions()) == ["numpy"]
    assert backend.supports("plain", ModelSpec("rnn", 4, 3), "cpu") is None
    assert "unknown implementation 'fused'" in backend.supports("fused", ModelSpec("rnn", 4, 3), "cpu")
    assert "device 'gpu'" in backend.supports("plain", ModelSpec("rnn", 4, 3), "gpu")
    backend.configure("cpu", 1)
    with pytest.raises(NotImplementedError, match="'tiny' does not define build"):
        backend.build("plain", ModelSpec("rnn", 4, 3), None, "cpu")
    assert installed_versions(["surely-not-installed-dist"]) == {}


def test_a_model_base_gives_the_optional_members():
    class M(ModelBase):
        path = "tiny-loop"

    m = M()
    m.synchronize()
    assert m.epoch_gpu_seconds() is None and m.describe() == {} and m.implementation_path() == "tiny-loop"
    assert type("Bare", (ModelBase,), {})().implementation_path() == "Bare"
    assert not isinstance(m, Model)  # the protocol still asks for what only a backend can write


def test_gpu_is_judged_by_the_backends_no_gpu_reason():
    class Gpu(Tiny):
        devices = ("cpu", "gpu")
        answer: str | None = "this build has no CUDA"

        def no_gpu_reason(self) -> str | None:
            return self.answer

    backend, spec = Gpu(), ModelSpec("rnn", 4, 3)
    assert backend.supports("plain", spec, "gpu") == "this build has no CUDA"
    assert backend.supports("plain", spec, "cpu") is None  # the CPU never asks
    backend.answer = None
    assert backend.supports("plain", spec, "gpu") is None
    assert isinstance(BackendBase().no_gpu_reason(), (str, type(None)))  # the driver check, by default


def test_check_supported_raises_the_reason_as_a_seqbench_error():
    with pytest.raises(SeqbenchError, match=r"^tiny:fused cannot run rnn/relu on cpu: unknown implementation 'fused'"):
        Tiny().check_supported("fused", ModelSpec("rnn", 4, 3), "cpu")
    Tiny().check_supported("plain", ModelSpec("rnn", 4, 3), "cpu")  # supported: nothing raised


def test_every_built_in_backend_refuses_an_unsupported_build_with_one_error_type():
    spec = ModelSpec("rnn", 4, 3)
    registry = load_registry()
    assert "numpy" in registry.backends
    for name, backend in registry.backends.items():
        with pytest.raises(SeqbenchError, match=f"^{name}:no-such-impl cannot run rnn/relu on cpu"):
            backend.build("no-such-impl", spec, initial_weights(spec, 0), "cpu")


def test_gate_helpers_reorder_and_split_the_canonical_blocks():
    import numpy as np

    from seqbench.contract import KINDS

    gru, h = KINDS["gru"], 2
    canonical = np.arange(3 * h)[None, :] + np.zeros((4, 1), int)  # columns 0..5: update, reset, candidate
    cols = gru.gate_columns(("reset", "update", "candidate"), h)  # torch's nn.GRU order
    theirs = canonical[..., cols]
    assert theirs[0].tolist() == [2, 3, 0, 1, 4, 5]
    assert (theirs[..., np.argsort(cols)] == canonical).all()
    blocks = gru.split_gates(canonical, h)
    assert list(blocks) == ["update", "reset", "candidate"] and blocks["reset"][0].tolist() == [2, 3]
    assert (np.concatenate([blocks[g] for g in gru.gates], axis=-1) == canonical).all()
    with pytest.raises(ValueError, match="not an order of the gru gates"):
        gru.gate_columns(("reset", "update"), h)


def test_optimizer_update_is_the_reference_adam_on_any_array():
    """OptimizerSpec.update (what a JAX-family backend calls) takes the reference backend's steps exactly."""
    import numpy as np
    from seqbench_numpy.model import NumpyModel

    spec = ModelSpec("lstm", 4, 3, dtype="float64")
    model = NumpyModel(spec, initial_weights(spec, 0))
    gen = np.random.default_rng(0)
    w = [p.copy() for p in model.params]
    m, v = [np.zeros_like(p) for p in w], [np.zeros_like(p) for p in w]
    for t in (1, 2, 3):
        model.grads = [gen.standard_normal(p.shape) * 10.0 ** gen.integers(-9, 1) for p in w]
        model._adam()
        for k, g in enumerate(model.grads):
            w[k], m[k], v[k] = spec.optimizer.update(w[k], g, m[k], v[k], t, np.sqrt)
        for mine, theirs in zip(w, model.params, strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-15, atol=0)
