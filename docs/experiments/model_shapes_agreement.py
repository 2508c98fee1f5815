"""How closely every backend runs a 2-layer bidirectional variable-length LSTM and GRU (model-shapes.md).

    python docs/experiments/model_shapes_agreement.py [--backends numpy,torch,...]

For each backend and implementation that supports the model, in a process of its own (Keras fixes its engine
per process), from the harness's initial weights for seed 0 on the adding task with ``min_steps``:

* epoch 1's loss, one Adam step per batch of 32 with a short last batch, against the NumPy reference in
  float64: ``|loss - reference| / |reference|`` (target: 1e-4); an inference-only backend has none;
* the forward output padded against the same samples run alone without padding, by the backend itself:
  ``max |padded - alone|`` over the test samples, grouped by length, absolute (the outputs are in the task's
  units, about 1) and relative to ``max |alone|`` (target: 1e-6).  Both are float32: a program compiled
  for another length may sum in another order, which moves the last bits, not more.

Prints a markdown table.  A few seconds per backend; it is not the size sweep (model_shapes_sweep.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np

KINDS = ("lstm", "gru")
UNITS, STEPS, MIN_STEPS, SAMPLES, TEST, BATCH = 32, 30, 5, 200, 64, 32


def measure(name: str) -> list[dict]:
    """Every (implementation, kind) row of backend ``name``, in this process."""
    from seqbench.contract import ModelSpec, backend_trains, refusal
    from seqbench.harness import batch_orders, initial_weights
    from seqbench.tasks import AddingTask
    from seqbench.testing import backend_for

    data = AddingTask().make(0, samples=SAMPLES, test_samples=TEST, steps=STEPS, min_steps=MIN_STEPS)
    reference = backend_for("numpy")
    backend = backend_for(name)
    order = next(batch_orders(0, SAMPLES, 1))
    rows = []
    for kind in KINDS:
        spec = ModelSpec(kind, UNITS, STEPS, 2, "tanh", layers=2, bidirectional=True, variable_length=True)  # type: ignore[arg-type]
        weights = initial_weights(spec, 0)
        for impl in backend.implementations:
            why = refusal(backend, impl, spec, "cpu")
            row: dict = {"backend": name, "implementation": impl, "model": kind}
            if why:
                rows.append({**row, "refused": why})
                continue
            model = backend.build(impl, spec, weights, "cpu")
            if backend_trains(backend):
                ref = reference.build("reference", replace(spec, dtype="float64"), weights, "cpu")
                for m in (ref, model):
                    m.set_train_data(data.x_train, data.y_train, lengths=data.lengths_train)
                want, got = ref.train_epoch(order, BATCH), model.train_epoch(order, BATCH)
                row["loss_rel_diff"] = abs(got - want) / abs(want)
                model = backend.build(impl, spec, weights, "cpu")  # the padding check on the initial weights
            worst = scale = 0.0
            for length in sorted(set(data.lengths_test.tolist())):
                rows_of = np.flatnonzero(data.lengths_test == length)
                padded = model.predict(data.x_test[rows_of], lengths=data.lengths_test[rows_of])
                alone_spec = replace(spec, steps=length, variable_length=False)
                alone = backend.build(impl, alone_spec, weights, "cpu").predict(data.x_test[rows_of, :length])
                worst = max(worst, float(np.max(np.abs(padded - alone))))
                scale = max(scale, float(np.max(np.abs(alone))))
            row["padding_abs_diff"], row["padding_rel_diff"] = worst, worst / scale
            row["path"] = model.implementation_path()
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,torch,jax,keras,keras-jax,keras-torch,onnxruntime")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child: one backend, JSON rows on stdout
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    print("| backend:implementation | model | path | epoch-1 loss vs NumPy (rel.) | padded vs unpadded (abs.) "
          "| (rel.) |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.backends.split(","):
        done = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, check=False,
                              env={"TF_CPP_MIN_LOG_LEVEL": "3", **dict(__import__("os").environ)})  # fmt: skip
        if done.returncode:
            print(f"| {name} | | failed: {(done.stderr.strip().splitlines() or ['?'])[-1]} | | | |")
            continue
        for r in json.loads(done.stdout.strip().splitlines()[-1]):
            if "refused" in r:
                print(f"| {r['backend']}:{r['implementation']} | {r['model']} | refused: {r['refused']} | | | |")
                continue
            loss = f"{r['loss_rel_diff']:.1e}" if "loss_rel_diff" in r else "inference only"
            print(f"| {r['backend']}:{r['implementation']} | {r['model']} | {r['path']} | {loss} "
                  f"| {r['padding_abs_diff']:.1e} | {r['padding_rel_diff']:.1e} |")


if __name__ == "__main__":
    main()
