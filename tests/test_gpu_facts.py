"""Whether a backend may use the GPU is answered from cheap facts, without importing its framework.

``--device auto`` trusts ``supports(..., "gpu")``: a backend that says yes on a
CPU-only machine makes every one of its cells fail.
"""

from __future__ import annotations

import sys

import pytest
import seqbench_keras
import seqbench_torch
from seqbench_keras import KerasBackend
from seqbench_torch import TorchBackend

import seqbench
import seqbench.contract as contract
from seqbench.contract import ModelSpec
from seqbench.plugins import Registry
from seqbench.runner import RunConfig, plan
from seqbench.tasks import ArithmeticTask

SPEC = ModelSpec(kind="rnn", units=10, steps=3)


@pytest.fixture
def no_tensorflow_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)


def _installed(**versions: str):
    return lambda dist: versions.get(dist.replace("-", "_"))


def test_keras_on_a_cpu_only_tensorflow_build_refuses_the_gpu(monkeypatch, no_tensorflow_imported):
    monkeypatch.setattr(seqbench_keras, "_installed", _installed(keras="3.15.0", tensorflow_cpu="2.21.0"))
    reason = KerasBackend().supports("graph", SPEC, "gpu")
    assert reason == "the installed TensorFlow (tensorflow-cpu) is a CPU-only build"
    assert "tensorflow" not in sys.modules  # answered without importing it
    monkeypatch.setattr(seqbench_keras, "_installed", _installed(keras="3.15.0"))
    assert KerasBackend().supports("graph", SPEC, "gpu") == "TensorFlow is not installed"


def test_keras_with_a_cuda_capable_build_asks_for_the_driver(monkeypatch, no_tensorflow_imported):
    monkeypatch.setattr(seqbench_keras, "_installed", _installed(keras="3.15.0", tensorflow="2.21.0"))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(seqbench_keras, "no_nvidia_driver", lambda: "no NVIDIA driver found")
    assert KerasBackend().supports("graph", SPEC, "gpu") == "no NVIDIA driver found"
    monkeypatch.setattr(seqbench_keras, "no_nvidia_driver", lambda: None)
    assert KerasBackend().supports("graph", SPEC, "gpu") is None
    assert KerasBackend().supports("graph", SPEC, "cpu") is None


def test_torch_cpu_build_and_missing_driver_refuse_the_gpu(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(seqbench_torch, "_torch_version", lambda: None)
    assert TorchBackend().supports("loop", SPEC, "gpu") == "torch is not installed"
    monkeypatch.setattr(seqbench_torch, "_torch_version", lambda: "2.13.0+cpu")
    assert "CPU-only build" in (TorchBackend().supports("loop", SPEC, "gpu") or "")
    monkeypatch.setattr(seqbench_torch, "_torch_version", lambda: "2.13.0")
    monkeypatch.setattr(seqbench_torch, "no_nvidia_driver", lambda: "no NVIDIA driver found")
    assert TorchBackend().supports("loop", SPEC, "gpu") == "no NVIDIA driver found"


@pytest.mark.parametrize(
    "platform,proc,libcuda,expected",
    [
        ("darwin", True, "libcuda.so", "macOS has no CUDA"),
        ("linux", True, None, None),
        ("linux", False, "libcuda.so.1", None),  # WSL2 has libcuda but no /proc/driver/nvidia
        ("linux", False, None, "no NVIDIA driver found"),
    ],
)
def test_the_driver_check(monkeypatch, platform, proc, libcuda, expected):
    import ctypes.util

    contract.no_nvidia_driver.cache_clear()
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(contract.Path, "exists", lambda self: proc if "nvidia" in str(self) else False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: libcuda if name == "cuda" else None)
    try:
        reason = contract.no_nvidia_driver()
        assert reason is None if expected is None else expected in reason
    finally:
        contract.no_nvidia_driver.cache_clear()


def test_device_auto_with_keras_on_a_machine_without_a_gpu_plans_the_cpu(monkeypatch, no_tensorflow_imported):
    monkeypatch.setattr(seqbench_keras, "_installed", _installed(keras="3.15.0", tensorflow="2.21.0"))
    monkeypatch.setattr(seqbench_keras, "no_nvidia_driver", lambda: "no NVIDIA driver found")
    backend = KerasBackend()
    monkeypatch.setattr(backend, "availability", lambda: seqbench.Availability(True))
    registry = Registry(backends={"keras": backend}, tasks={"arithmetic": ArithmeticTask()})
    cells = plan(RunConfig(backends=("keras",), models=("rnn",), seeds=1, device="auto"), registry).cells
    assert {c.device for c in cells} == {"cpu"}


def test_the_machine_records_its_gpu_models_and_a_cpu_machine_keeps_its_id(tmp_path, monkeypatch):
    from seqbench.machine import machine_info

    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: no driver, and no "gpus" key
    assert "gpus" not in machine_info()
    smi = tmp_path / "nvidia-smi"  # a driver's tool that answers as on a node with two GPUs
    smi.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3'\necho 'NVIDIA H100 80GB HBM3'\n")
    smi.chmod(0o755)
    assert machine_info()["gpus"] == ["NVIDIA H100 80GB HBM3"] * 2
