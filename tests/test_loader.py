"""The one loader of run directories, and every reading command, on malformed and partial runs.

Each damaged run directory below is one a user met (a hostile or hand-edited
file, a killed writer, a full disk); the property-based test at the end makes
many more.  Every reading command must answer each with exit 0 or 2 and at
most one line of error, never a traceback; ``compare`` may answer 1 only for
a real regression.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqbench
from seqbench.config import RunConfig
from seqbench.errors import ResultsError
from seqbench.loader import checker, load_run, read_run
from seqbench.results import CellRecord, EpochRecord
from tests.runfactory import Row, invoke, make_run

ROWS = [Row(), Row(model="lstm", params=491, failed_seeds=(1,))]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template")
    make_run(root, "good", ROWS, seeds=2, epochs=3)
    make_run(root, "other", ROWS, seeds=2, epochs=3, seed=1, started="2026-01-02T10:00:00+0000")
    return root


@pytest.fixture
def runs(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "runs")
    return tmp_path / "runs"


def commands(bad: Path, good: Path, out: Path) -> list[list[str]]:
    """Every reading command, pointed at ``bad``."""
    return [
        ["report", str(bad)], ["report", str(bad), "--format", "md"], ["report", str(bad), "--format", "json"],
        ["report", str(bad), "--format", "csv"], ["report", str(bad), "--format", "html", "--no-plots"],
        ["compare", str(good), str(bad)], ["compare", str(bad), str(good), "--format", "md"],
        ["history", str(bad.parent)], ["history", str(bad.parent), "--format", "md"],
        ["merge", str(bad), "-o", str(out)],
        ["export", str(bad), "--format", "pytest-benchmark"],
        ["export", str(bad), "--format", "github-action-benchmark"],
    ]  # fmt: skip


def assert_clean(args: list[str]) -> int:
    result = invoke(*args)
    where = f"{args}: exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout, where
    if args[0] == "compare" and result.returncode == 1:  # exit 1 means a regression, and says so
        assert "REGRESSION" in result.stdout, where
    else:
        assert result.returncode in (0, 2), where
    if result.returncode == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("seqbench: error:")]
        assert len(errors) == 1, where
    return result.returncode


def every_command_is_clean(bad: Path, good: Path, out: Path) -> dict[str, int]:
    codes = {}
    for i, args in enumerate(commands(bad, good, out)):
        if args[0] == "merge":
            args[-1] = f"{out}-{i}"
        codes[" ".join(a for a in args if not a.startswith("/"))] = assert_clean(args)
    try:
        seqbench.load_run(bad)
    except ResultsError:
        pass
    return codes


# ------------------------------------------------------------------ a corpus of damaged runs


def _rewrite_rows(path: Path, line: int, change: Callable[[dict], object]) -> None:
    lines = path.read_text().splitlines()
    lines[line] = json.dumps(change(json.loads(lines[line])))
    path.write_text("\n".join(lines) + "\n")


def _set_meta(run: Path, **values: object) -> None:
    meta = json.loads((run / "run.json").read_text())
    meta.update(values)
    (run / "run.json").write_text(json.dumps(meta))


def _cell(run: Path, **values: object) -> None:
    _rewrite_rows(run / "cells.jsonl", 0, lambda row: row | values)


def _failed_cell(run: Path, **values: object) -> None:
    lines = (run / "cells.jsonl").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if json.loads(line)["status"] == "error")
    _rewrite_rows(run / "cells.jsonl", index, lambda row: row | values)


def _replace_text(name: str, old: str, new: str) -> Callable[[Path], None]:
    def change(run: Path) -> None:
        text = (run / name).read_text()
        assert old in text
        (run / name).write_text(text.replace(old, new, 1))

    return change


def _dir_instead(name: str) -> Callable[[Path], None]:
    def change(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return change


CORPUS: dict[str, Callable[[Path], None]] = {
    "run.json invalid UTF-8": lambda r: (r / "run.json").write_bytes(b'{"format_version": 1, "status": "\xff\xfe"}'),
    "cells invalid UTF-8": lambda r: (r / "cells.jsonl").write_bytes(b'{"task": "\xc3\x28"}\n'),
    "epochs invalid UTF-8 mid-file": lambda r: (r / "epochs.jsonl").write_bytes(
        b'{"x": "\xff"}\n' + (r / "epochs.jsonl").read_bytes()),
    "cells is a directory": _dir_instead("cells.jsonl"),
    "epochs is a directory": _dir_instead("epochs.jsonl"),
    "run.json is a directory": _dir_instead("run.json"),
    "run.json deeply nested": lambda r: (r / "run.json").write_text("[" * 100_000 + "]" * 100_000),
    "run.json config nested 40 deep": lambda r: _set_meta(r, config=json.loads("[" * 40 + "]" * 40)),
    "cell nested in an unknown column": lambda r: _cell(r, extra=json.loads("[" * 200 + "]" * 200)),
    "huge integer seed": lambda r: _cell(r, seed=10**30),
    "5000-digit integer": _replace_text("cells.jsonl", '"seed": 0', '"seed": ' + "9" * 5000),
    "huge float": _replace_text("cells.jsonl", '"seed": 0', '"seed": 1e400'),
    "huge cells_planned": lambda r: _set_meta(r, cells_planned=10**40),
    "run.json is a list": lambda r: (r / "run.json").write_text("[1, 2]"),
    "config is a list": lambda r: _set_meta(r, config=[1, 2]),
    "machine is a list": lambda r: _set_meta(r, machine=["cpu"]),
    "machines is a list": lambda r: _set_meta(r, machines=[{"machine": {}}]),
    "calibration is a list": lambda r: _set_meta(r, calibration=[0.1]),
    "cell row is a list": lambda r: _rewrite_rows(r / "cells.jsonl", 0, lambda row: list(row)),
    "details is a list": lambda r: _cell(r, details=["x"]),
    "null seed on a failed cell": lambda r: _failed_cell(r, seed=None),
    "NaN literal": _replace_text("cells.jsonl", '"accuracy": 0.4', '"accuracy": NaN'),
    "Infinity wall time": _replace_text("epochs.jsonl", '"wall_s": ', '"wall_s": Infinity, "x": '),
    "-Infinity loss": _replace_text("epochs.jsonl", '"loss": ', '"loss": -Infinity, "y": '),
    "git is a string": lambda r: _set_meta(r, git="a1b2c3"),
    "git commit is a number": lambda r: _set_meta(r, git={"commit": 12345, "dirty": "yes"}),
    "packages hold numbers": lambda r: _set_meta(r, packages={"numpy": 2}),
    "status is a number": lambda r: _set_meta(r, status=3),
    "started is a number": lambda r: _set_meta(r, started=1e300),
    "shard count as text": lambda r: _set_meta(r, shard={"index": 1, "count": "2"}),
    "shard out of range": lambda r: _set_meta(r, shard={"index": 5, "count": 2}),
    "merged_from of numbers": lambda r: _set_meta(r, merged_from=[1, 2]),
    "format_version missing": lambda r: _set_meta(r, format_version=None),
    "format_version true": lambda r: _set_meta(r, format_version=True),
    "format_version 0": lambda r: _set_meta(r, format_version=0),
    "format_version newer": lambda r: _set_meta(r, format_version=99),
    "run.json empty": lambda r: (r / "run.json").write_text(""),
    "seed as text": lambda r: _cell(r, seed="0"),
    "status as number": lambda r: _cell(r, status=1),
    "epochs_run as bool": lambda r: _cell(r, epochs_run=True),
    "params negative huge": lambda r: _cell(r, params=-(2**70)),
    "error as object": lambda r: _cell(r, error={"a": 1}),
    "wall_s as text": _replace_text("epochs.jsonl", '"wall_s": ', '"wall_s": "fast", "z": '),
    "missing required column": lambda r: _rewrite_rows(r / "cells.jsonl", 1, lambda row: {"task": row["task"]}),
    "bad line in the middle": lambda r: (r / "cells.jsonl").write_text(
        "\n".join(["{not json"] + (r / "cells.jsonl").read_text().splitlines()) + "\n"),
    "cells file a dangling link": lambda r: ((r / "cells.jsonl").unlink(), (r / "cells.jsonl").symlink_to("/nope")),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CORPUS))
def test_a_damaged_run_gives_every_command_a_clean_answer(runs, tmp_path, name):
    bad = runs / "good"
    CORPUS[name](bad)
    codes = every_command_is_clean(bad, runs / "other", tmp_path / "merged")
    assert codes["history"] == 0  # history skips what it cannot read


@pytest.mark.parametrize(
    "name,message",
    [
        ("run.json invalid UTF-8", "run.json: not valid UTF-8"),
        ("cells invalid UTF-8", "cells.jsonl: line 1 is not valid UTF-8"),
        ("cells is a directory", "cells.jsonl: cells.jsonl is not a regular file"),
        ("run.json deeply nested", "run.json: not valid JSON (nested too deeply)"),
        ("run.json config nested 40 deep", "nested more than 32 levels deep"),
        ("huge integer seed", "line 1: seed is out of range (more than 64 bits)"),
        ("5000-digit integer", "cells.jsonl: line 1 is not valid JSON"),
        ("run.json is a list", "run.json: not a JSON object"),
        ("config is a list", "run.json: config must be an object, got a list"),
        ("cell row is a list", "cells.jsonl: line 1 is not a JSON object"),
        ("details is a list", "line 1: details must be an object or null, got a list"),
        ("null seed on a failed cell", "seed must be an integer, got null"),
        ("git is a string", "run.json: git must be an object or null, got a string"),
        ("git commit is a number", "run.json: git.commit must be a string or null, got an integer"),
        ("packages hold numbers", "run.json: packages['numpy'] must be a string, got an integer"),
        ("shard count as text", "run.json: shard.count must be an integer, got a string"),
        ("merged_from of numbers", "run.json: merged_from[0] must be an object, got an integer"),
        ("format_version true", "no integer format_version"),
        ("format_version 0", "unknown format_version 0; known: 1"),
        ("format_version newer", "has results format 99; this seqbench reads up to 1: upgrade seqbench"),
        ("seed as text", "line 1: seed must be an integer, got a string"),
        ("epochs_run as bool", "line 1: epochs_run must be an integer, got a boolean"),
        ("wall_s as text", "epochs.jsonl: line 1: wall_s must be a number, got a string"),
        ("missing required column", "cells.jsonl: line 2: lacks column(s) model, backend"),
        ("bad line in the middle", "cells.jsonl: line 1 is not valid JSON"),
    ],
)
def test_the_error_names_the_file_line_and_field(runs, name, message):
    CORPUS[name](runs / "good")
    with pytest.raises(ResultsError, match=None) as caught:
        load_run(runs / "good")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_non_finite_literals_read_as_null_like_the_format_writes_them(runs):
    CORPUS["NaN literal"](runs / "good")
    CORPUS["Infinity wall time"](runs / "good")
    run = load_run(runs / "good")
    assert math.isnan(run.cells["accuracy"][0]) and math.isnan(run.epochs["wall_s"][0])
    assert invoke("report", str(runs / "good")).returncode == 0


def test_history_skips_a_bad_run_with_a_warning_and_shows_the_rest(runs):
    CORPUS["git is a string"](runs / "good")
    result = invoke("history", str(runs))
    assert result.returncode == 0
    assert "skipped" in result.stderr and "git must be an object" in result.stderr
    assert "1 runs" in result.stdout


def test_compare_of_a_damaged_run_is_exit_2_never_1(runs):
    CORPUS["null seed on a failed cell"](runs / "good")
    assert invoke("compare", str(runs / "other"), str(runs / "good")).returncode == 2


# ------------------------------------------------------------------ a run that did not finish


def _cut_last_line(path: Path, keep: int = 25) -> None:
    data = path.read_bytes().rstrip(b"\n")
    start = data.rfind(b"\n") + 1
    path.write_bytes(data[: start + keep])


@pytest.mark.parametrize("status", ["running", "interrupted", "failed"])
@pytest.mark.parametrize("table", ["cells.jsonl", "epochs.jsonl"])
def test_an_unfinished_run_with_a_cut_last_line_reports_as_far_as_it_got(runs, status, table):
    run = runs / "good"
    _set_meta(run, status=status, ended=None)
    rows = len((run / table).read_text().splitlines())
    _cut_last_line(run / table)
    data = read_run(run)
    assert len(data.cells if table == "cells.jsonl" else data.epochs) == rows - 1
    assert data.notes == [f"{table}: the last line ({rows}) was cut short and is left out"]
    result = invoke("report", str(run))
    assert result.returncode == 0, result.stderr
    assert "PARTIAL" in result.stdout and f"note: {table}: the last line" in result.stdout
    assert "ended None" not in result.stdout and "no end time (still running, or killed)" in result.stdout


def test_a_complete_run_with_a_cut_last_line_is_an_error(runs):
    _cut_last_line(runs / "good" / "cells.jsonl")
    with pytest.raises(ResultsError, match="cells.jsonl: line 4 is not valid JSON"):
        load_run(runs / "good")


def test_a_bad_line_before_the_last_is_an_error_even_in_an_unfinished_run(runs):
    run = runs / "good"
    _set_meta(run, status="running")
    lines = (run / "epochs.jsonl").read_text().splitlines()
    lines[2] = lines[2][:20]
    (run / "epochs.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match="epochs.jsonl: line 3 is not valid JSON"):
        load_run(run)


# ------------------------------------------------------------------ driven by the records' own fields


def test_fields_added_to_the_records_are_checked_and_missing_optional_ones_read_as_null(runs, monkeypatch):
    from dataclasses import make_dataclass

    import seqbench.loader as loader

    Extended = make_dataclass("Extended", [("retry_count", int, 1), ("warmed", bool, False)], bases=(CellRecord,),
                              frozen=True)  # fmt: skip
    check = loader._record(Extended, row=True)
    row = json.loads((runs / "good" / "cells.jsonl").read_text().splitlines()[0])
    assert check(row)["retry_count"] is None and check(row)["warmed"] is None  # an older file: absent = unknown
    assert check(row | {"retry_count": 2, "warmed": True})["retry_count"] == 2
    with pytest.raises(loader._Invalid, match="warmed must be a boolean, got an integer"):
        check(row | {"warmed": 1})
    assert check(row | {"future_column": [1, 2]})["future_column"] == [1, 2]  # unknown keys pass through


def test_every_record_field_has_a_check(tmp_path):
    for record in (CellRecord, EpochRecord):
        from seqbench.loader import record_fields

        assert [f.name for f in record_fields(record)] == list(record.__dataclass_fields__)
    assert checker(int)(3.0) == 3 and checker(float)(2) == 2.0 and checker(float)(None) is None


# ------------------------------------------------------------------ generated damage


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["ok", "error", "$x^{$", "\x1b[31mred", "<img src=x>", "a|b\r\nc", "@user", "# head"]),
)  # fmt: skip
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)  # fmt: skip
FILES = ["run.json", "cells.jsonl", "epochs.jsonl"]


@dataclass
class Damage:
    """One change to one file of a good run, as hypothesis drew it."""

    file: str
    kind: str
    line: int
    key: str
    value: object
    cut: int
    junk: bytes

    def apply(self, run: Path) -> None:
        path = run / self.file
        if self.kind == "directory":
            path.unlink()
            path.mkdir()
            return
        if self.kind in ("cut", "junk"):
            data = path.read_bytes()
            at = self.cut % (len(data) + 1)
            path.write_bytes(data[:at] + (self.junk if self.kind == "junk" else b""))
            return
        try:
            self._edit(path)
        except (ValueError, IndexError, TypeError, AttributeError, ZeroDivisionError):
            pass  # an earlier change already made it unreadable as JSON: that damage stands

    def _edit(self, path: Path) -> None:
        if self.file == "run.json":
            doc = json.loads(path.read_text())
            target = doc if self.key not in ("config", "machine", "git", "shard") or not isinstance(
                doc.get(self.key), dict) else doc[self.key]  # fmt: skip
            field = self.key if target is doc else next(iter(target), self.key)
            if self.kind == "delete":
                target.pop(field, None)
            else:
                target[field] = self.value
            path.write_text(json.dumps(doc, allow_nan=True))
            return
        lines = path.read_text().splitlines()
        index = self.line % len(lines)  # an empty file: ZeroDivisionError
        row = json.loads(lines[index])
        field = list(row)[(self.line // 7 + len(self.key)) % len(row)]
        if self.kind == "delete":
            row.pop(field)
        else:
            row[field] = self.value
        lines[index] = json.dumps(row, allow_nan=True)
        path.write_text("\n".join(lines) + "\n")


damages = st.builds(
    Damage, file=st.sampled_from(FILES), kind=st.sampled_from(["value", "value", "delete", "cut", "junk", "directory"]),
    line=st.integers(0, 50), key=st.sampled_from(["status", "config", "machine", "git", "shard", "started", "ended",
                                                   "cells_planned", "packages", "machines", "merged_from", "x"]),
    value=JSON_VALUES, cut=st.integers(0, 10_000), junk=st.binary(max_size=12),
)  # fmt: skip
statuses = st.sampled_from(["complete", "running", "interrupted", "failed"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=st.lists(damages, min_size=1, max_size=3), status=statuses,
       command=st.integers(0, len(commands(Path("a"), Path("b"), Path("c"))) - 1))  # fmt: skip
def test_generated_damage_never_gives_a_traceback(template, damage, status, command):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        shutil.copytree(template, root)
        bad = root / "good"
        _set_meta(bad, status=status)
        for d in damage:
            if (bad / d.file).is_file():
                d.apply(bad)
        args = commands(bad, root / "other", Path(tmp) / "merged")[command]
        assert_clean(args)
        try:
            load_run(bad)
        except ResultsError as e:
            assert "\n" not in str(e)
        if os.environ.get("SEQBENCH_FUZZ_ALL"):  # every command, for a longer local search
            every_command_is_clean(bad, root / "other", Path(tmp) / "merged-all")


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(RunConfig)])
def test_run_json_config_is_checked_against_every_runconfig_field(runs: Path, name: str) -> None:
    """run.json's config has no second schema: each RunConfig field is checked as RunConfig declares it."""
    from seqbench.loader import read_meta

    assert read_meta(runs / "good")["config"]  # the factory's config reads as it is
    meta = json.loads((runs / "good" / "run.json").read_text())
    _set_meta(runs / "good", config=meta["config"] | {name: {"not": "a setting"}})
    if name in ("task_params", "envs"):  # mappings: an object of the wrong values
        _set_meta(runs / "good", config=meta["config"] | {name: {"x": {"not": "a value"}}})
    with pytest.raises(ResultsError, match=rf"run.json: config\.{name}"):
        read_meta(runs / "good")
