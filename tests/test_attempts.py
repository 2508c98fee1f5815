"""One repeat, one value, everywhere: the cleanest attempt counts, in every reader."""

from __future__ import annotations

import json

import pytest

import seqbench
from seqbench.attempts import counted
from seqbench.keys import experiment_label
from seqbench.results import FORMAT_VERSION, CellRecord, EpochRecord, RunWriter

EPOCHS = 5
EXPERIMENT = experiment_label({"task_params": {}, "units": 10, "activation": "relu", "epochs": EPOCHS,
                               "batch_size": 32, "threads": 1, "dtype": "float32"})  # fmt: skip


def _row(attempt, status="ok", disturbed=False, wait=0.0, **extra):
    return {"attempt": attempt, "status": status, "disturbed": disturbed, "wait_share": wait, **extra}


def test_the_cleanest_attempt_counts_not_the_latest():
    rows = [_row(1, disturbed=True, wait=0.1), _row(2, disturbed=True, wait=0.6)]
    assert counted(rows, lambda r: 0) == [0]
    rows = [_row(1, disturbed=True, wait=0.6), _row(2, wait=0.01), _row(3, wait=0.0, disturbed=True)]
    assert counted(rows, lambda r: 0) == [1]
    assert counted([_row(1, status="timeout"), _row(2, disturbed=True, wait=0.9)], lambda r: 0) == [1]
    assert counted([_row(1, wait=0.01), _row(2, wait=0.01)], lambda r: 0) == [0]  # a tie: the earliest
    # measured without schedstat: the CPU other processes took decides
    old = [{"attempt": 1, "status": "ok", "disturbed": True, "interference": 0.3},
           {"attempt": 2, "status": "ok", "disturbed": True, "interference": 0.9}]
    assert counted(old, lambda r: 0) == [0]


def test_an_ab_pair_is_chosen_together_by_its_worse_side():
    rows = [_row(1, env="a", wait=0.0), _row(1, env="b", disturbed=True, wait=0.5),
            _row(2, env="a", disturbed=True, wait=0.2), _row(2, env="b", wait=0.0)]  # fmt: skip
    assert counted(rows, lambda r: "seed0") == [2, 3]  # attempt 2's worse side (0.2) beats attempt 1's (0.5)
    cut = rows[:3]  # attempt 2 lacks its B side (the run was stopped): no pair, so attempt 1 counts
    assert counted(cut, lambda r: "seed0") == [0, 1]


def _write_run(root, name):
    """numpy: seed 1 measured twice, both disturbed: 5.8 ms (waited 10%) then 14.4 ms (waited 60%).
    torch: the same losses, its seed 2 failed."""
    writer = RunWriter(root, name)
    meta = {"format_version": FORMAT_VERSION, "seqbench_version": seqbench.__version__, "status": "complete",
            "started": "2026-12-01T10:00:00+0000", "ended": "2026-12-01T10:01:00+0000",
            "config": {"epochs": EPOCHS, "units": 10, "activation": "relu", "batch_size": 32, "threads": 1},
            "machine": {"cpu": "Test CPU", "cores": 2}, "machine_id": "m1", "git": {"commit": "c" * 40},
            "cells_planned": 6, "cells_done": 6}  # fmt: skip
    cells = [("numpy", 0, 1, 5.0, 0.0), ("numpy", 1, 1, 5.8, 0.1), ("numpy", 2, 1, 6.0, 0.0),
             ("numpy", 1, 2, 14.4, 0.6), ("torch", 0, 1, 9.0, 0.0), ("torch", 1, 1, 9.5, 0.0),
             ("torch", 2, 1, None, 0.0)]  # fmt: skip
    for backend, seed, attempt, steady_ms, wait in cells:
        ident = dict(task="arithmetic", model="lstm", backend=backend, implementation="x", device="cpu", seed=seed)
        config = dict(units=10, activation="relu", epochs=EPOCHS, batch_size=32, threads=1, dtype="float32",
                      task_params={}, attempt=attempt)  # fmt: skip
        if steady_ms is None:
            writer.add_cell(CellRecord(**ident, **config, status="error", error="boom", epochs_run=0))
            continue
        disturbed = wait > 0.05
        for e in range(1, EPOCHS + 1):  # every backend computes the same losses for the same seed
            writer.add_epoch(EpochRecord(**ident, epoch=e, loss=10.0 / e + seed, wall_s=steady_ms / 1e3, cpu_s=0.0,
                                         gpu_s=None, attempt=attempt, experiment=EXPERIMENT, wait_s=0.0,
                                         disturbed=disturbed))  # fmt: skip
        writer.add_cell(CellRecord(**ident, **config, status="ok", epochs_run=EPOCHS, steady_epoch_s=steady_ms / 1e3,
                                   first_epoch_s=0.1, accuracy=0.5, final_loss=2.0 + seed, params=491,
                                   disturbed=disturbed, wait_share=wait, clean_epochs=EPOCHS - 1,
                                   meter="schedstat"))  # fmt: skip
    writer.write_meta(meta)
    writer.close()
    return writer.path


