"""Interference accounting, from a fake /proc/stat: what other processes took while an epoch ran."""

from __future__ import annotations

import os
import time

import pytest

from seqbench import interference as itf
from seqbench.interference import Meter, busy_seconds, interference, is_disturbed, others

TICK = itf._TICK_S


def stat(user, system=0, idle=0, nice=0, iowait=0, irq=0, softirq=0, steal=0, cpus=2):
    """The text of /proc/stat with these totals (in ticks) and ``cpus`` per-CPU lines."""
    total = f"cpu  {user} {nice} {system} {idle} {iowait} {irq} {softirq} {steal} 0 0"
    return "\n".join([total] + [f"cpu{i} 0 0 0 0 0 0 0 0 0 0" for i in range(cpus)] + ["intr 1 2 3", "ctxt 9"])


class FakeMachine:
    """A /proc/stat source, a process CPU clock and a wall clock that the test moves by hand."""

    def __init__(self, cpus=2):
        self.busy_ticks, self.own, self.now, self.cpus = 1000, 10.0, 100.0, cpus

    def source(self):
        return stat(user=self.busy_ticks, idle=50_000, cpus=self.cpus)

    def run(self, wall, own_cpu, others_cpu):
        """``wall`` seconds pass; this process uses ``own_cpu`` and other processes ``others_cpu``."""
        self.now += wall
        self.own += own_cpu
        self.busy_ticks += round((own_cpu + others_cpu) / TICK)

    def meter(self):  # a kernel without schedstat: the /proc/stat meter judges
        return Meter(self.source, own=lambda: self.own, clock=lambda: self.now, waits=lambda: None)


def test_busy_seconds_counts_every_state_but_idle_and_iowait():
    busy, cpus = busy_seconds(stat(user=100, nice=10, system=20, idle=5000, iowait=300, irq=1, softirq=2, steal=7,
                                   cpus=4))  # fmt: skip
    assert busy == pytest.approx((100 + 10 + 20 + 1 + 2 + 7) * TICK) and cpus == 4


def test_not_proc_stat_is_refused():
    with pytest.raises(ValueError):
        busy_seconds("intr 1 2 3")


def test_a_quiet_machine_is_not_disturbed():
    m = FakeMachine()
    meter = m.meter()
    start = meter.read()
    m.run(wall=1.0, own_cpu=0.98, others_cpu=0.01)  # the parent reading the pipe, a kernel thread
    end = meter.read()
    assert others(start, end) == pytest.approx(0.01, abs=TICK)
    assert interference(start, end) == pytest.approx(0.01, abs=TICK)
    assert not is_disturbed(start, end, meter.cpus)


def test_a_busy_neighbour_is_measured_and_flagged():
    m = FakeMachine()
    meter = m.meter()
    start = meter.read()
    m.run(wall=2.0, own_cpu=1.9, others_cpu=1.6)  # one CPU-bound neighbour for 80% of the time
    end = meter.read()
    assert interference(start, end) == pytest.approx(0.8, abs=0.01)
    assert is_disturbed(start, end, meter.cpus)


def test_our_own_threads_are_not_counted_as_interference():
    m = FakeMachine()
    meter = m.meter()
    start = meter.read()
    m.run(wall=1.0, own_cpu=1.95, others_cpu=0.0)  # two threads of ours, both busy
    assert not is_disturbed(start, meter.read(), meter.cpus)


def test_a_window_too_short_for_the_tick_counters_is_not_flagged():
    m = FakeMachine()
    meter = m.meter()
    start = meter.read()
    m.run(wall=0.012, own_cpu=0.012, others_cpu=0.01)  # one tick: could be rounding
    end = meter.read()
    assert interference(start, end) > itf.DISTURBED_CORES and not is_disturbed(start, end, meter.cpus)


def test_no_proc_stat_means_no_reading_and_never_disturbed():
    def missing():
        raise FileNotFoundError("/proc/stat")

    meter = Meter(missing, waits=lambda: None)
    assert not meter.available and meter.read() is None and meter.kind == "none"
    assert interference(None, None) is None and not is_disturbed(None, None, 1)


