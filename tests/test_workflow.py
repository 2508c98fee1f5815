"""The CI workflows in docs/: valid against GitHub's schema, fork-safe, pinned, cached, bounded."""

from __future__ import annotations

import re
import shlex
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
            if "pip install" in line:  # each checkout with its own pins: the pull request's, or the base's
                assert re.search(r"-c (base/)?constraints\.txt ", line), (name, line)
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
    shards = [s["run"] for s in doc["jobs"]["shard"]["steps"] if "seqbench run" in s.get("run", "")]
    assert len(shards) == 2  # the A/B run on a pull request, the head alone on a push
    for shard in shards:
        assert "::group::" in shard and "::endgroup::" in shard and " -q" not in shard
        assert "--shard" in _command(shard, "seqbench run") and 'test "$code" -le 1' in shard
    assert "always()" not in text and doc["jobs"]["merge"]["if"] == "${{ !cancelled() }}"
    assert doc["concurrency"]["group"] and "cancel-in-progress" in doc["concurrency"]


def test_the_dashboard_step():
    doc = _load(MAIN)
    steps = doc["jobs"]["dashboard"]["steps"]
    bench = next(s for s in steps if s.get("uses", "").startswith("benchmark-action/github-action-benchmark"))
    assert bench["with"]["tool"] == "customSmallerIsBetter"
    assert any("seqbench export" in s.get("run", "") and "--normalize" in s["run"] for s in steps)
    download = next(s for s in steps if s.get("uses", "").startswith("actions/download-artifact"))
    assert download["with"]["name"] == "seqbench-run"  # the stored run of this push feeds history and the chart


def _commands(script: str, program: str) -> list[list[str]]:
    """The words of each command in ``script`` that runs ``program`` (any path to it), up to ``||``."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        words = words[: words.index("||")] if "||" in words else words
        if words and [Path(words[0]).name, *words[1:2]] == program.split():
            found.append(words)
    return found


def _command(script: str, program: str) -> list[str]:
    found = _commands(script, program)
    assert len(found) == 1, (program, script)
    return found[0]


def _options(words: list[str], option: str) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word == option]


def _shard_steps(doc: dict) -> tuple[dict, dict]:
    runs = [s for s in doc["jobs"]["shard"]["steps"] if "seqbench run" in s.get("run", "")]
    pr = [s for s in runs if s.get("if") == "github.event_name == 'pull_request'"]
    push = [s for s in runs if s.get("if") == "github.event_name != 'pull_request'"]
    assert len(pr) == len(push) == 1, [s.get("if") for s in runs]
    return pr[0], push[0]


def test_a_pull_request_runs_base_and_head_side_by_side_as_one_ab_run():
    doc = _load(MAIN)
    steps = doc["jobs"]["shard"]["steps"]
    base = next(s for s in steps if s.get("with", {}).get("path") == "base")
    assert base["uses"] == "actions/checkout@v4" and base["if"] == "github.event_name == 'pull_request'"
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert base["with"]["persist-credentials"] is False
    installs = "\n".join(s.get("run", "") for s in steps)
    assert 'venv-base/bin/pip install -c base/constraints.txt -e "./base[all]"' in installs
    assert 'venv-head/bin/pip install -c constraints.txt -e ".[all]"' in installs
    pr, push = _shard_steps(doc)
    words = _command(pr["run"], "seqbench run")
    assert _options(words, "--seeds") == ["auto"]
    assert _options(words, "--env") == ["base=$PWD/venv-base/bin/python", "head=$PWD/venv-head/bin/python"]
    assert _options(words, "--results-dir") == ["shards"]
    # workers start as `python -m seqbench.worker` in the head checkout: base must not import head's ./seqbench
    assert str(pr["env"]["PYTHONSAFEPATH"]) == "1"
    check = next(s for s in steps if "seqbench.__file__" in s.get("run", ""))
    assert str(check["env"]["PYTHONSAFEPATH"]) == "1" and "$PWD/base/seqbench/" in check["run"]
    # a push to main runs the head alone: the stored run for history and the dashboard
    words = _command(push["run"], "seqbench run")
    assert "--env" not in words and _options(words, "--results-dir") == ["shards"]


def test_the_gate_is_the_paired_compare_of_that_one_run():
    doc = _load(MAIN)
    steps = doc["jobs"]["merge"]["steps"]
    merged = _options(_command(next(s["run"] for s in steps if "seqbench merge" in s.get("run", "")),
                               "seqbench merge"), "-o")  # fmt: skip
    compare = [s for _, s in _runs(doc) if _commands(s.get("run", ""), "seqbench compare")]
    assert len(compare) == 1 and compare[0] in steps and compare[0]["if"] == "github.event_name == 'pull_request'"
    words = _command(compare[0]["run"], "seqbench compare")
    assert words[2] == merged[0] == "merged/run" and not words[3].startswith("merged")  # one run, not two
    assert _options(words, "--base") == ["base"] and _options(words, "--new") == ["head"]
    assert _options(words, "--format") == ["md"] and "--normalize" not in words
    envs = _options(_command(_shard_steps(doc)[0]["run"], "seqbench run"), "--env")
    assert [env.split("=")[0] for env in envs] == ["base", "head"]  # the names the shard job gave
    assert compare[0]["id"] == "compare"
    fail = next(s for s in steps if s.get("name") == "Fail on a regression")
    assert fail["if"] == "steps.compare.outputs.code == '1'"


def test_no_step_fetches_a_stored_base_run_for_the_gate():
    doc = _load(MAIN)
    text = MAIN.read_text()
    assert "gh run download" not in text and "gh run list" not in text and "STALE BASE" not in text
    for name, step in _runs(doc):
        if step.get("uses", "").startswith("actions/download-artifact"):
            assert "run-id" not in step["with"] and "github-token" not in step["with"], name  # this run's only
    merge = doc["jobs"]["merge"]
    assert merge.get("permissions", {"contents": "read"}) == {"contents": "read"}  # no actions: read
    downloads = [s["with"] for s in merge["steps"] if s.get("uses", "").startswith("actions/download-artifact")]
    assert downloads == [{"pattern": "shard-*", "path": "shards"}]
