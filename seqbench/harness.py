"""The only epoch loop: seeding, initial weights, batch order, timing, records.

Every backend is driven from here, so what is timed and how is the same for
all of them: an epoch's wall clock runs from just before ``train_epoch`` to
just after ``synchronize`` (device work included); CPU time is this
process's; GPU time is whatever the model measured on its device.  Epoch 1
carries the warm-up (tracing, compilation, allocation) and is reported apart.

After training, the inference phase (:func:`measure_inference`) times the
trained model's ``predict`` the same way: each call runs to ``synchronize``,
latency one sample per call (the first call apart, as the first epoch is),
throughput at a large batch.  Backends only predict; the clock, the calls
and the percentiles are here.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from seqbench.contract import Backend, LayerWeights, Model, ModelSpec, Weights, backend_trains, model_predictors
from seqbench.efficiency import epoch_flops, gflops_per_s
from seqbench.interference import Meter, epoch_disturbed, interference, lost_seconds, others, steadiness, waited
from seqbench.keys import Status, experiment_label
from seqbench.results import REASON_CHARS, CellConfig, CellRecord, EpochRecord, cell_fields
from seqbench.tasks import STREAM_ORDER, STREAM_WEIGHTS, DataShape, Task, TaskData, rng, score


def model_spec(cell: CellConfig, data: TaskData | DataShape) -> ModelSpec:
    return ModelSpec(
        kind=cell.model,  # type: ignore[arg-type]
        units=cell.units,
        steps=data.steps,
        features=data.features,
        activation=cell.activation,
        head=data.head,
        outputs=data.outputs,
        layers=cell.layers,
        bidirectional=cell.bidirectional,
        variable_length=data.variable_length,
    )


def lengths_kw(lengths: np.ndarray | None) -> dict[str, Any]:
    """The keyword a model's ``set_train_data`` and ``predict`` take for variable-length data (none for
    fixed-length data: a backend that predates lengths is never handed them)."""
    return {} if lengths is None else {"lengths": np.asarray(lengths, np.int32)}


def glorot_uniform(gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    return gen.uniform(-limit, limit, size=shape)


def orthogonal(gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Keras's Orthogonal: orthonormal rows or columns, whichever are fewer."""
    rows, cols = shape
    a = gen.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # makes the decomposition unique
    return q.T if rows < cols else q


def initial_weights(spec: ModelSpec, seed: int) -> Weights:
    """Canonical initial weights for ``spec``, drawn from ``seed``.

    Glorot-uniform kernels, orthogonal recurrent kernel, and biases at zero
    except where the kind's ``initial_bias`` says otherwise (the LSTM's forget
    gate starts at one: Keras's ``unit_forget_bias``).  For a kind with two
    bias rows (the GRU) the rule applies to the input row only.
    """
    gen = rng(seed, STREAM_WEIGHTS)
    shapes = spec.weight_shapes()
    info = spec.info  # ValueError for an unknown kind
    bias = np.zeros(shapes["bias"])
    first_row = bias if info.bias_rows == 1 else bias[0]
    for gate, value in info.initial_bias.items():
        first_row[info.gate_slice(gate, spec.units)] = value
    w = Weights(
        kernel=glorot_uniform(gen, shapes["kernel"]),
        recurrent_kernel=orthogonal(gen, shapes["recurrent_kernel"]),
        bias=bias,
        dense_kernel=glorot_uniform(gen, shapes["dense_kernel"]),
        dense_bias=np.zeros(shapes["dense_bias"]),
    )
    # Further layers and directions draw after the first block and the head, so a single layer's weights
    # are what they always were; each block starts as the first does (its own draws, the same biases).
    stack = []
    for layer, _ in spec.blocks()[1:]:
        block = spec.block_shapes(layer)
        stack.append(LayerWeights(glorot_uniform(gen, block["kernel"]), orthogonal(gen, block["recurrent_kernel"]),
                                  bias.copy()))  # fmt: skip
    w = Weights.of_blocks([*w.blocks()[:1], *stack], w.dense_kernel, w.dense_bias)
    return w.map(lambda a: a.astype(spec.dtype))


