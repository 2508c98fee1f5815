"""How values are written: numbers for people, and anything for JSON.  One place for each.

Every table a person reads (report, compare, history, dashboard, plot
labels) formats its numbers here, so a time, a ratio or a p-value looks the
same wherever it appears.  Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

MISSING = "-"  # what a table shows where there is no number
# Beyond this a fixed-point number is a wall of digits (1e308 with ".2f" is 311 characters): say it as 1e+15.
HUGE = 1e15


def is_number(v: Any) -> bool:
    """A value a table can show: not None and not NaN."""
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def fmt_num(v: Any, spec: str) -> str:
    """``format(v, spec)``, or :data:`MISSING`; a magnitude from :data:`HUGE` up (or infinite) as ``1.2e+308``."""
    if not is_number(v):
        return MISSING
    v = float(v)
    if not abs(v) < HUGE:
        percent = spec.endswith("%")
        short = format(v * 100 if percent else v, "+.3g" if spec.startswith("+") else ".3g")
        return short + ("%" if percent else "")
    return format(v, spec)


def fmt_ms(v: Any) -> str:
    """A time in ms with three significant digits, never in exponent form above 0.1: ``714``, ``11.2``, ``0.25``."""
    if not is_number(v):
        return MISSING
    v = float(v)
    if not abs(v) < HUGE:
        return f"{v:.3g}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 0.1:
        return f"{v:.2f}"
    return f"{v:.2g}"


def fmt_ratio(v: Any) -> str:
    """A ratio of times in a run report, the same precision everywhere: ``1.00x``, ``4.60x``, ``18.2x``, ``180x``."""
    if not is_number(v):
        return MISSING
    v = float(v)
    if not abs(v) < HUGE:
        return f"{v:.3g}x"
    return f"{v:.0f}x" if v >= 100 else f"{v:.1f}x" if v >= 10 else f"{v:.2f}x"


def fmt_ratio3(v: Any) -> str:
    """A ratio in a comparison: always three decimals (``1.000``, ``0.981``, ``3.690``)."""
    return fmt_num(v, ".3f")


def fmt_p(v: Any) -> str:
    """p-values: always three decimals, ``<0.001`` below that (never ``1``, ``0.19`` and ``6e-05`` side by side)."""
    if not is_number(v):
        return MISSING
    return "<0.001" if float(v) < 0.001 else f"{float(v):.3f}"


def fmt_range(mid: str, low: Any, high: Any, f: Callable[[Any], str]) -> str:
    """``mid (low-high)``, or ``mid`` alone when the spread rounds away or is unknown."""
    if mid == MISSING or not (is_number(low) and is_number(high)) or f(low) == f(high):
        return mid
    return f"{mid} ({f(low)}-{f(high)})"


def score_format(metric: Any) -> Callable[[Any], str]:
    """Two decimals for accuracy, four significant digits for any other metric."""
    spec = ".2f" if metric == "accuracy" else ".4g"
    return lambda v: fmt_num(v, spec)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: NumPy scalars as Python numbers, non-finite floats as None."""
    if callable(getattr(value, "item", None)) and getattr(value, "ndim", None) == 0:  # a NumPy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


__all__ = ["MISSING", "fmt_ms", "fmt_num", "fmt_p", "fmt_range", "fmt_ratio", "fmt_ratio3", "is_number",
           "jsonable", "score_format"]  # fmt: skip
