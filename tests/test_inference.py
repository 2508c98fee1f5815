"""The harness's inference phase: the latency timer, its percentiles, the cold call apart, and the cell columns."""

from __future__ import annotations

import numpy as np
import pytest
from seqbench_numpy import NumpyBackend

from seqbench.config import INFERENCE_SETTINGS
from seqbench.contract import ModelBase, Weights
from seqbench.harness import INFERENCE, InferencePlan, measure_inference, run_cell
from seqbench.results import CellConfig
from seqbench.tasks import ArithmeticTask


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeModel(ModelBase):
    """Each predict advances the fake clock by the next duration; synchronize is counted (and adds its own time)."""

    def __init__(self, clock: FakeClock, durations: list[float], sync_s: float = 0.0) -> None:
        self.clock, self.durations, self.sync_s = clock, list(durations), sync_s
        self.batches: list[int] = []
        self.synced = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(len(x))
        self.clock.now += self.durations.pop(0) if self.durations else 1.0
        return np.zeros(len(x), np.float32)

    def synchronize(self) -> None:
        self.synced += 1
        self.clock.now += self.sync_s

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None: ...
    def train_epoch(self, order: np.ndarray, batch_size: int) -> float: return 0.0  # noqa: E704
    def get_weights(self) -> Weights: raise NotImplementedError  # noqa: E704
    def trainable_params(self) -> int: return 0  # noqa: E704


PLAN = InferencePlan(warmup=2, min_calls=100, max_calls=100, seconds=1e9, batch=8, rounds=3)


def test_the_latency_timer_keeps_the_cold_call_apart_and_takes_percentiles_over_the_timed_calls():
    clock = FakeClock()
    timed = [0.001 * (i + 1) for i in range(100)]  # 1 ms .. 100 ms
    # cold call 5 s; two warm-up calls of 7 s that must count nowhere; the timed calls; the throughput calls
    model = FakeModel(clock, [5.0, 7.0, 7.0, *timed, 9.0, 0.2, 0.4, 0.3])
    got = measure_inference(model, np.zeros((10, 3, 1), np.float32), PLAN, clock)
    assert got.first_s == 5.0
    assert got.calls == 100
    assert got.p50_s == pytest.approx(np.percentile(timed, 50))
    assert got.p90_s == pytest.approx(np.percentile(timed, 90))
    assert got.p99_s == pytest.approx(np.percentile(timed, 99))
    assert got.p50_s < 7.0 and got.p99_s < 5.0  # neither the warm-up nor the cold call leaked in
    # throughput: the first call at the big shape (9 s) is untimed; the median of 0.2, 0.4, 0.3 is 0.3 s for 8
    assert got.throughput_per_s == pytest.approx(8 / 0.3)
    assert model.batches[: 3 + 100] == [1] * 103 and model.batches[103:] == [8] * 4


def test_every_timed_call_waits_for_synchronize_inside_the_timed_region():
    clock = FakeClock()
    model = FakeModel(clock, [0.0] * 200, sync_s=0.5)  # the device work shows only in synchronize
    got = measure_inference(model, np.zeros((4, 3, 1), np.float32), PLAN, clock)
    assert model.synced == len(model.batches)  # every predict is followed by a synchronize
    assert got.first_s == got.p50_s == got.p99_s == 0.5
    assert got.throughput_per_s == pytest.approx(8 / 0.5)


def test_a_slow_path_stops_on_the_time_floor_once_it_has_its_minimum_calls():
    clock = FakeClock()
    plan = InferencePlan(warmup=0, min_calls=5, max_calls=1000, seconds=1.0, batch=4, rounds=10)
    got = measure_inference(FakeModel(clock, [0.3] * 2000), np.zeros((4, 2, 1), np.float32), plan, clock)
    assert got.calls == 5  # 5 calls of 0.3 s passed the 1 s floor: no more
    plan = InferencePlan(warmup=0, min_calls=5, max_calls=1000, seconds=1.0, batch=4, rounds=10)
    got = measure_inference(FakeModel(clock, [0.001] * 2000), np.zeros((4, 2, 1), np.float32), plan, clock)
    assert got.calls == 1000  # a fast path stops on the count


def test_the_settings_of_the_cli_are_the_harness_plans():
    assert tuple(INFERENCE) == INFERENCE_SETTINGS and INFERENCE["off"] is None


def _cell(**kw: object) -> CellConfig:
    base = dict(task="arithmetic", model="rnn", backend="numpy", implementation="reference", device="cpu",
                seed=0, units=10, activation="relu", epochs=2, batch_size=32, threads=1)
    return CellConfig(**{**base, **kw})  # type: ignore[arg-type]


COLUMNS = ("latency_first_s", "latency_p50_s", "latency_p90_s", "latency_p99_s", "throughput_per_s")


def test_a_cell_records_the_inference_columns_after_training_and_none_when_off():
    record = run_cell(NumpyBackend(), _cell(), ArithmeticTask())
    values = [getattr(record, c) for c in COLUMNS]
    assert all(isinstance(v, float) and v > 0 for v in values), values
    assert record.latency_p50_s <= record.latency_p90_s <= record.latency_p99_s  # type: ignore[operator]
    assert int(record.details["latency_calls"]) >= INFERENCE["quick"].min_calls  # type: ignore[index,union-attr]
    off = run_cell(NumpyBackend(), _cell(inference="off"), ArithmeticTask())
    assert all(getattr(off, c) is None for c in COLUMNS) and "latency_calls" not in (off.details or {})
    with pytest.raises(ValueError, match="valid: off, quick, full"):
        run_cell(NumpyBackend(), _cell(inference="forever"), ArithmeticTask())