def batch_orders(seed: int, n: int, epochs: int) -> Iterator[np.ndarray]:
    """The sample order of every epoch: one seeded permutation each, drawn when it is needed
    (200,000 epochs of orders drawn up front took 1.6 GB)."""
    gen = rng(seed, STREAM_ORDER)
    for _ in range(epochs):
        yield gen.permutation(n)


def _reset_peak_rss() -> None:
    # Linux lets a process reset its own high-water mark, so a worker that runs
    # several cells reports each cell's peak rather than the process's.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class InferencePlan:
    """How much the inference phase measures (``seqbench run --inference``).

    Latency: ``warmup`` untimed calls after the first (cold) one, then timed calls of one sample each until
    ``max_calls``, or until ``seconds`` have passed once ``min_calls`` are done (a slow path, Keras's
    ``model.predict`` at tens of ms a call, stops on time; a fast one on the count).  Throughput: one untimed
    call at ``batch`` samples (a new shape retraces in jax and TensorFlow), then up to ``rounds`` timed calls,
    fewer once ``seconds`` have passed; samples per second over their median.
    """

    warmup: int
    min_calls: int
    max_calls: int
    seconds: float
    batch: int | None  # None: the test set's size, whose shape the evaluation has already traced or compiled
    rounds: int
    paths: bool = False  # also time the model's other predictors (contract.model_predictors)


# quick, the default, adds at most about 0.1 s + 0.1 s a cell, and throughput at the test set's size, which
# needs no new trace or compile (docs/experiments/inference.md); full gives p99 from at least 200 calls and
# up to 5000 where the time allows, and throughput at 1024 samples a call.
INFERENCE: dict[str, InferencePlan | None] = {
    "off": None,
    "quick": InferencePlan(warmup=1, min_calls=3, max_calls=300, seconds=0.1, batch=None, rounds=3),
    "full": InferencePlan(warmup=20, min_calls=200, max_calls=5000, seconds=5.0, batch=1024, rounds=20, paths=True),
}
# A model's other predictors stop on time after this many batch-1 calls: Keras's model.predict takes tens of
# ms a call, and 200 of them for each path would make the phase longer than the training.
PATH_MIN_CALLS = 20


@dataclass(frozen=True)
class Inference:
    """What :func:`measure_inference` measured: seconds per batch-1 call and samples per second."""

    first_s: float  # the first batch-1 call after training: shape-specialisation and caches not yet warm
    p50_s: float
    p90_s: float
    p99_s: float
    calls: int  # timed batch-1 calls the percentiles come from
    throughput_per_s: float
    batch: int


def measure_inference(model: Model, x: np.ndarray, plan: InferencePlan,
                      clock: Callable[[], float] = time.perf_counter,
                      predict: Callable[..., Any] | None = None,
                      lengths: np.ndarray | None = None) -> Inference:  # fmt: skip
    """Time ``model.predict`` (or ``predict``, another of its paths) on samples of ``x`` (cycled): one per
    call, then ``plan.batch`` per call.

    Every timed call runs from just before ``predict`` to just after ``synchronize``, as an epoch does.
    ``clock`` is injectable so that a test can give each call a known duration.  ``lengths``: each sample's
    length, for variable-length data.
    """
    forward = predict or model.predict

    def timed(rows: np.ndarray) -> float:
        batch, kw = x[rows], lengths_kw(None if lengths is None else lengths[rows])
        t0 = clock()
        forward(batch, **kw)
        model.synchronize()
        return clock() - t0

    n = len(x)
    first = timed(np.arange(0, 1))
    for i in range(plan.warmup):
        timed(np.arange(1) + (i + 1) % n)
    samples: list[float] = []
    start = clock()
    while len(samples) < plan.max_calls and (len(samples) < plan.min_calls or clock() - start < plan.seconds):
        i = (plan.warmup + 1 + len(samples)) % n
        samples.append(timed(np.arange(1) + i))
    p50, p90, p99 = (float(v) for v in np.percentile(samples, [50, 90, 99]))
    batch = plan.batch or n
    big = np.arange(batch) % n
    timed(big)  # untimed: the first call at this shape (the test set's was the evaluation's)
    rounds: list[float] = []
    start = clock()
    while len(rounds) < plan.rounds and (not rounds or clock() - start < plan.seconds):
        rounds.append(timed(big))
    per_call = statistics.median(rounds)
    return Inference(first, p50, p90, p99, len(samples), batch / per_call if per_call > 0 else math.inf,
                     batch)  # fmt: skip


