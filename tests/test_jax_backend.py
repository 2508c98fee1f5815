"""The JAX backend: the conformance kit, layout, training against NumPy, the CLI end to end."""

from __future__ import annotations

import pytest

from seqbench.testing import BackendConformance

jax = pytest.importorskip("jax")

pytestmark = [pytest.mark.slow, pytest.mark.framework]


class TestJaxConformance(BackendConformance):
    backends = ("jax",)
