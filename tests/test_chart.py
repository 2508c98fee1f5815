"""What every figure shares: one colour per backend everywhere, and which values a figure can draw."""

from __future__ import annotations

import math

import pytest

from seqbench.chart import BACKEND_COLORS, decades, entrant_colors, plottable


def _distance(a: str, b: str) -> float:
    rgb = [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in (a, b)]
    return math.dist(*rgb)


def test_a_backend_has_its_colour_whatever_else_is_drawn():
    alone = entrant_colors(["numpy:reference/cpu"])
    crowded = entrant_colors(["jax:scan/cpu", "keras:graph/cpu", "numpy:reference/cpu", "torch:loop/cpu", "zz:x/cpu"])
    assert alone["numpy:reference/cpu"] == crowded["numpy:reference/cpu"] == BACKEND_COLORS["numpy"]
    assert len(set(crowded.values())) == len(crowded)


def test_backends_that_were_confused_are_far_apart():
    colors = entrant_colors([f"{b}:x/cpu" for b in BACKEND_COLORS])
    for a in colors:
        for b in colors:
            if a != b:
                assert _distance(colors[a], colors[b]) > 60, (a, b)  # jax #0072B2 and torch:loop #1f77b4 were 31 apart
    assert "#F0E442" not in colors.values()  # yellow vanishes on white


def test_another_backend_keeps_a_colour_of_its_own_from_page_to_page():
    one = entrant_colors(["mine:fast/cpu"])["mine:fast/cpu"]
    assert one == entrant_colors(["mine:fast/cpu", "numpy:reference/cpu", "other:x/cpu"])["mine:fast/cpu"]
    assert one not in BACKEND_COLORS.values()


def test_series_of_one_backend_are_shades_of_its_colour():
    colors = entrant_colors(["torch:loop/cpu", "torch:cudnn/cuda", "numpy:reference/cpu"])
    assert colors["torch:cudnn/cuda"] == BACKEND_COLORS["torch"]  # the first in sorted order
    assert colors["torch:loop/cpu"] != colors["torch:cudnn/cuda"]
    assert _distance(colors["torch:loop/cpu"], BACKEND_COLORS["torch"]) < _distance(
        colors["torch:loop/cpu"], BACKEND_COLORS["numpy"]
    )


@pytest.mark.parametrize("value", [1e308, -1e308, math.inf, math.nan, None, "x", 1e-320])
def test_values_no_axis_can_draw_are_refused(value):
    assert not plottable(value)


def test_decades_hold_the_data_and_never_overflow():
    assert decades([2.5, 4.9]) == (1.0, 10.0)
    assert decades([10.0]) == (10.0, 100.0)  # a value on an edge gets the decade above it
    assert decades([1e300, 5.0]) == (1.0, 1e301)
    assert decades([1e308, math.inf, math.nan, -1.0]) is None
