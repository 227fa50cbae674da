"""End to end, the GitHub Actions path: the commands the workflows run, with the environment
GitHub sets, against the emulator and a local fake of the GitHub REST API.

A pull request's plan creates the sticky comment and a second plan edits the same one; the
merge applies what was reviewed; a plan that changed between review and merge is refused
``plan-changed`` while an eviction in between is not; a url change merged later is replaced,
also from a fresh clone with the git-branch ledger and a local bare repository as ``origin``;
the schedule repairs an evicted model; a failing model opens the drift issue and a later success
closes it; a fork's pull request validates with a notice. The other tests keep the ledger in a
local folder. Canary keys and the GitHub token appear nowhere: outputs, summary, comment and
issue bodies, the ledger (folder or branch), logs.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.render.comment import read_marker

from ..e2e.e2e_support import (
    APPLY_TIMEOUT,
    EIGHT_DAYS,
    POLL_INTERVAL,
    Result,
    World,
    community_model,
)
from ..e2e.github_fake import REPO, GitHubState, running_github
from ..e2e.test_e2e_ledger import branch_files, commit_manifests, fresh_clone, git, origin


@dataclass
class Actions:
    """The GitHub side of one test: the fake API and the files a step writes."""

    world: World
    github: GitHubState
    monkeypatch: pytest.MonkeyPatch
    root: Path
    token: str
    api_url: str
    step: int = 0

    def event(self, name: str, payload: dict[str, Any], sha: str = "") -> None:
        """Set the environment of a step run for event ``name``."""
        self.step += 1
        path = self.root / f"event-{self.step}.json"
        path.write_text(json.dumps(payload), encoding="utf-8")
        for variable, value in {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": name,
            "GITHUB_EVENT_PATH": str(path),
            "GITHUB_API_URL": self.api_url,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_SHA": sha or secrets.token_hex(20),
            "GITHUB_TOKEN": self.token,
            "GITHUB_RUN_ID": str(1000 + self.step),
            "GITHUB_OUTPUT": str(self.root / f"output-{self.step}.txt"),
            "GITHUB_STEP_SUMMARY": str(self.root / f"summary-{self.step}.md"),
            "RUNNER_TEMP": str(self.root),
        }.items():
            self.monkeypatch.setenv(variable, value)

    def pull_request(self, number: int, fork: bool = False) -> None:
        """A ``pull_request`` event for pull request ``number``."""
        head = "someone/models" if fork else REPO
        self.event(
            "pull_request",
            {
                "number": number,
                "pull_request": {
                    "number": number,
                    "head": {"repo": {"full_name": head}},
                    "base": {"repo": {"full_name": REPO}},
                },
            },
        )

    def push(self, sha: str) -> None:
        """A ``push`` event of commit ``sha`` to main."""
        self.event("push", {"ref": "refs/heads/main", "after": sha}, sha=sha)

    def schedule(self) -> None:
        """A ``schedule`` event."""
        self.event("schedule", {"schedule": "0 */6 * * *"})

    @property
    def summary(self) -> str:
        """The job summary the last step wrote."""
        path = self.root / f"summary-{self.step}.md"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    @property
    def outputs(self) -> dict[str, str]:
        """The outputs the last step wrote, heredocs resolved."""
        path = self.root / f"output-{self.step}.txt"
        return parse_outputs(path.read_text(encoding="utf-8") if path.exists() else "")

    def every_text(self) -> Iterator[str]:
        """Everything the run left behind that a key or token could leak into."""
        for path in self.root.rglob("*"):
            if path.is_file():
                yield path.read_text(encoding="utf-8", errors="replace")
        for comment in self.github.comments.values():
            yield comment["body"]
        for issue in self.github.issues.values():
            yield issue["title"] + issue["body"]


def parse_outputs(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` as the runner reads it: ``name=value`` and ``name<<DELIM`` blocks."""
    found: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            found[name] = "\n".join(value)
        elif "=" in line:
            name, value_text = line.split("=", 1)
            found[name] = value_text
    return found


