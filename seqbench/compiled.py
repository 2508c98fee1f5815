"""Helpers for backends on compiled frameworks (XLA through jax or Keras): no framework import.

* :func:`restrict_affinity`: thread control where the framework has no
  thread-count option;
* :func:`padded_batches`: an epoch's batches at one static shape, so that one
  compiled program serves the short last batch too.

CPU affinity:
XLA's CPU client (jax, and Keras on jax) ignores ``OMP_*`` and offers no
thread-count setting: it sizes its thread pool from the CPUs the process may
run on (TSL's ``NumSchedulableCPUs`` reads the affinity mask).  Restricting
the affinity before such a framework is imported is the control that works,
and it also keeps the pool's threads on those CPUs.  No framework import here.

.. versionadded:: 0.1
"""

from __future__ import annotations

import math
import os

import numpy as np


def restrict_affinity(threads: int) -> list[int]:
    """Pin this process to ``threads`` of the CPUs it may use now; return the CPUs it may use after.

    ``threads <= 0``, or at least as many threads as allowed CPUs, keeps the
    current set.  Returns ``[]`` where the OS has no affinity control (macOS,
    Windows).  Child processes inherit the mask.
    """
    if not hasattr(os, "sched_setaffinity"):
        return []
    allowed = sorted(os.sched_getaffinity(0))
    if 0 < threads < len(allowed):
        os.sched_setaffinity(0, allowed[:threads])
    return sorted(os.sched_getaffinity(0))


def padded_batches(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``order`` as ``(batches, batch_size)`` int32 indices and a float32 0/1 mask of the real rows.

    A compiled program has static shapes, so the short last batch is padded
    (with row 0: any valid row would do) and the mask takes the padding out of
    the loss: divide the masked sum by the mask's sum, and a padded row adds
    exactly zero to the loss and to every gradient.  The other way, compiling
    the short batch as a second program, doubles the compile cost of epoch 1.
    """
    n = len(order)
    batches = math.ceil(n / batch_size)
    idx = np.zeros(batches * batch_size, np.int32)
    idx[:n] = order
    mask = (np.arange(batches * batch_size) < n).astype(np.float32)
    return idx.reshape(batches, batch_size), mask.reshape(batches, batch_size)
