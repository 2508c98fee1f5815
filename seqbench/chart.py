"""What every figure shares, the run plots (:mod:`seqbench.plots`) and the dashboard (:mod:`seqbench.dashboard`) alike.

One colour per backend wherever it is drawn (:func:`entrant_colors`), the whole-decade log axis a time is
drawn on (:func:`decades`), and which values a figure can draw at all (:func:`plottable`).  Standard
library only: the dashboard draws without matplotlib.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from typing import Any

# Okabe-Ito, a palette that colour-blind readers can tell apart, for the backends this project ships: a
# backend keeps its colour in every figure, page and run, however many other backends it is drawn with.
# Yellow (#F0E442) is left out: it vanishes on white.
BACKEND_COLORS = {"numpy": "#0072B2", "torch": "#D55E00", "jax": "#009E73", "keras": "#CC79A7",
                  "keras-jax": "#E69F00", "keras-torch": "#56B4E9"}  # fmt: skip
# Any other backend: picked by a hash of its name, so it too keeps its colour from page to page; none close to
# a colour above (matplotlib's #1f77b4 is left out: it looks like numpy's blue).
SPARE_COLORS = ("#8C564B", "#9467BD", "#7F7F7F", "#BCBD22", "#17BECF", "#000000")

# On a log axis of whole decades the decade above 1e308 overflows a float; nothing a benchmark measures
# comes near these bounds, so a value outside them is a broken record: it is left out, with a note.
PLOTTABLE = (1e-300, 1e300)


def backend_of(entrant: str) -> str:
    """The backend of an entrant's name (``backend:implementation/device``)."""
    return entrant.split(":", 1)[0]


def shade(color: str, k: int) -> str:
    """The k-th shade of ``color``: itself, then darker and lighter by turns, further each time."""
    if k == 0:
        return color
    amount = min(0.7, 0.35 * ((k + 1) // 2))
    toward = 0 if k % 2 else 255  # odd: darker, even: lighter
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (toward - c) * amount):02X}" for c in rgb)


def backend_colors(backends: Iterable[str]) -> dict[str, str]:
    """One colour per backend: :data:`BACKEND_COLORS`, else a :data:`SPARE_COLORS` picked by the name's hash."""
    names = set(backends)
    out = {b: BACKEND_COLORS[b] for b in names if b in BACKEND_COLORS}
    taken: set[str] = set()
    for b in sorted(names - set(out)):
        start = zlib.crc32(b.encode())  # stable across processes, unlike hash()
        free = [SPARE_COLORS[(start + i) % len(SPARE_COLORS)] for i in range(len(SPARE_COLORS))]
        out[b] = next((c for c in free if c not in taken), free[0])
        taken.add(out[b])
    return out


def entrant_colors(names: Iterable[Any]) -> dict[str, str]:
    """One colour per entrant (``backend:implementation/device``): its backend's colour.

    When one backend has several entrants (implementations, devices, A/B environments), each gets a shade
    of that colour, in sorted order of the names drawn together.
    """
    names = sorted(set(map(str, names)))
    base = backend_colors(backend_of(n) for n in names)
    out: dict[str, str] = {}
    for backend, color in base.items():
        for k, name in enumerate(n for n in names if backend_of(n) == backend):
            out[name] = shade(color, k)
    return out


def plottable(v: Any) -> bool:
    """A value a log axis can draw: a finite number inside :data:`PLOTTABLE`."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return False
    return math.isfinite(v) and PLOTTABLE[0] <= abs(v) <= PLOTTABLE[1]


def decades(values: Iterable[Any]) -> tuple[float, float] | None:
    """Whole decades around the positive plottable ``values`` (so an axis does not jump with the data)."""
    shown = [float(v) for v in values if plottable(v) and float(v) > 0]
    if not shown:
        return None
    low = 10.0 ** math.floor(math.log10(min(shown)))
    high = 10.0 ** math.ceil(math.log10(max(shown)) + 1e-9)  # a top value on the axis edge: one more decade
    return (low, high if high > low else low * 10)


def experiment_tags(experiments: Iterable[str]) -> dict[str, str]:
    """Each experiment label (:func:`seqbench.keys.experiment_label`) cut to what tells it from the others
    (``units=32``); ``""`` when nothing does (a single experiment)."""
    tokens = {e: e.split() for e in experiments}
    common = set.intersection(*(set(t) for t in tokens.values())) if tokens else set()
    return {e: " ".join(t for t in parts if t not in common) for e, parts in tokens.items()}


def left_out_note(count: int, what: str) -> str:
    """The note under a figure that could not draw ``count`` values."""
    s = "" if count == 1 else "s"
    return f"left out: {count} {what} value{s} that cannot be drawn (not a number, or beyond 1e300)"


__all__ = [
    "experiment_tags","BACKEND_COLORS", "PLOTTABLE", "SPARE_COLORS", "backend_colors", "backend_of", "decades",
           "left_out_note", "plottable", "entrant_colors", "shade"]  # fmt: skip
