"""The CI workflows in docs/: valid against GitHub's schema, fork-safe, pinned, cached, bounded."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
MAIN, COMMENT = DOCS / "ci-workflow.yml", DOCS / "ci-comment-workflow.yml"


def _load(path: Path) -> dict:
    yaml = pytest.importorskip("ruamel.yaml")  # comes with check-jsonschema (the test extra)
    return yaml.YAML(typ="safe").load(path.read_text())


def _checker() -> list[str] | None:
    exe = shutil.which("check-jsonschema")
    if exe:
        return [exe]
    import importlib.util
    import sys

    return [sys.executable, "-m", "check_jsonschema"] if importlib.util.find_spec("check_jsonschema") else None


def test_the_workflows_are_valid_github_workflows():
    checker = _checker()
    if checker is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    out = subprocess.run([*checker, "--builtin-schema", "vendor.github-workflows", str(MAIN), str(COMMENT)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def _runs(doc: dict) -> list[tuple[str, dict]]:
    return [(name, step) for name, job in doc["jobs"].items() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", [MAIN, COMMENT], ids=lambda p: p.name)
def test_every_shell_step_parses_and_every_job_has_a_timeout(path):
    doc = _load(path)
    for name, job in doc["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), name
    for name, step in _runs(doc):
        if "run" in step:
            script = re.sub(r"\$\{\{.*?\}\}", "X", step["run"])
            out = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            assert out.returncode == 0, (name, step.get("name"), out.stderr)


def test_the_main_workflow_never_writes_to_the_pull_request():
    doc = _load(MAIN)
    scripts = "\n".join(step.get("run", "") for _, step in _runs(doc))
    assert "gh pr comment" not in scripts and "--edit-last" not in MAIN.read_text()
    assert "/comments" not in scripts
    assert doc["permissions"] == {"contents": "read"}  # nothing more for the whole workflow
    for name, job in doc["jobs"].items():
        granted = job.get("permissions", {})
        assert "pull-requests" not in granted, name
        if granted.get("contents") == "write":  # only the job that pushes the dashboard data, only on main
            assert name == "dashboard" and "refs/heads/main" in job["if"]


def test_the_comment_is_posted_by_a_workflow_run_workflow_as_a_sticky_comment():
    doc = _load(COMMENT)
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on["workflow_run"]["workflows"] == [_load(MAIN)["name"]]
    assert doc["permissions"] == {}
    job = doc["jobs"]["comment"]
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not any(step.get("uses", "").startswith("actions/checkout") for step in job["steps"])  # no PR code
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert "<!-- seqbench-compare -->" in script and "PATCH" in script and "--edit-last" not in script
    assert "*[!0-9]*" in script  # the number from the artifact is checked before use
    assert "<!-- seqbench-compare -->" in MAIN.read_text()  # the merge job writes the marker


def test_installs_use_the_pins_and_a_pip_cache():
    doc = _load(MAIN)
    for name, step in _runs(doc):
        for line in step.get("run", "").splitlines():
            if "pip install" in line:
                assert "-c constraints.txt" in line, (name, line)
        if step.get("uses", "").startswith("actions/setup-python"):
            assert step["with"]["cache"] == "pip", name


def test_one_shard_count_and_grouped_logs_and_not_cancelled():
    doc = _load(MAIN)
    text = MAIN.read_text()
    assert doc["env"]["SHARDS"] == 3 and len(re.findall(r"\bSHARDS:", text)) == 1
    assert doc["jobs"]["shard"]["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    plan = doc["jobs"]["plan"]["steps"][0]["run"]
    out = subprocess.run(["bash", "-c", plan.replace('>> "$GITHUB_OUTPUT"', "")], capture_output=True, text=True,
                         env={"SHARDS": "3", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.stdout.strip() == "shards=[1,2,3]"
    shard = next(s for s in doc["jobs"]["shard"]["steps"] if "seqbench run" in s.get("run", ""))["run"]
    assert "::group::" in shard and "::endgroup::" in shard and " -q" not in shard
    assert "always()" not in text and doc["jobs"]["merge"]["if"] == "${{ !cancelled() }}"
    assert doc["concurrency"]["group"] and "cancel-in-progress" in doc["concurrency"]


def test_the_dashboard_step_and_the_stale_base_fallback():
    doc = _load(MAIN)
    steps = doc["jobs"]["dashboard"]["steps"]
    bench = next(s for s in steps if s.get("uses", "").startswith("benchmark-action/github-action-benchmark"))
    assert bench["with"]["tool"] == "customSmallerIsBetter"
    assert any("seqbench export" in s.get("run", "") and "--normalize" in s["run"] for s in steps)
    fetch = next(s for s in doc["jobs"]["merge"]["steps"] if "base branch's latest run" in s.get("name", ""))
    assert "STALE BASE" in fetch["run"] and "::warning::" in fetch["run"] and "conclusion" in fetch["run"]
