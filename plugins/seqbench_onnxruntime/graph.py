"""The ONNX graph of a canonical model: one RNN, LSTM or GRU operator per layer and a dense head.

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

Stacked, bidirectional and variable-length models use what the operators offer natively: one operator per
layer (``W``, ``R``, ``B`` of layer 1, ``W_2``... above it), ``direction="bidirectional"`` with the forward
block at index 0 of the direction axis and the backward one at 1, and the ``sequence_lens`` input (the graph
input ``lengths``), with which the operator runs each direction over each sample's real steps only.  A
layer's output ``Y (steps, directions, batch, h)`` becomes the next layer's input ``(steps, batch,
directions * h)``, forward first; the last layer's ``Y_h (directions, batch, h)``, each sample's state after
its last real step (the backward direction's after its first), becomes the head's input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from seqbench.contract import LayerWeights, ModelSpec, Weights
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
    info, h, dirs = spec.info, spec.units, spec.directions
    cols = info.gate_columns(order or ONNX_ORDER[spec.kind], h)
    blocks = weights.blocks()
    init: dict[str, np.ndarray] = {}
    attributes: dict[str, object] = {"hidden_size": h, "activations": activations(spec) * dirs}
    if spec.kind == "gru":
        attributes["linear_before_reset"] = linear_before_reset
    if spec.bidirectional:
        attributes["direction"] = "bidirectional"
    lengths = ["lengths"] if spec.variable_length else []
    nodes = [helper.make_node("Transpose", ["x"], ["x1"], perm=[1, 0, 2])]  # ONNX's layout 0: (steps, batch, in)
    for layer in range(1, spec.layers + 1):
        mine = blocks[(layer - 1) * dirs : layer * dirs]  # forward, then backward: ONNX's direction axis
        w, r, b = (_name(n, layer) for n in ("W", "R", "B"))
        init[w] = np.stack([np.asarray(k.kernel, np.float32)[:, cols].T for k in mine])
        init[r] = np.stack([np.asarray(k.recurrent_kernel, np.float32)[:, cols].T for k in mine])
        init[b] = np.stack([_bias_row(info.bias_rows, k.bias, cols) for k in mine])
        last = layer == spec.layers
        outputs = ["", "h_last"] if last else [f"y{layer}"]
        nodes.append(helper.make_node(OPERATOR[spec.kind], [f"x{layer}", w, r, b, *lengths], outputs, **attributes))
        if not last:  # Y (steps, dirs, batch, h) -> (steps, batch, dirs * h): the next layer's input
            nodes += [helper.make_node("Transpose", [f"y{layer}"], [f"y{layer}t"], perm=[0, 2, 1, 3]),
                      helper.make_node("Reshape", [f"y{layer}t", "sequence_shape"], [f"x{layer + 1}"])]  # fmt: skip
            init["sequence_shape"] = np.array([0, 0, -1], np.int64)  # 0: this dimension as it is
    if dirs == 1:
        init["squeeze_axes"] = np.array([0], np.int64)
        nodes.append(helper.make_node("Squeeze", ["h_last", "squeeze_axes"], ["h"]))
    else:  # Y_h (dirs, batch, h) -> (batch, dirs * h), forward first
        init["state_shape"] = np.array([0, -1], np.int64)
        nodes += [helper.make_node("Transpose", ["h_last"], ["h_last_t"], perm=[1, 0, 2]),
                  helper.make_node("Reshape", ["h_last_t", "state_shape"], ["h"])]  # fmt: skip
    init["dense_kernel"] = np.asarray(weights.dense_kernel, np.float32)
    init["dense_bias"] = np.asarray(weights.dense_bias, np.float32)
    nodes += [helper.make_node("MatMul", ["h", "dense_kernel"], ["logits"]),
              helper.make_node("Add", ["logits", "dense_bias"], ["y"])]  # fmt: skip
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", spec.steps, spec.features])]
    if spec.variable_length:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]))
    graph = helper.make_graph(
        nodes, f"seqbench_{spec.kind}", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", spec.outputs])],
        [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in init.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="seqbench")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _name(initializer: str, layer: int) -> str:
    """Layer 1's ``W``, ``R``, ``B`` keep the names a single layer's have; layer 2's are ``W_2`` ..."""
    return initializer if layer == 1 else f"{initializer}_{layer}"


def _bias_row(rows: int, bias: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """ONNX's bias row of one direction: the input bias then the recurrent one (zero for one canonical row)."""
    bias = np.asarray(bias, np.float32)
    b_in, b_rec = (bias, np.zeros_like(bias)) if rows == 1 else (bias[0], bias[1])
    return np.concatenate([b_in[cols], b_rec[cols]])


def read_weights(spec: ModelSpec, model: onnx.ModelProto, order: Sequence[str] | None = None) -> Weights:
    """The canonical weights a graph of :func:`build_graph` holds: its initializers, read back."""
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    info, h = spec.info, spec.units
    back = np.argsort(info.gate_columns(order or ONNX_ORDER[spec.kind], h))
    blocks = []
    for layer in range(1, spec.layers + 1):
        for d in range(spec.directions):
            w_b, r_b = np.split(init[_name("B", layer)][d], 2)
            bias = w_b[back] if info.bias_rows == 1 else np.stack([w_b[back], r_b[back]])
            blocks.append(LayerWeights(init[_name("W", layer)][d].T[:, back], init[_name("R", layer)][d].T[:, back],
                                       bias))  # fmt: skip
    return Weights.of_blocks(blocks, init["dense_kernel"], init["dense_bias"])
