"""The torch backend through the seqbench model API, next to a hand-written torch loop.

Run: ``python benchmarks/bench_torch.py [--epochs N] [--seed-epochs N]``

Both sides do the same work in one process with the same thread count: the
same weights, data, batch order and batch size; batches are index slices of
tensors already in place; one Adam step per batch.  The hand-written side is
what a torch user writes: ``nn.RNN`` / ``nn.LSTM`` with ``batch_first`` (a
cell loop for the relu LSTM, which ``nn.LSTM`` cannot compute) and
``torch.optim.Adam``.  Epochs of the contenders are interleaved, the order
rotating each round, so drift in machine load hits them alike; the first
epoch of each (warm-up) is not counted.  On the seed shapes every
implementation of ours that supports the spec is timed, on the large one the
default alone; the ratios compare the default one.  Other load on the
machine only ever adds time, so the fastest epoch is printed beside the median.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from seqbench_torch import TorchBackend
from torch import Tensor, nn

from seqbench.contract import ModelSpec, Weights, default_order
from seqbench.harness import batch_orders, initial_weights
from seqbench.tasks import ArithmeticTask

THREADS = 2


@dataclass(frozen=True)
class Config:
    label: str
    spec: ModelSpec
    samples: int
    batch_size: int
    epochs: int
    every_implementation: bool  # else ours is the default implementation alone


def training_flop(spec: ModelSpec, samples: int) -> float:
    """Matrix-product FLOPs of one training epoch: forward, then twice that backward."""
    forward = 2 * samples * spec.steps * (spec.features + spec.units) * spec.gates * spec.units
    return 3.0 * forward


def data_for(config: Config) -> tuple[np.ndarray, np.ndarray]:
    spec = config.spec
    if spec.units == 10:  # the seed experiment's own data
        data = ArithmeticTask().make(0, samples=config.samples, steps=spec.steps)
        return data.x_train, data.y_train
    # Standard-normal data: unscaled sequences would saturate the tanh LSTM.
    gen = np.random.default_rng(0)
    x = gen.standard_normal((config.samples, spec.steps, spec.features), dtype=np.float32)
    return x, gen.standard_normal(config.samples, dtype=np.float32)


class ReluLSTM(nn.Module):
    """The cell a user writes when ``nn.LSTM`` lacks the activation (batch-first)."""

    def __init__(self, features: int, units: int) -> None:
        super().__init__()
        self.ih = nn.Linear(features, 4 * units)
        self.hh = nn.Linear(units, 4 * units, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = c = x.new_zeros(x.shape[0], self.hh.in_features)
        for t in range(x.shape[1]):
            i, f, g, o = (self.ih(x[:, t]) + self.hh(h)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.relu(g)
            h = torch.sigmoid(o) * torch.relu(c)
        return h


class HandWritten:
    """A plain torch training loop, independent of seqbench_torch."""

    def __init__(self, spec: ModelSpec, w: Weights, x: np.ndarray, y: np.ndarray) -> None:
        t = {k: torch.from_numpy(np.ascontiguousarray(v.T)) for k, v in w.arrays().items()}
        self.cell: nn.Module
        if spec.kind == "lstm" and spec.activation != "tanh":
            self.cell = ReluLSTM(spec.features, spec.units)
            own = {"ih.weight": t["kernel"], "ih.bias": t["bias"], "hh.weight": t["recurrent_kernel"]}
        else:
            layer = nn.LSTM if spec.kind == "lstm" else nn.RNN
            extra = {} if spec.kind == "lstm" else {"nonlinearity": spec.activation}
            self.cell = layer(spec.features, spec.units, batch_first=True, **extra)
            own = {"weight_ih_l0": t["kernel"], "weight_hh_l0": t["recurrent_kernel"], "bias_ih_l0": t["bias"]}
        self.head = nn.Linear(spec.units, 1)
        with torch.no_grad():
            for name, p in self.cell.named_parameters():
                p.copy_(own.get(name, torch.zeros_like(p)))  # bias_hh: zero, trained as usual
            self.head.weight.copy_(t["dense_kernel"])
            self.head.bias.copy_(t["dense_bias"])
        params = [*self.cell.parameters(), *self.head.parameters()]
        self.opt = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def forward(self, x: Tensor) -> Tensor:
        out = self.cell(x)
        h = out if isinstance(self.cell, ReluLSTM) else out[0][:, -1]
        return self.head(h).squeeze(1)

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        total = 0.0
        for idx in torch.from_numpy(order).split(batch_size):
            loss = F.mse_loss(self.forward(self.x[idx]), self.y[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            total += loss.item() * len(idx)
        return total / len(order)


def measure(config: Config) -> dict[str, list[float]]:
    """Steady seconds per epoch of every contender, epochs interleaved; ours first, default first."""
    backend = TorchBackend()
    spec = config.spec
    w = initial_weights(spec, 0)
    x, y = data_for(config)
    contenders: dict[str, Callable[[np.ndarray], float]] = {}
    supported = [impl for impl in default_order(backend, spec, "cpu") if backend.supports(impl, spec, "cpu") is None]
    for impl in supported if config.every_implementation else supported[:1]:
        model = backend.build(impl, spec, w, "cpu")
        model.set_train_data(x, y)
        contenders[f"seqbench {impl}"] = lambda o, m=model: m.train_epoch(o, config.batch_size)
    hand = HandWritten(spec, w, x, y)
    contenders["hand-written"] = lambda o: hand.train_epoch(o, config.batch_size)
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_, order in enumerate(batch_orders(0, config.samples, config.epochs + 1)):
        for k in range(len(names)):
            name = names[(round_ + k) % len(names)]
            t0 = time.perf_counter()
            contenders[name](order)
            if round_:  # round 0 is the warm-up
                times[name].append(time.perf_counter() - t0)
    return times


def report(config: Config, times: dict[str, list[float]]) -> None:
    """Median and fastest epoch of each; other load on the machine only ever adds time."""
    flop = training_flop(config.spec, config.samples)
    default, hand = next(iter(times)), "hand-written"
    print(f"\n{config.label}: {flop / 1e9:.3g} GFLOP per epoch, {config.epochs} steady epochs")
    print(f"  {'':<28} {'median s/epoch':>14} {'min s/epoch':>12} {'GFLOP/s (median)':>17}")
    for name, values in times.items():
        median = statistics.median(values)
        label = name + (" (default)" if name == default else "")
        print(f"  {label:<28} {median:14.4f} {min(values):12.4f} {flop / median / 1e9:17.3g}")
    for stat in (statistics.median, min):
        ratio = stat(times[default]) / stat(times[hand])
        print(f"  ratio default / hand-written ({stat.__name__}): {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7, help="steady epochs, large configuration")
    parser.add_argument("--seed-epochs", type=int, default=30, help="steady epochs, seed configuration")
    args = parser.parse_args()
    TorchBackend().configure("cpu", THREADS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    large = ModelSpec("lstm", 128, 50, activation="tanh")

    def seed(kind: str) -> ModelSpec:
        return ModelSpec(kind, 10, 3, activation="relu")  # type: ignore[arg-type]

    configs = [
        # The loop takes ~5 s per large epoch: ours is the default (fused) alone there.
        Config("large LSTM 128 tanh, 50 steps", large, 8192, 64, args.epochs, every_implementation=False),
        Config("seed RNN 10 relu, 3 steps", seed("rnn"), 1000, 32, args.seed_epochs, every_implementation=True),
        Config("seed LSTM 10 relu, 3 steps", seed("lstm"), 1000, 32, args.seed_epochs, every_implementation=True),
    ]
    for config in configs:
        report(config, measure(config))


if __name__ == "__main__":
    main()
