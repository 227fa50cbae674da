"""``action.yml``: its inputs and outputs, and the command line its script builds.

The script of the ``reconciler`` step is run with bash, as the runner runs it, against a stub
``reconciler`` that prints its arguments: each input must reach the right flag, and a bad
input must fail the step before anything runs.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.render.github import OUTPUT_NAMES

ROOT = Path(__file__).parent.parent
ACTION: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
OUTPUTS = OUTPUT_NAMES  # the action declares every output the renderer writes
DEFAULTS = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}


def run_step(tmp_path: Path, **inputs: str) -> subprocess.CompletedProcess[str]:
    """Run the action's main script with ``inputs`` (others at their defaults)."""
    step = next(s for s in ACTION["runs"]["steps"] if s.get("id") == "run")
    stub = tmp_path / "reconciler-venv" / "bin" / "reconciler"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    values = {**DEFAULTS, **inputs}
    env = {
        "PATH": os.environ["PATH"],
        "RUNNER_TEMP": str(tmp_path),
        **{f"INPUT_{name.upper()}": value for name, value in values.items()},
    }
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, check=False
    )


def test_inputs_and_outputs_are_declared() -> None:
    assert set(ACTION["inputs"]) >= {
        "command",
        "paths",
        "accounts",
        "shard",
        "ledger",
        "comment",
        "auto_approve",
        "drift_issue",
    }
    assert tuple(ACTION["outputs"]) == OUTPUTS
    assert ACTION["runs"]["using"] == "composite"
    assert DEFAULTS["ledger"] == "git:reconciler-ledger"


def test_no_expression_inside_a_script() -> None:
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", "")


def test_plan_arguments(tmp_path: Path) -> None:
    result = run_step(
        tmp_path, command="plan", paths="manifests/ more/\nextra.yaml", accounts="a b", shard="2/4"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == [
        "plan",
        "-o",
        "github",
        "manifests/",
        "more/",
        "extra.yaml",
        "--account",
        "a",
        "--account",
        "b",
        "--ledger",
        "git:reconciler-ledger",
        "--shard",
        "2/4",
        "--comment",
        "true",
    ]


def test_apply_arguments(tmp_path: Path) -> None:
    result = run_step(tmp_path, command="apply", auto_approve="true", drift_issue="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == [
        "apply",
        "-o",
        "github",
        "manifests/",
        "--ledger",
        "git:reconciler-ledger",
        "--auto-approve",
        "--drift-issue",
    ]


def test_validate_takes_no_ledger(tmp_path: Path) -> None:
    result = run_step(tmp_path, command="validate")
    assert result.stdout.split("\n")[:-1] == ["validate", "-o", "github", "manifests/"]


@pytest.mark.parametrize(
    "inputs",
    [
        {"command": "destroy"},
        {"comment": "maybe"},
        {"auto_approve": "yes"},
        {"drift_issue": "1"},
        {"shard": "two"},
        {"paths": "$(touch pwned)"},
    ],
)
def test_bad_inputs_fail_before_running(tmp_path: Path, inputs: dict[str, str]) -> None:
    result = run_step(tmp_path, **inputs)
    if "paths" in inputs:  # not a bad input: passed as one literal argument, never evaluated
        assert "$(touch" in result.stdout and not (tmp_path / "pwned").exists()
        return
    assert result.returncode == 1
    assert result.stdout.startswith("::error title=reconciler action::")
