"""Statistics over processes: the verdict of a time ratio between two runs.

The unit of repetition is the worker process (DESIGN.md): epochs inside one
process agree to about 1% while the same row moves by up to 14% from one
process to the next, so epochs are not independent samples and pooling them
gives intervals about ten times too narrow (the first release flagged 2 of
12 identical pairs as regressions that way).  Here each process contributes
one value, its median steady epoch, and the comparison is made on their
logarithms (times are positive and their noise is multiplicative):

* the ratio NEW/BASE is the ratio of geometric means;
* its interval is Welch's t interval of the difference of mean logs, which
  allows the two runs different spreads; ``p`` is the same test's two-sided
  p-value.

Verdicts (:func:`judge`):

``slower`` / ``faster``
    the whole interval lies beyond the threshold: the only verdict that fails
    a comparison;
``same``
    the whole interval lies within the threshold band;
``undecided``
    the interval straddles the threshold: the spread between processes is
    too wide to decide with this many repeats;
``disturbed``
    some process on either side ran while other processes took CPU
    (:mod:`seqbench.interference`): its time says more about the neighbours
    than about the code;
``too few processes``
    fewer than :data:`MIN_PROCESSES` on a side: no spread to judge by.

Only ``slower`` is a regression; ``undecided`` and ``disturbed`` are said in
words and fail only with ``--strict``.  NumPy has no Student t quantile, and
scipy is kept out of the core install, so the distribution is computed here
(and checked against scipy in the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_PROCESSES = 2
SLOWER, FASTER, SAME, UNDECIDED, DISTURBED, FEW, NA = (
    "slower", "faster", "same", "undecided", "disturbed", "too few processes", "n/a",
)  # fmt: skip
VERDICT_TEXT = {
    SLOWER: "slower beyond the threshold, with confidence",
    FASTER: "faster beyond the threshold, with confidence",
    SAME: "the same within the threshold",
    UNDECIDED: "undecided: the spread between processes is too wide to decide",
    DISTURBED: "not judged: other processes disturbed the measurement",
    FEW: "not judged: too few processes",
    NA: "no time on one side",
}


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1 - math.exp(log_front) * _betacf(b, a, 1 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1 - tail


def t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (bisection on :func:`t_sf`)."""
    if not 0 < q < 1:
        raise ValueError("q must lie in (0, 1)")
    low, high = -1e3, 1e3
    for _ in range(200):
        mid = (low + high) / 2
        if 1 - t_sf(mid, df) < q:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass(frozen=True)
class Judgement:
    ratio: float  # NEW/BASE, geometric means over processes
    low: float
    high: float
    p: float
    n_base: int  # processes
    n_new: int
    verdict: str

    @property
    def text(self) -> str:
        return VERDICT_TEXT[self.verdict]


def welch_log_ratio(base: np.ndarray, new: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """Ratio of geometric means NEW/BASE, its Welch t interval and two-sided p-value."""
    lb, ln = np.log(base), np.log(new)
    diff = float(ln.mean() - lb.mean())
    vb, vn = lb.var(ddof=1) / len(lb), ln.var(ddof=1) / len(ln)
    se = math.sqrt(vb + vn)
    if se == 0:
        return math.exp(diff), math.exp(diff), math.exp(diff), 0.0 if diff else 1.0
    df = (vb + vn) ** 2 / (vb**2 / (len(lb) - 1) + vn**2 / (len(ln) - 1))
    half = t_ppf(1 - (1 - confidence) / 2, df) * se
    p = float(min(1.0, 2 * t_sf(abs(diff) / se, df)))
    return math.exp(diff), math.exp(diff - half), math.exp(diff + half), p


def judge(base: list[float], new: list[float], threshold: float, confidence: float = 0.95,
          disturbed: bool = False) -> Judgement:  # fmt: skip
    """Judge NEW/BASE from one positive value per process on each side (see the module doc)."""
    b = np.asarray([v for v in base if v is not None and math.isfinite(v) and v > 0], float)
    n = np.asarray([v for v in new if v is not None and math.isfinite(v) and v > 0], float)
    if not len(b) or not len(n):
        return Judgement(math.nan, math.nan, math.nan, math.nan, len(b), len(n), NA)
    if len(b) < MIN_PROCESSES or len(n) < MIN_PROCESSES:
        ratio = float(np.exp(np.log(n).mean() - np.log(b).mean()))
        return Judgement(ratio, math.nan, math.nan, math.nan, len(b), len(n), FEW)
    ratio, low, high, p = welch_log_ratio(b, n, confidence)
    if disturbed:
        verdict = DISTURBED
    elif low > 1 + threshold:
        verdict = SLOWER
    elif high < 1 / (1 + threshold):
        verdict = FASTER
    elif low >= 1 / (1 + threshold) and high <= 1 + threshold:
        verdict = SAME
    else:
        verdict = UNDECIDED
    return Judgement(ratio, low, high, p, len(b), len(n), verdict)
