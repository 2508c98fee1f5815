"""Sequence tasks: seeded NumPy data and the metrics computed on predictions.

A task is a small object the harness asks for data (:meth:`Task.make`) and
metrics (:meth:`Task.metrics`).  Built-in tasks are registered through the
same ``seqbench_register_tasks`` hook that a plugin would use
(:mod:`seqbench.default_plugins.tasks`):

* ``arithmetic``: the seed notebook's next-number prediction (regression);
* ``adding``: Hochreiter & Schmidhuber's adding problem (regression, long memory);
* ``digits``: scikit-learn's bundled handwritten digits read row by row
  (classification, real data; needs the ``data`` extra).

Metrics are one table, :data:`METRICS`: a metric's name, its direction and
its code live there and nowhere else.  A task names the metrics it reports
and its primary one; the harness keeps every metric a task returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import numpy as np

from seqbench.contract import module_found
from seqbench.errors import UsageError

# Independent random streams derived from one seed, so that changing how many
# numbers one stream draws never shifts another (see harness.rng).
STREAM_TRAIN, STREAM_TEST, STREAM_WEIGHTS, STREAM_ORDER = 1, 2, 3, 4


def rng(seed: int, stream: int) -> np.random.Generator:
    """The random generator of ``stream`` for ``seed``."""
    return np.random.default_rng([seed, stream])


@dataclass(frozen=True)
class TaskData:
    """Float32 arrays: ``x (n, steps, features)`` and ``y (n,)``, as the model sees them.

    ``head`` and ``outputs`` say which head the model needs (see
    :class:`seqbench.contract.ModelSpec`); for ``"classification"`` ``y``
    holds class indices.  ``target_scale`` is the factor that turns targets
    and regression predictions back into the task's own units: the harness
    scores metrics and the probe in those units, so a scaled run is
    comparable with an unscaled one.

    Variable-length data (``-P min_steps=K``): ``lengths_train``, ``lengths_test`` and ``probe_lengths``
    hold each sample's real length (int32, 1 to ``steps``), and ``x`` is zero past it (padded at the end).
    None for fixed-length data.

    .. versionadded:: 0.2 ``head``, ``outputs`` and ``target_scale``.
    .. versionadded:: 0.4 ``lengths_train``, ``lengths_test`` and ``probe_lengths``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    probe_x: np.ndarray
    probe_y: float
    head: str = "regression"
    outputs: int = 1
    target_scale: float = 1.0
    lengths_train: np.ndarray | None = None
    lengths_test: np.ndarray | None = None
    probe_lengths: np.ndarray | None = None

    @property
    def variable_length(self) -> bool:
        return self.lengths_train is not None

    @property
    def steps(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def features(self) -> int:
        return int(self.x_train.shape[2])


@dataclass(frozen=True)
class DataShape:
    """What a model needs to know of a task's data before any exist: the sizes and the head.

    .. versionadded:: 0.3
    """

    steps: int
    features: int
    head: str = "regression"
    outputs: int = 1
    variable_length: bool = False  # .. versionadded:: 0.4


@runtime_checkable
class Task(Protocol):
    """A registered task.

    Attributes:
        name: used on the command line (``--task``).
        description: one line for ``seqbench list``.
        defaults: the parameters :meth:`make` accepts, with their defaults.

    Optional attributes (read with :func:`primary_metric`; versionadded 0.2):
        metric_names: the keys :meth:`metrics` returns, names of :data:`METRICS`.
        primary_metric: the metric reports and comparisons use (default
            ``"accuracy"``); its direction is the :data:`METRICS` entry's, or
            the task's ``higher_is_better`` for a metric not in the table.
    """

    name: str
    description: str
    defaults: dict[str, int]

    def make(self, seed: int, **params: int) -> TaskData:
        """Generate train, test and probe data from ``seed``."""

    def metrics(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Score test-set predictions (``(n,)``, or logits ``(n, k)`` for classification).

        Predictions and targets are in the task's own units (see
        :attr:`TaskData.target_scale`).  Every key returned is recorded.
        """

    # Optional: ``data_bytes(**params) -> int``, the peak bytes make() needs, so that a run with an
    # absurd size is refused before make() runs (seqbench.budget). versionadded: 0.1
    # Optional: ``shape(**params) -> DataShape``, the data's sizes without making them, ValueError for bad
    # parameters as make() would raise (see data_shape). versionadded: 0.3


def data_shape(task: Task, params: dict[str, int]) -> DataShape:
    """The shape of ``task``'s data with ``params``: from its ``shape()``, else by making the data once.

    The planner asks this in the parent process for every grid point; a task with ``shape()`` spares it
    building whole datasets that only the workers use.  ``ValueError`` for parameters the task refuses.
    """
    shape = getattr(task, "shape", None)
    if callable(shape):
        return cast(DataShape, shape(**params))
    data = task.make(0, **params)
    return DataShape(data.steps, data.features, data.head, data.outputs, data.variable_length)


# ------------------------------------------------------------------ metrics


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1)


def _mse(p: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean((_flat(p) - _flat(t)) ** 2))


def _mae(p: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(np.abs(_flat(p) - _flat(t))))


def _accuracy(p: np.ndarray, t: np.ndarray) -> float:
    # logits (n, k): the argmax is the class; values (n,): right when within 0.5 of the integer target
    p = np.asarray(p, np.float64)
    if p.ndim == 2:
        return float(np.mean(np.argmax(p, axis=1) == _flat(t).astype(np.int64)))
    return float(np.mean(np.abs(_flat(p) - _flat(t)) < 0.5))


def _cross_entropy(p: np.ndarray, t: np.ndarray) -> float:
    logits = np.asarray(p, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_total = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(log_total - shifted[np.arange(len(logits)), _flat(t).astype(np.int64)]))


@dataclass(frozen=True)
class Metric:
    """One metric: its name, its direction, what it means and its code.

    .. versionadded:: 0.2
    """

    name: str
    higher_is_better: bool
    description: str
    compute: Callable[[np.ndarray, np.ndarray], float]


# The one table of metrics: adding a metric is one entry here (and its name in a task).
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, "classification: argmax equals the class; regression: within 0.5 of the "
               "integer target", _accuracy),
        Metric("mse", False, "mean squared error", _mse),
        Metric("mae", False, "mean absolute error", _mae),
        Metric("cross_entropy", False, "mean softmax cross-entropy of the logits (nats)", _cross_entropy),
    )
}  # fmt: skip
DEFAULT_METRICS = ("accuracy", "mse", "mae")


def compute_metrics(names: tuple[str, ...], predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The metrics ``names`` of :data:`METRICS` on these predictions."""
    return {name: METRICS[name].compute(predictions, targets) for name in names}


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """MSE, MAE and accuracy: the fraction within 0.5 of the integer target."""
    return compute_metrics(DEFAULT_METRICS, predictions, targets)


def primary_metric(task: Task) -> tuple[str, bool]:
    """The task's primary metric and whether higher is better (defaults for tasks that declare none)."""
    name = getattr(task, "primary_metric", "accuracy")
    if name in METRICS:
        return name, METRICS[name].higher_is_better
    return name, bool(getattr(task, "higher_is_better", True))


@dataclass(frozen=True)
class Scores:
    """What the harness records about a trained model's predictions, in the task's units.

    ``baseline`` is the primary metric of the trivial model that ignores its
    input: it predicts the training mean (regression) or the most frequent
    training class (classification).  For ``adding`` that is MSE ~0.167.

    .. versionadded:: 0.2
    """

    metrics: dict[str, float]
    primary: str
    higher_is_better: bool
    baseline: float | None
    probe_prediction: float
    probe_target: float


def _trivial_predictions(data: TaskData, n: int) -> np.ndarray:
    if data.head == "classification":
        counts = np.bincount(np.asarray(data.y_train, np.int64), minlength=data.outputs)
        return np.tile(np.eye(data.outputs)[np.argmax(counts)], (n, 1))
    return np.full(n, float(np.mean(np.asarray(data.y_train, np.float64))))


def _task_units(data: TaskData, predictions: np.ndarray) -> np.ndarray:
    p = np.asarray(predictions, np.float64)
    return p if data.head == "classification" else p * data.target_scale


def score(task: Task, data: TaskData, predict: Callable[..., np.ndarray]) -> Scores:
    """Score ``predict`` (a trained model's) on the test set and the probe (with ``lengths=`` for
    variable-length data)."""

    def predicted(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        return _task_units(data, predict(x) if lengths is None else predict(x, lengths=lengths))

    primary, higher = primary_metric(task)
    targets = np.asarray(data.y_test, np.float64) * (1.0 if data.head == "classification" else data.target_scale)
    metrics = {str(k): float(v) for k, v in task.metrics(predicted(data.x_test, data.lengths_test), targets).items()}
    trivial = task.metrics(_task_units(data, _trivial_predictions(data, len(targets))), targets)
    probe = predicted(data.probe_x, data.probe_lengths)
    probe_value = float(np.argmax(probe[0])) if probe.ndim == 2 else float(probe.reshape(-1)[0])
    probe_target = data.probe_y * (1.0 if data.head == "classification" else data.target_scale)
    return Scores(metrics, primary, higher, trivial.get(primary), probe_value, float(probe_target))


# ------------------------------------------------------------------ tasks


def param_names(task: Task) -> list[str]:
    """Every parameter ``task`` accepts: its defaults, then its optional ``optional_params`` (which have none:
    present only when given, so a run without them records what it recorded before they existed).

    .. versionadded:: 0.4
    """
    return [*task.defaults, *getattr(task, "optional_params", ())]


def _check_params(task: Task, params: dict[str, int]) -> dict[str, int]:
    """The task's defaults updated with ``params``; ``ValueError`` for unknown (:func:`param_names`) or
    non-positive ones."""
    p = {**task.defaults, **params}
    unknown = sorted(set(p) - set(param_names(task)))
    if unknown:
        raise ValueError(f"unknown parameter(s) for task {task.name!r}: {', '.join(unknown)}")
    for key, value in p.items():
        if int(value) <= 0:
            raise ValueError(f"task parameter {key} must be positive, got {value}")
    return {k: int(v) for k, v in p.items()}


MIN_STEPS_HELP = "-P min_steps=K: each sample's length drawn uniformly from K to steps (padded at the end)"


def sample_lengths(seed: int, stream: int, n: int, params: dict[str, int], least: int = 1) -> np.ndarray | None:
    """Each sample's length, uniform from ``min_steps`` to ``steps`` (int32), or None without ``min_steps``.

    Drawn from a stream of their own, so the values a task draws for its samples do not depend on whether
    the lengths vary.  ``ValueError`` unless ``least <= min_steps <= steps``.
    """
    if "min_steps" not in params:
        return None
    low, steps = params["min_steps"], params["steps"]
    if not least <= low <= steps:
        raise ValueError(f"min_steps must be from {least} to steps ({steps}), got {low}")
    return np.random.default_rng([seed, stream, 1]).integers(low, steps + 1, n).astype(np.int32)


def pad_after(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """``x (n, steps, features)`` with every step at or past each sample's length set to zero (in place)."""
    if lengths is not None:
        x[np.arange(x.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return x


class ArithmeticTask:
    """Predict the next number of ``start, start+1, ..., start+steps-1``.

    The seed notebook's experiment: 1000 training samples, ``start`` drawn
    from [0, 100), 3 steps of 1 feature, unscaled, and the probe
    ``[10, 11, 12] -> 13``.

    ``scale=S`` divides inputs and targets by ``S`` (task parameters are
    integers: ``-P scale=100`` means ``/ 100``), so that inputs stay in the
    range where tanh is not saturated.  Metrics and the probe are scored on
    the unscaled integers: accuracy still means "within 0.5 of the next
    number", and MSE is in the task's units whatever the scale.

    ``-P min_steps=K`` gives each sample its own length ``L`` from K to ``steps``: the sequence is
    ``start, ..., start+L-1`` (zero past it) and the target ``start+L``.  The probe keeps all ``steps``.
    """

    name = "arithmetic"
    description = ("next number of an arithmetic sequence (the seed notebook; -P scale=100 for tanh models; "
                   "-P min_steps=K for variable lengths)")  # fmt: skip
    defaults = {"samples": 1000, "test_samples": 200, "steps": 3, "max_start": 100, "scale": 1}
    optional_params = ("min_steps",)
    metric_names = DEFAULT_METRICS
    primary_metric = "accuracy"

    def _sequences(self, starts: np.ndarray, steps: int, scale: int,
                   lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        x = pad_after(((starts[:, None] + np.arange(steps)) / scale)[:, :, None], lengths)
        last = steps if lengths is None else lengths
        return x.astype(np.float32), ((starts + last) / scale).astype(np.float32)

    def shape(self, **params: int) -> DataShape:
        p = _check_params(self, params)
        sample_lengths(0, STREAM_TRAIN, 0, p)  # ValueError for a min_steps out of range
        return DataShape(p["steps"], 1, variable_length="min_steps" in p)

    def make(self, seed: int, **params: int) -> TaskData:
        p = _check_params(self, params)
        steps, scale = p["steps"], p["scale"]
        n_train, n_test = p["samples"], p["test_samples"]
        l_train, l_test = sample_lengths(seed, STREAM_TRAIN, n_train, p), sample_lengths(seed, STREAM_TEST, n_test, p)
        x_train, y_train = self._sequences(
            rng(seed, STREAM_TRAIN).integers(0, p["max_start"], n_train), steps, scale, l_train
        )
        x_test, y_test = self._sequences(
            rng(seed, STREAM_TEST).integers(0, p["max_start"], n_test), steps, scale, l_test
        )
        probe_x, probe_y = self._sequences(np.array([10]), steps, scale)
        probe_lengths = None if l_train is None else np.array([steps], np.int32)
        return TaskData(x_train, y_train, x_test, y_test, probe_x, float(probe_y[0]), target_scale=float(scale),
                        lengths_train=l_train, lengths_test=l_test, probe_lengths=probe_lengths)  # fmt: skip

    def metrics(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        return compute_metrics(self.metric_names, predictions, targets)

    def data_bytes(self, **params: int) -> int:
        """Peak bytes :meth:`make` needs (see :mod:`seqbench.budget`): int64 sequences, then float32 copies."""
        p = {**self.defaults, **params}
        n = int(p["samples"]) + int(p["test_samples"])
        return n * int(p["steps"]) * (8 + 4) + n * (8 + 4)


class AddingTask:
    """The adding problem (Hochreiter & Schmidhuber 1997): a test of long memory.

    Each step has two features: a value drawn uniformly from [0, 1] and a
    marker that is 1 at exactly two steps, one in each half of the sequence,
    and 0 elsewhere.  The target is the sum of the two marked values.  A
    model that ignores its input predicts the mean, 1, and reaches MSE
    1/6 ~ 0.167 (the variance of the sum of two uniforms): the baseline
    reported beside the score.  ``-P steps=N`` sets how far apart the two
    marked values can be.

    ``-P min_steps=K`` (at least 2) gives each sample its own length ``L`` from K to ``steps``: one marker in
    each half of its ``L`` real steps, zero past them.
    """

    name = "adding"
    description = ("sum of the two marked values of a long sequence (Hochreiter & Schmidhuber; trivial MSE 0.167; "
                   "-P min_steps=K for variable lengths)")  # fmt: skip
    defaults = {"samples": 10000, "test_samples": 1000, "steps": 50}
    optional_params = ("min_steps",)
    metric_names = ("mse", "mae")
    primary_metric = "mse"

    @staticmethod
    def _sequences(gen: np.random.Generator, n: int, steps: int,
                   lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        values = gen.uniform(0.0, 1.0, (n, steps))
        # fixed length: the draws as they always were; varied: the same draws scaled to each length
        if lengths is None:
            first = gen.integers(0, steps // 2, n)
            second = gen.integers(steps // 2, steps, n)
        else:
            halves = lengths // 2
            first = (gen.random(n) * halves).astype(np.int64)
            second = halves + (gen.random(n) * (lengths - halves)).astype(np.int64)
        markers = np.zeros((n, steps))
        rows = np.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        x = pad_after(np.stack([values, markers], axis=2), lengths).astype(np.float32)
        return x, (values[rows, first] + values[rows, second]).astype(np.float32)

    def shape(self, **params: int) -> DataShape:
        p = _check_params(self, params)
        steps = p["steps"]
        if steps < 2:
            raise ValueError(f"task adding needs steps >= 2 (one marker in each half), got {steps}")
        sample_lengths(0, STREAM_TRAIN, 0, p, least=2)  # ValueError for a min_steps out of range
        return DataShape(steps, 2, variable_length="min_steps" in p)

    def make(self, seed: int, **params: int) -> TaskData:
        steps = self.shape(**params).steps
        p = _check_params(self, params)
        l_train = sample_lengths(seed, STREAM_TRAIN, p["samples"], p, least=2)
        l_test = sample_lengths(seed, STREAM_TEST, p["test_samples"], p, least=2)
        x_train, y_train = self._sequences(rng(seed, STREAM_TRAIN), p["samples"], steps, l_train)
        x_test, y_test = self._sequences(rng(seed, STREAM_TEST), p["test_samples"], steps, l_test)
        # the probe: every value 0.5 but the marked first (0.2) and last (0.9): target 1.1
        probe_x = np.zeros((1, steps, 2), np.float32)
        probe_x[0, :, 0] = 0.5
        probe_x[0, [0, -1], 0] = (0.2, 0.9)
        probe_x[0, [0, -1], 1] = 1.0
        probe_lengths = None if l_train is None else np.array([steps], np.int32)
        return TaskData(x_train, y_train, x_test, y_test, probe_x, float(np.float32(0.2) + np.float32(0.9)),
                        lengths_train=l_train, lengths_test=l_test, probe_lengths=probe_lengths)  # fmt: skip

    def metrics(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        return compute_metrics(self.metric_names, predictions, targets)

    def data_bytes(self, **params: int) -> int:
        """Peak bytes :meth:`make` needs: float64 values and markers, then the float32 (n, steps, 2) input."""
        p = {**self.defaults, **params}
        n = int(p["samples"]) + int(p["test_samples"])
        return n * int(p["steps"]) * (8 + 8 + 2 * 4)


DATA_HINT = "pip install -e '.[data]' (from a seqbench checkout)"


class DigitsTask:
    """Real data shipped inside scikit-learn: its 1797 handwritten digits (UCI).

    Each 8x8 image is read as a sequence of 8 rows (steps) of 8 pixels
    (features), scaled from 0..16 to [0, 1]; the class is the digit, 10 in
    all.  Nothing is downloaded: the data are part of the scikit-learn
    package (``sklearn.datasets.load_digits``), installed with the ``data``
    extra.  The split is a seeded permutation: ``test_samples`` for the test
    set, the rest for training; the probe is the first test image.
    """

    name = "digits"
    description = f"scikit-learn's bundled 8x8 digits as 8 steps of 8 pixels, 10 classes (needs: {DATA_HINT})"
    defaults = {"test_samples": 360}
    metric_names = ("accuracy", "cross_entropy")
    primary_metric = "accuracy"
    classes = 10
    images = 1797  # the set scikit-learn ships: fixed, so the shape is known without loading it

    @staticmethod
    def load() -> tuple[np.ndarray, np.ndarray]:
        """Images ``(1797, 8, 8)`` in [0, 1] and their digits; :class:`UsageError` without scikit-learn."""
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise UsageError(f"task 'digits' needs scikit-learn, which is not installed: {DATA_HINT}") from None
        bunch = load_digits()
        return np.asarray(bunch.images, np.float64) / 16.0, np.asarray(bunch.target, np.int64)

    def shape(self, **params: int) -> DataShape:
        n_test = _check_params(self, params)["test_samples"]
        if not module_found("sklearn"):
            raise UsageError(f"task 'digits' needs scikit-learn, which is not installed: {DATA_HINT}")
        if n_test >= self.images:
            raise ValueError(f"task digits has {self.images} images: test_samples must be below that, got {n_test}")
        return DataShape(8, 8, "classification", self.classes)

    def make(self, seed: int, **params: int) -> TaskData:
        self.shape(**params)
        n_test = _check_params(self, params)["test_samples"]
        images, digits = self.load()
        order = rng(seed, STREAM_TRAIN).permutation(len(digits))
        test, train = order[:n_test], order[n_test:]
        x = images.astype(np.float32)
        y = digits.astype(np.float32)
        return TaskData(x[train], y[train], x[test], y[test], x[test[:1]], float(y[test[0]]),
                        head="classification", outputs=self.classes)  # fmt: skip

    def metrics(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        return compute_metrics(self.metric_names, predictions, targets)