@pytest.fixture
def gh(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Actions]:
    """The fake GitHub API and a folder for the step files; checks for leaks at the end."""
    token = f"ghs_{secrets.token_hex(16)}"
    root = tmp_path / "runner"
    root.mkdir()
    with running_github(token) as (url, state):
        actions = Actions(world, state, monkeypatch, root, token, url)
        yield actions
    # The runner consumes ``::add-mask::`` lines and never shows them; everything else counts.
    world.outputs[:] = [without_masks(text) for text in world.outputs]
    secrets_ = [*world.keys.values(), token]
    for text in [*actions.every_text(), *world.outputs]:
        for secret in secrets_:
            assert secret not in text
    ledger_files = [p for p in world.ledger.rglob("*") if p.is_file()]
    for path in ledger_files:
        ledger = path.read_text(encoding="utf-8", errors="replace")
        assert not any(secret in ledger for secret in secrets_)


def without_masks(text: str) -> str:
    """``text`` without its ``::add-mask::`` lines."""
    return "".join(
        line for line in text.splitlines(keepends=True) if not line.startswith("::add-mask::")
    )


def plan_comments(github: GitHubState, number: int) -> list[dict[str, Any]]:
    """The reconciler plan comments of a pull request."""
    return [
        c
        for c in github.comments_of(number)
        if (read_marker(c["body"]) or {}).get("kind") == "plan"
    ]


def assert_masks_first(result: Result, *secrets_: str) -> None:
    """Every key is masked, before any other line."""
    lines = result.out.splitlines()
    masks = [line for line in lines if line.startswith("::add-mask::")]
    assert lines[: len(masks)] == masks
    for secret in secrets_:
        assert f"::add-mask::{secret}" in masks


# -- pull request → merge -------------------------------------------------------------------


def test_pull_request_comment_is_sticky_and_merge_applies(world: World, gh: Actions) -> None:
    world.manifest("studio", [community_model("analog")])
    number = gh.github.open_pull()

    gh.pull_request(number)
    first = world.plan()
    assert first.code == 0, first.text
    assert_masks_first(first, world.keys["studio"], gh.token)
    assert "+ load" in first.out  # the text plan on stdout, as a person sees it
    comments = plan_comments(gh.github, number)
    assert len(comments) == 1
    assert gh.outputs["changes"] == "true"
    assert gh.outputs["to_load"] == "studio/analog"
    assert gh.outputs["plan_hash"].startswith("sha256:")
    assert Path(gh.outputs["json_plan_path"]).is_file()
    assert "## Reconciler plan" in gh.summary
    marker = read_marker(comments[0]["body"])
    assert marker == {"v": 1, "kind": "plan", "plan_hash": gh.outputs["plan_hash"]}

    # A second push to the pull request: the same comment, edited in place.
    world.manifest("studio", [community_model("analog"), community_model("inpaint")])
    gh.pull_request(number)
    second = world.plan()
    assert second.code == 0, second.text
    comments = plan_comments(gh.github, number)
    assert len(comments) == 1
    assert "inpaint" in comments[0]["body"]
    assert gh.outputs["to_load"] == "studio/analog\nstudio/inpaint"  # a multi-line output
    reviewed = gh.outputs["plan_hash"]

    gh.github.merge(number, sha := secrets.token_hex(20))
    gh.push(sha)
    applied = world.apply()
    assert applied.code == 0, applied.text
    assert gh.outputs["failure_reason"] == ""
    assert gh.outputs["plan_hash"] == reviewed
    assert "Heartbeat: reconciler apply ran at" in gh.summary
    assert f"pull request #{number}" in gh.summary
    assert world.statuses("studio") == {"analog": "model_ready", "inpaint": "model_ready"}


