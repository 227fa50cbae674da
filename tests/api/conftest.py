"""Fixtures of the API client's tests: fast retries, a canary key, MockTransport accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from reconciler.api.client import AccountClient, ApiClient, ClientSettings
from reconciler.api.kinds import ApiKind
from reconciler.api.retry import waits_skipped
from reconciler.api.secret import ApiKey
from reconciler.clock import SYSTEM_CLOCK, Clock

CANARY = "CANARY-9f8e7d-SECRET"
BASE = "http://api.test/api/"

Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)
MockAccount = Callable[..., AbstractAsyncContextManager[AccountClient]]


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    """Retries at once (no backoff or rate-limit sleeps); attempts and deadlines still apply."""
    with waits_skipped():
        yield


@pytest.fixture
def canary() -> str:
    """An API key no message, log line or ``repr`` may ever show."""
    return CANARY


@pytest.fixture
def fast() -> ClientSettings:
    """Settings that keep tests fast: no spam-window waits, short timeouts, 4 attempts."""
    return ClientSettings(
        request_timeout=2.0,
        deadline=300.0,
        spam_window=0.0,
        retry_attempts=4,
        retry_wait_initial=0.0,
        retry_wait_max=0.0,
    )


@pytest.fixture
def mock_account(fast: ClientSettings) -> MockAccount:
    """``async with mock_account(handler, api=…, settings=…) as account``: key = canary."""

    @asynccontextmanager
    async def make(
        handler: Handler,
        api: ApiKind = ApiKind.COMMUNITY,
        settings: ClientSettings = fast,
        queue_limit: int = 5,
        clock: Clock = SYSTEM_CLOCK,
    ) -> AsyncIterator[AccountClient]:
        async with ApiClient(settings, httpx.MockTransport(handler), clock) as client:
            yield client.account("acct", api, ApiKey(CANARY), BASE, queue_limit)

    return make
