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
    reg = build_registry(pm)
    assert list(reg.backends) == ["one"] and reg.origin["one"] == "good"
    messages = {f.plugin: f.message for f in reg.failures}
    assert "does not implement seqbench.contract.Backend" in messages["notabackend"]
    fresh = new_plugin_manager()  # the plugins registered above live only in pm
    assert fresh.get_plugin("good") is None and "good" not in {fresh.get_name(p) for p in fresh.get_plugins()}


def test_two_plugins_registering_one_backend_name_are_both_named_and_the_name_is_refused():
    pm = new_plugin_manager()
    pm.register(_Plugin(_Fake("one")), name="first")
    pm.register(_Plugin(_Fake("one"), _Fake("two")), name="second")
    reg = build_registry(pm)
    assert "one" not in reg.backends and list(reg.backends) == ["two"]  # neither wins silently
    messages = {f.plugin: f.message for f in reg.failures}
    assert set(messages) == {"first", "second"}
    assert 'registered by plugins "first" and "second"' in messages["first"]
    with pytest.raises(UsageError, match='refused until one is removed .*SEQBENCH_DISABLE_PLUGINS=second'):
        reg.backend("one")


class _Misspelled:
    @seqbench.hookimpl
    def seqbench_register_backend(self, register):  # the spec is seqbench_register_backends
        register(_Fake("typo"))


def test_a_misspelled_hook_skips_that_plugin_with_a_warning_naming_it():
    pm = new_plugin_manager()
    pm.register(_Misspelled(), name="typo-plugin")
    pm.register(_Plugin(_Fake("fine")), name="fine")
    reg = build_registry(pm)  # no raw PluginValidationError
    assert list(reg.backends) == ["fine"]
    [failure] = reg.failures
    assert failure.plugin == "typo-plugin"
    assert "unknown hook(s) seqbench_register_backend" in failure.message
    assert "seqbench_register_backends" in failure.message


def test_a_misspelled_hook_in_an_installed_plugin_is_a_warning_on_the_command_line(monkeypatch):
    from tests.runfactory import invoke

    monkeypatch.setattr("seqbench.plugins.load_entry_point_plugins",
                        lambda pm, only=None: [pm.register(_Misspelled(), name="typo-plugin")] and [])  # fmt: skip
    result = invoke("list")
    assert result.returncode == 0 and 'Failed plugin typo-plugin: plugin "typo-plugin" implements unknown' in \
        result.stdout  # fmt: skip


def test_an_allow_list_that_filters_everything_out_points_at_the_variable(monkeypatch, tmp_path):
    from tests.runfactory import invoke

    monkeypatch.setenv(ENV_ALLOW, "nmupy")
    with pytest.raises(UsageError, match=r"valid: none \(SEQBENCH_PLUGINS='nmupy' limits which plugins load; "
                                         r"installed plugins: .*numpy"):  # fmt: skip
        load_registry().backend("numpy")
    result = invoke("run", "--backends", "all", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "no backend selected (SEQBENCH_PLUGINS='nmupy'" in result.stderr


def test_unknown_names_list_the_valid_ones():
    reg = build_registry(new_plugin_manager())
    with pytest.raises(UsageError, match="unknown task 'nope'; valid: adding, arithmetic, digits"):
        reg.task("nope")
    with pytest.raises(UsageError, match="unknown backend 'nope'"):
        reg.backend("nope")


def test_a_plugin_whose_import_hangs_is_named_and_list_goes_on(plugin_env):
    from tests.conftest import seqbench as cli

    env = {**plugin_env, "SEQBENCH_TEST_IMPORT_HANG": "1000", "SEQBENCH_PLUGIN_TIMEOUT": "0.5"}
    result = cli("list", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'Failed plugin hanging: Error loading backend plugin "hanging": TimeoutError: its import did not finish ' \
        "within 0.5 s (SEQBENCH_PLUGIN_TIMEOUT sets the allowance)" in result.stdout  # fmt: skip
    assert "numpy" in result.stdout and "Traceback" not in result.stderr


def test_a_run_of_the_numpy_backend_never_imports_the_other_plugins(tmp_path, plugin_env):
    from tests.conftest import run_dir_of
    from tests.conftest import seqbench as cli

    env = {**plugin_env, "SEQBENCH_TEST_IMPORT_HANG": "1000"}  # it would hold the run for the whole allowance
    result = cli("run", "--backends", "numpy", "--models", "rnn", "--epochs", "2", "--seeds", "1", "--no-calibration",
                 "--startup-timeout", "5", "--results-dir", str(tmp_path), env=env, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "hanging" not in result.stderr and "broken" not in result.stderr  # neither was imported
    assert (run_dir_of(result) / "cells.jsonl").exists()


def test_a_run_loads_only_its_backends_plugins_when_their_names_say_which(plugin_env):
    from seqbench.plugins import load_registry_for

    assert set(load_registry_for(["numpy:reference"], "arithmetic").backends) == {"numpy"}
    assert {"numpy", "crashy"} <= set(load_registry_for(["numpy", "crashy"], "arithmetic").backends)  # all: the
    # faulty plugin registers crashy under another name
    assert {"numpy", "crashy"} <= set(load_registry_for(["all"], "arithmetic").backends)


def test_a_bad_plugin_timeout_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("SEQBENCH_PLUGIN_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="SEQBENCH_PLUGIN_TIMEOUT must be a number of seconds above 0"):
        load_registry()
