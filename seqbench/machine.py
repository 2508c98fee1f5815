"""Facts about the machine and software a run happened on, collected once per run."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seqbench.results import GitInfo


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _gpu_models() -> list[str] | None:
    """The model of each NVIDIA GPU this machine shows (``nvidia-smi``), or None where there is no driver.

    A job on a cluster records the GPUs of the node it landed on: they are part of what its times measure.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()] or None


def machine_id(info: dict[str, Any]) -> str:
    """A short, stable id for the machine described by ``info`` (run.json's ``machine``)."""
    text = json.dumps(info, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }
    gpus = _gpu_models()
    if gpus:  # only where there are any: a CPU machine keeps the id (a hash of these facts) it always had
        info["gpus"] = gpus
    return info


def package_versions(names: list[str]) -> dict[str, str]:
    """Installed versions of ``names`` (from their metadata: nothing is imported); missing ones are left out.

    Plugins reach it as ``seqbench.contract.installed_versions`` (since 0.3).
    """
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def git_commit(path: Path) -> GitInfo | None:
    """The commit (and dirtiness) of the git checkout holding ``path``, if any."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        info: GitInfo = {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "-uno"))}
    except (OSError, subprocess.SubprocessError):
        return None
    try:  # extras for dashboards (pytest-benchmark's commit_info); a detached HEAD has no branch
        committed, authored = git("log", "-1", "--format=%cI%n%aI").splitlines()
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        info["time"], info["author_time"] = committed, authored
        info["branch"] = None if branch == "HEAD" else branch
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return info
