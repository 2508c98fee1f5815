"""A plugin whose import hangs for ``SEQBENCH_TEST_IMPORT_HANG`` seconds (default 0: it imports at once),
as one that waits on a network share or a lock at module level would."""

from __future__ import annotations

import os
import time

time.sleep(float(os.environ.get("SEQBENCH_TEST_IMPORT_HANG", "0")))
