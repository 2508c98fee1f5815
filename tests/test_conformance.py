"""Every registered backend passes the conformance kit, the reference included."""

import pytest

from seqbench.testing import BackendConformance

pytestmark = pytest.mark.slow


class TestEveryBackend(BackendConformance):
    pass
