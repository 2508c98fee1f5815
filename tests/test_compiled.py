"""seqbench.compiled: the helpers for backends on compiled frameworks (no framework needed)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from seqbench.compiled import padded_batches


def test_padded_batches_mask_exactly_the_real_rows() -> None:
    idx, mask = padded_batches(np.arange(10)[::-1], 4)
    assert idx.shape == mask.shape == (3, 4) and idx.dtype == np.int32 and mask.dtype == np.float32
    assert idx.reshape(-1)[:10].tolist() == list(range(9, -1, -1)) and mask.sum() == 10
    assert mask[2].tolist() == [1, 1, 0, 0] and idx[2, 2:].tolist() == [0, 0]
    idx, mask = padded_batches(np.arange(8), 4)  # no short batch: no padding
    assert idx.shape == (2, 4) and mask.all()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity control on this OS")
def test_restrict_affinity_pins_to_the_first_allowed_cpus() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("needs two CPUs")
    code = (
        "import os\nfrom seqbench.compiled import restrict_affinity\n"
        f"assert restrict_affinity(0) == {allowed}\n"
        f"assert restrict_affinity({len(allowed) + 4}) == {allowed}\n"
        f"assert restrict_affinity(1) == [{allowed[0]}] == sorted(os.sched_getaffinity(0))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # a child: this process keeps its CPUs
