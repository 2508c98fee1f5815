"""The built-in tasks, registered through the hook a task plugin would use."""

from __future__ import annotations

from collections.abc import Callable

from seqbench.hookspecs import hookimpl
from seqbench.tasks import AddingTask, ArithmeticTask, DigitsTask, Task


@hookimpl
def seqbench_register_tasks(register: Callable[[Task], None]) -> None:
    register(ArithmeticTask())
    register(AddingTask())
    register(DigitsTask())
