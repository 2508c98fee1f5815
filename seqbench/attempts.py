"""Which measurement of a repeat counts: the one rule every reader uses.

A repeat that was disturbed can be measured again (``attempt`` 2, 3, ...).
Exactly one attempt of each repeat counts, everywhere: the report, compare
(rows and headline), plots, export, history, the dashboard and
:func:`seqbench.load_run` (whose ``cells`` and ``epochs`` hold the counted
attempts; ``attempts`` and ``attempt_epochs`` hold them all).

The counted attempt is the *cleanest*, by measurement, never the latest:

1. one that completed, before one that failed;
2. one that is not disturbed, before one that is;
3. the least run-queue wait (``wait_share``), else the least CPU taken by
   other processes (``interference``, for runs measured without schedstat);
4. the earliest, on a tie.

In an A/B run (``--env``), A and B of the same seed were measured side by
side and are re-measured together, so they are chosen together: the attempt
whose worse side is cleanest counts for both, and each pair stays a pair.

Standard library only: the runner uses it on records as they arrive, the
readers on loaded rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from seqbench.keys import COMPLETED


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def attempt_number(value: Any) -> int:
    """The attempt a row's ``attempt`` value stands for: 1 where it has none."""
    return int(_number(value) or 1)


def badness(row: Mapping[str, Any]) -> tuple[bool, bool, float]:
    """How unclean one measurement is: lower is cleaner (see the module doc)."""
    wait = _number(row.get("wait_share"))
    others = _number(row.get("interference"))
    level = wait if wait is not None else others if others is not None else 0.0
    return row.get("status") not in COMPLETED, row.get("disturbed") is True, level


def counted(rows: Sequence[Mapping[str, Any]], pair_of: Callable[[Mapping[str, Any]], Hashable]) -> list[int]:
    """The indexes of ``rows`` (measurements) that count, in their original order.

    ``pair_of(row)`` names a row's repeat with its environment left out: the
    rows that share it are one repeat, or one A/B pair of repeats, and are
    chosen together by attempt.
    """
    groups: dict[Hashable, dict[int, list[int]]] = {}
    for index, row in enumerate(rows):
        attempt = attempt_number(row.get("attempt"))
        groups.setdefault(pair_of(row), {}).setdefault(attempt, []).append(index)
    chosen: list[int] = []
    for by_attempt in groups.values():
        width = max(len(members) for members in by_attempt.values())  # an attempt missing a side is no pair
        best = min(by_attempt, key=lambda a: (len(by_attempt[a]) < width,
                                              max(badness(rows[i]) for i in by_attempt[a]), a))  # fmt: skip
        chosen += by_attempt[best]
    return sorted(chosen)


def counted_rows(rows: Iterable[Mapping[str, Any]], pair_of: Callable[[Mapping[str, Any]], Hashable]) -> list[Any]:
    """The rows of :func:`counted`."""
    rows = list(rows)
    return [rows[i] for i in counted(rows, pair_of)]


__all__ = ["attempt_number", "badness", "counted", "counted_rows", "remeasurements"]


def remeasurements(attempts: Iterable[Any]) -> int:
    """How many of a run's rows are measurements again of a repeat (``attempt`` 2, 3, ...): a run's count of
    cells done is its rows less these, in every place that says it (the report, merge)."""
    return sum(1 for a in attempts if attempt_number(a) > 1)
