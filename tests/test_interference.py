"""Interference accounting, from a fake /proc/stat: what other processes took while an epoch ran."""

from __future__ import annotations

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
