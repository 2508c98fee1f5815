"""The plugin registry: entry points, allow/deny variables, failures named."""

from __future__ import annotations

import pytest

import seqbench
from seqbench.contract import Availability
from seqbench.errors import UsageError
from seqbench.plugins import ENV_ALLOW, ENV_DISABLE, build_registry, load_registry, new_plugin_manager


def test_builtin_backend_and_task_arrive_through_entry_points(monkeypatch):
    monkeypatch.setenv(ENV_ALLOW, "numpy")
    reg = load_registry()
    assert list(reg.backends) == ["numpy"] and reg.origin["numpy"] == "numpy"
    assert "arithmetic" in reg.tasks


def test_allow_list_set_empty_loads_no_plugin(monkeypatch):
    monkeypatch.setenv(ENV_ALLOW, "")
    assert load_registry().backends == {}


def test_disable_list_blocks_a_plugin(monkeypatch, plugin_env):
    monkeypatch.setenv(ENV_DISABLE, "faulty,broken")
    reg = load_registry()
    assert "crashy" not in reg.backends and "numpy" in reg.backends
    assert not [f for f in reg.failures if f.plugin in ("faulty", "broken")]


def test_a_plugin_that_fails_to_import_is_named_and_the_rest_load(plugin_env):
    reg = load_registry()
    [failure] = [f for f in reg.failures if f.plugin == "broken"]
    assert 'Error loading backend plugin "broken"' in failure.message
    assert "a_dependency_that_is_missing" in failure.message
    assert {"numpy", "crashy", "absent"} <= set(reg.backends)


class _Plugin:
    def __init__(self, *backends):
        self.backends = backends

    @seqbench.hookimpl
    def seqbench_register_backends(self, register):
        for b in self.backends:
            register(b)


class _Fake:
    implementations = ("x",)
    devices = ("cpu",)

    def __init__(self, name):
        self.name = name

    def availability(self):
        return Availability(True)

    def versions(self):
        return {}

    def supports(self, implementation, spec, device):
        return None

    def configure(self, device, threads):
        pass

    def build(self, implementation, spec, weights, device):
        raise NotImplementedError


def test_each_test_gets_a_fresh_manager_and_bad_registrations_are_named():
    pm = new_plugin_manager()
    pm.register(_Plugin(_Fake("one")), name="good")
    pm.register(_Plugin(object()), name="notabackend")
    pm.register(_Plugin(_Fake("one")), name="duplicate")
    reg = build_registry(pm)
    assert list(reg.backends) == ["one"] and reg.origin["one"] == "good"
    messages = {f.plugin: f.message for f in reg.failures}
    assert "does not implement seqbench.contract.Backend" in messages["notabackend"]
    assert "already registered by plugin 'good'" in messages["duplicate"]
    assert "one" not in new_plugin_manager().get_plugins()


def test_unknown_names_list_the_valid_ones():
    reg = build_registry(new_plugin_manager())
    with pytest.raises(UsageError, match="unknown task 'nope'; valid: adding, arithmetic, digits"):
        reg.task("nope")
    with pytest.raises(UsageError, match="unknown backend 'nope'"):
        reg.backend("nope")