class _Backend:
    """The harness around a model whose epochs take wall time while a fake neighbour works."""

    name, implementations, devices = "fake", ("x",), ("cpu",)

    def __init__(self, machine, neighbour_at):
        self.machine, self.neighbour_at = machine, neighbour_at

    def build(self, implementation, spec, weights, device):
        from seqbench_numpy.model import NumpyModel

        machine, neighbour_at = self.machine, self.neighbour_at

        class Model(NumpyModel):
            epoch = 0

            def train_epoch(self, order, batch_size):
                Model.epoch += 1
                busy = 0.9 if Model.epoch in neighbour_at else 0.0
                machine.run(wall=0.5, own_cpu=0.5, others_cpu=busy * 0.5)
                return super().train_epoch(order, batch_size)

        return Model(spec, weights)


@pytest.mark.parametrize(("neighbour_at", "disturbed"), [((), False), ((1,), False), ((3,), True)])
def test_run_cell_records_others_per_epoch_and_flags_the_steady_window(neighbour_at, disturbed):
    from seqbench.harness import run_cell
    from seqbench.results import CellConfig
    from seqbench.tasks import ArithmeticTask

    m = FakeMachine()
    cell = CellConfig("arithmetic", "rnn", "fake", "x", "cpu", 0, 10, "relu", 4, 32, 1, {})
    seen = []
    record = run_cell(_Backend(m, neighbour_at), cell, ArithmeticTask(), seen.append, meter=m.meter())
    assert [round(e.other_cpu_s, 2) for e in seen] == [0.45 if e.epoch in neighbour_at else 0.0 for e in seen]
    # epoch 1 is warm-up: a neighbour then does not touch the steady time, so it does not disturb it
    assert record.disturbed is disturbed and record.cold is True
    assert record.interference == pytest.approx(0.3 if disturbed else 0.0, abs=0.02)


# ------------------------------------------------------------------ the run-queue meter (schedstat)


class WaitingBackend(_Backend):
    """In the epochs of ``neighbour_at`` this worker's thread waits 20 ms for a CPU: its wall time grows by
    that much and its CPU time does not (a sleep stands for the wait); a neighbour on the other core keeps
    others' CPU busy throughout."""

    def __init__(self, machine, neighbour_at, waits):
        super().__init__(machine, ())
        self.neighbour_at, self.waits = neighbour_at, waits

    def build(self, implementation, spec, weights, device):
        from seqbench_numpy.model import NumpyModel

        machine, neighbour_at, waits = self.machine, self.neighbour_at, self.waits

        class Model(NumpyModel):
            epoch = 0

            def train_epoch(self, order, batch_size):
                Model.epoch += 1
                waited = 0.02 if Model.epoch in neighbour_at else 0.0
                waits.append(waited)
                time.sleep(waited)
                machine.now += 0.5  # a neighbour on the other core: others busy, this cell never waits
                machine.run(wall=0.0, own_cpu=0.5 - waited, others_cpu=0.5)
                return super().train_epoch(order, batch_size)

        return Model(spec, weights)


@pytest.mark.parametrize(("neighbour_at", "disturbed", "clean"), [
    ((), False, 5),  # a busy neighbour on another core all along: never waited, never disturbed
    ((3,), False, 4),  # one steady epoch waited: judged from the other four, and it says so
    ((2, 3, 4, 5), True, 5),  # most steady epochs waited: disturbed, every epoch kept
])  # fmt: skip
def test_the_run_queue_meter_flags_waiting_not_a_neighbour_elsewhere(neighbour_at, disturbed, clean):
    from seqbench.harness import run_cell
    from seqbench.results import CellConfig
    from seqbench.tasks import ArithmeticTask

    m, waits = FakeMachine(), []
    meter = Meter(m.source, own=lambda: m.own, clock=lambda: m.now, waits=lambda: sum(waits))
    cell = CellConfig("arithmetic", "rnn", "fake", "x", "cpu", 0, 10, "relu", 6, 32, 1, {})
    seen = []
    record = run_cell(WaitingBackend(m, neighbour_at, waits), cell, ArithmeticTask(), seen.append, meter=meter)
    assert record.meter == "schedstat" and record.disturbed is disturbed and record.clean_epochs == clean
    assert [e.disturbed for e in seen] == [e.epoch in neighbour_at for e in seen]
    assert record.interference == pytest.approx(1.0, abs=0.05)  # others' CPU is still recorded, as information
    assert [round(e.wait_s, 6) for e in seen] == [0.02 if e.epoch in neighbour_at else 0.0 for e in seen]
    steady = seen[1:]
    lost = sum(min(e.wait_s, e.wall_s - e.cpu_s) for e in steady)
    assert record.wait_share == pytest.approx(lost / sum(e.wall_s for e in steady), rel=0.05)