def inference_phase(model: Model, x: np.ndarray, setting: str,
                    lengths: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, str]]:  # fmt: skip
    """The inference phase ``setting`` (``--inference``) on ``model``: its CellRecord columns and details.
    ``lengths``: each sample's length, for variable-length data (every path is handed them).

    With a plan that times paths, each of the model's other predictors is timed after ``predict`` into
    ``inference_paths`` (``NAME/latency_p50_s``...); one that raises is recorded in the details as
    ``inference_path:NAME`` and the others go on.
    """
    plan = inference_plan(setting)
    if plan is None:
        return {}, {}
    main = measure_inference(model, x, plan, lengths=lengths)
    fields, details = inference_fields(main), inference_details(main)
    if plan.paths:
        paths: dict[str, float] = {}
        each = replace(plan, min_calls=min(plan.min_calls, PATH_MIN_CALLS))
        for name, predict in model_predictors(model).items():
            try:
                measured = measure_inference(model, x, each, predict=predict, lengths=lengths)
            except Exception as e:  # a path that fails is a finding, not the cell's failure
                details[f"inference_path:{name}"] = f"failed: {type(e).__name__}: {str(e).strip()[:REASON_CHARS]}"
                continue
            paths.update({f"{name}/{column}": value for column, value in inference_fields(measured).items()})
            paths[f"{name}/latency_calls"] = measured.calls
        fields["inference_paths"] = paths
    return fields, details


def inference_fields(inference: Inference | None) -> dict[str, Any]:
    """The CellRecord columns of an inference phase (all None when it was off)."""
    if inference is None:
        return {}
    return {
        "latency_first_s": inference.first_s, "latency_p50_s": inference.p50_s, "latency_p90_s": inference.p90_s,
        "latency_p99_s": inference.p99_s, "throughput_per_s": inference.throughput_per_s,
    }  # fmt: skip


def inference_details(inference: Inference | None) -> dict[str, str]:
    """How much the phase measured, kept with the model's facts (how far to trust a p99)."""
    if inference is None:
        return {}
    return {"latency_calls": str(inference.calls), "throughput_batch": str(inference.batch)}


def inference_plan(name: str) -> InferencePlan | None:
    """The plan called ``name`` (``--inference``); ``ValueError`` naming the valid ones for another."""
    try:
        return INFERENCE[name]
    except KeyError:
        raise ValueError(f"unknown inference setting {name!r}; valid: {', '.join(INFERENCE)}") from None


