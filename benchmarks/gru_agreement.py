"""How closely every backend's GRU agrees with the NumPy reference (a correctness figure, not a timing).

    python benchmarks/gru_agreement.py [--epochs 5]

For each available backend:implementation that supports the spec: the largest
relative error of the forward output against NumPy (float32, same weights),
and of each epoch's loss over ``--epochs`` epochs on the adding problem's
inputs (the harness's weights and batch orders; a short last batch).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from seqbench.contract import ModelSpec  # noqa: E402
from seqbench.harness import batch_orders, initial_weights  # noqa: E402
from seqbench.tasks import AddingTask  # noqa: E402
from seqbench.testing import _registry, backend_for, relative_error  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    data = AddingTask().make(0, steps=args.steps, samples=args.samples, test_samples=200)
    for activation in ("tanh", "relu"):
        spec = ModelSpec("gru", args.units, args.steps, 2, activation)
        weights = initial_weights(spec, 0)
        orders = batch_orders(0, args.samples, args.epochs)
        runs = {}
        for name, backend in sorted(_registry().backends.items()):
            if not backend.availability().available:
                continue
            for impl in backend.implementations:
                if backend.supports(impl, spec, "cpu"):
                    continue
                model = backend_for(name, "cpu").build(impl, spec, weights, "cpu")
                forward = model.predict(data.x_test)
                model.set_train_data(data.x_train, data.y_train)
                losses = [model.train_epoch(order, 64) for order in orders]
                runs[f"{name}:{impl}"] = (forward, np.array(losses))
        ref_forward, ref_losses = runs["numpy:reference"]
        print(f"GRU({args.units}, {activation}), adding, {args.steps} steps, {args.samples} samples, batch 64, "
              f"{args.epochs} epochs; relative error against numpy:reference")
        for label, (forward, losses) in runs.items():
            per_epoch = np.abs(losses - ref_losses) / np.abs(ref_losses)
            print(f"  {label:<14} forward {relative_error(forward, ref_forward):.1e}   "
                  f"epoch losses max {per_epoch.max():.1e}   final loss {losses[-1]:.5f}")


if __name__ == "__main__":
    main()
