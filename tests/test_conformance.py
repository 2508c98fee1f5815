"""Every registered backend passes the conformance kit, the reference included."""

import pytest

from seqbench.plugins import load_registry
from seqbench.testing import BackendConformance

pytestmark = pytest.mark.slow

# Keras fixes its engine per process and runs on TensorFlow here: Keras on the
# other engines passes the same kit in a process of its own (test_keras_engines.py).
OWN_PROCESS = {"keras-jax", "keras-torch"}


class TestEveryBackend(BackendConformance):
    backends = tuple(sorted(set(load_registry().backends) - OWN_PROCESS))
