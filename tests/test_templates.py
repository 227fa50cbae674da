"""The workflows ``reconciler init --github`` writes: package data, pinned, never clobbered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from reconciler.errors import ConfigError
from reconciler.templates import WORKFLOW_NAMES, write_workflows

ACTION = "octo/reconciler@" + "a" * 40


def test_writes_the_three_workflows_with_the_action_pinned(tmp_path: Path) -> None:
    written = write_workflows(tmp_path, ACTION)
    assert [p.name for p in written] == list(WORKFLOW_NAMES)
    for path in written:
        text = path.read_text(encoding="utf-8")
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {}
        assert f"uses: {ACTION}" in text
        uses = re.findall(r"uses: (\S+)", text)
        assert all(re.search(r"@[0-9a-f]{40}$", ref) for ref in uses)
        assert not re.search(r"run: [^\n]*\$\{\{", text)  # no expressions inside scripts
        for job in workflow["jobs"].values():
            assert job["permissions"]


def test_never_overwrites_nor_follows_a_symlink(tmp_path: Path) -> None:
    write_workflows(tmp_path, ACTION)
    with pytest.raises(ConfigError, match="exists"):
        write_workflows(tmp_path, ACTION)
    target = tmp_path / ".github" / "workflows" / "plan.yml"
    target.unlink()
    outside = tmp_path / "outside.yml"
    target.symlink_to(outside)
    with pytest.raises(ConfigError, match="symlink"):
        write_workflows(tmp_path, ACTION, force=True)
    assert not outside.exists()


def test_repository_workflows_pin_every_action() -> None:
    root = Path(__file__).parent.parent
    for path in [*(root / ".github" / "workflows").glob("*.yml"), root / "action.yml"]:
        for ref in re.findall(r"uses: (\S+)", path.read_text(encoding="utf-8")):
            assert ref == "./" or re.search(r"@[0-9a-f]{40}$", ref), (path, ref)
