"""Whether a measurement had to wait for a CPU, and how much CPU other processes took meanwhile.

Two meters, read around every epoch (outside the timed region):

``schedstat`` (the judge)
    The run-queue delay of this process's own threads: the second field of
    ``/proc/self/task/<tid>/schedstat``, nanoseconds each thread spent
    runnable but not running.  That is what slows a cell down.  Measured on a
    2-core machine, a one-thread NumPy loop (ms per window): with one busy
    neighbour 34.2 wall, 34.2 CPU, 0.0 waited (the neighbour had the other
    core); with two 46.2 wall, 12.0 waited; with three 95.6 wall, 59.7
    waited.  Wall minus CPU equalled the wait within 0.5 ms.

    A runtime whose threads hand work to each other (XLA, TensorFlow) waits
    too when it is squeezed onto one core, without being slowed: with one
    busy neighbour a jax cell's threads waited 55% of the time while the
    process used a full core (CPU time = wall time) and ran no slower than
    quiet.  So what counts is the wait that cost the cell CPU time it was
    allowed: ``min(wait, threads x wall - CPU)`` (:func:`lost_seconds`,
    ``threads`` being the cell's budget).  An epoch that lost more than
    :data:`WAIT_SHARE` of its wall time so (and more than
    :data:`WAIT_FLOOR_S`) is *disturbed*.  Under a neighbour that comes
    and goes, most epochs stay clean (88% of 3.5 ms windows in that test),
    so a repeat is judged from its clean steady epochs when at least half of
    them are clean (:func:`steadiness`); it is disturbed only when fewer are.

``proc-stat`` (information, and the fallback)
    The CPU time *other* processes used anywhere on the machine: system-wide
    busy time from ``/proc/stat`` minus this process's own.  Recorded per
    epoch as ``other_cpu_s`` and per repeat as ``interference`` (cores).  A
    neighbour on another core shows here without slowing the cell, so it
    judges only where schedstat is missing (a kernel without
    ``CONFIG_SCHED_INFO``, not Linux): then a repeat is disturbed when others
    took more than :data:`DISTURBED_CORES` over its steady window, beyond
    the tick counters' resolution (:data:`SLACK_TICKS` per CPU).

Each cell records which meter judged it (``meter``: ``schedstat``,
``proc-stat`` or ``none`` where neither exists; then nothing is flagged).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
TASKS = Path("/proc/self/task")
WAIT_SHARE = 0.05  # an epoch whose threads waited for a CPU longer than this share of its wall time is disturbed
WAIT_FLOOR_S = 1e-4  # below this an epoch's wait is a context switch or two, whatever its length
DISTURBED_CORES = 0.2  # others' average busy cores above which a repeat is disturbed
SLACK_TICKS = 1  # per CPU: below this the tick counters cannot tell load from rounding

try:
    _TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
    _TICK_S = 0.01


def busy_seconds(text: str) -> tuple[float, int]:
    """System-wide busy CPU seconds and the CPU count, from ``/proc/stat`` text.

    The first line is ``cpu user nice system idle iowait irq softirq steal
    guest guest_nice`` in ticks, summed over CPUs; guest time is already
    inside user and nice, so it is not added again.
    """
    lines = text.splitlines()
    fields = lines[0].split()
    if not fields or fields[0] != "cpu":
        raise ValueError("not /proc/stat: the first line is not the 'cpu' total")
    ticks = [int(v) for v in fields[1:9]] + [0] * max(0, 9 - len(fields))
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    cpus = sum(1 for line in lines[1:] if line.startswith("cpu") and line[3:4].isdigit())
    return (user + nice + system + irq + softirq + steal) * _TICK_S, max(cpus, 1)


def wait_seconds(tasks: Path = TASKS) -> float | None:
    """Seconds this process's threads have spent runnable but waiting for a CPU, or None where the
    kernel does not say.  A thread that ended takes its count with it: frameworks keep their pools."""
    total = 0
    try:
        entries = list(os.scandir(tasks))
    except OSError:
        return None
    if not entries:
        return None
    for entry in entries:
        try:
            total += int((Path(entry.path) / "schedstat").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError):  # the thread ended since the listing
            continue
        except (OSError, ValueError, IndexError):
            return None
    return total / 1e9


@dataclass(frozen=True)
class Reading:
    busy_s: float | None  # the machine's busy CPU seconds since boot (None without /proc/stat)
    own_s: float  # this process's CPU seconds
    at_s: float  # time.perf_counter()
    wait_s: float | None = None  # this process's threads' run-queue delay so far (None without schedstat)


class Meter:
    """Reads the machine's busy time and this process's CPU time around a measurement.

    ``source`` returns the text of ``/proc/stat`` and ``waits`` the threads'
    run-queue delay (tests give fakes; ``waits`` returning None is a kernel
    without schedstat); ``own`` returns this process's CPU seconds and
    ``clock`` the wall clock.
    """

    def __init__(self, source: Callable[[], str] | None = None, own: Callable[[], float] = time.process_time,
                 clock: Callable[[], float] = time.perf_counter,
                 waits: Callable[[], float | None] = wait_seconds) -> None:  # fmt: skip
        self._source = source or PROC_STAT.read_text
        self._own, self._clock, self._waits = own, clock, waits
        self.cpus = 1
        self.available = True
        try:
            self.cpus = busy_seconds(self._source())[1]
        except (OSError, ValueError, IndexError):
            self.available = False
        self.schedstat = waits() is not None

    @property
    def kind(self) -> str:
        """The meter that judges: ``schedstat``, ``proc-stat`` or ``none``."""
        return "schedstat" if self.schedstat else "proc-stat" if self.available else "none"

    def read(self) -> Reading | None:
        if not self.available and not self.schedstat:
            return None
        busy = None
        if self.available:
            try:
                busy = busy_seconds(self._source())[0]
            except (OSError, ValueError, IndexError):
                busy = None
        return Reading(busy, self._own(), self._clock(), self._waits() if self.schedstat else None)


def others(start: Reading | None, end: Reading | None) -> float | None:
    """CPU seconds that other processes used between two readings.

    Tick rounding can make a short window slightly negative; it is kept as it
    is, so that sums over many windows stay unbiased.
    """
    if start is None or end is None or start.busy_s is None or end.busy_s is None:
        return None
    return (end.busy_s - start.busy_s) - (end.own_s - start.own_s)


def waited(start: Reading | None, end: Reading | None) -> float | None:
    """Seconds this process's threads waited for a CPU between two readings (None without schedstat)."""
    if start is None or end is None or start.wait_s is None or end.wait_s is None:
        return None
    return max(0.0, end.wait_s - start.wait_s)


