"""seqbench: benchmark recurrent sequence models across frameworks.

This module stays light: importing it loads no framework and no pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqbench.contract import Availability, Backend, Model, ModelSpec, OptimizerSpec, Weights
from seqbench.errors import SeqbenchError
from seqbench.hookspecs import hookimpl

if TYPE_CHECKING:
    import pandas as pd

    from seqbench.compare import Comparison
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
    from seqbench.results import load_run as _load  # pandas is imported only here

    return _load(run, results_dir)


def summary(run: Any) -> pd.DataFrame:
    """One row per task x experiment x backend x implementation x model x device, over processes.

    ``run`` is a :class:`~seqbench.results.Run` or anything :func:`load_run` takes.  The columns are
    those of ``seqbench report --format csv`` (docs/reports.md): ``steady_epoch_ms`` with
    ``steady_min_ms``/``steady_max_ms`` over processes, ``vs_fastest``, the primary metric's ``score``...
    """
    from seqbench.report import cell_view
    from seqbench.report import summary as _summary
    from seqbench.results import Run

    return _summary(cell_view(run if isinstance(run, Run) else load_run(run)))


def compare(base: Any, new: Any, threshold: float = 0.10, accuracy_tolerance: float = 0.05,
            normalize: bool = False, strict: bool = False) -> Comparison:  # fmt: skip
    """Compare two runs row by row (``seqbench compare``); ``.table`` is a DataFrame, ``.exit_code`` 1 on a regression.

    ``base`` and ``new`` are :class:`~seqbench.results.Run` objects or anything :func:`load_run` takes.
    Importing the module :mod:`seqbench.compare` rebinds ``seqbench.compare`` to that module (Python
    sets a package's attribute to each submodule it imports), so the module is callable too, with
    this same signature: ``seqbench.compare(base, new)`` works either way.
    """
    from seqbench.compare import compare_public

    return compare_public(base, new, threshold=threshold, accuracy_tolerance=accuracy_tolerance,
                          normalize=normalize, strict=strict)  # fmt: skip
