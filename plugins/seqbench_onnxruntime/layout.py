"""What ONNX's recurrent operators can express, as data: no onnx import (``supports`` reads it)."""

from __future__ import annotations

# Per model kind: the ONNX operator and its gate order, named as the canonical gates are
# (seqbench.contract.KINDS).  A kind missing here is refused by supports().
OPERATOR = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
ONNX_ORDER: dict[str, tuple[str, ...]] = {
    "rnn": ("candidate",),
    "lstm": ("input", "output", "forget", "candidate"),
    "gru": ("update", "reset", "candidate"),
}
# The spec's activation -> the name ONNX's ``activations`` attribute takes.  The ONNX specification lists Relu
# and Tanh for RNN, LSTM and GRU, and onnxruntime's CPU kernels compute both (the conformance kit checks every
# kind with each); an activation missing here is refused by supports(), never approximated.
ACTIVATION = {"relu": "Relu", "tanh": "Tanh"}
