"""The one reader of run directories: typed, versioned, validated once.

Every command that reads results (``report``, ``compare``, ``history``,
``merge``, ``export``) and :func:`seqbench.load_run` go through this module:
:func:`read_run` gives checked rows (``merge``), :func:`read_table` checked
columns (:func:`load_run`, and :func:`read_cells` for ``history``).  Each
file is checked once, against types taken from the records themselves, and
any damage raises :class:`~seqbench.errors.ResultsError` (exit 2) with one
line naming the file, the line and the field; code downstream can then trust
the types it gets.

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

Nothing here imports pandas at the top: :func:`load_run` builds the DataFrames, and :func:`read_table`
keeps numbers in NumPy arrays.
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


BLOCK_BYTES = 1 << 22  # a table is read this much at a time, never whole


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """The non-blank lines of a table, streamed: ``(line number, bytes, whether it is the last)``."""
    if not path.is_file():
        raise ResultsError(f"{path}: {path.name} is not a regular file")
    try:
        with path.open("rb") as f:
            held: tuple[int, bytes] | None = None  # one line held back, to know whether it is the last
            lineno, rest = 0, b""
            while True:
                block = f.read(BLOCK_BYTES)
                lines = (rest + block).split(b"\n") if block else [rest]  # b"\n" only, as the writer writes
                rest = lines.pop() if block else b""  # a line the next block finishes
                for raw in lines:
                    lineno += 1
                    if raw.strip():
                        if held is not None:
                            yield (*held, False)
                        held = (lineno, raw)
                if not block:
                    break
            if held is not None:
                yield (*held, True)
    except OSError as e:
        raise ResultsError(f"cannot read {path}: {e.strerror or e}") from None


def _parse_line(path: Path, lineno: int, raw: bytes, last: bool, unfinished: bool,
                notes: list[str] | None) -> dict[str, Any] | None:  # fmt: skip
    """One line as a JSON object; None for the cut-short last line of an unfinished run (noted)."""
    try:
        row = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        if unfinished and last:
            if notes is not None:
                notes.append(f"{path.name}: the last line ({lineno}) was cut short and is left out")
            return None
        why = "not valid UTF-8" if isinstance(e, UnicodeDecodeError) else f"not valid JSON ({e})"
        raise ResultsError(f"{path}: line {lineno} is {why}") from None
    if not isinstance(row, dict):
        raise ResultsError(f"{path}: line {lineno} is not a JSON object")
    return row


def read_rows(path: Path, check: Check, unfinished: bool, notes: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The checked rows of a JSON Lines table (none if the file is absent).

    ``unfinished``: the run did not complete, so a bad *final* line is a row cut
    short: it is skipped with a note in ``notes`` instead of being an error.
    """
    if not path.exists() and not path.is_symlink():
        return
    for lineno, raw, last in _lines(path):
        row = _parse_line(path, lineno, raw, last, unfinished, notes)
        if row is not None:
            yield _check(check, row, f"{path}: line {lineno}")


# ------------------------------------------------------------------ tables as columns (load_run)
#
# Checking a row as a dict, field by field, costs about 40 Python calls a row, and a list of a million
# checked dicts took 7.7 times the file's size in memory (issue 18).  load_run instead reads a table in
# chunks of CHUNK_ROWS lines and checks each field a whole column at a time (the set of the types of its
# values, then NumPy for numbers), keeping numbers as arrays and one object per distinct string.  Whatever
# the column check is unsure of (an integer written as 3.0, a bad value, a damaged line) is handed to the
# row-by-row check above for that chunk, so both paths accept the same files, give the same values and
# fail with the same message.

CHUNK_ROWS = 5_000  # rows whose dicts are alive at once
INTERNED = 4_096  # distinct strings or dicts per column remembered, to be shared as one object
_NONE = type(None)
_DECODE = json.JSONDecoder(parse_constant=_nonfinite).decode  # json.loads, without a new decoder per line
_ITEM_KINDS = {float: "float", int: "int", str: "str"}
_ITEM_TYPES = {name: tp for tp, name in _ITEM_KINDS.items()}


@dataclass(frozen=True)
class _Column:
    """One field of a table row, checked a whole column at a time."""

    field: _Field
    kind: str  # "float", "int", "str", "bool", "dict" (of item values), or "other": its chunks checked row by row
    types: frozenset[type] = frozenset()  # the types its values may have
    allowed: frozenset[Any] | None = None  # an enum's values
    item: str = ""  # a dict's values: "float", "int" or "str"


