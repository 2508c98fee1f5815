"""One thread environment: the cells, the calibration and the matmul peak all run under the same variables."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from seqbench import calibration, efficiency
from seqbench.errors import SeqbenchError
from seqbench.threads import THREAD_ENV_VARS, thread_env
from seqbench.worker import _child_env

ROOT = Path(__file__).resolve().parent.parent


def _threads_in(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.endswith("_NUM_THREADS")}


def _capture(monkeypatch, module) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    def run(*args, env=None, **kwargs):
        seen.append(dict(env or {}))
        raise subprocess.TimeoutExpired("x", 0)

    monkeypatch.setattr(module.subprocess, "run", run)
    return seen


def test_the_cells_the_calibration_and_the_peak_share_one_thread_environment(monkeypatch):
    for name in THREAD_ENV_VARS:  # whatever this shell had, each child gets the count asked for
        monkeypatch.setenv(name, "7")
    want = {name: "3" for name in THREAD_ENV_VARS}
    assert _threads_in(_child_env(3)) == want
    peak = _capture(monkeypatch, efficiency)
    with pytest.raises(SeqbenchError):  # the fake run times out
        efficiency.measure_matmul_peak(3)
    assert _threads_in(peak[0]) == want
    cal = _capture(monkeypatch, calibration)
    calibration.run_calibration()
    assert _threads_in(cal[0]) == {name: "1" for name in THREAD_ENV_VARS}
    assert _threads_in(thread_env(2, {})) == {name: "2" for name in THREAD_ENV_VARS}


def test_no_module_spells_a_thread_variable_of_its_own():
    """A variable named anywhere but seqbench/threads.py would be set in one place and not the others."""
    spelled = re.compile(r"[\"'][A-Z]+_NUM_THREADS[\"']")
    found = [f"{path.relative_to(ROOT)}: {m.group()}" for folder in ("seqbench", "plugins", "benchmarks")
             for path in (ROOT / folder).rglob("*.py") if path.name != "threads.py"
             for m in spelled.finditer(path.read_text())]  # fmt: skip
    assert found == []