def run_cell(
    backend: Backend,
    cell: CellConfig,
    task: Task,
    on_epoch: Callable[[EpochRecord], None] = lambda record: None,
    *,
    cold: bool = True,
    meter: Meter | None = None,
) -> CellRecord:
    """Train and score one cell in this process; ``backend.configure`` already ran.

    ``cold`` says whether this is the first cell of its process (the worker
    runs one cell per process, so it is).  ``meter`` reads what other
    processes did during each epoch (:mod:`seqbench.interference`); the
    readings sit outside the timed region.

    Exceptions from the backend propagate: the worker records them.
    """
    meter = meter or Meter()
    _reset_peak_rss()
    data = task.make(cell.seed, **cell.task_params)
    spec = model_spec(cell, data)
    t0 = time.perf_counter()
    model = backend.build(cell.implementation, spec, initial_weights(spec, cell.seed), cell.device)
    if not backend_trains(backend):
        return _inference_only(model, cell, data, time.perf_counter() - t0, cold)
    model.set_train_data(data.x_train, data.y_train, **lengths_kw(data.lengths_train))
    build_s = time.perf_counter() - t0

    n = len(data.y_train)
    experiment = experiment_label(cell_fields(cell))
    epochs: list[EpochRecord] = []
    status = Status.OK
    window = []  # readings at the start of each epoch and the end of the last
    for epoch, order in enumerate(batch_orders(cell.seed, n, cell.epochs), 1):
        before = meter.read()
        window.append(before)
        w0, c0 = time.perf_counter(), time.process_time()
        loss = model.train_epoch(order, cell.batch_size)
        model.synchronize()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        after = meter.read()
        wait = waited(before, after)
        lost = lost_seconds(wait, wall, cpu, cell.threads)
        record = EpochRecord(
            **cell.repeat_fields(), epoch=epoch, loss=float(loss), wall_s=wall, cpu_s=cpu,
            gpu_s=model.epoch_gpu_seconds(), other_cpu_s=others(before, after), attempt=cell.attempt,
            experiment=experiment, wait_s=wait, disturbed=epoch_disturbed(lost, wall),
        )  # fmt: skip
        epochs.append(record)
        on_epoch(record)
        if not math.isfinite(record.loss):
            status = Status.DIVERGED
            break

    scores = score(task, data, model.predict)
    inference, inference_notes = inference_phase(model, data.x_test, cell.inference, data.lengths_test)
    # Interference over the epochs the steady time comes from (epoch 1 alone when there is no other);
    # with the run-queue meter, from the clean ones among them when there are enough.
    start, end = window[1 if len(epochs) > 1 else 0], after
    first = 1 if len(epochs) > 1 else 0
    judged = epochs[first:]
    losts = [lost_seconds(e.wait_s, e.wall_s, e.cpu_s, cell.threads) for e in judged]  # waits that cost CPU time
    verdict = steadiness(losts, [e.wall_s for e in judged], start, end, meter.cpus, meter.kind)
    steady = [judged[i] for i in verdict.used] if len(epochs) > 1 else []
    steady_s = _median([e.wall_s for e in steady])
    flops = epoch_flops(spec, n, None if data.lengths_train is None else float(np.mean(data.lengths_train)))
    gpu = [e.gpu_s for e in steady if e.gpu_s is not None]
    return CellRecord(
        **cell_fields(cell),
        status=status,
        implementation_path=model.implementation_path(),
        epochs_run=len(epochs),
        params=int(model.trainable_params()),
        final_loss=epochs[-1].loss,
        accuracy=scores.metrics.get("accuracy"),
        mse=scores.metrics.get("mse"),
        mae=scores.metrics.get("mae"),
        probe_prediction=scores.probe_prediction,
        probe_target=scores.probe_target,
        first_epoch_s=epochs[0].wall_s,
        steady_epoch_s=steady_s,
        cpu_s=_median([e.cpu_s for e in steady]),
        gpu_s=_median(gpu),
        samples_per_s=n / steady_s if steady_s else None,
        peak_rss_mb=_peak_rss_mb(),
        build_s=build_s,
        details={**{str(k): str(v) for k, v in model.describe().items()}, **inference_notes},
        cold=cold,
        interference=interference(start, end),
        disturbed=verdict.disturbed,
        wait_share=verdict.wait_share,
        clean_epochs=len(steady),
        meter=verdict.meter,
        metrics=scores.metrics,
        primary_metric=scores.primary,
        higher_is_better=scores.higher_is_better,
        baseline=scores.baseline,
        flops=flops,
        gflops_per_s=gflops_per_s(flops, steady_s),
        **inference,
    )


def _inference_only(model: Model, cell: CellConfig, data: TaskData, build_s: float, cold: bool) -> CellRecord:
    """The cell of a backend that does not train (:func:`~seqbench.contract.backend_trains`): its model holds
    the canonical initial weights; no epoch, loss, score or training time, only the inference phase."""
    inference, inference_notes = inference_phase(model, data.x_test, cell.inference, data.lengths_test)
    return CellRecord(
        **cell_fields(cell),
        status=Status.OK,
        implementation_path=model.implementation_path(),
        params=int(model.trainable_params()),
        peak_rss_mb=_peak_rss_mb(),
        build_s=build_s,
        details={**{str(k): str(v) for k, v in model.describe().items()}, **inference_notes},
        cold=cold,
        inference_only=True,
        **inference,
    )
