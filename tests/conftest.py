"""Shared fixtures: fresh plugin managers, the CLI in a subprocess, test plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TEST_PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def plugin_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment under which the faulty test plugins are installed.

    ``tests/plugins`` holds a ``.dist-info`` whose entry points name the test
    plugins, so putting it on the path installs them through the very
    machinery third-party plugins use.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TEST_PLUGINS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("SEQBENCH_PLUGINS", None)
    env.pop("SEQBENCH_DISABLE_PLUGINS", None)
    monkeypatch.syspath_prepend(str(TEST_PLUGINS))
    return env


def seqbench(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the CLI as a user would, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "seqbench", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )  # fmt: skip


def run_dir_of(result: subprocess.CompletedProcess[str]) -> Path:
    """The run directory a ``seqbench run`` printed last."""
    return Path(result.stdout.strip().splitlines()[-1])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
