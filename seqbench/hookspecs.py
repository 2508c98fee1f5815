"""The hooks a seqbench plugin may implement.

A plugin is a module (or object) registered under the ``seqbench`` entry-point
group, the built-in backends included::

    [project.entry-points.seqbench]
    mybackend = "seqbench_mybackend"

and implements one or more hooks, each marked with :data:`seqbench.hookimpl`.
Hooks change only by adding: new arguments are optional, deprecations go
through pluggy's ``warn_on_impl``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from seqbench.contract import Backend
    from seqbench.tasks import Task

PROJECT = "seqbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def seqbench_register_backends(register: Callable[[Backend], None]) -> None:
    """Register backends by calling ``register(backend)`` once for each.

    ``backend`` must satisfy :class:`seqbench.contract.Backend`.  Constructing
    it must be cheap and must not import the framework: it runs on every
    ``seqbench list``.

    .. versionadded:: 0.1
    """


@hookspec
def seqbench_register_tasks(register: Callable[[Task], None]) -> None:
    """Register sequence tasks by calling ``register(task)`` once for each.

    ``task`` must satisfy :class:`seqbench.tasks.Task`.

    .. versionadded:: 0.1
    """
