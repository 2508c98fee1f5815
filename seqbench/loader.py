"""The one reader of run directories: typed, versioned, validated once.

Every command that reads results (``report``, ``compare``, ``history``,
``merge``, ``export``) and :func:`seqbench.load_run` go through
:func:`read_run`.  It checks each file once, against types taken from the
records themselves, and raises :class:`~seqbench.errors.ResultsError` (exit 2)
with one line naming the file, the line and the field when anything is
wrong; code downstream can then trust the types it gets.

* ``run.json`` is checked against :class:`~seqbench.results.RunMeta`; the format version picks
  the loader (:data:`LOADERS`, as pyperf's ``_json_load(version, ...)``).
* ``cells.jsonl`` and ``epochs.jsonl`` rows are checked against the fields
  and annotations of :class:`~seqbench.results.CellRecord` and
  :class:`~seqbench.results.EpochRecord`: a field added there is read here
  without a change.  Unknown keys are kept but not checked (a newer writer of
  the same format version may add columns); a missing field that has a
  default reads as null; a missing field without one is an error.
* Non-finite numbers are written as ``null``, so a ``float`` field takes
  ``null``; ``NaN`` and ``Infinity`` literals (from other tools) read as
  ``null`` too.  Integers must fit in 64 bits.
* The final line of a table may be cut short when the run did not finish
  (killed, disk full, or simply still running): for a run whose status is not
  ``complete`` it is dropped with a note, and the run is read as far as it
  got.  A bad line anywhere else is an error.

Nothing here imports pandas: :func:`load_run` builds the DataFrames.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from seqbench.errors import ResultsError
from seqbench.keys import UNFINISHED
from seqbench.results import (
    ADDED_COLUMNS,
    CELLS_FILE,
    EPOCHS_FILE,
    FORMAT_VERSION,
    RUN_FILE,
    CellRecord,
    EpochRecord,
    Run,
    RunMeta,
)

MAX_DEPTH = 32  # nesting deeper than this is not a seqbench file (its own nest 3 levels)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what pandas and NumPy hold exactly


# ------------------------------------------------------------------ checking values against types


class _Invalid(Exception):
    """A value that does not match its type: where (a path of keys and indexes) and why."""

    def __init__(self, reason: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(reason)
        self.reason, self.path = reason, path

    def inside(self, key: str | int) -> _Invalid:
        return _Invalid(self.reason, (key, *self.path))

    def __str__(self) -> str:
        where = ""
        for key in self.path:
            if isinstance(key, int):
                where += f"[{key}]"
            else:  # a field name, or a mapping key already in brackets
                where += key if key.startswith("[") or not where else f".{key}"
        return f"{where} {self.reason}" if where else self.reason


Check = Callable[[Any], Any]  # returns the value as readers get it, or raises _Invalid


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _name_of(tp: Any) -> str:
    """How a type reads in an error message."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(_name_of(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    simple = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if tp in simple:
        return simple[tp]
    if origin is list or origin is tuple:
        return "a list"
    return "an object"


def _check_int(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():  # 3.0 from a tool that writes every number as float
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"must be an integer, got {_kind(value)}")
    if not INT_MIN <= value <= INT_MAX:
        raise _Invalid("is out of range (more than 64 bits)")
    return value


def _check_float(value: Any) -> float | None:
    if value is None:  # how the format writes a non-finite float
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"must be a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        raise _Invalid("is out of range") from None
    return number if math.isfinite(number) else None


def _simple(tp: type) -> Check:
    def check(value: Any) -> Any:
        if isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
            return value
        raise _Invalid(f"must be {_name_of(tp)}, got {_kind(value)}")

    return check


def _any(value: Any) -> Any:
    return value


def _union(tp: Any) -> Check:
    checks = [checker(a) for a in typing.get_args(tp)]

    def check(value: Any) -> Any:
        errors = []
        for c in checks:
            try:
                return c(value)
            except _Invalid as e:
                errors.append(e)
        deepest = max(errors, key=lambda e: len(e.path))
        if deepest.path:  # the right kind of container with a bad value inside: say which
            raise deepest
        raise _Invalid(f"must be {_name_of(tp)}, got {_kind(value)}")

    return check


