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

    from seqbench.comparison import Comparison
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


def compare(base: Any, new: Any, threshold: float = 0.10, accuracy_tolerance: float = 0.05,
            normalize: bool = False, strict: bool = False, measure: str = "epoch") -> Comparison:  # fmt: skip
    """Compare two runs as ``seqbench compare`` does; ``base`` and ``new`` are runs or anything :func:`load_run`
    takes.  Returns a :class:`~seqbench.comparison.Comparison` (``.table``, ``.exit_code`` 1 on a regression).
    """
    from seqbench import comparison  # pandas, only now

    def run(value: Any) -> Run:
        from seqbench.results import Run

        return value if isinstance(value, Run) else load_run(value)

    return comparison.compare_runs(run(base), run(new), threshold=threshold, accuracy_tolerance=accuracy_tolerance,
                                   normalize=normalize, strict=strict, measure=measure)  # fmt: skip
