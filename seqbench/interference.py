"""How much CPU other processes took while a measurement ran.

Measured on this kind of machine (2 cores): one CPU-bound neighbour made
torch epochs 3x to 400x slower while NumPy moved about 1.0x, and a
calibration run at the start of the run did not notice.  So every epoch is
accompanied by a reading of the machine's own counters: the system-wide busy
CPU time from ``/proc/stat`` (all CPUs, every state but idle and iowait),
minus this process's CPU time over the same interval, is the CPU time that
*other* processes used while the epoch ran.

Divided by the wall time of the measurement it is the number of cores other
processes kept busy on average: the *interference*.  A repeat whose steady
epochs ran with more than :data:`DISTURBED_CORES` is *disturbed*: it is kept
and flagged, the runner measures it again (``--retries``), and ``compare``
and the reports treat it as such.

Resolution: the kernel counts busy time in ticks (``CLK_TCK``, 100 per
second here), on each CPU.  A window shorter than a few ticks cannot tell a
neighbour from rounding, so a repeat is flagged only when others used more
than :data:`SLACK_TICKS` tick per CPU as well as the limit (measured over
one window from the start of the first steady epoch to the end of the last,
so that rounding is not summed over many short windows).  The parent
``seqbench`` process (reading the worker's pipe, appending rows) counts as
"other" too; it costs far below the limit.

Where ``/proc/stat`` is missing (not Linux), the reading is None and no
repeat is ever flagged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
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


@dataclass(frozen=True)
class Reading:
    busy_s: float  # the machine's busy CPU seconds since boot
    own_s: float  # this process's CPU seconds
    at_s: float  # time.perf_counter()


class Meter:
    """Reads the machine's busy time and this process's CPU time around a measurement.

    ``source`` returns the text of ``/proc/stat`` (tests give a fake one);
    ``own`` returns this process's CPU seconds and ``clock`` the wall clock.
    """

    def __init__(self, source: Callable[[], str] | None = None, own: Callable[[], float] = time.process_time,
                 clock: Callable[[], float] = time.perf_counter) -> None:  # fmt: skip
        self._source = source or PROC_STAT.read_text
        self._own, self._clock = own, clock
        self.cpus = 1
        self.available = True
        try:
            self.cpus = busy_seconds(self._source())[1]
        except (OSError, ValueError, IndexError):
            self.available = False

    def read(self) -> Reading | None:
        if not self.available:
            return None
        try:
            busy, _ = busy_seconds(self._source())
        except (OSError, ValueError, IndexError):
            return None
        return Reading(busy, self._own(), self._clock())


def others(start: Reading | None, end: Reading | None) -> float | None:
    """CPU seconds that other processes used between two readings.

    Tick rounding can make a short window slightly negative; it is kept as it
    is, so that sums over many windows stay unbiased.
    """
    if start is None or end is None:
        return None
    return (end.busy_s - start.busy_s) - (end.own_s - start.own_s)


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
