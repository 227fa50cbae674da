"""Shared by the client's MockTransport tests: the account factory type, a load spec, paths."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

from reconciler.api.client import AccountClient

#: The ``mock_account`` fixture (tests/api/conftest.py): a handler in, an AccountClient out.
MockAccount = Callable[..., AbstractAsyncContextManager[AccountClient]]

#: A valid community load spec.
SPEC = {
    "url": "org/repo",
    "model_format": "diffusers",
    "model_category": "stable_diffusion",
    "model_visibility": "private",
    "model_name": "M1",
}


def endpoint_of(request: httpx.Request) -> str:
    """The endpoint a request went to, relative to the API base."""
    return request.url.path.removeprefix("/api/")
