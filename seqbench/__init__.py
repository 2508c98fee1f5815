"""seqbench: benchmark recurrent sequence models across frameworks.

This module stays light: importing it loads no framework and no pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqbench.contract import (
    Availability,
    Backend,
    BackendBase,
    Model,
    ModelBase,
    ModelSpec,
    OptimizerSpec,
    Weights,
)
from seqbench.errors import SeqbenchError
from seqbench.hookspecs import hookimpl

if TYPE_CHECKING:
    import pandas as pd

    from seqbench.results import Run

__version__ = "0.3.0"

__all__ = [
    "Availability",
    "Backend",
    "BackendBase",
    "Model",
    "ModelBase",
    "ModelSpec",
    "OptimizerSpec",
    "SeqbenchError",
    "Weights",
    "__version__",
    "compare",
    "hookimpl",
    "load_run",
    "summary",
]


def load_run(run: Any = None, results_dir: Any = "results") -> Run:
    """Load a run; ``.cells`` and ``.epochs`` are pandas DataFrames (float columns hold NaN, never None).

    ``run`` is a run directory, a run id under ``results_dir`` (``load_run("20261126-...",
    results_dir="results")``), or ``"latest"`` / nothing for the newest run there.
    """
    from seqbench.loader import load_run as _load  # pandas is imported only here

    return _load(run, results_dir)


def summary(run: Any) -> pd.DataFrame:
    """One row per task x experiment x backend x implementation x model x device, over processes.

    ``run`` is a :class:`~seqbench.results.Run` or anything :func:`load_run` takes.  The columns are
    those of ``seqbench report --format csv`` (docs/reports.md): ``steady_epoch_ms`` with
    ``steady_min_ms``/``steady_max_ms`` over processes, ``vs_fastest``, the primary metric's ``score``...;
    from the inference phase ``latency_p50_ms`` with ``latency_min_ms``/``latency_max_ms``, ``latency_p90_ms``,
    ``latency_p99_ms``, ``latency_first_ms`` and ``throughput_per_s``.
    """
    from seqbench.results import Run
    from seqbench.views import cell_view
    from seqbench.views import summary as _summary

    return _summary(cell_view(run if isinstance(run, Run) else load_run(run)))


def __getattr__(name: str) -> Any:
    """``seqbench.compare``: the module :mod:`seqbench.compare`, imported on first use, and callable.

    ``seqbench.compare(base, new, threshold=0.10, accuracy_tolerance=0.05, normalize=False, strict=False)``
    compares two runs (``seqbench compare``; runs or anything :func:`load_run` takes) and returns a
    :class:`~seqbench.compare.Comparison` (``.table``, ``.exit_code`` 1 on a regression).  It is the module
    itself rather than a function because importing a submodule sets the package attribute of its name:
    a function here would be replaced by the module, or hide it (``seqbench.compare.compare_runs``).
    """
    if name == "compare":
        import importlib

        return importlib.import_module("seqbench.compare")  # pandas, only now
    raise AttributeError(f"module 'seqbench' has no attribute {name!r}")
