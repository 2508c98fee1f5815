"""pytest-benchmark suite: one training epoch and one prediction per backend x implementation x model.

Two configurations: the seed task (10 units, relu, 3 steps, 1000 samples,
batch 32) and the larger one (128 units, tanh, 50 steps, 8192 samples,
batch 64).  Backends that are not installed, and implementations that cannot
run a configuration, are collected and skipped with the reason.  Not part of
the normal test command (``testpaths`` is ``tests``); run it explicitly::

    OMP_NUM_THREADS=2 pytest benchmarks --benchmark-autosave
    OMP_NUM_THREADS=2 pytest benchmarks --benchmark-compare --benchmark-compare-fail=median:10%
    pytest benchmarks -k "numpy and seed"          # a subset

How it measures: each (backend, implementation, device, configuration,
model) builds its model once, from the harness's seed-0 weights and data,
and trains one warm-up epoch (compile/trace time is the first epoch's, not a
benchmark's).  ``test_train_epoch`` then times a fixed number of further
epochs (one round = one epoch, with the harness's batch order and a device
synchronise, exactly what ``seqbench run`` times), and ``test_predict`` one
forward pass over the test set.

One backend per process: frameworks sharing a process slow each other down
(their thread pools fight; measured here, torch's seed-task epoch went from
~20 to ~47 ms after Keras had run in the same process).  So the first
available backend a process measures claims it, and the other backends'
cases are skipped with that reason.  Run each backend on its own, with its
own storage so that ``--benchmark-compare`` finds the right saved run::

    for b in numpy torch keras; do
        OMP_NUM_THREADS=2 pytest benchmarks -k $b --benchmark-storage=.benchmarks/$b --benchmark-autosave
    done

Set the thread variables before Python starts: NumPy's BLAS reads them at
import.

Environment: ``SEQBENCH_BENCH_DEVICES`` (comma list, default ``cpu``),
``SEQBENCH_BENCH_THREADS`` (default: CPU count), ``SEQBENCH_BENCH_CONFIGS``
(default ``seed,large``), ``SEQBENCH_BENCH_SHARED_PROCESS=1`` (measure every
backend in one process anyway).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark", reason="the benchmarks need pytest-benchmark: pip install 'seqbench[bench]'")

from seqbench.harness import batch_orders, initial_weights, model_spec  # noqa: E402
from seqbench.plugins import Registry, load_registry  # noqa: E402
from seqbench.results import CellConfig  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "seed": {"units": 10, "activation": "relu", "batch_size": 32, "task_params": {}, "rounds": 30},
    "large": {"units": 128, "activation": "tanh", "batch_size": 64,
              "task_params": {"steps": 50, "samples": 8192}, "rounds": 3},
}  # fmt: skip
MODELS = ("rnn", "lstm")
TASK = "arithmetic"
DEVICES = tuple(d for d in os.environ.get("SEQBENCH_BENCH_DEVICES", "cpu").split(",") if d)
SELECTED = tuple(c for c in os.environ.get("SEQBENCH_BENCH_CONFIGS", ",".join(CONFIGS)).split(",") if c)
THREADS = int(os.environ.get("SEQBENCH_BENCH_THREADS") or os.cpu_count() or 1)

SHARED_PROCESS = os.environ.get("SEQBENCH_BENCH_SHARED_PROCESS") == "1"

_registry: Registry | None = None
_configured: set[tuple[str, str]] = set()
_owner: list[str] = []  # the backend this process measures


def registry() -> Registry:
    """One registry for the session: loading it imports plugin modules, never a framework."""
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry


@dataclass(frozen=True)
class Case:
    backend: str
    implementation: str
    device: str
    config: str
    model: str

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.implementation}-{self.device}-{self.config}-{self.model}"


def _cases() -> list[Any]:
    cases = []
    for name, backend in sorted(registry().backends.items()):
        for impl, device, config, model in itertools.product(backend.implementations, DEVICES, SELECTED, MODELS):
            case = Case(name, impl, device, config, model)
            cases.append(pytest.param(case, id=case.id))
    return cases


@dataclass
class Built:
    case: Case
    model: Any
    orders: list[np.ndarray]
    batch_size: int
    x_test: np.ndarray
    info: dict[str, Any]


@pytest.fixture(scope="module")
def built(request: pytest.FixtureRequest) -> Built:
    """The case's model, built once and trained one warm-up epoch (skipped with the reason if it cannot run)."""
    case: Case = request.param
    backend = registry().backends[case.backend]
    availability = backend.availability()
    if not availability.available:
        hint = f" (install: {availability.install_hint})" if availability.install_hint else ""
        pytest.skip(f"backend {case.backend!r} is not available: {availability.reason}{hint}")
    settings = CONFIGS[case.config]
    task = registry().task(TASK)
    data = task.make(0, **settings["task_params"])
    cell = CellConfig(task=TASK, model=case.model, backend=case.backend, implementation=case.implementation,
                      device=case.device, seed=0, units=settings["units"], activation=settings["activation"],
                      epochs=settings["rounds"] + 1, batch_size=settings["batch_size"], threads=THREADS,
                      task_params=settings["task_params"])  # fmt: skip
    spec = model_spec(cell, data)
    if case.device not in backend.devices:
        pytest.skip(f"{case.backend} has no device {case.device!r}")
    why = backend.supports(case.implementation, spec, case.device)
    if why is not None:
        pytest.skip(f"{case.backend}:{case.implementation}/{case.device} cannot run this configuration: {why}")
    if not SHARED_PROCESS:
        if not _owner:
            _owner.append(case.backend)
        elif _owner[0] != case.backend:
            pytest.skip(f"this process measures {_owner[0]}; frameworks in one process slow each other down: "
                        f"run {case.backend} on its own (pytest benchmarks -k {case.backend})")
    if (case.backend, case.device) not in _configured:
        backend.configure(case.device, THREADS)
        _configured.add((case.backend, case.device))
    model = backend.build(case.implementation, spec, initial_weights(spec, 0), case.device)
    model.set_train_data(data.x_train, data.y_train)
    orders = list(batch_orders(0, len(data.y_train), settings["rounds"] + 1))
    model.train_epoch(orders[0], settings["batch_size"])  # warm-up: compile, trace, allocate
    model.synchronize()
    model.predict(data.x_test)
    info = {"backend": case.backend, "implementation": case.implementation, "device": case.device,
            "config": case.config, "model": case.model, "params": int(model.trainable_params()),
            "implementation_path": model.implementation_path(), "threads": THREADS,
            "versions": backend.versions()}  # fmt: skip
    return Built(case, model, orders[1:], settings["batch_size"], data.x_test, info)


@pytest.mark.parametrize("built", _cases(), indirect=True)
def test_train_epoch(benchmark: Any, built: Built) -> None:
    """One training epoch (the harness's batch order, then a device synchronise), a fixed number of rounds."""
    orders = iter(built.orders)
    model, batch = built.model, built.batch_size

    def epoch() -> float:
        loss = model.train_epoch(next(orders), batch)
        model.synchronize()
        return loss

    benchmark.group = f"train {built.case.config} {built.case.model}"
    benchmark.extra_info.update(built.info)
    loss = benchmark.pedantic(epoch, rounds=len(built.orders), iterations=1, warmup_rounds=0)
    assert np.isfinite(loss) or built.case.config == "seed"  # relu on unscaled targets may diverge; large must not


@pytest.mark.parametrize("built", _cases(), indirect=True)
def test_predict(benchmark: Any, built: Built) -> None:
    """One forward pass over the test set."""
    benchmark.group = f"predict {built.case.config} {built.case.model}"
    benchmark.extra_info.update(built.info)
    predictions = benchmark(built.model.predict, built.x_test)
    assert np.asarray(predictions).reshape(-1).shape == (len(built.x_test),)
