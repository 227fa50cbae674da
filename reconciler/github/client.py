"""A small GitHub REST client over httpx: issue comments, issues, commit → pull requests.

Base URL from ``GITHUB_API_URL`` (GitHub Enterprise Server has another one), token from
``GITHUB_TOKEN``. The token lives in the client's headers only: errors name the method, the
path and the status, never a header or a body, so the token cannot leak through one.
Endpoints (REST API version 2022-11-28):

- ``GET/POST /repos/{repo}/issues/{number}/comments``, ``PATCH /repos/{repo}/issues/comments/{id}``
- ``GET /repos/{repo}/commits/{sha}/pulls``
- ``GET/POST /repos/{repo}/issues``, ``PATCH /repos/{repo}/issues/{number}``
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from reconciler.errors import ReconcilerError

API_VERSION = "2022-11-28"
_PER_PAGE = 100
#: Listing stops after this many pages: a bound on time, not a limit anyone should reach.
_MAX_PAGES = 50


class GitHubError(ReconcilerError):
    """GitHub's API refused a request or could not be reached; says which and why."""

    failure_reason = "api-unreachable"


class GitHubClient:
    """The few endpoints the reconciler needs, for one repository (``owner/name``)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        repository: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.repository = repository
        self._http = httpx.Client(
            base_url=api_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "reconciler",
            },
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"GitHubClient({self.repository!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"repos/{self.repository}/{path}"
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise GitHubError(
                f"GitHub API {method} /{url}: {type(exc).__name__}"
            ) from None  # the request (and its headers) stay out of the traceback
        if response.status_code >= 400:
            raise GitHubError(
                f"GitHub API {method} /{url}: HTTP {response.status_code} {_message(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise GitHubError(f"GitHub API {method} /{url}: the answer is not JSON") from None

    def _pages(self, path: str, params: Mapping[str, str] | None = None) -> Iterator[Any]:
        for page in range(1, _MAX_PAGES + 1):
            query = {**(params or {}), "per_page": str(_PER_PAGE), "page": str(page)}
            items = self._request("GET", path, params=query)
            if not isinstance(items, list):
                raise GitHubError(f"GitHub API GET /{path}: expected a list")
            yield from items
            if len(items) < _PER_PAGE:
                return

    # -- comments ------------------------------------------------------------------------------

    def issue_comments(self, number: int) -> Iterator[dict[str, Any]]:
        """Every comment of an issue or pull request, oldest first."""
        yield from self._pages(f"issues/{number}/comments")

    def create_comment(self, number: int, body: str) -> dict[str, Any]:
        """Add a comment to an issue or pull request."""
        result: dict[str, Any] = self._request(
            "POST", f"issues/{number}/comments", json={"body": body}
        )
        return result

    def update_comment(self, comment_id: int, body: str) -> dict[str, Any]:
        """Replace the body of a comment."""
        result: dict[str, Any] = self._request(
            "PATCH", f"issues/comments/{comment_id}", json={"body": body}
        )
        return result

    # -- pull requests and issues --------------------------------------------------------------

    def commit_pulls(self, sha: str) -> list[dict[str, Any]]:
        """The pull requests a commit belongs to (for a merge commit: the merged one)."""
        return list(self._pages(f"commits/{sha}/pulls"))

    def issues(self, state: str = "all") -> Iterator[dict[str, Any]]:
        """Every issue of the repository (pull requests left out), newest first."""
        for issue in self._pages("issues", {"state": state}):
            if "pull_request" not in issue:
                yield issue

    def create_issue(self, title: str, body: str) -> dict[str, Any]:
        """Open an issue."""
        result: dict[str, Any] = self._request(
            "POST", "issues", json={"title": title, "body": body}
        )
        return result

    def update_issue(self, number: int, **fields: str) -> dict[str, Any]:
        """Change an issue's ``state``, ``state_reason``, ``title`` or ``body``."""
        result: dict[str, Any] = self._request("PATCH", f"issues/{number}", json=fields)
        return result


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    message = data.get("message", "") if isinstance(data, dict) else ""
    return str(message)[:200]
