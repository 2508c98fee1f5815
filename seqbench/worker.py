"""One fresh child process per repeat (cell), talking JSON lines over a pipe.

The process is the unit of repetition (docs/measurement.md, "The process
is the unit of repetition"): each repeat runs in a process of its own, so the variation
between processes (thread placement, memory layout, the spin-waits of
thread pools) is sampled, as pyperf's workers do.

The parent starts ``python -m seqbench.worker --fd N``, writes the request
as one JSON line to the child's stdin and keeps stdin open; the child reads
JSON lines back from file descriptor N: ``ready`` once its plugins are
loaded and the backend configured, ``start``, ``epoch`` after each epoch,
``cell`` when the cell ends (ok, diverged or error, with the traceback as
text).  The child's own stdout and stderr go to a log file, so framework
noise never mixes with the protocol.

Start-up (interpreter, plugins, the framework's import) has its own
allowance, ``startup_timeout``; the cell's ``timeout`` starts at ``start``.
The parent kills a child that overruns either and records ``timeout``; a
child that dies is recorded as ``error`` with the tail of its log.

The parent may start the worker with another Python (``--env NAME=EXECUTABLE``:
an A/B run).  Before any cell runs, it asks each such executable
``-m seqbench.worker --hello`` for its :data:`PROTOCOL`, seqbench version,
package versions and git commit (:func:`probe_env`), and refuses an
environment that speaks another protocol, naming both versions.

Children run in their own session, so a Ctrl-C at the terminal reaches only
the parent, which stops them.  They also die with the parent however the
parent dies: Linux's ``PR_SET_PDEATHSIG`` delivers SIGKILL when the parent
exits, and a thread in the child exits the process when its stdin, which
only the parent holds open, reaches end of file.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from seqbench.errors import ResultsError, UsageError
from seqbench.keys import Status
from seqbench.results import MAX_ERROR_BYTES, CellConfig, CellRecord, EpochRecord, as_row, bounded_error, failed_cell
from seqbench.threads import thread_env

# The request and the messages on the pipe.  History:
#   1  (seqbench 0.1-0.2, unnamed) request {backend, plugins, threads, cell}
#   2  (0.3) request {protocol, plugins, cell}: the backend and threads come from the cell alone;
#      epochs carry wait_s and disturbed, cells wait_share, clean_epochs and meter; ``--hello``.
#   3  (0.3, inference) cells carry inference (the request) and latency_*, throughput_per_s, inference_only.
#   4  (0.3) after ``ready`` the worker waits for a ``{"event": "go"}`` line on stdin (started ahead: Ahead).
PROTOCOL = 4
HELLO_TIMEOUT_S = 120.0  # an interpreter and seqbench's light imports, on a busy machine



@dataclass(frozen=True)
class Callbacks:
    on_start: Callable[[CellConfig], None]
    on_epoch: Callable[[EpochRecord], None]


# ------------------------------------------------------------------ parent


def _child_env(threads: int, other_python: bool = False) -> dict[str, str]:
    # Thread pools read these when the library loads, i.e. before any backend
    # code runs; backends also set their framework's own knobs in configure().
    env = thread_env(threads)
    if other_python:
        env.update(OTHER_PYTHON)
    return env


# ``python -m`` puts the working directory first on the import path: run from a checkout, another
# environment's Python would import that checkout's seqbench instead of its own (Python 3.11+ honours this).
OTHER_PYTHON = {"PYTHONSAFEPATH": "1"}


def _log_tail(path: Path, start: int, lines: int = 15, limit: int = MAX_ERROR_BYTES) -> str:
    """The last ``lines`` lines of what one worker wrote to ``path`` from byte ``start`` on, at most ``limit``
    bytes of them: the log is shared by the workers of one backend, and a worker may write megabytes."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(max(start, end - limit))
            data = f.read(limit)
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def exit_text(code: int | None) -> str:
    """How a worker ended, in words: ``worker killed by signal 9 (SIGKILL)``, ``worker exited with code 5``."""
    if code is not None and code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        return f"worker killed by signal {-code}{name}"
    return f"worker exited with code {code}"


