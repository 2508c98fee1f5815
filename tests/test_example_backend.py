"""An out-of-tree backend is installed, discovered, listed, run and validated
without any change to the core."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import read_jsonl, run_dir_of, seqbench

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).parent / "example_backend"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """pip-install the example package into a private directory; return the env that sees it."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert list(target.glob("seqbench_example-*.dist-info"))
    return {**os.environ, "PYTHONPATH": str(target)}


def test_it_is_listed(installed):
    result = seqbench("list", env=installed)
    assert result.returncode == 0 and "example" in result.stdout and "float64" in result.stdout


def test_it_runs_beside_the_builtin_backend(installed, tmp_path):
    result = seqbench("run", "--backends", "example,numpy", "--epochs", "2", "--seeds", "1",
                      "--results-dir", str(tmp_path), env=installed)  # fmt: skip
    assert result.returncode == 0, result.stderr
    cells = read_jsonl(run_dir_of(result) / "cells.jsonl")
    assert {(c["backend"], c["status"]) for c in cells} == {("example", "ok"), ("numpy", "ok")}
    assert {c["implementation_path"] for c in cells if c["backend"] == "example"} == {"numpy-bptt-float64"}


def test_it_passes_the_conformance_kit_with_one_line(installed, tmp_path):
    (tmp_path / "test_mine.py").write_text(
        "from seqbench.testing import BackendConformance\n\n\n"
        "class TestExample(BackendConformance):\n    backends = ('example',)\n"
    )
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, env=installed, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
