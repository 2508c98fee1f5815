"""seqbench: benchmark recurrent sequence models across frameworks.

This module stays light: importing it loads no framework and no pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqbench.contract import Availability, Backend, Model, ModelSpec, OptimizerSpec, Weights
from seqbench.errors import SeqbenchError
from seqbench.hookspecs import hookimpl

if TYPE_CHECKING:
    from seqbench.results import Run

__version__ = "0.1.0"

__all__ = [
    "Availability",
    "Backend",
    "Model",
    "ModelSpec",
    "OptimizerSpec",
    "SeqbenchError",
    "Weights",
    "__version__",
    "hookimpl",
    "load_run",
]


def load_run(path: Any) -> Run:
    """Load a run directory; ``.cells`` and ``.epochs`` are pandas DataFrames."""
    from seqbench.results import load_run as _load  # pandas is imported only here

    return _load(path)
