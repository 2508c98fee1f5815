"""The ONNX graph of a canonical model: one RNN, LSTM or GRU operator and a dense head.

Imports onnx: the backend imports this module only when it builds a model.

The canonical layout (Keras's, :data:`seqbench.contract.KINDS`) differs from ONNX's in four ways, each
handled here and each caught by the conformance kit when wrong:

* the gate order: ONNX's LSTM is i, o, f, c (canonical i, f, c, o); its GRU z, r, h is the canonical
  update, reset, candidate, and the RNN has one gate;
* the matrices: ONNX keeps ``W (1, gates*h, in)`` and ``R (1, gates*h, h)``, the canonical kernels
  transposed;
* the bias: one row ``B (1, 2*gates*h)``, the input bias ``Wb`` then the recurrent ``Rb``; the canonical
  RNN and LSTM have one bias, which goes to ``Wb`` with ``Rb`` zero;
* the GRU's reset convention: ``linear_before_reset=1`` applies the reset gate to ``h U + b_rec`` as
  Keras's ``reset_after=True`` does (0 would apply it to ``h`` before the product: another model).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from seqbench.contract import ModelSpec, Weights
from seqbench_onnxruntime.layout import ACTIVATION, ONNX_ORDER, OPERATOR

OPSET = 17
# onnx writes its newest IR version; an onnxruntime older than that onnx refuses it.  IR 8 holds opset 17.
IR_VERSION = 8


def activations(spec: ModelSpec) -> list[str]:
    """The operator's ``activations``: the gates' sigmoid first where the kind has gates, then the spec's."""
    act = ACTIVATION[spec.activation]
    return {"rnn": [act], "lstm": ["Sigmoid", act, act], "gru": ["Sigmoid", act]}[spec.kind]


def build_graph(spec: ModelSpec, weights: Weights, order: Sequence[str] | None = None,
                linear_before_reset: int = 1) -> onnx.ModelProto:  # fmt: skip
    """The model of ``spec`` holding ``weights``, input ``x (batch, steps, features)``, output ``y (batch, outputs)``.

    ``order`` and ``linear_before_reset`` are ONNX's, and are parameters only so that a test can build the
    wrong graph and see the conformance kit refuse it.
    """
    info, h = spec.info, spec.units
    cols = info.gate_columns(order or ONNX_ORDER[spec.kind], h)
    bias = np.asarray(weights.bias, np.float32)
    b_in, b_rec = (bias, np.zeros_like(bias)) if info.bias_rows == 1 else (bias[0], bias[1])
    init = {
        "W": np.asarray(weights.kernel, np.float32)[:, cols].T[None],
        "R": np.asarray(weights.recurrent_kernel, np.float32)[:, cols].T[None],
        "B": np.concatenate([b_in[cols], b_rec[cols]])[None],
        "dense_kernel": np.asarray(weights.dense_kernel, np.float32),
        "dense_bias": np.asarray(weights.dense_bias, np.float32),
        "squeeze_axes": np.array([0], np.int64),
    }
    attributes: dict[str, object] = {"hidden_size": h, "activations": activations(spec)}
    if spec.kind == "gru":
        attributes["linear_before_reset"] = linear_before_reset
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_steps_first"], perm=[1, 0, 2]),  # ONNX's layout 0: (steps, batch, in)
        helper.make_node(OPERATOR[spec.kind], ["x_steps_first", "W", "R", "B"], ["", "h_last"], **attributes),
        helper.make_node("Squeeze", ["h_last", "squeeze_axes"], ["h"]),
        helper.make_node("MatMul", ["h", "dense_kernel"], ["logits"]),
        helper.make_node("Add", ["logits", "dense_bias"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, f"seqbench_{spec.kind}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", spec.steps, spec.features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", spec.outputs])],
        [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in init.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="seqbench")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def read_weights(spec: ModelSpec, model: onnx.ModelProto, order: Sequence[str] | None = None) -> Weights:
    """The canonical weights a graph of :func:`build_graph` holds: its initializers, read back."""
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    info, h = spec.info, spec.units
    back = np.argsort(info.gate_columns(order or ONNX_ORDER[spec.kind], h))
    w_b, r_b = np.split(init["B"][0], 2)
    bias = w_b[back] if info.bias_rows == 1 else np.stack([w_b[back], r_b[back]])
    return Weights(kernel=init["W"][0].T[:, back], recurrent_kernel=init["R"][0].T[:, back], bias=bias,
                   dense_kernel=init["dense_kernel"], dense_bias=init["dense_bias"])  # fmt: skip