# ------------------------------------------------------------------ reports: latency takes the steady epoch's path


def test_compare_judges_latency_over_processes_as_it_judges_epochs(tmp_path):
    from seqbench.compare_report import render
    from seqbench.comparison import compare_runs
    from seqbench.loader import load_run
    from seqbench.stats import SAME, SLOWER
    from tests.runfactory import Row, make_run

    # epochs equal, latency 40% slower in NEW: only the latency comparison finds it
    base = make_run(tmp_path, "base", [Row(latency_s=1e-4)], process_noise=0.02)
    new = make_run(tmp_path, "new", [Row(latency_s=1.4e-4)], process_noise=0.02, seed=1)
    epoch = compare_runs(load_run(base), load_run(new))
    latency = compare_runs(load_run(base), load_run(new), measure="latency")
    assert epoch.table["verdict"].tolist() == [SAME] and epoch.exit_code == 0
    row = latency.table.iloc[0]
    assert row["verdict"] == SLOWER and latency.exit_code == 1 and row["n_base"] == row["n_new"] == 3
    assert row["base_median"] == pytest.approx(0.1, rel=0.1) and row["ratio"] == pytest.approx(1.4, rel=0.1)
    assert "median latency p50 at batch 1, ms" in render(latency, "text")
    assert '"measure": "latency"' in render(latency, "json")


def test_report_summary_history_and_exports_carry_the_latency(tmp_path):
    import json

    import seqbench
    from seqbench.export import github_action_benchmark_json, pytest_benchmark_json
    from seqbench.history import gather
    from seqbench.history import render as history_render
    from seqbench.loader import load_run
    from seqbench.report import render
    from tests.runfactory import Row, invoke, make_run

    path = make_run(tmp_path, "r1", [Row(latency_s=2e-4), Row(backend="torch", implementation="cudnn")])
    run = load_run(path)
    table = seqbench.summary(run).set_index("backend")
    assert table.loc["numpy", "latency_p50_ms"] == pytest.approx(0.2, rel=0.1)
    assert table.loc["numpy", "latency_p99_ms"] == pytest.approx(0.4, rel=0.1)
    assert table.loc["numpy", "throughput_per_s"] == pytest.approx(50 / 2e-4, rel=0.1)
    assert np.isnan(table.loc["torch", "latency_p50_ms"])  # its phase was off: no number, not a zero
    text = render(run, "text")
    assert "latency ms" in text and "p99 ms" in text and "pred/s" in text and "1st call ms" in text
    assert "latency_p50_ms" in render(run, "csv").splitlines()[0]
    for fmt in ("md", "html"):
        assert "latency ms" in render(run, fmt, plots=False)
    assert json.loads(render(run, "json"))["summary"][0]["latency_p50_ms"] == pytest.approx(0.2, rel=0.1)
    h = gather([tmp_path])
    assert "latency p50 at batch 1, ms" in history_render(h, "text", measure="latency")
    bench = pytest_benchmark_json(run, measure="latency")["benchmarks"]
    assert [b["name"] for b in bench] == ["latency_p50[arithmetic-rnn-numpy-reference-cpu]"]
    assert bench[0]["stats"]["rounds"] == 3 and bench[0]["stats"]["median"] == pytest.approx(2e-4, rel=0.1)
    action = github_action_benchmark_json(run, measure="latency")
    assert [a["name"] for a in action] == ["arithmetic rnn numpy:reference/cpu latency p50 at batch 1"]
    assert action[0]["unit"] == "ms" and action[0]["value"] == pytest.approx(0.2, rel=0.1)
    # the epoch exports are what they were
    assert len(pytest_benchmark_json(run)["benchmarks"]) == 2
    done = invoke("export", str(path), "--format", "github-action-benchmark", "--measure", "latency")
    assert done.returncode == 0 and "latency p50" in done.stdout
    assert invoke("compare", str(path), str(path), "--measure", "latency").returncode == 0


class TwoPathModel(FakeModel):
    """A model with two other predictors: one that works (and counts its calls), one that fails."""

    def __init__(self) -> None:
        super().__init__(FakeClock(), [])
        self.other_calls = 0

    def predictors(self) -> dict:
        def other(x: np.ndarray) -> np.ndarray:
            self.other_calls += 1
            return np.ones(len(x), np.float32)

        def broken(x: np.ndarray) -> np.ndarray:
            raise RuntimeError("graph break: Dynamo does not support RNN")

        return {"other": other, "broken": broken}


def test_full_inference_times_each_other_path_and_records_one_that_fails_without_failing_the_cell():
    from seqbench.harness import inference_phase

    model = TwoPathModel()
    fields, details = inference_phase(model, np.zeros((10, 3, 1), np.float32), "full")
    paths = fields["inference_paths"]
    assert {k.split("/")[1] for k in paths if k.startswith("other/")} == {
        "latency_first_s", "latency_p50_s", "latency_p90_s", "latency_p99_s", "throughput_per_s", "latency_calls"}
    assert model.other_calls >= 20 and paths["other/latency_calls"] >= 20
    assert not any(k.startswith("broken/") for k in paths)
    assert details["inference_path:broken"].startswith("failed: RuntimeError: graph break")
    assert fields["latency_p50_s"] is not None  # predict itself is measured as before


def test_quick_inference_times_predict_alone():
    from seqbench.harness import inference_phase

    model = TwoPathModel()
    fields, details = inference_phase(model, np.zeros((10, 3, 1), np.float32), "quick")
    assert model.other_calls == 0 and "inference_paths" not in fields and not any("path" in k for k in details)
