"""Writing what a command produces (a report, a plot, an export, a page) to a file or to standard output.

One rule for every output: missing parent folders are created, and an ``OSError`` while writing (a full
disk, a read-only folder, a file where a folder must be, a closed terminal) is the environment's, not a
bug in seqbench: it becomes a :class:`~seqbench.errors.ResultsError` (exit 2, one line) that names the
path.  A broken pipe is left alone: the CLI ends quietly on it (``seqbench report | head``).

Standard library only: the CLI imports this module when it starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from seqbench.errors import ResultsError

STDOUT = "standard output"


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an ``OSError`` raised inside into a :class:`ResultsError` naming the file (or ``path``)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        where = e.filename if e.filename and str(path) != STDOUT else path
        if str(path) == STDOUT:
            silence_stdout()  # else the interpreter fails again flushing it at exit, with a traceback
        raise ResultsError(f"cannot write {where}: {e.strerror or e}") from e


def write_file(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path``, creating its missing parent folders; return the path."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    return path


def replace_file(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` whole (a file beside it, then a rename): a reader never sees half of it.

    ``OSError`` propagates, for the caller to name what it was writing.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_stdout(text: str) -> None:
    """Write ``text`` to standard output and flush it, so a full disk behind it shows here."""
    with writing(STDOUT):
        sys.stdout.write(text)
        sys.stdout.flush()


def flush_stdout() -> None:
    """Flush what ``print`` left buffered (the CLI, before it exits)."""
    with writing(STDOUT):
        sys.stdout.flush()


def silence_stdout() -> None:
    """After a failed write (a broken pipe, a full disk): send what is still buffered nowhere, so that the
    interpreter's own flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (a test's capture)
        pass


__all__ = ["STDOUT", "flush_stdout", "silence_stdout", "write_file", "write_stdout", "writing"]