def test_plan_changed_between_review_and_merge_is_refused(world: World, gh: Actions) -> None:
    world.manifest("studio", [community_model("analog")])
    number = gh.github.open_pull()
    gh.pull_request(number)
    assert world.plan().code == 0

    # Someone changes the manifest after the review and merges without a new plan.
    world.manifest("studio", [community_model("analog", url="org/other-weights")])
    gh.github.merge(number, sha := secrets.token_hex(20))
    gh.push(sha)
    refused = world.apply()
    assert refused.code == 1
    assert gh.outputs["failure_reason"] == "plan-changed"
    assert "plan changed since pull request" in refused.out
    assert world.mutations() == {}

    # auto_approve skips the gate.
    gh.push(sha)
    assert world.apply("--auto-approve").code == 0


def test_eviction_between_review_and_merge_is_not_a_difference(world: World, gh: Actions) -> None:
    world.manifest("studio", [community_model("analog")])
    gh.schedule()
    assert world.apply("--auto-approve").code == 0

    world.manifest("studio", [community_model("analog"), community_model("inpaint")])
    number = gh.github.open_pull()
    gh.pull_request(number)
    assert world.plan().code == 0
    reviewed = gh.outputs["plan_hash"]

    world.advance(EIGHT_DAYS)  # analog is evicted between review and merge
    gh.github.merge(number, sha := secrets.token_hex(20))
    gh.push(sha)
    applied = world.apply()
    assert applied.code == 0, applied.text
    assert gh.outputs["plan_hash"] == reviewed
    assert gh.outputs["to_reload"] == "studio/analog"
    assert world.statuses("studio") == {"analog": "model_ready", "inpaint": "model_ready"}


def test_url_change_merged_later_is_replaced(world: World, gh: Actions) -> None:
    world.manifest("studio", [community_model("analog")])
    gh.schedule()
    assert world.apply("--auto-approve").code == 0

    world.manifest("studio", [community_model("analog", url="org/analog-v2")])
    number = gh.github.open_pull()
    gh.pull_request(number)
    assert world.plan().code == 0
    assert gh.outputs["to_replace"] == "studio/analog"
    assert "1 to replace" in plan_comments(gh.github, number)[0]["body"]

    gh.github.merge(number, sha := secrets.token_hex(20))
    gh.push(sha)
    applied = world.apply()
    assert applied.code == 0, applied.text
    assert world.models("studio")["analog"]["spec"]["url"] == "org/analog-v2"


__all__ = ["origin"]  # the bare repository fixture of the ledger tests


def ci_apply(world: World, clone: Path, *extra: str) -> Result:
    """The apply workflow's command in a fresh clone: ``--ledger git:reconciler-ledger``."""
    return world.cli(
        "apply",
        str(clone / "manifests"),
        "--ledger",
        "git:reconciler-ledger",
        "--poll-interval",
        str(POLL_INTERVAL),
        "--timeout",
        str(APPLY_TIMEOUT),
        *extra,
    )


def test_url_change_merged_later_is_replaced_from_a_fresh_clone(
    world: World, gh: Actions, origin: Path
) -> None:
    world.manifest("studio", [community_model("analog", url="org/v1")])
    commit_manifests(world, fresh_clone(world, origin, "dev-1"), "declare analog")
    gh.schedule()
    assert ci_apply(world, fresh_clone(world, origin, "ci-1"), "--auto-approve").code == 0

    # The pull request: its plan runs in its own checkout, against the ledger branch.
    world.manifest("studio", [community_model("analog", url="org/v2")])
    pull = fresh_clone(world, origin, "pr")
    commit = world.manifests / "studio.yaml"
    (pull / "manifests" / "studio.yaml").write_text(commit.read_text(encoding="utf-8"))
    number = gh.github.open_pull()
    gh.pull_request(number)
    planned = world.cli("plan", str(pull / "manifests"), "--ledger", "git:reconciler-ledger")
    assert planned.code == 0, planned.text
    assert gh.outputs["to_replace"] == "studio/analog"

    # Merged; the apply workflow starts from a fresh clone: only the ledger branch remembers.
    commit_manifests(world, fresh_clone(world, origin, "dev-2"), "analog v2")
    sha = git(origin, "rev-parse", "main")
    gh.github.merge(number, sha)
    gh.push(sha)
    applied = ci_apply(world, fresh_clone(world, origin, "ci-2"))
    assert applied.code == 0, applied.text
    assert gh.outputs["to_replace"] == "studio/analog"
    assert world.models("studio")["analog"]["spec"]["url"] == "org/v2"
    branch = branch_files(origin)
    assert branch["studio.json"]["models"]["analog"]["spec"]["url"] == "org/v2"  # type: ignore[index]
    assert not any(secret in json.dumps(branch) for secret in [*world.keys.values(), gh.token])


