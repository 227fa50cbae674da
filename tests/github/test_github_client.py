"""The GitHub REST client and the flows on it, over httpx's MockTransport: requests, pagination,
errors that never show the token, and the review gate's decisions."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from reconciler.errors import ReconcilerError
from reconciler.github.client import GitHubClient, GitHubError
from reconciler.github.flow import GithubContext, Review, gate, upsert_plan_comment

TOKEN = "ghs_canary_token_123"


def client_with(handler: httpx.MockTransport) -> GitHubClient:
    return GitHubClient("https://api.test/", TOKEN, "octo/models", transport=handler)


def test_pages_until_a_short_page_and_sends_the_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = int(request.url.params["page"])
        count = 100 if page == 1 else 3
        return httpx.Response(200, json=[{"id": page * 1000 + i, "body": ""} for i in range(count)])

    with client_with(httpx.MockTransport(handler)) as client:
        comments = list(client.issue_comments(7))
    assert len(comments) == 103
    assert [r.url.path for r in seen] == ["/repos/octo/models/issues/7/comments"] * 2
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert seen[0].headers["x-github-api-version"] == "2022-11-28"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(401, json={"message": "Bad credentials"}),
        httpx.Response(500, text="<html>oops</html>"),
        httpx.Response(200, text="not json"),
    ],
)
def test_errors_name_the_call_never_the_token(response: httpx.Response) -> None:
    with (
        client_with(httpx.MockTransport(lambda _: response)) as client,
        pytest.raises(GitHubError) as caught,
    ):
        client.create_comment(7, "body")
    assert "POST /repos/octo/models/issues/7/comments" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(client)
    assert isinstance(caught.value, ReconcilerError)


def test_transport_errors_are_translated() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with client_with(httpx.MockTransport(handler)) as client, pytest.raises(GitHubError):
        client.commit_pulls("abc")


def test_sticky_comment_modes() -> None:
    store: dict[int, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[{"id": i, "body": b} for i, b in store.items()])
        body = json.loads(request.content)["body"]
        if request.method == "POST":
            store[len(store) + 1] = body
            return httpx.Response(201, json={"id": len(store)})
        store[int(request.url.path.rsplit("/", 1)[1])] = body
        return httpx.Response(200, json={})

    marker = '<!-- reconciler {"v":1,"kind":"plan","plan_hash":"h"} -->\n'
    with client_with(httpx.MockTransport(handler)) as client:
        assert "none created" in upsert_plan_comment(client, 1, marker + "a", "changes-only", False)
        assert store == {}
        assert upsert_plan_comment(client, 1, marker + "a", "false", True) == "comment: off"
        assert "created" in upsert_plan_comment(client, 1, marker + "a", "true", True)
        # changes-only still edits the existing comment, so it never shows a stale plan
        assert "updated" in upsert_plan_comment(client, 1, marker + "b", "changes-only", False)
    assert store == {1: marker + "b"}


def test_gate_decisions() -> None:
    assert gate(None, "h", False) is None  # not a push: no gate
    assert gate(Review(3, "h"), "h", False) is None
    assert gate(Review(3, "other"), "h", True) is None  # auto_approve
    assert "changed" in (gate(Review(3, "other"), "h", False) or "")
    assert "no merged pull request" in (gate(Review(None, None), "h", False) or "")
    assert "no reconciler plan comment" in (gate(Review(3, None), "h", False) or "")


def test_context_reads_the_event_and_tells_forks(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    pull = {
        "number": 5,
        "head": {"repo": {"full_name": "someone/models"}},
        "base": {"repo": {"full_name": "octo/models"}},
    }
    event.write_text(json.dumps({"pull_request": pull}), encoding="utf-8")
    environ = {
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "octo/models",
        "GITHUB_TOKEN": TOKEN,
    }
    context = GithubContext.from_environ(environ)
    assert context.pull_number == 5 and context.is_fork_pull
    assert TOKEN not in repr(context)
    pull["head"] = {"repo": {"full_name": "octo/models"}}
    event.write_text(json.dumps({"pull_request": pull}), encoding="utf-8")
    assert not GithubContext.from_environ(environ).is_fork_pull
    assert GithubContext.from_environ({**environ, "GITHUB_EVENT_NAME": "push"}).pull_number is None