def _column(f: _Field, tp: Any) -> _Column:
    args = typing.get_args(tp)
    nullable = typing.get_origin(tp) in (Union, types.UnionType) and len(args) == 2 and type(None) in args
    if nullable:
        tp = next(a for a in args if a is not type(None))
    none = {_NONE} if nullable else set()
    if tp is float:  # a float column always takes null: how non-finite numbers are written
        return _Column(f, "float", frozenset({float, int, _NONE}))
    if tp in (int, str, bool):
        return _Column(f, tp.__name__, frozenset({tp} | none))
    if isinstance(tp, type) and issubclass(tp, enum.Enum) and all(isinstance(m.value, str) for m in tp):
        return _Column(f, "str", frozenset({str} | none), frozenset(m.value for m in tp))
    args = typing.get_args(tp)  # of the type without its None
    if typing.get_origin(tp) is dict and len(args) == 2 and args[0] is str and args[1] in _ITEM_KINDS:
        return _Column(f, "dict", frozenset({dict} | none), item=_ITEM_KINDS[args[1]])
    return _Column(f, "other")


class TableFormat:
    """The rows of one table (``cells.jsonl``, ``epochs.jsonl``): checked one by one, or a column at a time."""

    def __init__(self, record: type, optional: frozenset[str] = frozenset()) -> None:
        self.record, self.optional = record, optional
        self.check = _record(record, optional, row=True)
        self._columns: list[_Column] | None = None

    @property
    def columns(self) -> list[_Column]:
        if self._columns is None:  # resolved on first use, as _record does
            hints = typing.get_type_hints(self.record, include_extras=True)
            self._columns = [_column(f, hints[f.name]) for f in record_fields(self.record, self.optional)]
        return self._columns


def _in_range(values: list[Any]) -> bool:
    """Whether integers (and nulls) fit in 64 bits."""
    numbers = [v for v in values if v is not None] if None in values else values
    return not numbers or (INT_MIN <= min(numbers) and max(numbers) <= INT_MAX)


def _valid(col: _Column, values: list[Any], rows: list[dict[str, Any]]) -> bool:
    """Whether the row-by-row check would take ``values`` (one field of ``rows``) as they are."""
    name, kinds = col.field.name, set(map(type, values))
    if _NONE in kinds:  # a null value, or a missing field
        missing = [name not in r for r, v in zip(rows, values, strict=True) if v is None]
        if any(missing) and col.field.required:
            return False
        if _NONE not in col.types:  # only a missing field reads as null
            if not all(missing):
                return False
            kinds.discard(_NONE)
    if col.kind == "other" or not kinds <= col.types:
        return False
    if col.allowed is not None and not {v for v in values if v is not None} <= col.allowed:
        return False
    if col.kind == "int":
        return _in_range(values)
    if col.kind == "dict":
        items = [v for d in values if d is not None for v in d.values()]
        if col.item == "float":  # an integer or a non-finite number is converted by the row check
            return set(map(type, items)) <= {float, _NONE} and all(math.isfinite(v) for v in items if v is not None)
        return set(map(type, items)) <= {_ITEM_TYPES[col.item]} and (col.item != "int" or _in_range(items))
    return True


def _store(col: _Column, values: list[Any], memo: dict[Any, Any]) -> Any:
    """Checked values as they are kept until the table is read: numbers in arrays, repeated objects shared."""
    import numpy as np

    if col.kind == "float":
        array = np.array(values, dtype=np.float64)  # null -> NaN
        array[~np.isfinite(array)] = np.nan
        return array
    if col.kind == "int" and None not in values:
        return np.array(values, dtype=np.int64)
    if col.kind == "str":
        return [memo.setdefault(v, v) for v in values]
    if col.kind == "dict":  # equal dicts become one object (details, task_params): read them, never change them
        return [None if d is None else memo.setdefault(tuple(d.items()), d) for d in values]
    return values


def concat_tables(tables: list[dict[str, Any]]) -> dict[str, Any]:
    """Tables of :func:`read_table` (of one record type; ``{}`` for none) as one, in order."""
    tables = [t for t in tables if t]
    return {name: _join([t[name] for t in tables]) for name in tables[0]} if tables else {}


def _join(parts: list[Any]) -> Any:
    """A column's stored chunks as one: an array when every chunk is one, else a list for pandas to type."""
    import numpy as np

    if parts and all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    return [v for p in parts for v in (p.tolist() if isinstance(p, np.ndarray) else p)]


def _decoded(batch: list[tuple[int, bytes, bool]]) -> list[Any] | None:
    """The batch's lines as JSON objects, or None when one is not a sane JSON object (the row path says why)."""
    try:
        rows = [_DECODE(raw.decode("utf-8")) for _, raw, _ in batch]
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    for (_, raw, _), row in zip(batch, rows, strict=True):
        if type(row) is not dict:
            return None
        if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _too_deep(row):  # the count is cheap, the walk is not
            return None
    return rows


def read_table(path: Path, table: TableFormat, unfinished: bool, notes: list[str] | None = None,
               keep: bool = True) -> dict[str, Any]:  # fmt: skip
    """A JSON Lines table as columns, checked as :func:`read_rows` checks it: ``{field: array or list}``.

    Every field of the table's record is a column (missing ones null); unknown keys are left out.  Float
    fields are float64 arrays, NaN where null; integer fields without nulls are int64 arrays; the rest are
    lists, for pandas to type as it types rows.  A table without rows is ``{}``: no column has a type yet.
    ``keep`` False: check the table, keep nothing (``{}``).
    """
    columns = table.columns
    parts: dict[str, list[Any]] = {c.field.name: [] for c in columns}
    memos: dict[str, dict[Any, Any]] = {c.field.name: {} for c in columns}
    if not path.exists() and not path.is_symlink():
        return {}
    batch: list[tuple[int, bytes, bool]] = []
    for line in _lines(path):
        batch.append(line)
        if len(batch) == CHUNK_ROWS or line[2]:
            _read_batch(path, table, batch, unfinished, notes, parts if keep else None, memos)
            batch = []
    if not any(len(p) for part in parts.values() for p in part):
        return {}
    return {name: _join(p) for name, p in parts.items()}


