"""The one plugin manager, and the typed registry every other module uses.

All backends, the built-in ones included, arrive through the ``seqbench``
entry-point group.  Two environment variables choose what loads (names are
entry-point names, comma separated):

* ``SEQBENCH_PLUGINS``: load only these (set it empty to load none);
* ``SEQBENCH_DISABLE_PLUGINS``: never load these.

A plugin that fails to import or to register is recorded with its name and
the error, and the others still load.  Nothing here imports a framework.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from seqbench import hookspecs, tasks
from seqbench.contract import Backend
from seqbench.errors import UsageError
from seqbench.tasks import Task

ENV_ALLOW = "SEQBENCH_PLUGINS"
ENV_DISABLE = "SEQBENCH_DISABLE_PLUGINS"
ENTRY_POINT_GROUP = "seqbench"
BUILTIN_TASKS = "seqbench.tasks"  # registered in every plugin manager, not through an entry point


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
        return tuple(sorted({self.origin[backend], self.task_origin.get(task, BUILTIN_TASKS)} - {BUILTIN_TASKS}))

    def backend(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            raise UsageError(
                f"unknown backend {name!r}; valid: {', '.join(sorted(self.backends)) or 'none'}"
            ) from None

    def task(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise UsageError(
                f"unknown task {name!r}; valid: {', '.join(sorted(self.tasks)) or 'none'}"
            ) from None


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
    pm.register(tasks, name=BUILTIN_TASKS)
    return pm


def load_entry_point_plugins(pm: pluggy.PluginManager, only: Iterable[str] | None = None) -> list[PluginFailure]:
    """Register every allowed entry-point plugin (only those named in ``only``, if given);
    return those that failed."""
    allow, deny = _names(ENV_ALLOW), _names(ENV_DISABLE) or set()
    wanted = None if only is None else set(only)
    failures = []
    for ep in _entry_points():
        if (allow is not None and ep.name not in allow) or ep.name in deny:
            continue
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as e:  # any import error of a third-party plugin
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


def build_registry(pm: pluggy.PluginManager, failures: Iterable[PluginFailure] = ()) -> Registry:
    pm.check_pending()
    reg = Registry(failures=list(failures))

    def add_backend(plugin: str, backend: Any) -> None:
        if not isinstance(backend, Backend):
            raise TypeError(f"{backend!r} does not implement seqbench.contract.Backend")
        if backend.name in reg.backends:
            raise ValueError(
                f"backend {backend.name!r} is already registered by plugin {reg.origin[backend.name]!r}"
            )
        reg.backends[backend.name] = backend
        reg.origin[backend.name] = plugin

    def add_task(plugin: str, task: Any) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"{task!r} does not implement seqbench.tasks.Task")
        if task.name in reg.tasks:
            raise ValueError(f"task {task.name!r} is already registered")
        reg.tasks[task.name] = task
        reg.task_origin[task.name] = plugin

    reg.failures += _collect(pm, "seqbench_register_backends", add_backend)
    reg.failures += _collect(pm, "seqbench_register_tasks", add_task)
    return reg


def load_registry(extra_plugins: Iterable[object] = (), only: Iterable[str] | None = None) -> Registry:
    """Load entry-point plugins (respecting the env vars; only those in ``only``, if given)
    plus ``extra_plugins``."""
    pm = new_plugin_manager()
    failures = load_entry_point_plugins(pm, only)
    for plugin in extra_plugins:
        pm.register(plugin)
    return build_registry(pm, failures)
