"""The contract's base classes: a backend declares data and writes build; a model writes what is its own."""

from __future__ import annotations

import pytest

from seqbench import Backend, BackendBase, Model, ModelBase
from seqbench.contract import ModelSpec, installed_versions


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