def _read_batch(path: Path, table: TableFormat, batch: list[tuple[int, bytes, bool]], unfinished: bool,
                notes: list[str] | None, parts: dict[str, list[Any]] | None,
                memos: dict[str, dict[Any, Any]]) -> None:  # fmt: skip
    """Check one batch of lines and add its columns to ``parts`` (None: check only)."""
    rows = _decoded(batch)
    if rows is not None:
        values = {c.field.name: [r.get(c.field.name) for r in rows] for c in table.columns}
        if all(_valid(c, values[c.field.name], rows) for c in table.columns):
            if parts is not None:
                for c in table.columns:
                    parts[c.field.name].append(_store(c, values[c.field.name], memos[c.field.name]))
                _forget(memos)
            return
    checked = []  # the row path: it raises the error that names the line and the field, or converts
    for lineno, raw, last in batch:
        row = _parse_line(path, lineno, raw, last, unfinished, notes)
        if row is not None:
            checked.append(_check(table.check, row, f"{path}: line {lineno}"))
    if parts is None:
        return
    for c in table.columns:
        parts[c.field.name].append(_store(c, [r[c.field.name] for r in checked], memos[c.field.name]))
    _forget(memos)


def _forget(memos: dict[str, dict[Any, Any]]) -> None:
    """Stop sharing a column's values once it has more distinct ones than INTERNED: its memo would grow as the
    table does, for values that are not repeated."""
    for memo in memos.values():
        if len(memo) > INTERNED:
            memo.clear()


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
    cells: TableFormat
    epochs: TableFormat

    def meta(self, where: Path, meta: dict[str, Any]) -> RunMeta:
        return typing.cast(RunMeta, _check(self.check_meta, meta, str(where)))


# A new format version gets its own entry here (and may convert older rows to the current shape).
LOADERS: dict[int, FormatLoader] = {
    1: FormatLoader(CHECK_META, TableFormat(CellRecord, ADDED_COLUMNS), TableFormat(EpochRecord, ADDED_COLUMNS))}


def read_run(path: str | os.PathLike[str]) -> RunData:
    """Read and check every file of the run directory ``path``."""
    path = Path(path)
    meta = read_meta(path)
    loader = LOADERS[meta["format_version"]]
    unfinished = meta.get("status") in UNFINISHED
    notes: list[str] = []
    cells = list(read_rows(path / CELLS_FILE, loader.cells.check, unfinished, notes))
    epochs = list(read_rows(path / EPOCHS_FILE, loader.epochs.check, unfinished, notes))
    return RunData(path, meta, cells, epochs, notes)


def read_cells(path: str | os.PathLike[str]) -> tuple[RunMeta, dict[str, Any]]:
    """``run.json`` and ``cells.jsonl`` as columns (:func:`read_table`), with ``epochs.jsonl`` checked but not
    kept: a run that :func:`load_run` refuses is refused here too, for what ``seqbench history`` reads."""
    path = Path(path)
    meta = read_meta(path)
    loader = LOADERS[meta["format_version"]]
    unfinished = meta.get("status") in UNFINISHED
    cells = read_table(path / CELLS_FILE, loader.cells, unfinished)
    read_table(path / EPOCHS_FILE, loader.epochs, unfinished, keep=False)
    return meta, cells


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

    path = resolve_run(run, results_dir)
    meta = read_meta(path)
    loader = LOADERS[meta["format_version"]]
    unfinished = meta.get("status") in UNFINISHED
    notes: list[str] = []
    cells = pd.DataFrame(read_table(path / CELLS_FILE, loader.cells, unfinished, notes), columns=CELL_COLUMNS)
    epochs = pd.DataFrame(read_table(path / EPOCHS_FILE, loader.epochs, unfinished, notes), columns=EPOCH_COLUMNS)
    for frame, record in ((cells, CellRecord), (epochs, EpochRecord)):
        for column in _float_columns(record):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    from seqbench.views import count_attempts  # the one attempt rule (seqbench.attempts)

    counted_cells, counted_epochs = count_attempts(cells, epochs, dict(meta))
    return Run(path, dict(meta), counted_cells, counted_epochs, notes, cells, epochs)


__all__ = ["LOADERS", "RunData", "TableFormat", "checker", "concat_tables", "load_run", "newest_run", "parse_json",
           "read_cells", "read_meta", "read_rows", "read_run", "read_table", "resolve_run"]  # fmt: skip
