"""The GitHub side of a run: which event it is, the sticky PR comment, the review gate and
the drift issues (design.md §8).

- :class:`GithubContext` reads what the runner sets (``GITHUB_EVENT_NAME``,
  ``GITHUB_EVENT_PATH``, ``GITHUB_REPOSITORY``, ``GITHUB_SHA``, ``GITHUB_API_URL``,
  ``GITHUB_TOKEN``) and answers: is this a pull request, from a fork, which number?
- :func:`upsert_plan_comment` keeps one plan comment per pull request, found by its marker,
  created once, then edited in place.
- :func:`reviewed_plan_hash` finds, for a pushed merge commit, the merged pull request and the
  ``plan_hash`` its comment carried; :func:`gate` compares it with the hash of the plan about
  to be applied.
- :func:`sync_drift_issues` keeps one ``Model drift (<account>)`` issue per account.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from reconciler.core.report import ApplyReport
from reconciler.errors import ConfigError
from reconciler.github.client import GitHubClient
from reconciler.render.comment import (
    drift_body,
    drift_fingerprint_of,
    drift_resolved_comment,
    drift_title,
    drift_update_comment,
    marker_matches,
    read_marker,
)

CommentMode = Literal["true", "changes-only", "false"]
PULL_REQUEST_EVENTS = ("pull_request",)


@dataclass(frozen=True)
class GithubContext:
    """The workflow run this process is a step of."""

    event_name: str = ""
    event: Mapping[str, Any] = field(default_factory=dict)
    repository: str = ""
    sha: str = ""
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    run_id: str = ""
    token: str = field(default="", repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> GithubContext:
        """The context from the runner's variables; the event payload is read from its file.

        Raises:
            ConfigError: ``GITHUB_EVENT_PATH`` names a file that is not a JSON object.
        """
        event: Mapping[str, Any] = {}
        path = environ.get("GITHUB_EVENT_PATH", "")
        if path:
            try:
                loaded = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"GITHUB_EVENT_PATH: cannot read the event payload ({type(exc).__name__})"
                ) from None
            if not isinstance(loaded, dict):
                raise ConfigError("GITHUB_EVENT_PATH: the event payload is not a JSON object")
            event = loaded
        return cls(
            event_name=environ.get("GITHUB_EVENT_NAME", ""),
            event=event,
            repository=environ.get("GITHUB_REPOSITORY", ""),
            sha=environ.get("GITHUB_SHA", ""),
            api_url=environ.get("GITHUB_API_URL", "") or "https://api.github.com",
            server_url=environ.get("GITHUB_SERVER_URL", "") or "https://github.com",
            run_id=environ.get("GITHUB_RUN_ID", ""),
            token=environ.get("GITHUB_TOKEN", ""),
        )

    @property
    def pull_number(self) -> int | None:
        """The pull request's number on a pull request event."""
        pull = self.event.get("pull_request")
        if self.event_name in PULL_REQUEST_EVENTS and isinstance(pull, dict):
            number = pull.get("number")
            return number if isinstance(number, int) else None
        return None

    @property
    def is_fork_pull(self) -> bool:
        """Whether the pull request comes from another repository: it gets no secrets."""
        if self.pull_number is None:
            return False
        pull = self.event["pull_request"]
        head = (pull.get("head") or {}).get("repo") or {}
        base = (pull.get("base") or {}).get("repo") or {}
        head_name = head.get("full_name")
        return head_name is None or head_name != base.get("full_name", self.repository)

    @property
    def is_push(self) -> bool:
        """Whether the run is for a push (a merge to the default branch)."""
        return self.event_name == "push"

    @property
    def run_url(self) -> str:
        """A link to this workflow run, or ``""`` outside one."""
        if not (self.repository and self.run_id):
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    def client(self, transport: httpx.BaseTransport | None = None) -> GitHubClient:
        """A REST client for this repository.

        Raises:
            ConfigError: no ``GITHUB_TOKEN`` or no ``GITHUB_REPOSITORY``.
        """
        if not self.token:
            raise ConfigError(
                "GITHUB_TOKEN is not set: pass it to the step with env: "
                "GITHUB_TOKEN: ${{ github.token }}"
            )
        if not self.repository:
            raise ConfigError("GITHUB_REPOSITORY is not set")
        return GitHubClient(self.api_url, self.token, self.repository, transport=transport)


