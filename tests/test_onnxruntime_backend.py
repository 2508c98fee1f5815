"""The onnxruntime backend: inference only, its ONNX graph equals the reference, and the kit refuses a wrong graph."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from seqbench_onnxruntime import OnnxRuntimeBackend  # noqa: E402
from seqbench_onnxruntime.model import OnnxRuntimeModel  # noqa: E402

import seqbench.testing as kit  # noqa: E402
from seqbench.contract import ACTIVATIONS, MODEL_KINDS, ModelSpec, backend_trains  # noqa: E402
from seqbench.errors import SeqbenchError  # noqa: E402


class TestOnnxRuntime(kit.BackendConformance):
    """The whole kit: the training checks skip (inference only), the forward and weights checks run."""

    backends = ("onnxruntime",)


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("head", [("regression", 1), ("classification", 10)])
def test_the_onnx_forward_equals_the_reference_within_1e_5(kind, activation, head):
    spec = ModelSpec(kind, 16, 8, 3, activation, head=head[0], outputs=head[1])  # type: ignore[arg-type]
    assert OnnxRuntimeBackend().supports("rnn-op", spec, "cpu") is None
    weights = kit.random_weights(spec, 4)
    x = np.random.default_rng(0).standard_normal((40, 8, 3)).astype(np.float32)
    got = OnnxRuntimeModel(spec, weights).predict(x)
    assert kit.relative_error(got, kit.reference_forward(spec, weights, x)) <= kit.FORWARD_RTOL


def test_the_backend_says_it_does_not_train_and_refuses_what_onnx_cannot_express(monkeypatch):
    from seqbench_onnxruntime import layout

    backend = OnnxRuntimeBackend()
    assert backend_trains(backend) is False and backend.devices == ("cpu",)
    with pytest.raises(SeqbenchError, match="inference only"):
        OnnxRuntimeModel(ModelSpec("rnn", 4, 3), kit.random_weights(ModelSpec("rnn", 4, 3))).train_epoch(
            np.arange(4), 2)
    monkeypatch.delitem(layout.ACTIVATION, "relu")  # as if ONNX had no Relu: refused with a reason, never computed
    why = backend.supports("rnn-op", ModelSpec("lstm", 4, 3, activation="relu"), "cpu")
    assert why == "ONNX's LSTM operator has no activation 'relu'"


def _case(kind: str, shape: str = "normal") -> kit.Case:
    s = kit.SHAPE[shape]
    spec = ModelSpec(kind, s.units, s.steps, s.features, "tanh")  # type: ignore[arg-type]
    return kit.Case("wrong", "rnn-op", "cpu", spec, shape, s.samples, s.batch)


class _Wrong(OnnxRuntimeBackend):
    def __init__(self, **graph: object) -> None:
        super().__init__()
        self.graph = graph

    def build(self, implementation, spec, weights, device):  # noqa: ANN001, ANN201
        return OnnxRuntimeModel(spec, weights, **self.graph)  # type: ignore[arg-type]


def test_the_kit_catches_a_wrong_gate_order_in_the_onnx_graph(monkeypatch):
    # the canonical order handed to ONNX as if it were ONNX's: forget, candidate and output land in the wrong gates
    wrong = _Wrong(order=("input", "forget", "candidate", "output"))
    monkeypatch.setattr(kit, "backend_for", lambda name, device="cpu": wrong)
    with pytest.raises(AssertionError, match="predictions differ from the reference.*the gate order"):
        kit.BackendConformance().test_forward_matches_reference(_case("lstm"))


def test_the_kit_catches_a_gru_built_with_the_wrong_reset_convention(monkeypatch):
    wrong = _Wrong(linear_before_reset=0)  # reset applied before the recurrent product: Keras's reset_after=False
    monkeypatch.setattr(kit, "backend_for", lambda name, device="cpu": wrong)
    with pytest.raises(AssertionError, match="predictions differ from the reference"):
        kit.BackendConformance().test_forward_matches_reference(_case("gru"))
    monkeypatch.setattr(kit, "backend_for", lambda name, device="cpu": _Wrong())
    kit.BackendConformance().test_forward_matches_reference(_case("gru"))  # the right one passes


@pytest.mark.slow
def test_a_run_with_the_onnxruntime_backend_has_no_error_rows_and_no_training_columns(tmp_path):
    done = subprocess.run([sys.executable, "-m", "seqbench.cli", "run", "--backends", "numpy,onnxruntime",
                           "--models", "rnn,lstm", "--epochs", "2", "--seeds", "1", "--no-calibration",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    run_dir = done.stdout.strip().splitlines()[-1]
    cells = [json.loads(line) for line in open(f"{run_dir}/cells.jsonl")]
    epochs = [json.loads(line) for line in open(f"{run_dir}/epochs.jsonl")]
    assert sorted((c["backend"], c["model"], c["status"]) for c in cells) == [
        ("numpy", "lstm", "ok"), ("numpy", "rnn", "ok"), ("onnxruntime", "lstm", "ok"), ("onnxruntime", "rnn", "ok")]
    for cell in cells:
        ort_cell = cell["backend"] == "onnxruntime"
        assert bool(cell["inference_only"]) is ort_cell
        assert cell["latency_p50_s"] > 0 and cell["throughput_per_s"] > 0
        training = ("final_loss", "first_epoch_s", "steady_epoch_s", "accuracy", "samples_per_s", "gflops_per_s")
        assert all((cell[c] is None) is ort_cell for c in training), cell
        assert cell["epochs_run"] == (0 if ort_cell else 2) and cell["error"] is None
    assert {e["backend"] for e in epochs} == {"numpy"}
    assert "ok (inference only)" in done.stdout and "inference only: a backend that does not train" in done.stdout