def test_push_without_pull_request_is_gated_by_auto_approve(world: World, gh: Actions) -> None:
    world.manifest("studio", [community_model("analog")])
    gh.push(secrets.token_hex(20))
    refused = world.apply()
    assert refused.code == 1
    assert gh.outputs["failure_reason"] == "plan-changed"
    assert "no merged pull request" in refused.out
    assert world.mutations() == {}


# -- the schedule -----------------------------------------------------------------------------


def test_schedule_repairs_and_keeps_one_drift_issue(world: World, gh: Actions) -> None:
    world.manifest("studio", [community_model("analog")])
    gh.schedule()
    assert world.apply("--auto-approve", "--drift-issue").code == 0
    assert gh.github.real_issues() == []

    world.advance(EIGHT_DAYS)
    gh.schedule()
    repaired = world.apply("--auto-approve", "--drift-issue")
    assert repaired.code == 0, repaired.text
    assert gh.outputs["to_reload"] == "studio/analog"
    assert "Heartbeat:" in gh.summary

    # A model whose weights fail to load: the drift issue opens, once.
    world.faults(fail_urls=["org/broken"])
    world.manifest("studio", [community_model("analog"), community_model("broken")])
    gh.schedule()
    failed = world.apply("--auto-approve", "--drift-issue")
    assert failed.code == 1
    assert gh.outputs["failure_reason"] == "apply-failed"
    assert re.search(r"^::error file=[^,]*studio\.yaml,line=\d+,", failed.out, re.M)
    issues = gh.github.real_issues()
    assert [(i["title"], i["state"]) for i in issues] == [("Model drift (studio)", "open")]
    assert read_marker(issues[0]["body"]) == {"v": 1, "kind": "drift", "account": "studio"}

    # Fixed: the next run converges and closes the issue; no second issue ever.
    world.faults(fail_urls=[])
    world.manifest("studio", [community_model("analog"), community_model("broken", url="org/ok")])
    gh.schedule()
    fixed = world.apply("--auto-approve", "--drift-issue")
    assert fixed.code == 0, fixed.text
    issues = gh.github.real_issues()
    assert [(i["title"], i["state"]) for i in issues] == [("Model drift (studio)", "closed")]
    assert "converged" in gh.github.comments_of(issues[0]["number"])[-1]["body"]


# -- forks and bad manifests --------------------------------------------------------------------


def test_fork_pull_request_validates_with_a_notice(
    world: World, gh: Actions, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.manifest("studio", [community_model("analog")])
    number = gh.github.open_pull()
    gh.pull_request(number, fork=True)
    monkeypatch.delenv("MODELSLAB_E2E_KEY_STUDIO")  # a fork's run has no secrets
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    result = world.plan()
    assert result.code == 0, result.text
    assert "::notice::" in result.out and "fork" in result.out
    assert gh.github.comments_of(number) == []
    assert world.requests()["endpoints"] == {}  # nothing was read: validate only


def test_invalid_manifest_is_annotated_at_its_line(world: World, gh: Actions) -> None:
    path = world.manifest("studio", [community_model("analog", model_format="zip")])
    gh.pull_request(gh.github.open_pull())
    result = world.cli("validate", str(world.manifests))
    assert result.code == 1
    assert re.search(rf"^::error file={re.escape(str(path))},line=\d+,col=\d+,", result.out, re.M)
    assert gh.outputs["failure_reason"] == "invalid-manifest"
    assert "problems" in gh.summary
