"""One name for each identity and status (seqbench.keys), and the layout of the reporting modules."""

from __future__ import annotations

import ast
import json
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

import seqbench
from seqbench.errors import ResultsError
from seqbench.keys import (
    COMPLETED,
    KEY_FIELDS,
    REPEAT_FIELDS,
    RowKey,
    RunStatus,
    Status,
    experiment_label,
)
from seqbench.merge import merge_runs
from seqbench.results import CELL_COLUMNS, EPOCH_COLUMNS, CellConfig, Repeat, as_row, failed_cell
from seqbench.views import cell_view, summary
from tests.runfactory import Row, make_run

PACKAGE = Path(seqbench.__file__).parent


def test_statuses_are_the_strings_written_and_read_back():
    assert json.dumps({"status": Status.TIMEOUT, "run": RunStatus.PARTIAL}) == '{"status": "timeout", "run": "partial"}'
    assert f"{Status.OK} {RunStatus.COMPLETE}" == "ok complete"
    assert "ok" in {Status.OK} and hash(Status.DIVERGED) == hash("diverged")  # dict and set lookups by the read string
    read_back = pd.Series(["ok", "diverged", "error", "timeout"])
    assert read_back.isin(COMPLETED).tolist() == [True, True, False, False]
    cell = CellConfig("arithmetic", "rnn", "numpy", "reference", "cpu", 0, 10, "relu", 3, 32, 1)
    assert as_row(failed_cell(cell, Status.TIMEOUT, "killed"))["status"] == "timeout"


def test_a_cell_with_a_status_no_seqbench_writes_is_refused_by_name(tmp_path):
    run = make_run(tmp_path, "r", [Row()])
    lines = (run / "cells.jsonl").read_text().splitlines()
    row = json.loads(lines[0]) | {"status": "skipped"}
    (run / "cells.jsonl").write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    with pytest.raises(ResultsError, match=r"cells.jsonl: line 1.*status must be one of 'ok', 'diverged'"):
        seqbench.load_run(run)


def test_every_record_starts_with_the_repeat_and_every_key_field_is_a_column():
    repeat = [f.name for f in fields(Repeat)]
    assert CELL_COLUMNS[: len(repeat)] == repeat and EPOCH_COLUMNS[: len(repeat)] == repeat
    assert set(REPEAT_FIELDS) - {"experiment"} == set(repeat)
    assert set(KEY_FIELDS) - {"experiment"} <= set(repeat)


def test_a_cell_key_is_the_same_from_a_record_a_view_and_a_summary_row(tmp_path):
    run = seqbench.load_run(make_run(tmp_path, "r", [Row(model="lstm")]))
    cells = cell_view(run)
    key = RowKey.of(cells.iloc[0].to_dict())
    assert key == RowKey.of(summary(cells).iloc[0].to_dict()) == RowKey.of(run.epochs.iloc[0].to_dict())
    raw = run.cells.iloc[0].to_dict() | {"dtype": "float32"}  # as a worker writes it; no experiment column
    assert RowKey.of(raw) == key and key.experiment == experiment_label(raw)
    assert key.entrant == "numpy:reference/cpu"
    assert key.slug() == "arithmetic-lstm-numpy-reference-cpu"


def test_merge_keeps_a_grid_runs_experiments_apart(tmp_path):
    # A grid over units measures the same backend, model and seed in two experiments: two cells, not one twice.
    grid = make_run(tmp_path, "grid", [Row(model="rnn", units=10), Row(model="rnn", units=32)],
                    config={"units": [10, 32]})  # fmt: skip
    result = merge_runs([grid], tmp_path / "merged")
    assert result.cells == 6
    table = summary(cell_view(seqbench.load_run(tmp_path / "merged")))
    assert sorted(table["experiment"].str.extract(r"units=(\d+)")[0]) == ["10", "32"]
    with pytest.raises(ResultsError, match=r"numpy/reference/rnn/cpu seed=0 attempt=1 \[.*units=10"):
        merge_runs([grid, make_run(tmp_path / "again", "grid", [Row(model="rnn", units=10)],
                                   config={"units": [10, 32]})], tmp_path / "m2")  # fmt: skip


# ------------------------------------------------------------------ the layout of the reporting house


def _imports(module: str, top_level_only: bool = True) -> set[str]:
    """The seqbench modules that ``seqbench.<module>`` imports (at import time when ``top_level_only``)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seqbench."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("seqbench.")}
    return found


def test_views_compute_and_renderers_render():
    # Views are DataFrames with nothing formatted: they import no renderer, no number formatting, no escaping.
    assert not _imports("views", top_level_only=False) & {"report", "tables", "formatting", "escape", "plots",
                                                          "compare_report", "history"}  # fmt: skip
    # Statistics and matching do not render; renderers do not compute a verdict.
    assert not _imports("comparison", top_level_only=False) & {"tables", "formatting", "escape", "report"}
    assert not _imports("stats", top_level_only=False) & {"views", "tables", "formatting"}
    # Nothing reaches into another renderer for its helpers: shared ones live in tables and formatting.
    for renderer in ("report", "compare_report", "history", "plots", "export", "dashboard"):
        assert not _imports(renderer, top_level_only=False) & {"report", "compare_report"} - {renderer}, renderer


def test_seqbench_modules_import_each_other_without_a_cycle():
    graph = {p.stem: _imports(p.stem) for p in PACKAGE.glob("*.py")}

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join([*path, module])
        for other in graph.get(module, ()):
            visit(other, (*path, module))

    for module in graph:
        visit(module, ())


def _compared_strings(tree: ast.AST) -> set[str]:
    """String literals that code compares values with: ``==``/``in`` operands, and ``isin``/``eq``/``ne`` arguments."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "isin", "eq", "ne"):  # fmt: skip
            operands = list(node.args)
        else:
            continue
        for operand in operands:
            members = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            found |= {m.value for m in members if isinstance(m, ast.Constant) and isinstance(m.value, str)}
    return found


def test_statuses_are_spelled_once():
    # Every status string lives in seqbench.keys; elsewhere code compares with the enum member.
    spelled = {s.value for s in Status} | {s.value for s in RunStatus}
    assert _compared_strings(ast.parse('s in ("ok", "x"); t.isin(["error"]); r.status != "complete"')) == {
        "ok", "x", "error", "complete"}  # the check can fail
    for path in PACKAGE.glob("*.py"):
        if path.name != "keys.py":
            found = _compared_strings(ast.parse(path.read_text())) & spelled
            assert not found, f"{path.name} compares with {sorted(found)}"
