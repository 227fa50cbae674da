"""The files that run reconciler elsewhere agree with it (issue 12): the pre-commit hook runs
the installed command as pre-commit would, and the Dockerfile and the CronJob use a real
command line, a non-root user and keys from a Secret. (hadolint and kubernetes-validate check
the two files' syntax in .ci/run.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from reconciler.cli import cli

REPO = Path(__file__).resolve().parents[1]
HOOKS = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
CRONJOB = yaml.safe_load((REPO / "deploy" / "kubernetes" / "cronjob.yaml").read_text("utf-8"))
POD = CRONJOB["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def hook_command(hook: dict[str, Any]) -> list[str]:
    """What pre-commit runs: ``entry`` split as a shell would, then ``args``; no file names."""
    assert hook["pass_filenames"] is False
    return [*shlex.split(hook["entry"]), *hook.get("args", [])]


def test_the_hook_is_offered_with_the_installed_command() -> None:
    (hook,) = HOOKS
    assert hook["id"] == "reconciler-validate"
    assert hook["language"] == "python"  # pre-commit installs this repository into a venv
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    assert hook_command(hook)[0] in scripts


@pytest.mark.parametrize(("manifest", "code"), [("good", 0), ("bad", 1)])
def test_the_hook_validates_the_manifests_folder(tmp_path: Path, manifest: str, code: int) -> None:
    (hook,) = HOOKS
    folder = tmp_path / "manifests"
    folder.mkdir()
    text = (
        "version: 1\naccount: a\napi: community\nkey_env: MODELSLAB_KEY_A\n"
        if manifest == "good"
        else "version: 1\naccount: a\napi: nowhere\nkey_env: MODELSLAB_KEY_A\n"
    )
    (folder / "a.yaml").write_text(text, encoding="utf-8")
    bin_dir = str(Path(sys.executable).parent)  # where pip put the console script
    result = subprocess.run(
        hook_command(hook),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
        timeout=60,
        check=False,
    )
    assert result.returncode == code, result.stdout + result.stderr
    if code:
        assert "manifests/a.yaml:3:6: api:" in result.stderr


def test_the_image_runs_reconciler_as_a_non_root_user() -> None:
    assert re.search(r"^FROM python:3\.\d+-slim AS build$", DOCKERFILE, re.M)
    assert re.search(r"^FROM python:3\.\d+-slim$", DOCKERFILE, re.M)
    assert re.search(r'^ENTRYPOINT \["reconciler"\]$', DOCKERFILE, re.M)
    (user,) = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert user.isdigit() and int(user) != 0
    assert POD["securityContext"]["runAsUser"] == int(user)
    assert POD["securityContext"]["runAsNonRoot"] is True


def test_the_cronjob_applies_with_the_git_ledger_and_without_asking() -> None:
    (container,) = POD["containers"]
    args = container["args"]
    assert args[0] == "apply"
    assert "--auto-approve" in args
    assert args[args.index("--ledger") + 1] == "git:reconciler-ledger"
    apply = cli.commands["apply"]
    with click.Context(cli) as parent:  # the arguments parse as the apply command's
        context = apply.make_context("apply", list(args[1:]), parent=parent)
    assert context.params["auto_approve"] is True
    assert CRONJOB["spec"]["concurrencyPolicy"] == "Forbid"


def test_the_cronjob_takes_keys_from_secrets_and_holds_none() -> None:
    (container,) = POD["containers"]
    assert {"secretRef": {"name": "reconciler-keys"}} in container["envFrom"]
    literal = [e for c in [*POD["initContainers"], container] for e in c["env"] if "value" in e]
    assert all(not e["name"].startswith("MODELSLAB_KEY") for e in literal)
    token = next(e for e in container["env"] if e["name"] == "GIT_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == "reconciler-git"
    assert "GIT_TOKEN" not in json.dumps(POD["initContainers"][0]["command"])  # not in a URL