def lost_seconds(wait_s: float | None, wall_s: float, cpu_s: float, threads: int) -> float | None:
    """The part of a measurement's run-queue wait that cost it CPU time it was allowed (see the module doc)."""
    if wait_s is None:
        return None
    return max(0.0, min(wait_s, threads * wall_s - cpu_s))


def epoch_disturbed(lost_s: float | None, wall_s: float) -> bool | None:
    """Whether an epoch lost more than :data:`WAIT_SHARE` of its wall time waiting for a CPU
    (``lost_s`` from :func:`lost_seconds`; None: not measured)."""
    if lost_s is None:
        return None
    return lost_s > max(WAIT_SHARE * wall_s, WAIT_FLOOR_S)


def interference(start: Reading | None, end: Reading | None) -> float | None:
    """Average number of cores other processes kept busy between two readings."""
    used = others(start, end)
    if used is None or start is None or end is None or end.at_s <= start.at_s:
        return None
    return max(0.0, used) / (end.at_s - start.at_s)


def is_disturbed(start: Reading | None, end: Reading | None, cpus: int, limit: float = DISTURBED_CORES) -> bool:
    """Whether other processes took more than ``limit`` cores, beyond the counters' resolution.

    One window over the whole measurement, rather than a sum of per-epoch
    windows: each reading pair carries up to a tick of rounding per busy CPU,
    and summing many short windows would add it up.
    """
    cores = interference(start, end)
    used = others(start, end)
    if cores is None or used is None:
        return False
    return cores > limit and used > SLACK_TICKS * _TICK_S * cpus


@dataclass(frozen=True)
class Steadiness:
    """Which steady epochs a repeat's times come from, and whether the repeat is disturbed."""

    used: list[int]  # indexes into the steady epochs the times are taken from
    disturbed: bool
    meter: str
    wait_share: float | None  # the steady epochs' lost wait over their wall time (None: not measured)

    def clean_only(self, total: int) -> bool:
        """Whether some disturbed epochs were left out (the times come from the clean ones)."""
        return len(self.used) < total


def steadiness(waits: list[float | None], walls: list[float], start: Reading | None, end: Reading | None,
               cpus: int, meter: str) -> Steadiness:  # fmt: skip
    """Judge a repeat from its steady epochs' lost waits (``schedstat``; :func:`lost_seconds`), else from
    others' CPU over the window.

    With schedstat, a repeat takes its times from its clean epochs when at least half of them are clean,
    and is disturbed only when fewer are; without it, all epochs are used and the window decides.
    """
    every = list(range(len(walls)))
    if meter == "schedstat" and walls and all(w is not None for w in waits):
        flags = [epoch_disturbed(w, wall) for w, wall in zip(waits, walls, strict=True)]
        clean = [i for i in every if not flags[i]]
        share = sum(w or 0.0 for w in waits) / sum(walls) if sum(walls) > 0 else None
        if 2 * len(clean) >= len(walls):
            return Steadiness(clean, False, meter, share)
        return Steadiness(every, True, meter, share)
    return Steadiness(every, is_disturbed(start, end, cpus), meter, None)
