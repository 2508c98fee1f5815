"""The one family of errors a user sees.

The CLI turns each class into one clean line and a distinct exit code; a
traceback is printed only with ``--debug``.
"""

from __future__ import annotations


class SeqbenchError(Exception):
    """Base of every user-facing error."""

    exit_code = 1


class UsageError(SeqbenchError):
    """A bad value on the command line or in a configuration: nothing ran."""

    exit_code = 2


class PluginLoadError(SeqbenchError):
    """A backend plugin could not be imported or registered."""

    exit_code = 2


class ResultsError(SeqbenchError):
    """A results directory cannot be written or read, or neither can an output made from it
    (a report, a plot, an export): the environment's fault, not seqbench's."""

    exit_code = 2