def _choice(tp: Any, allowed: tuple[Any, ...]) -> Check:
    def check(value: Any) -> Any:
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value in allowed:
            return value
        shown = repr(value)[:40] if isinstance(value, (str, int)) and not isinstance(value, bool) else _kind(value)
        raise _Invalid(f"must be {_name_of(tp)}, got {shown}")

    return check


def _mapping(value_type: Any) -> Check:
    check_value = checker(value_type)

    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Invalid(f"must be an object, got {_kind(value)}")
        out = {}
        for k, v in value.items():
            try:
                out[k] = check_value(v)
            except _Invalid as e:
                raise e.inside(f"[{k!r}]" if len(k) < 40 else f"[{k[:37]!r}...]") from None
        return out

    return check


def _sequence(item_type: Any) -> Check:
    check_item = checker(item_type)

    def check(value: Any) -> Any:
        if not isinstance(value, list):
            raise _Invalid(f"must be a list, got {_kind(value)}")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(check_item(v))
            except _Invalid as e:
                raise e.inside(i) from None
        return out

    return check


@dataclass(frozen=True)
class _Field:
    name: str
    check: Check
    required: bool


def record_fields(tp: Any, optional: frozenset[str] = frozenset()) -> list[_Field]:
    """The fields of a dataclass or TypedDict, each with its check.

    A dataclass field is required unless it has a default or is in ``optional``
    (columns added to a format after its first files).  A TypedDict's own
    required keys are required.
    """
    hints = typing.get_type_hints(tp, include_extras=True)
    if dataclasses.is_dataclass(tp):
        return [
            _Field(f.name, checker(hints[f.name]),
                   f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in optional)  # fmt: skip
            for f in dataclasses.fields(tp)
        ]
    required: frozenset[str] = getattr(tp, "__required_keys__", frozenset())
    return [_Field(name, checker(hint), name in required) for name, hint in hints.items()]


def _record(tp: Any, optional: frozenset[str] = frozenset(), row: bool = False) -> Check:
    """Check an object against ``tp``'s fields; unknown keys are kept, unchecked.

    ``row``: a table row, whose missing optional fields are added as null.
    """
    specs: list[_Field] | None = None
    noun = "column(s)" if row else "key(s)"

    def check(value: Any) -> Any:
        nonlocal specs
        if specs is None:  # resolved on first use: the types may be defined after this is built
            specs = record_fields(tp, optional)
        if not isinstance(value, dict):
            raise _Invalid(f"must be an object, got {_kind(value)}")
        out = dict(value)
        missing = [f.name for f in specs if f.required and f.name not in value]
        if missing:
            raise _Invalid(f"lacks {noun} {', '.join(missing)}")
        for f in specs:
            if f.name in value:
                try:
                    out[f.name] = f.check(value[f.name])
                except _Invalid as e:
                    raise e.inside(f.name) from None
            elif row:
                out[f.name] = None
        return out

    return check