def test_waiting_that_costs_no_cpu_time_is_not_a_disturbance():
    # a runtime whose threads hand work to each other, squeezed onto one core: its threads waited 55% of the
    # time while the process used its full core (CPU time = wall time): it lost nothing (jax, measured)
    assert itf.lost_seconds(0.110, 0.200, 0.199, threads=1) == pytest.approx(0.001)
    assert not itf.epoch_disturbed(itf.lost_seconds(0.110, 0.200, 0.199, threads=1), 0.200)
    # a one-thread loop with two busy neighbours on its core: 46.2 ms wall, 34.3 ms CPU, 12.0 ms waited
    assert itf.epoch_disturbed(itf.lost_seconds(0.0120, 0.0462, 0.0343, threads=1), 0.0462)
    # two spinning threads sharing two cores with a neighbour: each gets two thirds
    assert itf.epoch_disturbed(itf.lost_seconds(0.60, 0.90, 1.20, threads=2), 0.90)
    assert itf.lost_seconds(None, 1.0, 1.0, threads=1) is None


def test_the_console_says_which_epochs_were_left_out():
    from types import SimpleNamespace

    from seqbench.console import disturbance_note

    clean = SimpleNamespace(disturbed=False, wait_share=0.02, epochs_run=10, clean_epochs=7, interference=1.0)
    assert disturbance_note(clean) == "  (2 of 9 epochs left out: waited for a CPU)"
    bad = SimpleNamespace(disturbed=True, wait_share=0.4, epochs_run=10, clean_epochs=9, interference=1.0)
    assert "waited for a CPU 40% of the time" in disturbance_note(bad)


def _spin(seconds):
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _pinned_busy(cpu, seconds):
    import multiprocessing as mp

    def target():
        os.sched_setaffinity(0, {cpu})
        _spin(seconds)

    proc = mp.get_context("fork").Process(target=target, daemon=True)
    proc.start()
    return proc


def _median_lost_share(windows=7):
    """This process, pinned to one CPU, spinning in short windows: the median share of each it lost waiting."""
    import time

    shares = []
    for _ in range(windows):
        meter = Meter()
        start, c0 = meter.read(), time.process_time()
        _spin(0.05)
        end, cpu = meter.read(), time.process_time() - c0
        wall = end.at_s - start.at_s
        shares.append(itf.lost_seconds(itf.waited(start, end), wall, cpu, threads=1) / wall)
    return sorted(shares)[len(shares) // 2]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_a_worker_made_to_wait_is_flagged_and_one_with_a_neighbour_on_another_core_is_not():
    import os as _os

    if itf.wait_seconds() is None:
        pytest.skip("this kernel does not expose /proc/self/task/*/schedstat")
    cpus = sorted(_os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    mine, other = cpus[0], cpus[1]
    saved = _os.sched_getaffinity(0)
    _os.sched_setaffinity(0, {mine})
    try:
        # The least lost of a few tries: a neighbour on the other CPU that counted as waiting would show in every
        # try, while other work on a shared machine comes and goes.
        tries = []
        for _ in range(5):
            elsewhere = [_pinned_busy(other, 1.5)]
            _spin(0.1)  # let it start
            tries.append(_median_lost_share())
            for p in elsewhere:
                p.terminate()
                p.join()
            if not itf.epoch_disturbed(tries[-1] * 0.05, 0.05):
                break
        apart = min(tries)
        if itf.epoch_disturbed(apart * 0.05, 0.05) and _median_lost_share() > 0.05:
            pytest.skip(f"this CPU stayed busy with other work (lost {apart:.0%}); the test needs it to itself")
        crowd = [_pinned_busy(mine, 1.5), _pinned_busy(mine, 1.5)]
        _spin(0.1)
        crowded = _median_lost_share()
        for p in crowd:
            p.terminate()
            p.join()
    finally:
        _os.sched_setaffinity(0, saved)
    assert not itf.epoch_disturbed(apart * 0.05, 0.05), apart
    assert itf.epoch_disturbed(crowded * 0.05, 0.05) and crowded > 0.3, crowded
