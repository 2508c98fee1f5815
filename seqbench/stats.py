"""Statistics over processes: the verdict of a time ratio between two runs.

The unit of repetition is the worker process (docs/measurement.md): epochs inside one
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
    too few processes on a side are left once the disturbed ones (whose
    threads waited for a CPU in most of their epochs,
    :mod:`seqbench.interference`) are set aside: their times say more about
    the neighbours than about the code.  Disturbed processes are left out
    whenever enough clean ones remain;
``too few processes``
    fewer than :data:`MIN_PROCESSES` on a side: no spread to judge by.

Paired verdicts (:func:`judge_paired`) serve an A/B run, where A and B of
each seed ran side by side (``seqbench run --env``): the sample is each
pair's log ratio log(B/A), and the interval is Student's t interval of its
mean.  Load and drift that hit both sides of a pair alike cancel in the
ratio, which the unpaired test cannot do: under a common drift that moves
every process by 20%, a constant 10% slowdown is found paired and lost
unpaired (tests/test_compare.py).

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


def _verdict(low: float, high: float, threshold: float, disturbed: bool) -> str:
    if disturbed:
        return DISTURBED
    if low > 1 + threshold:
        return SLOWER
    if high < 1 / (1 + threshold):
        return FASTER
    if low >= 1 / (1 + threshold) and high <= 1 + threshold:
        return SAME
    return UNDECIDED


def _positive(values: list[float]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v) and v > 0], float)


def paired_log_ratio(base: np.ndarray, new: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """Geometric mean of the pairs' ratios NEW/BASE, its t interval and two-sided p-value (paired t test)."""
    d = np.log(new) - np.log(base)
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(len(d))
    if se == 0:
        return math.exp(mean), math.exp(mean), math.exp(mean), 0.0 if mean else 1.0
    df = len(d) - 1
    half = t_ppf(1 - (1 - confidence) / 2, df) * se
    p = float(min(1.0, 2 * t_sf(abs(mean) / se, df)))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half), p


def judge_paired(pairs: list[tuple[float, float]], threshold: float, confidence: float = 0.95,
                 disturbed: bool = False) -> Judgement:  # fmt: skip
    """Judge NEW/BASE from (base, new) values of processes that ran side by side (see the module doc).

    ``n_base`` and ``n_new`` are both the number of usable pairs.
    """
    usable = [(b, n) for b, n in pairs if all(v is not None and math.isfinite(v) and v > 0 for v in (b, n))]
    if not usable:
        return Judgement(math.nan, math.nan, math.nan, math.nan, 0, 0, NA)
    b, n = (np.asarray(side, float) for side in zip(*usable, strict=True))
    if len(usable) < MIN_PROCESSES:
        ratio = float(np.exp((np.log(n) - np.log(b)).mean()))
        return Judgement(ratio, math.nan, math.nan, math.nan, len(b), len(n), FEW)
    ratio, low, high, p = paired_log_ratio(b, n, confidence)
    return Judgement(ratio, low, high, p, len(b), len(n), _verdict(low, high, threshold, disturbed))


def precise_enough(values: list[float], threshold: float, confidence: float = 0.95) -> bool:
    """Whether the interval of the geometric mean of ``values`` (one per process) lies within a factor
    of sqrt(1 + threshold) either side: precise enough for a comparison at ``threshold`` to decide."""
    v = _positive(values)
    if len(v) < MIN_PROCESSES:
        return False
    logs = np.log(v)
    half = t_ppf(1 - (1 - confidence) / 2, len(v) - 1) * float(logs.std(ddof=1)) / math.sqrt(len(v))
    return half <= math.log1p(threshold) / 2


def judge(base: list[float], new: list[float], threshold: float, confidence: float = 0.95,
          disturbed: bool = False) -> Judgement:  # fmt: skip
    """Judge NEW/BASE from one positive value per process on each side (see the module doc)."""
    b, n = _positive(base), _positive(new)
    if not len(b) or not len(n):
        return Judgement(math.nan, math.nan, math.nan, math.nan, len(b), len(n), NA)
    if len(b) < MIN_PROCESSES or len(n) < MIN_PROCESSES:
        ratio = float(np.exp(np.log(n).mean() - np.log(b).mean()))
        return Judgement(ratio, math.nan, math.nan, math.nan, len(b), len(n), FEW)
    ratio, low, high, p = welch_log_ratio(b, n, confidence)
    return Judgement(ratio, low, high, p, len(b), len(n), _verdict(low, high, threshold, disturbed))
