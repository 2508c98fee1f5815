"""Comma lists on the command line expand into every combination of one run."""

from __future__ import annotations

import pytest

from seqbench import grid
from seqbench.cli import build_parser
from seqbench.errors import UsageError
from seqbench.plugins import load_registry
from seqbench.runner import RunConfig, plan


def test_parse_list_keeps_a_single_value_plain_and_a_list_a_tuple():
    assert grid.parse_list("16", int) == 16
    assert grid.parse_list("16,64,256", int) == (16, 64, 256)
    assert grid.parse_list("relu, tanh") == ("relu", "tanh")
    assert grid.parse_list("32,32,64", int) == (32, 64)  # duplicates once
    with pytest.raises(ValueError, match="'x' in '1,x' is not an integer"):
        grid.parse_list("1,x", int)
    with pytest.raises(ValueError, match="comma list"):
        grid.parse_list("1,,2", int)


def test_expand_is_every_combination_task_parameters_outermost():
    config = RunConfig(units=(16, 64), batch_size=32, activation=("relu", "tanh"), task_params={"steps": (10, 50),
                       "samples": 100})  # fmt: skip
    points = grid.expand(config)
    assert len(points) == 8
    assert points[0] == grid.Point(16, 32, "relu", {"steps": 10, "samples": 100})
    assert points[-1] == grid.Point(64, 32, "tanh", {"steps": 50, "samples": 100})
    assert len({(p.units, p.activation, p.task_params["steps"]) for p in points}) == 8
    assert grid.varied(config) == ["task.steps", "units", "activation"]
    assert grid.expand(RunConfig()) == [grid.Point(10, 32, "relu", {})]
    assert grid.varied(RunConfig()) == []


def test_the_cli_parses_lists_into_the_run_config():
    args = build_parser().parse_args(["run", "--units", "16,64", "--batch-size", "32", "--activation", "relu,tanh",
                                      "-P", "steps=10,50", "-P", "samples=64"])  # fmt: skip
    assert args.units == (16, 64) and args.batch_size == 32 and args.activation == ("relu", "tanh")
    assert dict(args.task_param) == {"steps": (10, 50), "samples": 64}
    with pytest.raises(UsageError, match="integer"):
        build_parser().parse_args(["run", "--units", "16,big"])
    with pytest.raises(UsageError, match="KEY=INTEGER"):
        build_parser().parse_args(["run", "-P", "steps=10,x"])


def test_plan_makes_one_cell_per_point_model_and_seed_each_with_its_values():
    config = RunConfig(backends=("numpy",), models=("rnn", "gru"), task="adding", seeds=2,
                       units=(4, 8), activation="tanh", task_params={"steps": (4, 6), "samples": 32},
                       calibrate=False)  # fmt: skip
    cells = plan(config, load_registry()).cells
    assert len(cells) == 2 * 2 * 2 * 2  # steps x units x models x seeds
    assert {(c.units, c.task_params["steps"]) for c in cells} == {(4, 4), (4, 6), (8, 4), (8, 6)}
    assert all(c.activation == "tanh" and c.task_params["samples"] == 32 for c in cells)


def test_a_bad_value_anywhere_in_a_list_is_a_usage_error():
    registry = load_registry()
    with pytest.raises(UsageError, match="--units must be positive, got 0"):
        plan(RunConfig(backends=("numpy",), units=(8, 0)), registry)
    with pytest.raises(UsageError, match="unknown activation 'elu'"):
        plan(RunConfig(backends=("numpy",), activation=("relu", "elu")), registry)
    with pytest.raises(UsageError, match="steps >= 2"):
        plan(RunConfig(backends=("numpy",), task="adding", task_params={"steps": (10, 1)}), registry)


def test_the_planner_learns_each_grid_points_shape_without_making_its_data(monkeypatch):
    """A grid of large tasks is planned in the parent from each task's shape(); only workers make data."""
    from seqbench.tasks import AddingTask, ArithmeticTask

    def never(self, seed, **params):
        raise AssertionError("the parent made a whole dataset to plan")

    monkeypatch.setattr(AddingTask, "make", never)
    monkeypatch.setattr(ArithmeticTask, "make", never)
    cells = plan(RunConfig(backends=("numpy",), task="adding", task_params={"steps": (10, 50), "samples": 200000},
                           seeds=1), load_registry()).cells  # fmt: skip
    assert sorted({c.task_params["steps"] for c in cells}) == [10, 50]
    assert len(plan(RunConfig(backends=("numpy",), seeds=1), load_registry()).cells) == 2


@pytest.mark.parametrize("task, params", [("arithmetic", {}), ("arithmetic", {"steps": 7, "samples": 40}),
                                          ("adding", {"steps": 9, "samples": 30}), ("digits", {})])  # fmt: skip
def test_a_tasks_shape_is_the_shape_of_the_data_it_makes(task, params):
    from dataclasses import astuple

    from seqbench.tasks import DataShape, data_shape

    t = load_registry().task(task)
    if task == "digits":
        pytest.importorskip("sklearn")
    data = t.make(0, **params)
    assert data_shape(t, params) == DataShape(data.steps, data.features, data.head, data.outputs)
    assert astuple(data_shape(t, params))[:2] == data.x_train.shape[1:]


def test_a_task_without_shape_is_planned_from_its_data():
    from seqbench.tasks import ArithmeticTask, DataShape, data_shape

    class Old:  # a plugin task written before shape() existed
        name, description, defaults = "old", "", dict(ArithmeticTask.defaults)
        make, metrics = ArithmeticTask.make, ArithmeticTask.metrics
        _sequences = ArithmeticTask._sequences

    assert data_shape(Old(), {"steps": 4}) == DataShape(4, 1)
    with pytest.raises(ValueError, match="must be positive"):
        data_shape(load_registry().task("adding"), {"steps": 0})
