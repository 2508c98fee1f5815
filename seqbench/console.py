"""What ``seqbench run`` shows on stderr while it works.

On a terminal, a live line from rich: cell i of N, epoch e of E with the
loss, elapsed time and an ETA over the whole run, and "calibrating..." during
the quiet start.  Finished cells print as lines above it, and the live line is
*transient*: it is erased when the run ends, however it ends (Ctrl-C
included), so the summary never starts on it.  When stderr is not a terminal
(a CI log, a pipe) the output is plain lines, one per cell, as before.

rich is imported only when a live line is shown, inside :class:`ConsoleProgress`:
this module is imported by the CLI's ``run`` command, never on the start path
of ``--help`` or ``list``.
"""

from __future__ import annotations

import sys
import textwrap
import time
from typing import IO, Any

from seqbench.escape import one_line
from seqbench.keys import COMPLETED, entrant_name
from seqbench.results import error_reason


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


INDENT = "    "  # a line that continues the one above


def fit(fields: list[str], width: int | None) -> str:
    """``fields`` joined by two spaces on one line, or, on a terminal of ``width`` columns, on as many lines
    as they need: broken between fields, a field too long for a line between its words, never inside a word
    (the terminal would break it anywhere)."""
    fields = [f for f in fields if f]
    if width is None:
        return "  ".join(fields)
    room = max(20, width - len(INDENT))
    lines: list[str] = []
    for f in fields:
        pieces = textwrap.wrap(f, room, break_long_words=False, break_on_hyphens=False) or [f]
        for piece in pieces:
            if lines and len(lines[-1]) + 2 + len(piece) <= width:
                lines[-1] += "  " + piece
            else:
                lines.append(piece if not lines else INDENT + piece)
    return "\n".join(lines)


def point_text(cell: Any, axes: tuple[str, ...]) -> str:
    """The grid point of ``cell`` (a CellConfig or CellRecord) on the run's varied ``axes`` (seqbench.grid's
    names: ``units``, ``task.steps``...): ``steps=50 units=64``; "" for a run that is not a grid."""
    shown = []
    for axis in axes:
        name = axis.removeprefix("task.")
        value = (cell.task_params or {}).get(name) if axis.startswith("task.") else getattr(cell, axis, None)
        shown.append(f"{name}={value}")
    return " ".join(shown)


def cell_title(cell: Any, axes: tuple[str, ...] = ()) -> str:
    """``numpy:reference/cpu rnn steps=50 seed=0``: a cell (or its record) and its grid point on ``axes``."""
    again = f" (attempt {cell.attempt})" if cell.attempt > 1 else ""
    point = point_text(cell, axes)
    return f"{entrant_name(vars(cell))} {cell.model}{' ' + point if point else ''} seed={cell.seed}{again}"


def cell_line(record: Any, done: int, total: int, width: int | None = None, axes: tuple[str, ...] = ()) -> str:
    """The line that reports a finished cell (plain text, escaped): one line, or fitted to ``width``."""
    fields = [f"[{done}/{total}] {cell_title(record, axes)}", str(record.status)]
    if record.status in COMPLETED:
        steady_ms = None if record.steady_epoch_s is None else record.steady_epoch_s * 1e3
        name = record.primary_metric or "accuracy"  # cells before 0.2 name none
        value = (record.metrics or {}).get(name, record.accuracy)
        shown = "acc" if name == "accuracy" else name
        score = f"{shown} {_fmt(value, '.2f' if name == 'accuracy' else '.4g')}"
        if record.baseline is not None and name != "accuracy":
            score += f" (baseline {record.baseline:.4g})"
        # the measurement first: on a narrow terminal it stays on the cell's first line
        fields += [f"steady {_fmt(steady_ms, '.1f')} ms/epoch", score, f"loss {_fmt(record.final_loss, '.4g')}",
                   disturbance_note(record).strip()]  # fmt: skip
    elif record.error:
        fields[-1] += ": " + error_reason(record.error)
    return fit([one_line(f) for f in fields], width)


def disturbance_note(record: Any) -> str:
    """Why a repeat is disturbed, or which of its epochs were left out (empty for a clean repeat)."""
    wait = getattr(record, "wait_share", None)
    if record.disturbed:
        if wait is not None:
            return f"  DISTURBED (waited for a CPU {wait:.0%} of the time)"
        return f"  DISTURBED ({record.interference or 0:.2f} cores busy elsewhere)"
    steady, clean = (getattr(record, "epochs_run", 0) or 0) - 1, getattr(record, "clean_epochs", None)
    if clean is not None and 0 < clean < steady:
        return f"  ({steady - clean} of {steady} epochs left out: waited for a CPU)"
    return ""


