"""An onnxruntime session over the graph of :mod:`seqbench_onnxruntime.graph`.  Imports onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from seqbench.contract import ModelBase, ModelSpec, Weights
from seqbench.errors import SeqbenchError
from seqbench_onnxruntime.graph import build_graph, read_weights
from seqbench_onnxruntime.layout import OPERATOR

PROVIDER = "CPUExecutionProvider"


class OnnxRuntimeModel(ModelBase):
    """Predicts with onnxruntime; never trains (the backend says ``trains = False``, so the harness never asks)."""

    def __init__(self, spec: ModelSpec, weights: Weights, threads: int = 1, order: Sequence[str] | None = None,
                 linear_before_reset: int = 1) -> None:  # fmt: skip
        weights.check(spec)
        self.spec, self.order = spec, order
        self.graph = build_graph(spec, weights, order, linear_before_reset)
        options = ort.SessionOptions()
        # The worker's thread count, as every backend runs (seqbench.threads); one inter-op thread: the graph
        # is a chain, nothing runs in parallel beside it.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(self.graph.SerializeToString(), options, providers=[PROVIDER])
        shape = ("-bidirectional" if spec.bidirectional else "") + ("+sequence_lens" if spec.variable_length else "")
        self.path = f"onnxruntime-{OPERATOR[spec.kind]}{shape}/{PROVIDER}"

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        raise SeqbenchError("the onnxruntime backend is inference only: it does not train")

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        raise SeqbenchError("the onnxruntime backend is inference only: it does not train")

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        feed = {"x": np.ascontiguousarray(x, np.float32)}
        if lengths is not None:
            feed["lengths"] = np.asarray(lengths, np.int32)
        out = np.asarray(self.session.run(None, feed)[0], np.float32)
        return out if self.spec.classification else out[:, 0]

    def get_weights(self) -> Weights:
        return read_weights(self.spec, self.graph, self.order)

    def trainable_params(self) -> int:
        # It trains none; this counts the canonical parameters its graph holds (the zero recurrent bias that
        # ONNX's bias row carries for the RNN and the LSTM is not one), so that reports compare like with like.
        return sum(int(a.size) for a in self.get_weights().arrays().values())

    def describe(self) -> dict[str, str]:
        return {"onnxruntime": ort.__version__, "provider": PROVIDER, "opset": str(self.graph.opset_import[0].version),
                "intra_op_threads": str(self.session.get_session_options().intra_op_num_threads)}  # fmt: skip