def checker(tp: Any) -> Check:
    """A function that checks a decoded JSON value against the annotation ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return _any
    if origin is Annotated:  # Annotated[dict[str, Any], SomeRecord]: a plain dict checked as SomeRecord
        return checker(args[1])
    if tp is type(None):
        return _simple(type(None))
    if origin in (Union, types.UnionType):
        return _union(tp)
    if origin is Literal:
        return _choice(tp, args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _choice(tp, tuple(m.value for m in tp))
    if tp is int:
        return _check_int
    if tp is float:
        return _check_float
    if tp in (str, bool):
        return _simple(tp)
    if origin in (dict, Mapping) or tp is dict:
        return _mapping(args[1] if len(args) == 2 else Any)
    if origin in (list, tuple) or tp in (list, tuple):
        return _sequence(args[0] if args else Any)
    if dataclasses.is_dataclass(tp) or typing.is_typeddict(tp):
        return _record(tp)
    return _any  # a type this reader cannot check: take the value as it is


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def _nonfinite(text: str) -> None:
    return None  # NaN, Infinity, -Infinity: the format's null


def parse_json(text: str) -> Any:
    """``json.loads`` for results files: ``ValueError`` for anything that is not a sane JSON document."""
    try:
        value = json.loads(text, parse_constant=_nonfinite)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError(e.msg) from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise ValueError(str(e).split(";")[0]) from None
    if _too_deep(value):
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    return value


# ------------------------------------------------------------------ the files


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise ResultsError(f"{path}: {what} is not a regular file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise ResultsError(f"cannot read {path}: {e.strerror or e}") from None


CHECK_META = _record(RunMeta)
CHECK_CELL = _record(CellRecord, ADDED_COLUMNS, row=True)
CHECK_EPOCH = _record(EpochRecord, ADDED_COLUMNS, row=True)


def read_meta(path: str | os.PathLike[str]) -> RunMeta:
    """``run.json`` of the run directory ``path``, checked."""
    path = Path(path)
    run_file = path / RUN_FILE
    if not run_file.exists() and not run_file.is_symlink():
        raise ResultsError(f"{path} is not a seqbench run: no {RUN_FILE}")
    data = _read_bytes(run_file, RUN_FILE)
    try:
        meta = parse_json(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ResultsError(f"{run_file}: not valid UTF-8 (byte {e.start})") from None
    except ValueError as e:
        raise ResultsError(f"{run_file}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{run_file}: not a JSON object")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ResultsError(f"{run_file}: no integer format_version")
    if version > FORMAT_VERSION:
        raise ResultsError(
            f"{path} has results format {version}; this seqbench reads up to {FORMAT_VERSION}: upgrade seqbench"
        )
    loader = LOADERS.get(version)
    if loader is None:
        raise ResultsError(f"{run_file}: unknown format_version {version}; known: {', '.join(map(str, LOADERS))}")
    return loader.meta(run_file, meta)


def _check(check: Check, value: Any, where: str) -> Any:
    try:
        return check(value)
    except _Invalid as e:
        raise ResultsError(f"{where}: {e}") from None


def read_rows(path: Path, check: Check, unfinished: bool, notes: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The checked rows of a JSON Lines table (none if the file is absent).

    ``unfinished``: the run did not complete, so a bad *final* line is a row cut
    short: it is skipped with a note in ``notes`` instead of being an error.
    """
    if not path.exists() and not path.is_symlink():
        return
    data = _read_bytes(path, path.name)
    lines = data.split(b"\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        lineno = index + 1
        try:
            row = parse_json(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            if unfinished and index == last:
                if notes is not None:
                    notes.append(f"{path.name}: the last line ({lineno}) was cut short and is left out")
                return
            why = "not valid UTF-8" if isinstance(e, UnicodeDecodeError) else f"not valid JSON ({e})"
            raise ResultsError(f"{path}: line {lineno} is {why}") from None
        if not isinstance(row, dict):
            raise ResultsError(f"{path}: line {lineno} is not a JSON object")
        yield _check(check, row, f"{path}: line {lineno}")


@dataclass
class RunData:
    """A run directory as checked JSON: what :func:`load_run` turns into DataFrames and merge copies."""

    path: Path
    meta: RunMeta
    cells: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # what the reader left out, and why


@dataclass(frozen=True)
class FormatLoader:
    """How one format version is read: ``run.json``, then the rows."""

    check_meta: Check
    check_cell: Check
    check_epoch: Check

    def meta(self, where: Path, meta: dict[str, Any]) -> RunMeta:
        return typing.cast(RunMeta, _check(self.check_meta, meta, str(where)))


# A new format version gets its own entry here (and may convert older rows to the current shape).
LOADERS: dict[int, FormatLoader] = {1: FormatLoader(CHECK_META, CHECK_CELL, CHECK_EPOCH)}


def read_run(path: str | os.PathLike[str]) -> RunData:
    """Read and check every file of the run directory ``path``."""
    path = Path(path)
    meta = read_meta(path)
    loader = LOADERS[meta["format_version"]]
    unfinished = meta.get("status") in UNFINISHED
    notes: list[str] = []
    cells = list(read_rows(path / CELLS_FILE, loader.check_cell, unfinished, notes))
    epochs = list(read_rows(path / EPOCHS_FILE, loader.check_epoch, unfinished, notes))
    return RunData(path, meta, cells, epochs, notes)


LATEST = "latest"


def _started(path: Path) -> str:
    try:
        value = read_meta(path).get("started")
    except ResultsError:  # a damaged run sorts first; reading it then names the damage
        return ""
    return str(value) if value else ""


def newest_run(results_dir: str | os.PathLike[str]) -> Path:
    """The most recently started run directly inside ``results_dir`` (then the greatest name)."""
    root = Path(results_dir)
    runs = [d for d in root.iterdir() if (d / RUN_FILE).is_file()] if root.is_dir() else []
    if not runs:
        raise ResultsError(f"no runs in {root}: give a run directory, or run 'seqbench run' first")
    return max(runs, key=lambda d: (_started(d), d.name))


def resolve_run(run: str | os.PathLike[str] | None = None, results_dir: str | os.PathLike[str] = "results") -> Path:
    """The run directory ``run`` names: a directory, a run id under ``results_dir``, or the newest run.

    ``None`` and ``"latest"`` mean the newest run in ``results_dir``.  A path
    that exists is taken as it is (the loader then says what is wrong with
    it); otherwise ``results_dir/run`` when that exists.
    """
    if run is None or str(run) == LATEST:
        return newest_run(results_dir)
    path = Path(run)
    if path.exists():
        return path
    under = Path(results_dir) / path
    if under.exists():
        return under
    raise ResultsError(f"no run {str(run)!r}: not a directory, and no such run id in {results_dir}")


def _float_columns(record: type) -> list[str]:
    """The record's fields declared ``float`` (or ``float | None``): float64 columns, NaN where null."""
    from dataclasses import fields

    return [f.name for f in fields(record) if str(f.type).replace(" ", "") in ("float", "float|None")]


def load_run(run: str | os.PathLike[str] | None = None, results_dir: str | os.PathLike[str] = "results") -> Run:
    """A run as a :class:`~seqbench.results.Run`: ``meta`` and DataFrames of cells and epochs.

    ``cells`` holds one row per repeat (the attempt that counts, :mod:`seqbench.attempts`) and ``epochs``
    its epochs; ``attempts`` and ``attempt_epochs`` hold every measurement.

    ``run`` is a run directory, a run id under ``results_dir``, or ``"latest"``
    / nothing for the newest run there (:func:`resolve_run`).  Float fields
    are float64 columns, NaN where a cell recorded nothing (``gpu_s`` on a
    CPU run), never columns of ``None`` objects.
    """
    import pandas as pd

    from seqbench.results import CELL_COLUMNS, EPOCH_COLUMNS, CellRecord, EpochRecord

    data = read_run(resolve_run(run, results_dir))
    cells = pd.DataFrame(data.cells, columns=CELL_COLUMNS)
    epochs = pd.DataFrame(data.epochs, columns=EPOCH_COLUMNS)
    for frame, record in ((cells, CellRecord), (epochs, EpochRecord)):
        for column in _float_columns(record):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    from seqbench.views import count_attempts  # the one attempt rule (seqbench.attempts)

    counted_cells, counted_epochs = count_attempts(cells, epochs, dict(data.meta))
    return Run(data.path, dict(data.meta), counted_cells, counted_epochs, data.notes, cells, epochs)


__all__ = ["LOADERS", "RunData", "checker", "load_run", "newest_run", "parse_json", "read_meta",
           "read_run", "read_rows", "resolve_run"]  # fmt: skip
