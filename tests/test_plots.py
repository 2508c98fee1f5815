"""The figures: dots with labelled intervals on fixed log axes, one colour per backend, agreement stated, SVG."""

from __future__ import annotations

import pandas as pd
import pytest

import seqbench
from tests.runfactory import Row, invoke, make_run

pytest.importorskip("matplotlib")

from seqbench import plots  # noqa: E402
from seqbench.views import cell_view, summary  # noqa: E402


@pytest.fixture
def run(tmp_path):
    rows = [Row(backend="numpy", model="rnn", steady_s=0.0025), Row(backend="torch", implementation="loop",
            model="rnn", steady_s=0.0049), Row(backend="numpy", model="lstm", steady_s=0.004)]  # fmt: skip
    return seqbench.load_run(make_run(tmp_path, "r", rows))


def _texts(fig) -> str:
    out = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    return "\n".join(out)


def test_steady_time_is_dots_with_min_max_whiskers_on_a_fixed_log_axis(run):
    fig = plots.steady_time_figure(summary(cell_view(run)))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"  # even though the data span less than a factor of 2
    low, high = ax.get_ylim()
    assert (low, high) == (1.0, 10.0)  # whole decades: the axis does not move with the data
    assert "lower is better" in ax.get_ylabel()
    assert not ax.patches  # no bars: bar heights on a log axis mean nothing
    text = _texts(fig)
    assert "bar: min-max over processes" in text
    medians = summary(cell_view(run))["steady_epoch_ms"]
    from seqbench.formatting import fmt_ms

    assert all(fmt_ms(v) in text for v in medians)  # each dot carries its value


def test_every_figure_gives_a_backend_the_same_colour(run):
    figures = plots.run_figures(run)
    colors = plots.entrant_colors(["numpy:reference/cpu", "torch:loop/cpu"])
    for name in ("steady_time", "accuracy", "loss_curves"):
        fig = figures[name]
        legend = fig.axes[0].get_legend()
        assert legend is not None, name  # the accuracy plot has a legend too
        from matplotlib.colors import to_hex

        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            color = handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor()
            color = color[0] if not isinstance(color, str) and len(color) and not isinstance(color[0], float) else color
            assert to_hex(color) == to_hex(colors[text.get_text()]), (name, text.get_text())


def test_loss_agreement_is_the_largest_relative_gap_between_backends():
    epochs = pd.DataFrame({
        "task": "t", "model": "rnn", "implementation": "i", "device": "cpu", "seed": 0,
        "backend": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2], "loss": [1.0, 0.5, 1.0001, 0.5],
    })  # fmt: skip
    assert plots.loss_agreement(epochs)["t", "rnn"] == pytest.approx(1e-4, rel=1e-3)
    one = epochs[epochs["backend"] == "a"]
    assert plots.loss_agreement(one)["t", "rnn"] != plots.loss_agreement(one)["t", "rnn"]  # NaN: one backend
    assert "backends agree to 1.0e-04" in _texts(plots.loss_figure(epochs))


def _overprinted(fig) -> list[tuple[str, str]]:
    """The pairs of texts that ``fig`` draws whose boxes intersect (by more than a pixel's rounding)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    # an axis keeps tick labels for ticks outside its view too, visible but never drawn: only the drawn count
    axes = [axis for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)]
    every_tick = {id(t.label1) for axis in axes for t in axis.get_major_ticks() + axis.get_minor_ticks()}
    drawn = {id(t.label1) for axis in axes for t in axis._update_ticks()}
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
             and (id(t) not in every_tick or id(t) in drawn)]  # fmt: skip
    # Text's own extent: an annotation's would hold its leader line too
    boxes = [(t.get_text(), Text.get_window_extent(t, renderer).padded(-1)) for t in texts]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


@pytest.fixture
def close_run(tmp_path):
    """Six backends within 4% of each other on two models: every value label would land on its neighbour's."""
    names = [("numpy", "reference"), ("torch", "loop"), ("torch", "cudnn"), ("jax", "scan"), ("keras", "graph"),
             ("keras-jax", "graph")]  # fmt: skip
    times = [0.00170, 0.00166, 0.00168, 0.00172, 0.00169, 0.00171]
    rows = [Row(backend=b, implementation=i, model=m, steady_s=t, first_s=t * 1.02)
            for (b, i), t in zip(names, times, strict=True) for m in ("rnn", "lstm")]  # fmt: skip
    return seqbench.load_run(make_run(tmp_path, "close", rows, noise=0.0))


