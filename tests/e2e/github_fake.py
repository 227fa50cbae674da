"""A local fake of the GitHub REST API: issue comments, issues, commit → pull requests.

Only what the reconciler calls, with GitHub's shapes (``id``, ``number``, ``body``, ``state``,
``pull_request`` on issues that are pull requests, ``merged_at``/``merge_commit_sha`` on pulls)
and its pagination (``per_page``, ``page``). Every request must carry the bearer token; the
fake records each one so tests can count calls. Served by uvicorn on loopback in a thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

REPO = "octo/models"


@dataclass
class GitHubState:
    """Issues (pull requests included), comments and commit → pulls of one repository."""

    token: str
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    _next: int = 1

    def new_id(self) -> int:
        self._next += 1
        return self._next

    def open_pull(self) -> int:
        """A pull request from a branch of this repository."""
        number = self.new_id()
        self.issues[number] = {
            "number": number,
            "title": f"PR {number}",
            "body": "",
            "state": "open",
            "pull_request": {"url": f"/pulls/{number}"},
            "merged_at": None,
            "merge_commit_sha": None,
        }
        return number

    def merge(self, number: int, sha: str) -> None:
        """Merge a pull request as the commit ``sha``."""
        pull = self.issues[number]
        pull.update(state="closed", merged_at="2026-12-01T00:00:00Z", merge_commit_sha=sha)
        self.commit_pulls.setdefault(sha, []).append(number)

    def comments_of(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["issue_number"] == number]

    def real_issues(self) -> list[dict[str, Any]]:
        return [i for i in self.issues.values() if "pull_request" not in i]


def create_app(state: GitHubState) -> Starlette:
    """The fake's ASGI app."""

    def authorised(request: Request) -> JSONResponse | None:
        state.calls.append((request.method, request.url.path))
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        if f"{request.path_params.get('owner')}/{request.path_params.get('repo')}" != REPO:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        return None

    def page(request: Request, items: list[dict[str, Any]]) -> JSONResponse:
        per_page = int(request.query_params.get("per_page", "30"))
        number = int(request.query_params.get("page", "1"))
        return JSONResponse(items[(number - 1) * per_page : number * per_page])

    async def comments(request: Request) -> JSONResponse:
        if (refused := authorised(request)) is not None:
            return refused
        number = int(request.path_params["number"])
        if number not in state.issues:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        if request.method == "GET":
            return page(request, sorted(state.comments_of(number), key=lambda c: c["id"]))
        body = (await request.json())["body"]
        comment_id = state.new_id()
        state.comments[comment_id] = {
            "id": comment_id,
            "issue_number": number,
            "body": body,
            "html_url": f"https://github.test/{REPO}/issues/{number}#issuecomment-{comment_id}",
        }
        return JSONResponse(state.comments[comment_id], status_code=201)

    async def comment(request: Request) -> JSONResponse:
        if (refused := authorised(request)) is not None:
            return refused
        found = state.comments.get(int(request.path_params["comment_id"]))
        if found is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        found["body"] = (await request.json())["body"]
        return JSONResponse(found)

    async def pulls(request: Request) -> JSONResponse:
        if (refused := authorised(request)) is not None:
            return refused
        numbers = state.commit_pulls.get(request.path_params["sha"], [])
        return page(request, [state.issues[n] for n in numbers])

    async def issues(request: Request) -> JSONResponse:
        if (refused := authorised(request)) is not None:
            return refused
        if request.method == "GET":
            wanted = request.query_params.get("state", "open")
            listed = [
                i
                for i in sorted(state.issues.values(), key=lambda i: -i["number"])
                if wanted == "all" or i["state"] == wanted
            ]
            return page(request, listed)
        data = await request.json()
        number = state.new_id()
        state.issues[number] = {
            "number": number,
            "title": data["title"],
            "body": data.get("body", ""),
            "state": "open",
        }
        return JSONResponse(state.issues[number], status_code=201)

    async def issue(request: Request) -> JSONResponse:
        if (refused := authorised(request)) is not None:
            return refused
        found = state.issues.get(int(request.path_params["number"]))
        if found is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        data = await request.json()
        found.update({k: v for k, v in data.items() if k in ("state", "body", "title")})
        return JSONResponse(found)

    base = "/repos/{owner}/{repo}"
    return Starlette(
        routes=[
            Route(base + "/issues/comments/{comment_id:int}", comment, methods=["PATCH"]),
            Route(base + "/issues/{number:int}/comments", comments, methods=["GET", "POST"]),
            Route(base + "/issues/{number:int}", issue, methods=["PATCH"]),
            Route(base + "/issues", issues, methods=["GET", "POST"]),
            Route(base + "/commits/{sha}/pulls", pulls, methods=["GET"]),
        ]
    )


@contextmanager
def running_github(token: str) -> Iterator[tuple[str, GitHubState]]:
    """Serve a fresh fake on a free loopback port; yield its base URL and its state."""
    state = GitHubState(token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake GitHub API did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
