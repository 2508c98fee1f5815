"""The Keras backend through the seqbench model API, next to hand-written Keras.

Run: ``python benchmarks/bench_keras.py [--threads 2] [--rounds 5] [--large-epochs 4] [--no-large]``

Contenders, all on the same data, initial weights, batch order and batch size:

* ``ours:graph``, ``ours:xla``, ``ours:fit``: the backend's implementations,
  driven the way the harness drives them (``train_epoch`` + ``synchronize``);
* ``hand:graph``, ``hand:xla``: what a Keras user writes for a fast loop, the
  whole epoch in one ``tf.function`` (without and with XLA);
* ``plain fit``: ``model.fit(x, y, epochs=N)`` with Keras's own shuffling
  (paused between epochs by a callback, so that it interleaves with the
  others); it sets the bar for ``ours:fit``;
* ``fit per epoch``: ``model.fit(x[order], y[order], epochs=1, shuffle=False)``
  once per epoch, the simple way to give fit the harness's order, which
  ``ours:fit`` avoids by keeping one fit call alive across epochs.

Each configuration runs in a fresh process per round (TensorFlow reads its
thread settings once).  Inside it, the contenders' epochs are interleaved,
in a new random order each epoch (so that no contender always follows the
same one), and drift in machine load hits them alike; each epoch is timed
from the call to its loss.  Steady time is the median of epochs 2..N
(epoch 1 traces and compiles), then the median over rounds.  Not a test:
the machine is shared and noisy, so the figures are for people to read.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from seqbench.contract import ModelSpec, Weights
from seqbench.harness import batch_orders, initial_weights


@dataclass(frozen=True)
class Config:
    label: str
    kind: str
    units: int
    activation: str
    steps: int
    samples: int
    batch_size: int
    epochs: int

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.kind, self.units, self.steps, activation=self.activation)  # type: ignore[arg-type]


def configs(large_epochs: int) -> dict[str, Config]:
    return {
        "seed-rnn": Config("seed task, SimpleRNN(10, relu)", "rnn", 10, "relu", 3, 1000, 32, 10),
        "seed-lstm": Config("seed task, LSTM(10, relu)", "lstm", 10, "relu", 3, 1000, 32, 10),
        "large": Config(
            "LSTM(128, tanh), 50 steps, 8192 samples, batch 64", "lstm", 128, "tanh", 50, 8192, 64, large_epochs
        ),  # fmt: skip
    }


def training_gflop(spec: ModelSpec, samples: int) -> float:
    """Matrix-product GFLOP of one training epoch: forward, then twice that backward."""
    forward = 2 * samples * spec.steps * (spec.features + spec.units) * spec.gates * spec.units
    return 3.0 * forward / 1e9


# ---------------------------------------------------------------- child: one round of one configuration


def data_for(config: Config) -> tuple[np.ndarray, np.ndarray]:
    from seqbench.tasks import ArithmeticTask

    if config.units == 10:  # the seed experiment's own data
        data = ArithmeticTask().make(0, samples=config.samples, steps=config.steps)
        return data.x_train, data.y_train
    # Standard-normal data: unscaled sequences would saturate the tanh LSTM.
    gen = np.random.default_rng(0)
    x = gen.standard_normal((config.samples, config.steps, 1), dtype=np.float32)
    return x, gen.standard_normal(config.samples, dtype=np.float32)


def plain_keras_model(config: Config, weights: Weights) -> Any:
    """The seed notebook's model with Keras's defaults, holding ``weights``."""
    import keras

    layer = keras.layers.LSTM if config.kind == "lstm" else keras.layers.SimpleRNN
    model = keras.Sequential(
        [keras.Input((config.steps, 1)), layer(config.units, activation=config.activation), keras.layers.Dense(1)]
    )
    model.set_weights(list(weights.arrays().values()))
    return model


def adam(spec: ModelSpec) -> Any:
    import keras

    o = spec.optimizer
    return keras.optimizers.Adam(learning_rate=o.learning_rate, beta_1=o.beta1, beta_2=o.beta2, epsilon=o.epsilon)


EpochFn = Callable[[np.ndarray], float]


def hand_written_epoch(config: Config, weights: Weights, x: np.ndarray, y: np.ndarray, xla: bool) -> EpochFn:
    """A whole epoch in one tf.function, as a Keras user would write it."""
    import keras
    import tensorflow as tf

    model = plain_keras_model(config, weights)
    optimizer = adam(config.spec)
    optimizer.build(model.trainable_variables)
    mse = keras.losses.MeanSquaredError()
    xs, ys = tf.constant(x), tf.constant(y[:, None])
    n, batch = len(x), config.batch_size
    full, rest = divmod(n, batch)

    def step(idx: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = mse(tf.gather(ys, idx), model(tf.gather(xs, idx), training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    @tf.function(jit_compile=xla)
    def epoch(order: tf.Tensor) -> tf.Tensor:
        total = tf.constant(0.0)
        for i in tf.range(full):
            total += step(tf.slice(order, [i * batch], [batch])) * batch
        if rest:
            total += step(order[full * batch :]) * rest
        return total / n

    return lambda order: float(epoch(tf.constant(order.astype(np.int32))))


def fit_per_epoch(config: Config, weights: Weights, x: np.ndarray, y: np.ndarray) -> EpochFn:
    model = plain_keras_model(config, weights)
    model.compile(optimizer=adam(config.spec), loss="mse")

    def epoch(order: np.ndarray) -> float:
        history = model.fit(x[order], y[order], batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0)
        return float(history.history["loss"][0])

    return epoch


def ours(implementation: str, config: Config, weights: Weights, x: np.ndarray, y: np.ndarray) -> EpochFn:
    from seqbench_keras import KerasBackend

    model = KerasBackend().build(implementation, config.spec, weights, "cpu")
    model.set_train_data(x, y)

    def epoch(order: np.ndarray) -> float:
        loss = model.train_epoch(order, config.batch_size)
        model.synchronize()
        return loss

    return epoch


def plain_fit(config: Config, weights: Weights, x: np.ndarray, y: np.ndarray) -> EpochFn:
    """``model.fit(x, y, epochs=N)`` as a user runs it (Keras shuffles), paused between epochs.

    fit runs in a thread and waits at each epoch's start until called, so its
    epochs interleave with the other contenders' and are timed like theirs.
    Its batch order is its own: the ``order`` passed in is not used.
    """
    import keras

    model = plain_keras_model(config, weights)
    model.compile(optimizer=adam(config.spec), loss="mse")
    go: queue.Queue[None] = queue.Queue()
    done: queue.Queue[float | BaseException] = queue.Queue()

    class Pause(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            go.get()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            done.put(float((logs or {})["loss"]))

    def fit() -> None:
        try:
            model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs, verbose=0, callbacks=[Pause()])
        except BaseException as e:  # the caller is waiting for a result
            done.put(e)

    thread = threading.Thread(target=fit, daemon=True)

    def epoch(order: np.ndarray) -> float:
        if thread.ident is None:
            thread.start()  # fit's own set-up counts in its first epoch, as for ours:fit
        go.put(None)
        result = done.get()
        if isinstance(result, BaseException):
            raise result
        return result

    return epoch


def child(config: Config, threads: int) -> dict[str, dict]:
    from seqbench_keras import KerasBackend

    KerasBackend().configure("cpu", threads)  # the same TF settings for every contender
    x, y = data_for(config)
    weights = initial_weights(config.spec, 0)
    orders = list(batch_orders(0, config.samples, config.epochs))
    makers: dict[str, Callable[[], EpochFn]] = {
        "ours:graph": lambda: ours("graph", config, weights, x, y),
        "hand:graph": lambda: hand_written_epoch(config, weights, x, y, xla=False),
        "ours:xla": lambda: ours("xla", config, weights, x, y),
        "hand:xla": lambda: hand_written_epoch(config, weights, x, y, xla=True),
        "ours:fit": lambda: ours("fit", config, weights, x, y),
        "fit per epoch": lambda: fit_per_epoch(config, weights, x, y),
        "plain fit": lambda: plain_fit(config, weights, x, y),
    }
    if config.label.startswith("LSTM(128"):
        del makers["fit per epoch"]  # measured on the seed task, where its overhead shows
    epoch_fns = {name: make() for name, make in makers.items()}
    results: dict[str, dict] = {name: {"times": [], "loss": None} for name in epoch_fns}
    shuffle = np.random.default_rng(1)
    for order in orders:
        for name in shuffle.permutation(list(epoch_fns)):
            t0 = time.perf_counter()
            loss = epoch_fns[name](order)
            results[name]["times"].append(time.perf_counter() - t0)
            results[name]["loss"] = loss
    return results


# ---------------------------------------------------------------- parent: rounds and the report

RATIOS = [
    ("ours:graph", "hand:graph", "target <= 1.05"),
    ("ours:xla", "hand:xla", "target <= 1.05"),
    ("ours:fit", "plain fit", "fit's bar"),
    ("fit per epoch", "plain fit", "the alternative to ours:fit"),
    ("ours:fit", "fit per epoch", "why one long-lived fit"),
]


@dataclass
class Summary:
    first_s: dict[str, float]  # median over rounds
    steady_s: dict[str, float]  # median over rounds of the median of epochs 2..N
    loss: dict[str, float]  # last epoch's, last round
    steady: dict[str, list[list[float]]]  # per round, epochs 2..N

    def paired_ratio(self, a: str, b: str) -> float:
        """Median over every steady epoch of ``a``'s time / ``b``'s in the same epoch slot.

        Both ran within the same few milliseconds, so load drift cancels.
        """
        return statistics.median(
            ta / tb
            for ra, rb in zip(self.steady[a], self.steady[b], strict=True)
            for ta, tb in zip(ra, rb, strict=True)
        )


def run_rounds(key: str, config: Config, threads: int, rounds: int) -> Summary:
    per_round: list[dict[str, dict]] = []
    for _ in range(rounds):
        cmd = [sys.executable, __file__, "--child", key, "--threads", str(threads),
               "--large-epochs", str(config.epochs)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ).stdout
        per_round.append(json.loads(out.strip().splitlines()[-1]))
    names = list(per_round[0])
    steady = {n: [r[n]["times"][1:] for r in per_round] for n in names}
    return Summary(
        first_s={n: statistics.median(r[n]["times"][0] for r in per_round) for n in names},
        steady_s={n: statistics.median(statistics.median(t) for t in steady[n]) for n in names},
        loss={n: per_round[-1][n]["loss"] for n in names},
        steady=steady,
    )


def report(config: Config, summary: Summary, rounds: int) -> None:
    gflop = training_gflop(config.spec, config.samples)
    print(f"\n{config.label}: {config.epochs} epochs, {rounds} round(s), {gflop:.3g} GFLOP per epoch")
    print(f"  {'contender':<14} {'epoch 1 s':>9} {'steady ms':>10} {'GFLOP/s':>8} {'last loss':>11}")
    for name, steady_s in summary.steady_s.items():
        print(f"  {name:<14} {summary.first_s[name]:9.3f} {1e3 * steady_s:10.2f} {gflop / steady_s:8.1f} "
              f"{summary.loss[name]:11.5g}")  # fmt: skip
    print("  steady-epoch ratios: of the medians above | median of per-epoch pairs")
    for a, b, note in RATIOS:
        if a in summary.steady_s and b in summary.steady_s:
            medians = summary.steady_s[a] / summary.steady_s[b]
            print(f"  {a} / {b}: {medians:.3f} | {summary.paired_ratio(a, b):.3f}  ({note})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per seed configuration")
    parser.add_argument("--large-epochs", type=int, default=4)
    parser.add_argument("--large-rounds", type=int, default=1)
    parser.add_argument("--no-large", action="store_true", help="skip the large configuration")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    table = configs(args.large_epochs)
    if args.child:
        print(json.dumps(child(table[args.child], args.threads)))
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from seqbench_keras import KerasBackend

    print(f"threads={args.threads}, " + ", ".join(f"{k} {v}" for k, v in KerasBackend().versions().items()))
    for key, config in table.items():
        if key == "large" and args.no_large:
            continue
        rounds = args.large_rounds if key == "large" else args.rounds
        report(config, run_rounds(key, config, args.threads, rounds), rounds)
    print("\nconfigurations:", json.dumps({k: asdict(c) for k, c in table.items()}))


if __name__ == "__main__":
    main()
