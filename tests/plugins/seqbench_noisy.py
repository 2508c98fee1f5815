"""A plugin with an import side effect: it writes its process id to ``SEQBENCH_TEST_IMPORT_LOG``.

Stands for a third-party plugin whose import starts a framework's thread pool:
a worker that measures another backend must never import it.
"""

from __future__ import annotations

import os

import seqbench

_log = os.environ.get("SEQBENCH_TEST_IMPORT_LOG")
if _log:
    with open(_log, "a") as f:
        f.write(f"{os.getpid()}\n")


@seqbench.hookimpl
def seqbench_register_backends(register):
    """Registers nothing: its import is the point."""
