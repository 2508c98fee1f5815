"""Backends that fail in the ways the runner must survive.

Each wraps the NumPy reference model and breaks it in one way:

* ``crashy``: raises in ``train_epoch`` of an LSTM (RNNs run);
* ``dying``: the worker process exits abruptly in an LSTM's first epoch;
* ``hangy``: an LSTM's ``train_epoch`` never returns;
* ``nanny``: the loss becomes NaN at epoch 2;
* ``sleepy``: each epoch takes 0.2 s (for Ctrl-C tests);
* ``slowstart``: ``configure`` takes ``SEQBENCH_TEST_SLOWSTART`` s (default 2), as a
  framework's import does (for the start-up allowance);
* ``loud``: an LSTM writes ``SEQBENCH_TEST_LOUD_BYTES`` (default 8 MiB) to stderr, then exits with code 5;
* ``killed``: an LSTM prints a warning line, then is killed by SIGKILL (as by the OOM killer);
* ``fatal``: an LSTM kills the ``seqbench run`` that started it with SIGKILL (a cluster job lost with its
  node); with ``SEQBENCH_TEST_FATAL_ONCE=FILE`` only while FILE does not exist (the first kill makes it);
* ``absent``: never available, with an install hint.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time

from seqbench_numpy import NumpyBackend
from seqbench_numpy.model import NumpyModel

import seqbench
from seqbench.contract import Availability


class _Faulty(NumpyModel):
    def __init__(self, fault: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fault = fault
        self.epoch = 0

    def train_epoch(self, order, batch_size):
        self.epoch += 1
        lstm = self.spec.kind == "lstm"
        if self.fault == "crashy" and lstm:
            raise RuntimeError("crashy backend failed on purpose")
        if self.fault == "dying" and lstm:
            os._exit(3)
        if self.fault == "loud" and lstm:
            size = int(os.environ.get("SEQBENCH_TEST_LOUD_BYTES", str(8 << 20)))
            sys.stderr.write(f"worker {os.getpid()} says: " + "x" * size + "\nlast words of the loud worker\n")
            sys.stderr.flush()
            os._exit(5)
        if self.fault == "killed" and lstm:
            print("RuntimeWarning: overflow encountered in exp\n  error: np.exp(out, out=out)", file=sys.stderr,
                  flush=True)  # fmt: skip
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fault == "fatal" and lstm:
            once = os.environ.get("SEQBENCH_TEST_FATAL_ONCE")
            if not once or not os.path.exists(once):
                if once:
                    open(once, "w").close()
                os.kill(os.getppid(), signal.SIGKILL)
                time.sleep(60)  # the parent's death kills this worker (PR_SET_PDEATHSIG)
        if self.fault == "hangy" and lstm:
            while True:
                time.sleep(1)
        if self.fault == "sleepy":
            time.sleep(0.2)
        loss = super().train_epoch(order, batch_size)
        if self.fault == "nanny" and self.epoch >= 2:
            return math.nan
        return loss


class FaultyBackend(NumpyBackend):
    implementations = ("broken",)

    def __init__(self, fault: str) -> None:
        self.name = fault
        self.fault = fault

    def availability(self) -> Availability:
        if self.fault == "absent":
            return Availability(False, "the absent framework is not installed", "pip install absent-framework")
        return Availability(True)

    def configure(self, device, threads):
        if self.fault == "slowstart":
            time.sleep(float(os.environ.get("SEQBENCH_TEST_SLOWSTART", "2")))
        super().configure(device, threads)

    def build(self, implementation, spec, weights, device):
        return _Faulty(self.fault, spec, weights)


@seqbench.hookimpl
def seqbench_register_backends(register):
    for fault in ("crashy", "dying", "hangy", "nanny", "sleepy", "slowstart", "loud", "killed", "fatal", "absent"):
        register(FaultyBackend(fault))