def test_every_reader_tells_the_same_story(tmp_path):
    from seqbench.comparison import compare_runs, geometric_mean_ratio
    from seqbench.export import pytest_benchmark_json
    from seqbench.history import gather
    from seqbench.plots import loss_agreement
    from seqbench.report import render
    from seqbench.views import cell_view, epoch_view, same_seeds

    path = _write_run(tmp_path / "runs", "a")
    run = seqbench.load_run(path)
    # load_run: one row per repeat; every attempt on request
    assert len(run.cells) == 6 and len(run.attempts) == 7
    numpy = run.cells[run.cells["backend"] == "numpy"].set_index("seed")
    assert numpy.loc[1, "steady_epoch_s"] == pytest.approx(0.0058) and numpy.loc[1, "attempt"] == 1
    assert set(run.epochs[(run.epochs["backend"] == "numpy") & (run.epochs["seed"] == 1)]["attempt"]) == {1}
    # report: the median over processes 5.0, 5.8, 6.0 (the latest attempt would make it 6.0)
    table = seqbench.summary(run)
    steady = table.set_index("backend")["steady_epoch_ms"]
    assert steady["numpy"] == pytest.approx(5.8)
    assert "5.80 (5.00-6.00)" in render(run, "text")
    # compare, its rows and its headline
    c = compare_runs(run, seqbench.load_run(_write_run(tmp_path / "runs", "b")))
    assert c.table.set_index("backend").loc["numpy", "base_median"] == pytest.approx(5.8)
    assert geometric_mean_ratio(c)[0] == pytest.approx(1.0)
    # export: the median over processes, the report's
    exported = {b["extra_info"]["run_id"] + b["param"]: b["stats"] for b in pytest_benchmark_json(run)["benchmarks"]}
    assert exported["aarithmetic-lstm-numpy-x-cpu"]["median"] == pytest.approx(0.0058)
    # history (and the dashboard, which draws it)
    h = gather([tmp_path / "runs"])
    assert set(h.long[h.long["backend"] == "numpy"]["steady_epoch_ms"].round(6)) == {5.8}
    # plots' data: the counted attempts, and the seeds every backend has
    epochs = same_seeds(epoch_view(cell_view(run), run.epochs))
    assert set(epochs["seed"]) == {0, 1} and (epochs["wall_s"] < 0.010).all()
    assert loss_agreement(epochs)[("arithmetic", "lstm")] == 0  # the same losses: the same curve
    pooled = epoch_view(cell_view(run), run.epochs)  # every seed: numpy's median mixes seed 2, torch's cannot
    assert loss_agreement(pooled)[("arithmetic", "lstm")] > 0


def test_a_run_json_without_the_newer_fields_still_loads_one_row_per_repeat(tmp_path):
    path = _write_run(tmp_path, "old")
    for name in ("cells.jsonl", "epochs.jsonl"):
        lines = [json.loads(line) for line in (path / name).read_text().splitlines()]
        for row in lines:
            for key in ("env", "wait_share", "clean_epochs", "meter", "wait_s", "disturbed"):
                row.pop(key, None)
        (path / name).write_text("".join(json.dumps(r) + "\n" for r in lines))
    run = seqbench.load_run(path)
    assert len(run.cells) == 6 and set(run.cells["env"].fillna("")) == {""}
    assert seqbench.summary(run).set_index("backend")["steady_epoch_ms"]["numpy"] == pytest.approx(5.8)