def clock(seconds: float) -> str:
    """``75.4`` -> ``1:15``; an hour or more -> ``1:02:03``."""
    s = int(max(0.0, seconds) + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RunClock:
    """Elapsed time and an ETA over the run, from epochs done so far (no rich: testable alone).

    Work is counted in epochs: ``cells x epochs`` planned.  The ETA divides the
    elapsed time since the first cell started by the epochs done, so worker
    start-up and first epochs (imports, tracing) are part of the rate, as they
    are part of what is left.
    """

    def __init__(self, now: float | None = None) -> None:
        self.start = time.monotonic() if now is None else now
        self.first_cell: float | None = None
        self.epochs_done = 0
        self.epochs_total = 0

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, or None before the first epoch has finished."""
        now = time.monotonic() if now is None else now
        if self.first_cell is None or self.epochs_done <= 0:
            return None
        rate = (now - self.first_cell) / self.epochs_done
        return rate * max(0, self.epochs_total - self.epochs_done)

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.start


def status_text(cell: int, total: int, epoch: int | None, epochs: int | None, what: str, loss: float | None,
                run_clock: RunClock, now: float | None = None) -> str:  # fmt: skip
    """The live line's text: ``0:05 elapsed, ETA 0:40  cell 3/12  epoch 4/10  numpy:reference/cpu rnn seed=0
    loss 1.2``.  The clock comes first: a narrow terminal cuts the line's end, and the ETA is what people
    look for."""
    eta = run_clock.eta(now)
    parts = [f"{clock(run_clock.elapsed(now))} elapsed" + (f", ETA {clock(eta)}" if eta is not None else "")]
    if cell:  # none yet: the quiet start (calibrating...)
        parts.append(f"cell {cell}/{total}")
    if epoch is not None:
        parts.append(f"epoch {epoch}/{epochs if epochs else '?'}")
    parts.append(what)
    if loss is not None:
        parts.append(f"loss {loss:.4g}")
    return one_line("  ".join(parts))


class ConsoleProgress:
    """The runner's Progress on stderr: live on a terminal (rich), plain lines otherwise.

    Use as a context manager, or call :meth:`close`: closing erases the live
    line, so whatever prints next starts on a clean line.
    """

    def __init__(self, quiet: bool = False, stream: IO[str] | None = None, live: bool | None = None,
                 axes: tuple[str, ...] = ()) -> None:  # fmt: skip
        """``axes``: the grid's varied parameters (:func:`seqbench.grid.varied`), named in every cell's line."""
        self.quiet = quiet
        self.axes = tuple(axes)
        self.stream = stream if stream is not None else sys.stderr
        is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.live = (is_tty if live is None else live) and not quiet
        self.clock = RunClock()
        self._cells_total = 0
        self._cell_index = 0
        self._epochs: int | None = None
        self._what = "starting..."
        self._epoch: int | None = None
        self._loss: float | None = None
        self._done_epochs_before = 0  # epochs of finished cells
        self._rich: Any = None
        self._status: str | None = None  # a cluster run's line (jobs and cells), shown instead of a cell's
        if self.live:
            from rich.console import Console  # only for a live terminal
            from rich.live import Live

            self._console = Console(file=self.stream, highlight=False, markup=False, emoji=False)
            self._rich = Live("", console=self._console, transient=True, refresh_per_second=4,
                              get_renderable=self._renderable, redirect_stdout=False,
                              redirect_stderr=False)  # fmt: skip
            self._rich.start()

    # ---------------------------------------------------------------- output

    def _renderable(self) -> Any:
        from rich.text import Text

        if self._status is not None:
            return Text(self._status, no_wrap=True, overflow="ellipsis")
        text = status_text(self._cell_index, self._cells_total, self._epoch, self._epochs, self._what, self._loss,
                           self.clock)  # fmt: skip
        return Text(text, no_wrap=True, overflow="ellipsis")

    @property
    def width(self) -> int | None:
        """The terminal's width while a live line is shown; None for a log or a pipe (one line per cell)."""
        return self._console.width if self._rich is not None else None

    def _print(self, text: str) -> None:
        if self.quiet:
            return
        if self._rich is not None:
            self._console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Erase the live line (transient) and stop its refresh thread; safe to call twice."""
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def __enter__(self) -> ConsoleProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self, text: str, changed: bool) -> None:
        """A cluster run's state (seqbench.cluster): the live line on a terminal; in a log, a line whenever
        ``changed`` (a job changed state), not at every cell."""
        self._status = one_line(text)
        if not self.live and changed:
            self._print(self._status)

    # ---------------------------------------------------------------- the runner's Progress protocol

    def note(self, message: str) -> None:
        if self.live and message.rstrip(".").endswith("calibrating"):
            self._what = "calibrating..."  # shown on the live line: the quiet start says what it does
            return
        self._print(fit([one_line(f"note: {message}")], self.width))

    def cell_started(self, cell: Any, done: int, total: int) -> None:
        if self.clock.first_cell is None:
            self.clock.first_cell = time.monotonic()
        self._cell_index, self._cells_total = done + 1, total
        self._epochs, self._epoch, self._loss = cell.epochs, None, None
        self._what = cell_title(cell, self.axes)
        # planned work: the cells left (this one included) at this cell's epochs, plus what is done
        self.clock.epochs_total = self._done_epochs_before + (total - done) * cell.epochs
        self.clock.epochs_done = self._done_epochs_before

    def epoch(self, record: Any) -> None:
        self._epoch, self._loss = record.epoch, record.loss
        self.clock.epochs_done = self._done_epochs_before + record.epoch

    def cell_finished(self, record: Any, done: int, total: int) -> None:
        self._done_epochs_before += record.epochs or self._epochs or 0
        self.clock.epochs_done = self._done_epochs_before
        self._cells_total = total
        self._print(cell_line(record, done, total, self.width, self.axes))
