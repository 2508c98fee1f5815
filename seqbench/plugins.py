"""The one plugin manager, and the typed registry every other module uses.

All backends, the built-in ones included, arrive through the ``seqbench``
entry-point group.  Two environment variables choose what loads (names are
entry-point names, comma separated):

* ``SEQBENCH_PLUGINS``: load only these (set it empty to load none);
* ``SEQBENCH_DISABLE_PLUGINS``: never load these.

A third, ``SEQBENCH_PLUGIN_TIMEOUT``, is the seconds a plugin may take to
import (default :data:`IMPORT_TIMEOUT_S`): one that takes longer (a
``time.sleep`` or a network call at module level) is recorded as failed, named,
and left behind, so that ``seqbench list`` and ``seqbench run`` never hang on
it.  ``seqbench run`` loads only the plugins its backends need when it can
tell them from their names (:func:`load_registry_for`).

A plugin that fails to import or to register is recorded with its name and
the error, and the others still load.  So is a plugin that implements a hook
no spec declares (a misspelling such as ``seqbench_register_backend``): it is
skipped with a warning that names it.  When two plugins register one backend
name, both are named and the name is refused until one is removed: which one
is meant cannot be guessed.  Nothing here imports a framework.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from seqbench import hookspecs
from seqbench.contract import Backend
from seqbench.default_plugins import tasks as builtin_tasks
from seqbench.errors import UsageError
from seqbench.tasks import Task

ENV_ALLOW = "SEQBENCH_PLUGINS"
ENV_DISABLE = "SEQBENCH_DISABLE_PLUGINS"
ENV_TIMEOUT = "SEQBENCH_PLUGIN_TIMEOUT"
# A plugin imports no framework (its backend does, in the worker), so its import takes well under a second;
# this much is a generous allowance for a loaded machine, not an estimate.
IMPORT_TIMEOUT_S = 30.0
ENTRY_POINT_GROUP = "seqbench"
BUILTIN_TASKS = "seqbench.default_plugins.tasks"  # registered in every plugin manager, not through an entry point


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    message: str


@dataclass
class Registry:
    """Backends and tasks by name, and the plugins that failed to load."""

    backends: dict[str, Backend] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)  # backend name -> plugin name
    task_origin: dict[str, str] = field(default_factory=dict)  # task name -> plugin name

    def plugins_for(self, backend: str, task: str) -> tuple[str, ...]:
        """The entry-point plugins a worker needs for this backend and task, and no other.

        A plugin's import side effects (a framework's thread pool) must not sit
        inside another backend's measurement.
        """
        needed = {self.origin.get(backend, BUILTIN_TASKS), self.task_origin.get(task, BUILTIN_TASKS)}
        return tuple(sorted(needed - {BUILTIN_TASKS}))
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # refused backend name -> its plugins

    def backend(self, name: str) -> Backend:
        if name in self.conflicts:
            raise UsageError(conflict_message(name, self.conflicts[name]))
        try:
            return self.backends[name]
        except KeyError:
            raise UsageError(
                f"unknown backend {name!r}; valid: {', '.join(sorted(self.backends)) or 'none'}{filter_hint()}"
            ) from None

    def task(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise UsageError(
                f"unknown task {name!r}; valid: {', '.join(sorted(self.tasks)) or 'none'}"
            ) from None


def conflict_message(name: str, plugins: list[str]) -> str:
    named = " and ".join(f'"{p}"' for p in plugins)
    return (f"backend {name!r} is registered by plugins {named}: it is refused until one is removed "
            f"(uninstall one, or set {ENV_DISABLE}={plugins[-1]})")  # fmt: skip


def filter_hint() -> str:
    """Why a backend may be missing: the plugin variables, when they are set."""
    notes = []
    for var in (ENV_ALLOW, ENV_DISABLE):
        if os.environ.get(var) is not None:
            notes.append(f"{var}={os.environ[var]!r}")
    if not notes:
        return ""
    installed = ", ".join(ep.name for ep in _entry_points()) or "none"
    return f" ({' and '.join(notes)} limits which plugins load; installed plugins: {installed})"


def _names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    seen: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(ep.name, ep)  # a dist found twice on sys.path is one plugin
    return sorted(seen.values(), key=lambda ep: ep.name)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin_tasks, name=BUILTIN_TASKS)
    return pm


def import_timeout() -> float:
    """The seconds a plugin may take to import: ``SEQBENCH_PLUGIN_TIMEOUT``, else :data:`IMPORT_TIMEOUT_S`."""
    value = os.environ.get(ENV_TIMEOUT)
    if value is None:
        return IMPORT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"{ENV_TIMEOUT} must be a number of seconds above 0, got {value!r}")
    return seconds


def _load_bounded(ep: metadata.EntryPoint, timeout: float) -> object:
    """``ep.load()``, given at most ``timeout`` seconds; raises what the import raised, or TimeoutError.

    The import runs in a thread of its own: the plugin's objects must live in this process (the planner
    asks its backends questions), and a thread costs nothing, where finding the hang in a subprocess would
    cost every command a second interpreter importing every plugin twice.  A thread cannot be stopped, so
    a hung import is left sleeping (a daemon: it does not hold up the exit); plugins still import one at a
    time, as before.  An import that hangs in C code while holding the GIL is beyond this bound.
    """
    loaded: list[object] = []
    failed: list[BaseException] = []

    def load() -> None:
        try:
            loaded.append(ep.load())
        except BaseException as e:  # noqa: B036 - handed to the caller's thread, SystemExit included
            failed.append(e)

    thread = threading.Thread(target=load, name=f"seqbench-import-{ep.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if failed:
        raise failed[0]
    if not loaded:
        raise TimeoutError(f"its import did not finish within {timeout:g} s ({ENV_TIMEOUT} sets the allowance)")
    return loaded[0]


def load_entry_point_plugins(pm: pluggy.PluginManager, only: Iterable[str] | None = None) -> list[PluginFailure]:
    """Register every allowed entry-point plugin (only those named in ``only``, if given);
    return those that failed, or took longer than :func:`import_timeout` to import."""
    allow, deny = _names(ENV_ALLOW), _names(ENV_DISABLE) or set()
    wanted = None if only is None else set(only)
    timeout = import_timeout()
    failures = []
    for ep in _entry_points():
        if (allow is not None and ep.name not in allow) or ep.name in deny:
            continue
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            pm.register(_load_bounded(ep, timeout), name=ep.name)
        except BaseException as e:  # noqa: B036 - any failure of a third-party plugin's import, named
            if isinstance(e, KeyboardInterrupt):
                raise
            failures.append(
                PluginFailure(ep.name, f'Error loading backend plugin "{ep.name}": {type(e).__name__}: {e}')
            )
    return failures


def _collect(pm: pluggy.PluginManager, hook: str, accept) -> list[PluginFailure]:
    """Call ``hook`` on each plugin apart, so one broken plugin names itself."""
    failures = []
    for impl in getattr(pm.hook, hook).get_hookimpls():
        try:
            impl.function(register=lambda obj, _p=impl.plugin_name: accept(_p, obj))
        except Exception as e:
            message = f'plugin "{impl.plugin_name}" failed in {hook}: {type(e).__name__}: {e}'
            failures.append(PluginFailure(impl.plugin_name, message))
    return failures


def drop_unknown_hooks(pm: pluggy.PluginManager) -> list[PluginFailure]:
    """Unregister each plugin that implements a hook no spec declares; name it and the hook.

    pluggy's ``check_pending()`` would raise for the first one and stop every command.
    """
    known = sorted(name for name in vars(hookspecs) if name.startswith("seqbench_"))
    bad: dict[str, list[str]] = {}
    for name, caller in vars(pm.hook).items():
        if getattr(caller, "spec", True) is not None:  # declared, or not a hook caller at all
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                bad.setdefault(impl.plugin_name, []).append(name)
    failures = []
    for plugin, hooks in bad.items():
        pm.unregister(name=plugin)
        failures.append(PluginFailure(plugin, f'plugin "{plugin}" implements unknown hook(s) {", ".join(hooks)} '
                                              f"(a misspelling? the hooks are {', '.join(known)}): skipped"))
    return failures


def build_registry(pm: pluggy.PluginManager, failures: Iterable[PluginFailure] = ()) -> Registry:
    reg = Registry(failures=list(failures))
    reg.failures += drop_unknown_hooks(pm)
    pm.check_pending()  # nothing is left for it to raise on
    claims: dict[str, list[tuple[str, Backend]]] = {}

    def add_backend(plugin: str, backend: Any) -> None:
        if not isinstance(backend, Backend):
            raise TypeError(f"{backend!r} does not implement seqbench.contract.Backend")
        claims.setdefault(backend.name, []).append((plugin, backend))

    def add_task(plugin: str, task: Any) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"{task!r} does not implement seqbench.tasks.Task")
        if task.name in reg.tasks:
            raise ValueError(f"task {task.name!r} is already registered")
        reg.tasks[task.name] = task
        reg.task_origin[task.name] = plugin

    reg.failures += _collect(pm, "seqbench_register_backends", add_backend)
    reg.failures += _collect(pm, "seqbench_register_tasks", add_task)
    for name, registered in claims.items():
        plugins = list(dict.fromkeys(plugin for plugin, _ in registered))
        if len(registered) == 1:
            reg.backends[name], reg.origin[name] = registered[0][1], plugins[0]
            continue
        reg.conflicts[name] = plugins  # which one is meant cannot be guessed: neither runs
        message = conflict_message(name, plugins)
        reg.failures += [PluginFailure(plugin, message) for plugin in plugins]
    return reg


def load_registry_for(backends: Iterable[str], task: str) -> Registry:
    """The registry a run of ``backends`` (names, ``NAME:IMPLEMENTATION`` or ``all``) on ``task`` needs.

    When every backend is named by an entry point of the same name (the built-ins are) and the task is
    built in, only those plugins load: one the run does not use cannot delay or break it.  Otherwise, or
    when those plugins do not register the backends, every plugin loads, and names are checked as ever.
    """
    names = {item.partition(":")[0] for item in backends}
    if names and "all" not in names and task in build_registry(new_plugin_manager()).tasks and \
            names <= {ep.name for ep in _entry_points()}:  # fmt: skip
        registry = load_registry(only=names)
        if names <= set(registry.backends):
            return registry
    return load_registry()


def load_registry(extra_plugins: Iterable[object] = (), only: Iterable[str] | None = None) -> Registry:
    """Load entry-point plugins (respecting the env vars; only those in ``only``, if given)
    plus ``extra_plugins``."""
    pm = new_plugin_manager()
    failures = load_entry_point_plugins(pm, only)
    for plugin in extra_plugins:
        pm.register(plugin)
    return build_registry(pm, failures)
