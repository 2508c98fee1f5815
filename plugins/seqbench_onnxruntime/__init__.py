"""ONNX Runtime: the runtime people deploy recurrent models with, as an inference-only backend.

It does not train (``trains = False``): a cell builds the ONNX graph of the canonical model from the initial
weights the harness gives it, with onnx's RNN, LSTM or GRU operator (:mod:`seqbench_onnxruntime.graph`), and
the harness times its inference alone.  Importing this module imports neither onnx nor onnxruntime; they are
imported in the worker, in :meth:`OnnxRuntimeBackend.configure` and :meth:`OnnxRuntimeBackend.build`.

Implementation ``rnn-op``: the operator on onnxruntime's CPU execution provider; stacked layers (one operator
each), ``direction="bidirectional"`` and variable lengths (the operator's ``sequence_lens``) included.  A GPU needs the
onnxruntime-gpu package and its CUDA provider, which this backend does not set up: cpu only.
"""

from __future__ import annotations

from collections.abc import Callable

import seqbench
from seqbench.contract import MODEL_SHAPES, Backend, BackendBase, Model, ModelSpec, Weights
from seqbench_onnxruntime.layout import ACTIVATION, OPERATOR


class OnnxRuntimeBackend(BackendBase):
    name = "onnxruntime"
    implementations = ("rnn-op",)
    trains = False
    model_shapes = MODEL_SHAPES
    requires = ("onnxruntime", "onnx")
    distributions = ("onnxruntime", "onnx")
    install_hint = "pip install -e '.[onnxruntime]' -c constraints.txt  (in the seqbench checkout)"

    def __init__(self) -> None:
        self.threads = 1

    def supports(self, implementation: str, spec: ModelSpec, device: str) -> str | None:
        reason = super().supports(implementation, spec, device)
        if reason is None and spec.kind not in OPERATOR:
            reason = f"ONNX has no operator for model kind {spec.kind!r}"
        if reason is None and spec.activation not in ACTIVATION:
            reason = f"ONNX's {OPERATOR[spec.kind]} operator has no activation {spec.activation!r}"
        return reason

    def configure(self, device: str, threads: int) -> None:
        # The imports (onnx, which builds the graph, takes most of a second) belong to the worker's start-up,
        # which the runner overlaps with the cell before, not to the first cell.
        import seqbench_onnxruntime.model  # noqa: F401 - imports onnxruntime and onnx

        self.threads = threads

    def build(self, implementation: str, spec: ModelSpec, weights: Weights, device: str) -> Model:
        self.check_supported(implementation, spec, device)
        from seqbench_onnxruntime.model import OnnxRuntimeModel

        return OnnxRuntimeModel(spec, weights, self.threads)


@seqbench.hookimpl
def seqbench_register_backends(register: Callable[[Backend], None]) -> None:
    register(OnnxRuntimeBackend())