@pytest.mark.parametrize("figure", ["steady_time", "first_vs_steady"])
def test_value_labels_never_overprint(close_run, figure):
    fig = plots.run_figures(close_run)[figure]
    assert _overprinted(fig) == []
    text = _texts(fig)
    assert "1.70" in text and "1.66" in text  # every value is still written
    assert plots.png(fig) and plots.render_figure(fig, "svg")  # and saving does not move them


def test_first_vs_steady_tick_labels_are_readable(close_run):
    fig = plots.first_vs_steady_figure(summary(cell_view(close_run)))
    ticks = [t for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert len(ticks) == 12 and all(t.get_fontsize() >= 9 and t.get_rotation() == 0 for t in ticks)
    assert fig.get_figwidth() <= 12  # never wider than the page shows at full size: the rows grow downwards


def test_report_writes_svg_plots(tmp_path, run):
    out = invoke("report", str(run.path), "--plots", str(tmp_path / "svg"), "--plot-format", "svg")
    assert out.returncode == 0, out.stderr
    files = sorted((tmp_path / "svg").iterdir())
    assert [f.suffix for f in files] == [".svg"] * 4
    assert all(b"<svg" in f.read_bytes()[:2000] for f in files)


@pytest.mark.slow
def test_a_grid_run_plots_time_against_each_varied_parameter_and_the_metric_against_length(tmp_path):
    result = invoke("run", "--backends", "numpy", "--task", "adding", "--models", "rnn,gru", "--activation", "tanh",
                    "--units", "4,8", "-P", "steps=4,8", "-P", "samples=64", "-P", "test_samples=32", "--epochs", "2",
                    "--seeds", "1", "--retries", "0", "--no-calibration", "--results-dir", str(tmp_path),
                    "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = seqbench.load_run(result.stdout.strip().splitlines()[-1])
    cells = cell_view(run)
    assert set(plots.grid_parameters(cells)) == {"units", "task.steps"}
    figures = plots.run_figures(run)
    scaling = figures["scaling"]
    assert [ax.get_xlabel() for ax in scaling.axes] == ["units", "task.steps"]
    assert all(ax.get_xscale() == ax.get_yscale() == "log" for ax in scaling.axes)
    lines = figures["metric_vs_length"].axes[0].get_lines()
    assert sorted(line.get_label() for line in lines) == ["gru", "rnn", "trivial baseline"]
    assert len(summary(cells)) == 2 * 2 * 2  # one report row per experiment point and model


def test_a_run_without_a_grid_has_no_grid_figures(run):
    assert not {"scaling", "metric_vs_length"} & set(plots.run_figures(run))


@pytest.mark.filterwarnings("error")
def test_a_value_no_axis_can_draw_is_left_out_with_a_note(tmp_path):
    rows = [Row(steady_s=1e305, first_s=1e305), Row(backend="torch", implementation="loop", steady_s=0.0049)]
    table = summary(cell_view(seqbench.load_run(make_run(tmp_path, "r", rows))))
    for figure in (plots.steady_time_figure, plots.first_vs_steady_figure):
        fig = figure(table)
        assert "left out: " in _texts(fig) and "beyond 1e300" in _texts(fig)
        assert fig.axes[0].get_ylim()[1] <= 100  # the axis is the drawable row's (5 ms, first epoch 50), not 1e308's
        plots.png(fig)