def upsert_plan_comment(
    client: GitHubClient, number: int, body: str, mode: CommentMode, has_changes: bool
) -> str:
    """Create or edit the pull request's plan comment; say what was done.

    ``changes-only`` does not create a comment for a plan without changes, but still edits an
    existing one, so a comment never shows a plan that is no longer true.
    """
    if mode == "false":
        return "comment: off"
    existing = next(
        (c for c in client.issue_comments(number) if marker_matches(c.get("body", ""), "plan")),
        None,
    )
    if existing is not None:
        if existing.get("body") != body:
            client.update_comment(int(existing["id"]), body)
        return f"comment: updated {existing.get('html_url', existing['id'])}"
    if mode == "changes-only" and not has_changes:
        return "comment: no changes, none created (comment: changes-only)"
    created = client.create_comment(number, body)
    return f"comment: created {created.get('html_url', created.get('id'))}"


@dataclass(frozen=True)
class Review:
    """What was reviewed for a pushed commit: the pull request and its comment's hash."""

    pull_number: int | None
    plan_hash: str | None


def reviewed_plan_hash(client: GitHubClient, sha: str) -> Review:
    """The merged pull request of ``sha`` and the ``plan_hash`` of its plan comment.

    The last plan comment wins (there is one, edited in place, unless someone copied it).
    """
    pulls = client.commit_pulls(sha)
    merged = [p for p in pulls if p.get("merged_at")]
    chosen = next((p for p in merged if p.get("merge_commit_sha") == sha), None)
    chosen = chosen or (merged[0] if merged else None)
    if chosen is None:
        return Review(None, None)
    number = int(chosen["number"])
    found: str | None = None
    for comment in client.issue_comments(number):
        data = read_marker(comment.get("body", ""))
        if data is not None and data.get("kind") == "plan" and data.get("v") == 1:
            value = data.get("plan_hash")
            found = value if isinstance(value, str) else found
    return Review(number, found)


def gate(review: Review | None, plan_hash: str, auto_approve: bool) -> str | None:
    """Why the plan must not be applied (``plan-changed``), or None to go ahead.

    ``review`` None means the run is not a push (a schedule, a manual run): no gate.
    """
    if auto_approve or review is None:
        return None
    if review.pull_number is None:
        return (
            "this push has no merged pull request behind it, so no plan was reviewed; "
            "merge through a pull request, or set auto_approve to apply anyway"
        )
    if review.plan_hash is None:
        return (
            f"pull request #{review.pull_number} has no reconciler plan comment to apply; "
            "re-run its plan, or set auto_approve to apply anyway"
        )
    if review.plan_hash != plan_hash:
        return (
            f"the plan changed since pull request #{review.pull_number} was reviewed "
            f"(reviewed {review.plan_hash}, now {plan_hash}); review the new plan in a "
            "pull request, or set auto_approve"
        )
    return None


def sync_drift_issues(client: GitHubClient, report: ApplyReport, run_url: str) -> list[str]:
    """Open, reopen, comment or close each account's drift issue; say what was done."""
    found: dict[str, dict[str, Any]] = {}
    for listed in client.issues("all"):
        data = read_marker(listed.get("body") or "")
        if (
            data is not None
            and data.get("kind") == "drift"
            and isinstance(data.get("account"), str)
        ):
            found.setdefault(str(data["account"]), listed)  # newest first: keep the newest
    done: list[str] = []
    for account in report.accounts:
        issue = found.get(account.account)
        if account.converged:
            if issue is not None and issue.get("state") == "open":
                client.create_comment(
                    int(issue["number"]), drift_resolved_comment(account.account, run_url)
                )
                client.update_issue(int(issue["number"]), state="closed", state_reason="completed")
                done.append(f"drift issue #{issue['number']} ({account.account}): closed")
            continue
        body = drift_body(account, run_url)
        if issue is None:
            created = client.create_issue(drift_title(account.account), body)
            done.append(f"drift issue #{created.get('number')} ({account.account}): opened")
        elif issue.get("state") != "open":
            client.update_issue(int(issue["number"]), state="open", body=body)
            client.create_comment(
                int(issue["number"]), drift_update_comment(account, reopened=True)
            )
            done.append(f"drift issue #{issue['number']} ({account.account}): reopened")
        elif drift_fingerprint_of(issue.get("body") or "") != drift_fingerprint_of(body):
            client.update_issue(int(issue["number"]), body=body)
            client.create_comment(
                int(issue["number"]), drift_update_comment(account, reopened=False)
            )
            done.append(f"drift issue #{issue['number']} ({account.account}): failure changed")
        else:
            done.append(f"drift issue #{issue['number']} ({account.account}): unchanged")
    return done
