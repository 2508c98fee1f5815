"""The HTML report and the dashboard as a person sees them: laid out by a real headless Chromium at 1280 px.

tests/geometry.js measures the page after it has loaded (elements wider than the window, the height of
every table row, SVG text boxes that intersect) and Chromium's --dump-dom hands the result back.  The
plots of the report are PNG: their labels are checked where they are drawn (tests/test_plots.py).
Skipped where no Chromium is installed (Debian: apt-get install chromium).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import seqbench
from seqbench.report import render
from tests.runfactory import Row, invoke, make_run

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next(filter(None, map(shutil.which, NAMES)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (apt-get install chromium)")
GEOMETRY = Path(__file__).with_name("geometry.js")
WIDTH = 1280


def measure(page: str, folder: Path, before: str = "") -> dict:
    """``page`` laid out in a ``WIDTH`` px window, after running ``before`` (JavaScript) on it."""
    path = folder / "page.html"
    path.write_text(page.replace("</body>", f"<script>{before}\n{GEOMETRY.read_text()}</script></body>"))
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    command = [str(BROWSER), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={folder / 'profile'}",
               f"--window-size={WIDTH},900", "--dump-dom", path.as_uri()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = re.findall(r'<pre id="geometry">(\{.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    return json.loads(html.unescape(found[-1]))


def _fits(geometry: dict) -> None:
    assert geometry["wide"] == [], geometry["wide"][:5]
    assert geometry["scrollWidth"] <= geometry["width"] <= WIDTH


@pytest.fixture
def wide_run(tmp_path):
    """A run with every optional column: GPU time, a disturbed repeat, failed seeds, four backends, three models."""
    rows = [Row(backend=b, implementation=i, model=m, gpu_s=0.001, failed_seeds=(2,) if b == "torch" else (),
                disturbed_seeds=(1,), steady_s=t) for b, i, t in (("numpy", "reference", 0.0017),
            ("torch", "loop", 0.00166), ("jax", "scan", 0.0069), ("keras", "graph", 0.0078))
            for m in ("rnn", "lstm", "gru")]  # fmt: skip
    return seqbench.load_run(make_run(tmp_path, "wide", rows))


@pytest.mark.parametrize("opened", [False, True], ids=["closed", "more-columns-open"])
def test_the_report_fits_a_1280_px_page_with_even_rows(wide_run, tmp_path, opened):
    pytest.importorskip("matplotlib")
    page = render(wide_run, "html")
    geometry = measure(page, tmp_path, 'document.querySelectorAll("details").forEach((d) => d.open = true);'
                       if opened else "")  # fmt: skip
    _fits(geometry)
    assert len(geometry["rowHeights"]) == (2 if opened else 1)
    for heights in geometry["rowHeights"]:
        assert len(set(heights)) == 1, heights  # one line a row


@pytest.fixture
def history(tmp_path):
    """Thirty runs of four backends on two models, a step in one series, and a one-run experiment."""
    series = [("numpy", "reference", 0.0025), ("torch", "loop", 0.0049), ("jax", "scan", 0.004),
              ("keras", "graph", 0.0078)]  # fmt: skip
    for i in range(30):
        rows = [Row(backend=b, implementation=im, model=m, steady_s=s * (1.5 if b == "numpy" and i >= 20 else 1))
                for b, im, s in series for m in ("rnn", "lstm")]  # fmt: skip
        make_run(tmp_path / "results", f"r{i:02d}", rows, seeds=2, epochs=3,
                 started=f"2026-01-{i + 1:02d}T10:00:00+0000", commit=f"{i:02d}" * 20)  # fmt: skip
    make_run(tmp_path / "results", "grid", [Row(units=64)], seeds=1, epochs=3, started="2026-02-01T10:00:00+0000")
    return tmp_path / "results"


def test_the_dashboard_fits_and_no_chart_text_overprints(history, tmp_path):
    page = invoke("dashboard", str(history), "-o", "-").stdout
    geometry = measure(page, tmp_path, 'document.querySelectorAll("details").forEach((d) => d.open = true);')
    _fits(geometry)
    assert geometry["charts"] == geometry["visibleCharts"] == 3 and geometry["texts"] > 20
    assert geometry["overprinted"] == [] and geometry["clipped"] == []


def test_the_dashboard_filters_charts(history, tmp_path):
    page = invoke("dashboard", str(history), "-o", "-").stdout
    steps = """
    const choose = (name, i) => { const s = document.querySelector(`select[name=${name}]`); s.value = i === null ?
        "" : s.options[i].value; s.dispatchEvent(new Event("change")); };
    const tick = (value, on) => { const b = document.querySelector(`.filters input[value=${value}]`);
        b.checked = on; b.dispatchEvent(new Event("change")); };
    window.geometrySteps = [
      () => choose("model", 1), () => choose("model", null),  // lstm alone, then every model again
      () => tick("numpy", false), () => tick("numpy", true),  // the numpy-only grid chart goes and comes back
      () => choose("experiment", 2), () => choose("task", 1),
    ];
    document.querySelectorAll("details").forEach((d) => d.open = true);
    """
    geometry = measure(page, tmp_path, steps)
    assert geometry["charts"] == 3 and geometry["steps"] == [1, 3, 2, 3, 1, 1]
