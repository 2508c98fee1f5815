"""One child process per (backend, implementation, device) group.

The parent starts ``python -m seqbench.worker --fd N``, writes the group's
cells as JSON to its stdin, and reads JSON lines back from file descriptor N:
``start`` when a cell begins, ``epoch`` after each epoch, ``cell`` when a cell
ends (ok, diverged or error, with the traceback as text).  The child's own
stdout and stderr go to a log file, so framework noise never mixes with the
protocol.

The parent enforces the per-cell timeout and survives a child that hangs or
dies: the cell in flight is recorded as ``timeout`` or ``error`` and a fresh
child takes the cells that remain.  Children run in their own session, so a
Ctrl-C at the terminal reaches only the parent, which stops them.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seqbench.results import (
    STATUS_ERROR,
    STATUS_TIMEOUT,
    CellConfig,
    CellRecord,
    EpochRecord,
    as_row,
    failed_cell,
)

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class Group:
    """Cells that share one worker process."""

    backend: str
    implementation: str
    device: str
    cells: tuple[CellConfig, ...]

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.implementation}-{self.device}"


@dataclass(frozen=True)
class Callbacks:
    on_start: Callable[[CellConfig], None]
    on_epoch: Callable[[EpochRecord], None]
    on_cell: Callable[[CellRecord], None]


# ------------------------------------------------------------------ parent


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    # Thread pools read these when the library loads, i.e. before any backend
    # code runs; backends also set their framework's own knobs in configure().
    env.update({var: str(threads) for var in THREAD_ENV_VARS})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class _Child:
    """A running worker and the line-buffered pipe it reports on."""

    def __init__(self, group: Group, cells: list[CellConfig], threads: int, log: Path) -> None:
        self.read_fd, write_fd = os.pipe()
        with open(log, "ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "seqbench.worker", "--fd", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                env=_child_env(threads),
                start_new_session=True,
            )
        os.close(write_fd)
        request = {"backend": group.backend, "threads": threads, "cells": [asdict(c) for c in cells]}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died at once; its exit is handled by the reader
        self._buffer = b""

    def read(self, timeout: float) -> list[dict[str, Any]] | None:
        """Messages that arrived within ``timeout`` s ([] if none), None at EOF."""
        ready, _, _ = select.select([self.read_fd], [], [], max(timeout, 0))
        if not ready:
            return []
        chunk = os.read(self.read_fd, 1 << 16)
        if not chunk:
            return None
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = self.proc.wait()
        os.close(self.read_fd)
        return code


def run_group(group: Group, threads: int, timeout: float, log: Path, callbacks: Callbacks) -> None:
    """Run every cell of ``group`` in child processes; report through ``callbacks``.

    Each cell ends in exactly one ``on_cell`` call, whatever happens to the child.
    """
    pending = list(group.cells)
    while pending:
        sent = list(pending)  # the child's "start" messages index this list
        child = _Child(group, sent, threads, log)
        current: CellConfig | None = None
        deadline = time.monotonic() + timeout  # starting the child counts against the first cell
        try:
            while True:
                messages = child.read(deadline - time.monotonic())
                if messages is None:  # EOF: the child exited
                    break
                if not messages and time.monotonic() >= deadline:
                    cell = current or pending[0]
                    callbacks.on_cell(failed_cell(cell, STATUS_TIMEOUT, f"no result after {timeout:g} s: killed"))
                    pending.remove(cell)
                    current = None
                    break
                for msg in messages:
                    if msg["event"] == "start":
                        current = sent[msg["index"]]
                        deadline = time.monotonic() + timeout
                        callbacks.on_start(current)
                    elif msg["event"] == "epoch":
                        callbacks.on_epoch(EpochRecord(**msg["record"]))
                    elif msg["event"] == "cell":
                        callbacks.on_cell(CellRecord(**msg["record"]))
                        pending.remove(current)  # type: ignore[arg-type]
                        current = None
        finally:
            code = child.stop()
        if current is not None or (pending and messages is None):
            # The child died with a cell in flight (or before its first one).
            cell = current or pending[0]
            tail = _log_tail(log)
            callbacks.on_cell(failed_cell(cell, STATUS_ERROR, f"worker exited with code {code}\n{tail}".rstrip()))
            pending.remove(cell)


# ------------------------------------------------------------------ child


def _worker_main(fd: int) -> int:
    from seqbench.harness import run_cell
    from seqbench.plugins import load_registry

    out = os.fdopen(fd, "w", buffering=1)

    def send(event: str, **payload: Any) -> None:
        out.write(json.dumps({"event": event, **payload}, allow_nan=False) + "\n")

    request = json.load(sys.stdin)
    cells = [CellConfig(**c) for c in request["cells"]]
    setup_error = None
    try:
        registry = load_registry()
        backend = registry.backend(request["backend"])
        backend.configure(cells[0].device, request["threads"])
    except BaseException:  # recorded per cell below; the parent decides what to do
        setup_error = traceback.format_exc()
    for index, cell in enumerate(cells):
        send("start", index=index)
        if setup_error is not None:
            record = failed_cell(cell, STATUS_ERROR, setup_error)
        else:
            try:
                task = registry.task(cell.task)
                record = run_cell(backend, cell, task, lambda r: send("epoch", record=as_row(r)))
            except Exception:
                record = failed_cell(cell, STATUS_ERROR, traceback.format_exc())
        send("cell", record=as_row(record))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqbench.worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="file descriptor to write results to")
    return _worker_main(parser.parse_args(argv).fd)


if __name__ == "__main__":
    sys.exit(main())