def probe_env(name: str, executable: str, packages: list[str]) -> dict[str, Any]:
    """What the environment ``name`` runs: its worker protocol, seqbench version, ``packages``' versions and
    git commit (``EXECUTABLE -m seqbench.worker --hello``).  Raises :class:`UsageError` when it cannot start
    a worker or speaks another protocol than this seqbench."""
    import seqbench

    where = f"environment {name!r} ({executable})"
    mine = f"this seqbench {seqbench.__version__} speaks worker protocol {PROTOCOL}"

    def ask(*args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([executable, *args], capture_output=True, text=True, timeout=HELLO_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, env={**os.environ, **OTHER_PYTHON})  # fmt: skip
        except OSError as e:
            raise UsageError(f"{where} cannot be started: {e.strerror or e}") from None
        except subprocess.TimeoutExpired:
            raise UsageError(f"{where} did not answer within {HELLO_TIMEOUT_S:g} s") from None

    done = ask("-m", "seqbench.worker", "--hello", "--packages", ",".join(packages))
    try:
        facts = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (IndexError, ValueError):
        facts = None
    if not isinstance(facts, dict) or not isinstance(facts.get("protocol"), int):
        version = ask("-c", "import seqbench; print(seqbench.__version__)")
        if version.returncode != 0:
            raise UsageError(f"{where} has no seqbench to run a worker with (install seqbench there)")
        theirs = version.stdout.strip().splitlines()[-1] if version.stdout.strip() else "?"
        raise UsageError(f"{where}: its seqbench {theirs} speaks worker protocol 1 (no --hello); {mine}; "
                         "install matching seqbench versions")  # fmt: skip
    if facts["protocol"] != PROTOCOL:
        raise UsageError(f"{where}: its seqbench {facts.get('seqbench_version')} speaks worker protocol "
                         f"{facts['protocol']}; {mine}; install matching seqbench versions")  # fmt: skip
    return {"executable": executable, **facts}


def hello(packages: list[str]) -> dict[str, Any]:
    """This environment's worker protocol, seqbench version, Python, package versions and git commit."""
    import platform

    import seqbench
    from seqbench.machine import git_commit, package_versions

    return {
        "protocol": PROTOCOL, "seqbench_version": seqbench.__version__, "python": platform.python_version(),
        "packages": package_versions(packages), "git": git_commit(Path(seqbench.__file__).parent),
    }  # fmt: skip


def _open_part(log: Path) -> tuple[BinaryIO, Path]:
    """A file of this worker's own beside the backend's log (``logs/.NAME.log.N.part``): workers started
    ahead of their turn run beside another worker of the same backend, and their output must not interleave.
    The parent appends it to the log, under a line naming the worker, when the worker is done."""
    for n in range(1000):
        part = log.parent / f".{log.name}.{n}.part"
        try:  # the results folder may have gone, or turned read-only, since the run began
            return open(part, "xb"), part  # noqa: SIM115 - the caller closes it once the child holds it
        except FileExistsError:
            continue
        except OSError as e:
            raise ResultsError(f"cannot write {log}: {e.strerror or e}") from e
    raise ResultsError(f"cannot write {log}: 1000 worker outputs beside it already")


class _Child:
    """A running worker and the line-buffered pipe it reports on.

    The child loads its plugins and configures its backend (start-up), says ``ready`` and waits for
    :meth:`go` before it runs the cell, so that it can be started ahead of its turn (:class:`Ahead`).
    """

    def __init__(self, request: dict[str, Any], threads: int, log: Path, executable: str, title: str) -> None:
        self.log, self.title = log, title
        part_file, self.part = _open_part(log)
        self.read_fd, write_fd = os.pipe()
        self.spawned_at = time.monotonic()
        with part_file:
            self.proc = subprocess.Popen(
                [executable, "-m", "seqbench.worker", "--fd", str(write_fd), "--parent", str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=part_file,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                env=_child_env(threads, other_python=executable != sys.executable),
                start_new_session=True,
            )
        os.close(write_fd)
        self._buffer = b""
        self.backlog: list[dict[str, Any]] = []  # messages read while waiting for ready, not yet handed out
        self.eof = False
        self.ready = False
        self._send(request)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:  # stdin stays open: its end of file tells the child that the parent is gone
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the child died (or was stopped); its exit is handled by the reader

    def go(self) -> None:
        """Let the child, ready, run its cell."""
        self._send({"event": "go"})

    def read(self, timeout: float) -> list[dict[str, Any]] | None:
        """Messages that arrived within ``timeout`` s ([] if none), None at EOF."""
        if self.backlog:
            out, self.backlog = self.backlog, []
            return out
        if self.eof:
            return None
        ready, _, _ = select.select([self.read_fd], [], [], max(timeout, 0))
        if not ready:
            return []
        chunk = os.read(self.read_fd, 1 << 16)
        if not chunk:
            self.eof = True
            return None
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def wait_ready(self, until: float) -> None:
        """Read until the child is ready, has ended its start-up in failure (``start`` comes at once then), has
        exited, or the time ``until`` (monotonic) has come; keep what was read for :meth:`read`."""
        while not (self.ready or self.eof) and time.monotonic() < until:
            messages = self.read(until - time.monotonic())
            if messages is None:
                return
            self.backlog += messages
            self.ready = any(m["event"] in ("ready", "start", "cell") for m in self.backlog)

    def stop(self, grace: float = 0.0) -> int | None:
        """End the child (at once, or after ``grace`` s to exit by itself), reap it and file its output."""
        if grace:
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = self.proc.wait()
        for closer in (lambda: self.proc.stdin and self.proc.stdin.close(), lambda: os.close(self.read_fd)):
            try:
                closer()
            except OSError:
                pass
        return code

    def file_log(self) -> None:
        """Append the worker's output to the backend's log, under a line naming it, and remove its own file."""
        try:
            with open(self.log, "ab") as log, open(self.part, "rb") as part:
                log.write(f"==== {self.title} ====\n".encode())
                shutil.copyfileobj(part, log)
            self.part.unlink()
        except OSError as e:  # the results folder may have gone, or turned read-only: say so, keep the rest
            raise ResultsError(f"cannot write {self.log}: {e.strerror or e}") from e


def start_worker(cell: CellConfig, plugins: tuple[str, ...], log: Path, executable: str | None = None) -> _Child:
    """A fresh worker for ``cell``, started: it loads its plugins and configures its backend, then waits for
    its turn (:func:`run_in_worker`)."""
    request = {"protocol": PROTOCOL, "plugins": list(plugins), "cell": asdict(cell)}
    return _Child(request, cell.threads, log, executable or sys.executable, cell.label)


class Ahead:
    """Workers started ahead of their turn, so that start-ups (interpreter, imports, tracing set-up) run
    beside each other, never beside a measurement.

    Before a cell runs, the next ``depth`` CPU cells' workers are started, and every started worker is waited
    for until it is ready: then the measured worker has the machine to itself but for workers that sit
    blocked on a read.  GPU cells are never started ahead: an idle framework may hold device memory that
    the measured one needs.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.started: list[tuple[CellConfig, _Child]] = []

    def take(self, cell: CellConfig) -> _Child | None:
        """The worker started ahead for ``cell`` (the queue's next cell), or None."""
        if self.started and self.started[0][0] is cell:
            return self.started.pop(0)[1]
        return None

    def start(self, upcoming: list[CellConfig], spawn: Callable[[CellConfig], _Child]) -> None:
        """Start the next cells' workers when none is started: ``upcoming`` is the queue, next first."""
        if self.started or self.depth <= 0:
            return
        for cell in upcoming[: self.depth]:
            if cell.device != "cpu":
                break
            self.started.append((cell, spawn(cell)))

    def wait_ready(self, startup_timeout: float) -> None:
        for _, child in self.started:
            if child is not None:  # None: a test's stand-in for a worker
                child.wait_ready(child.spawned_at + startup_timeout)

    def close(self) -> None:
        """Stop the workers that will not get their turn (a stopped run), filing their output."""
        for _, child in self.started:
            if child is None:
                continue
            child.stop()
            try:
                child.file_log()
            except ResultsError:
                pass
        self.started = []


def run_in_worker(cell: CellConfig, plugins: tuple[str, ...], timeout: float, startup_timeout: float, log: Path,
                  callbacks: Callbacks, executable: str | None = None,
                  child: _Child | None = None) -> CellRecord:  # fmt: skip
    """Run one cell in a fresh child process and return its record, whatever happens to the child.

    ``plugins`` are the entry-point plugins the child loads (its backend's and
    its task's: :meth:`seqbench.plugins.Registry.plugins_for`); ``executable``
    starts its Python (this one by default; an A/B run's environment).  ``child``: the cell's worker, if it
    was started ahead (:class:`Ahead`); else one is started now.
    """
    child = child or start_worker(cell, plugins, log, executable)
    record: CellRecord | None = None
    started = False
    deadline = child.spawned_at + startup_timeout
    child.wait_ready(deadline)
    child.go()
    messages: list[dict[str, Any]] | None = []
    try:
        while record is None:
            messages = child.read(deadline - time.monotonic())
            if messages is None:  # EOF: the child exited
                break
            if not messages and time.monotonic() >= deadline:
                why = f"no result after {timeout:g} s" if started else \
                    f"the worker did not start within {startup_timeout:g} s (--startup-timeout)"
                record = failed_cell(cell, Status.TIMEOUT, f"{why}: killed")
                break
            for msg in messages:
                if msg["event"] == "start":
                    started = True
                    deadline = time.monotonic() + timeout
                    callbacks.on_start(cell)
                elif msg["event"] == "epoch":
                    callbacks.on_epoch(EpochRecord(**msg["record"]))
                elif msg["event"] == "cell":
                    record = CellRecord(**msg["record"])
    finally:
        code = child.stop(grace=2.0 if record is not None and record.status != Status.TIMEOUT else 0.0)
    if record is None:  # the child died, in start-up or with the cell in flight: how first, then its last words
        tail = _log_tail(child.part, 0)
        record = failed_cell(cell, Status.ERROR, f"{exit_text(code)}\n{tail}".rstrip())
    elif record.error:  # from the child, maybe another seqbench's (an A/B run): bounded here too
        record = replace(record, error=bounded_error(record.error))
    child.file_log()
    return record


# ------------------------------------------------------------------ child


_PR_SET_PDEATHSIG = 1


def signal_when_parent_dies(sig: int) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent exits, however it exits (nothing
    elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _die_with_parent(parent: int) -> None:
    """Make sure this child never outlives the parent that started it."""
    signal_when_parent_dies(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(70)

    def watch_stdin() -> None:  # everywhere: the parent holds our stdin open until it is done with us
        try:
            for line in sys.stdin.buffer:
                if line.strip() == GO_LINE:
                    _GO.set()
        except (OSError, ValueError):
            pass
        os._exit(70)

    threading.Thread(target=watch_stdin, name="seqbench-parent-watch", daemon=True).start()


GO_LINE = json.dumps({"event": "go"}).encode()
_GO = threading.Event()  # set by the parent's go: the worker, ready, may run its cell


def _wait_for_go(watched: bool) -> None:
    """Block until the parent says go: on the stdin watcher's word, or reading stdin here when none runs."""
    if watched:
        _GO.wait()
        return
    while (line := sys.stdin.buffer.readline()) and line.strip() != GO_LINE:
        pass


def _worker_main(fd: int, parent: int | None) -> int:
    out = os.fdopen(fd, "w", buffering=1)

    def send(event: str, **payload: Any) -> None:
        out.write(json.dumps({"event": event, **payload}, allow_nan=False) + "\n")

    request = json.loads(sys.stdin.buffer.readline())
    if parent is not None:
        _die_with_parent(parent)
    if request.get("protocol") != PROTOCOL:  # the parent checks first (probe_env); this is the last guard
        import seqbench

        send("start")
        send("cell", record={**request.get("cell", {}), "status": Status.ERROR.value,
                             "error": f"the parent speaks worker protocol {request.get('protocol', 1)}, this worker "
                                      f"(seqbench {seqbench.__version__}) speaks {PROTOCOL}"})  # fmt: skip
        return 0
    cell = CellConfig(**request["cell"])
    from seqbench.harness import run_cell
    from seqbench.plugins import load_registry

    try:
        registry = load_registry(only=request["plugins"])
        backend = registry.backend(cell.backend)
        task = registry.task(cell.task)
        backend.configure(cell.device, cell.threads)
    except BaseException:  # recorded as the cell's error; the parent goes on with the next
        send("start")
        send("cell", record=as_row(failed_cell(cell, Status.ERROR, traceback.format_exc())))
        return 0
    send("ready")
    _wait_for_go(watched=parent is not None)  # started ahead of its turn: idle until the measured one is done
    send("start")
    try:
        record = run_cell(backend, cell, task, lambda r: send("epoch", record=as_row(r)), cold=True)
    except Exception:
        record = failed_cell(cell, Status.ERROR, traceback.format_exc())
    send("cell", record=as_row(record))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqbench.worker", description=__doc__)
    parser.add_argument("--fd", type=int, help="file descriptor to write results to")
    parser.add_argument("--parent", type=int, default=None, help="pid of the parent: exit when it is gone")
    parser.add_argument("--hello", action="store_true", help="print this environment's protocol and versions "
                        "as one JSON line, and exit")  # fmt: skip
    parser.add_argument("--packages", default="", help="with --hello: comma list of distributions to report")
    args = parser.parse_args(argv)
    if args.hello:
        print(json.dumps(hello([p for p in args.packages.split(",") if p])))
        return 0
    if args.fd is None:
        parser.error("--fd is required")
    return _worker_main(args.fd, args.parent)


def _exit_now(code: int) -> None:
    """Leave without the interpreter's teardown.

    The result is already on the pipe; what remains is the frameworks' own
    teardown (thread pools, device contexts, atexit hooks), which took TensorFlow
    and torch workers up to seconds, while the parent waits for the worker to be
    gone before it starts the next one (a worker still exiting would disturb it).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
