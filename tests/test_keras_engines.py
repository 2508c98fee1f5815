"""Keras on jax and on torch: names, availability and versions here; the kit in a process per engine.

Keras picks its engine once per process, so the framework checks run in a
child pytest (``tests/keras_engine_checks.py``), one per engine, never in this
process, where Keras runs on TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from seqbench_keras import KerasBackend, KerasJaxBackend, KerasTorchBackend

from seqbench.contract import ModelSpec

CHECKS = Path(__file__).with_name("keras_engine_checks.py")


def test_three_engines_register_without_importing_one() -> None:
    code = (
        "import sys, seqbench_keras; found = []\n"
        "seqbench_keras.seqbench_register_backends(found.append)\n"
        "assert [b.name for b in found] == ['keras', 'keras-jax', 'keras-torch'], found\n"
        "[(b.availability(), b.versions()) for b in found]\n"
        "assert not {'tensorflow', 'keras', 'jax', 'torch'} & set(sys.modules), 'framework imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "backend, missing, hint",
    [(KerasJaxBackend, "jax", "'.[keras-jax]'"), (KerasTorchBackend, "torch", "'.[keras-torch]'")],
)
def test_missing_engine_is_named_with_its_install_hint(monkeypatch: pytest.MonkeyPatch, backend, missing, hint) -> None:  # noqa: ANN001
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    availability = backend().availability()
    assert not availability.available and availability.reason.startswith(missing), availability
    assert hint in availability.install_hint
    assert KerasBackend().availability().available == (real("tensorflow") is not None and real("keras") is not None)


def test_engines_offer_their_own_implementations_and_versions() -> None:
    assert KerasBackend.implementations == ("graph", "xla", "fit")  # unchanged
    assert KerasJaxBackend.implementations == ("epoch", "fit")
    assert KerasTorchBackend.implementations == ("step", "fit")
    assert {"jax", "keras"} <= set(KerasJaxBackend().versions()) or importlib.util.find_spec("jax") is None
    assert "tensorflow" not in "".join(KerasTorchBackend().versions())
    spec = ModelSpec("lstm", 10, 3)
    assert "implementation" in (KerasJaxBackend().supports("graph", spec, "cpu") or "")
    assert "implementation" in (KerasTorchBackend().supports("epoch", spec, "cpu") or "")


def test_configure_refuses_a_process_on_another_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    code = (
        "import os; os.environ['KERAS_BACKEND'] = 'numpy'\n"
        "import keras, seqbench, seqbench_keras\n"
        "try:\n"
        "    seqbench_keras.KerasTorchBackend().configure('cpu', 1)\n"
        "except seqbench.SeqbenchError as e:\n"
        "    assert 'cannot switch engines' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('configure accepted a process on the numpy engine')\n"
    )
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
@pytest.mark.framework
@pytest.mark.engines
@pytest.mark.parametrize("backend", [KerasJaxBackend, KerasTorchBackend], ids=lambda b: b.name)
def test_conformance_kit_and_training_in_a_process_of_their_own(backend) -> None:  # noqa: ANN001
    availability = backend().availability()
    if not availability.available:
        pytest.skip(f"{backend.name}: {availability.reason}")
    env = {**os.environ, "SEQBENCH_TEST_KERAS_BACKEND": backend.name, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
         str(CHECKS)],
        capture_output=True, text=True, env=env, timeout=900, cwd=CHECKS.parent.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
