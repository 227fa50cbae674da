"""An API that cannot be reached fails fast, and no call outlasts its deadline.

A request that never left this machine (refused connection, unusable URL) does not use up a
spam-window turn, so its retries are not spaced 30 s apart; a URL that cannot work is not
retried at all; and ``read_live(deadline=…)`` gives up at the caller's deadline, not after the
client's own ``ClientSettings.deadline``.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Literal

import anyio
import httpx
import pytest

from reconciler.api import wire
from reconciler.api.client import ApiClient, ClientSettings
from reconciler.api.retry import waits_skipped
from reconciler.api.secret import ApiKey
from reconciler.clock import FakeClock
from reconciler.errors import ApiError, ApiUnreachable, ConfigError, RateLimited, ServerError

from .api_support import SPEC, MockAccount, endpoint_of

Api = Literal["community", "enterprise"]

pytestmark = pytest.mark.anyio

OK_BODIES = {
    wire.FINETUNE_LIST: {"status": "success", "messege": "model list", "data": ["m1"]},
    wire.MODEL_LIST: [{"model_id": "m1", "status": "model_ready"}],
    wire.ENTERPRISE_GET_ALL_MODELS: {"status": "success", "models": [{"model_id": "e1"}]},
    wire.LOAD_MODEL: {"status": "success", "message": "model load started"},
}


def with_(settings: ClientSettings, **changes: float) -> ClientSettings:
    return ClientSettings(**{**settings.__dict__, **changes})


def closed_port() -> int:
    """A local TCP port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Counting:
    """A MockTransport handler that counts requests and answers with ``respond``."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.calls = 0
        self.by_endpoint: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.by_endpoint[endpoint_of(request)] += 1
        return self.respond(request)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("Connection refused", request=request)


def server_error(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, json={"status": "error", "message": "Server Error"})


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=OK_BODIES[endpoint_of(request)])


# -- a refused connection does not wait out the spam window -------------------------------------


@pytest.mark.parametrize("api", ["community", "enterprise"])
async def test_a_refused_connection_is_retried_without_spam_window_waits(
    mock_account: MockAccount, fast: ClientSettings, api: Api
) -> None:
    handler = Counting(refused)
    settings = with_(fast, spam_window=30.0)
    with anyio.fail_after(5):  # was 3 x 30 s: each retry waited for a turn it never used
        async with mock_account(handler, api=api, settings=settings) as account:
            with pytest.raises(ApiUnreachable) as caught:
                await account.read_live()
    assert caught.value.answer_lost is False
    # The listing that gave up used every attempt; a community listing's other request is
    # cancelled then (this handler answers without yielding, so it may be one attempt short).
    assert max(handler.by_endpoint.values()) == fast.retry_attempts
    assert all(n >= fast.retry_attempts - 1 for n in handler.by_endpoint.values())


async def test_a_refused_mutation_is_retried_without_spam_window_waits(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    handler = Counting(refused)
    with anyio.fail_after(5):
        async with mock_account(handler, settings=with_(fast, spam_window=30.0)) as account:
            with pytest.raises(ApiUnreachable):
                await account.load("m1", SPEC)
    assert handler.calls == fast.retry_attempts


async def test_a_real_refused_connection_fails_fast(fast: ClientSettings, canary: str) -> None:
    settings = with_(fast, spam_window=30.0, request_timeout=1.0)
    base = f"http://127.0.0.1:{closed_port()}/api/"
    started = time.monotonic()
    async with ApiClient(settings) as client:  # the real httpx transport
        account = client.account("acct", "community", ApiKey(canary), base)
        with anyio.fail_after(10), pytest.raises(ApiUnreachable) as caught:
            await account.read_live()
    assert time.monotonic() - started < 5
    assert caught.value.answer_lost is False
    assert canary not in str(caught.value)


async def test_a_request_that_was_sent_still_holds_its_turn(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    """Only unsent requests give their turn back: the spam filter did see a sent one."""
    script = iter([refused, ok, ok])
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return next(script)(request)

    async with mock_account(handler, api="enterprise", settings=with_(fast, spam_window=0.3)) as a:
        with anyio.fail_after(5):
            await a.read_live()  # refused, then at once answered
            await a.read_live()  # identical to an answered one: waits its turn
    refused_at, answered_at, again_at = sent
    assert answered_at - refused_at < 0.2
    assert again_at - answered_at >= 0.29


# -- an unusable URL is never retried ------------------------------------------------------------


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exc

    return respond


UNUSABLE = [
    pytest.param(httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."),
                 id="unsupported-protocol"),
    pytest.param(httpx.InvalidURL("Invalid port: ':1'"), id="invalid-url"),
    pytest.param(OverflowError("getsockaddrarg: port must be 0-65535."), id="overflow"),
    pytest.param(ExceptionGroup("happy eyeballs", [OverflowError("port must be 0-65535.")]),
                 id="overflow-in-group"),
    pytest.param(UnicodeError("Invalid A-label"), id="idna"),
]  # fmt: skip


@pytest.mark.parametrize("exc", UNUSABLE)
@pytest.mark.parametrize("api", ["community", "enterprise"])
async def test_a_read_of_an_unusable_url_fails_at_once(
    mock_account: MockAccount, exc: Exception, api: Api, canary: str
) -> None:
    handler = Counting(raising(exc))
    async with mock_account(handler, api=api) as account:
        with pytest.raises(ApiUnreachable) as caught:
            await account.read_live()
    assert handler.calls in (1, 2)  # community's two listings run at once; neither retried
    assert caught.value.answer_lost is False
    assert "check the API base URL" in str(caught.value)
    assert canary not in str(caught.value) + repr(caught.value.args)


@pytest.mark.parametrize("exc", UNUSABLE)
async def test_a_mutation_of_an_unusable_url_fails_at_once(
    mock_account: MockAccount, exc: Exception
) -> None:
    handler = Counting(raising(exc))
    async with mock_account(handler) as account:
        with pytest.raises(ApiUnreachable) as caught:
            await account.load("m1", SPEC)
    assert handler.calls == 1
    assert caught.value.answer_lost is False


@pytest.mark.parametrize(
    ("base", "detail"),
    [
        ("http://127.0.0.1:99999/api/", "port"),  # OverflowError inside an ExceptionGroup
        ("ftp://127.0.0.1/api/", "unsupported protocol"),
    ],
)
async def test_an_unusable_url_past_the_base_check_is_an_error_not_a_crash(
    fast: ClientSettings, canary: str, base: str, detail: str
) -> None:
    """With the real transport: what the base check would have refused, were it bypassed."""
    async with ApiClient(with_(fast, spam_window=30.0)) as client:
        account = client.account("acct", "enterprise", ApiKey(canary), "http://h/api/")
        account._base_url = base  # bypass normalise_api_base
        with anyio.fail_after(5), pytest.raises(ApiUnreachable) as caught:
            await account.read_live()
        assert client.requests_sent == 1
    assert detail in str(caught.value)
    assert caught.value.answer_lost is False


# -- the base URL is checked once, before any request --------------------------------------------


@pytest.mark.parametrize(
    "base",
    ["http://127.0.0.1:99999/api/", "http://[::1/api/", "ftp://h/api/", "h/api/", "http:///api/",
     "http://h:0/api/", "http://h:abc/api/", "http://h/api/?x=1", "http://h/api#top", ""],
)  # fmt: skip
async def test_account_refuses_an_unusable_base(fast: ClientSettings, base: str) -> None:
    """``account()`` checks the base it is given and never falls back to the default one."""
    async with ApiClient(fast, httpx.MockTransport(ok)) as client:
        with pytest.raises(ConfigError, match=r"^invalid API base URL "):
            client.account("acct", "enterprise", ApiKey("k"), base)
        assert client.requests_sent == 0


# -- read_live(deadline=…) -------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["community", "enterprise"])
async def test_a_failing_listing_gives_up_at_the_callers_deadline(
    mock_account: MockAccount, fast: ClientSettings, api: Api
) -> None:
    """The spam window would space the retries 30 s apart; the deadline is 0.5 s away."""
    handler = Counting(server_error)
    settings = with_(fast, spam_window=30.0, deadline=300.0, retry_attempts=6)
    async with mock_account(handler, api=api, settings=settings) as account:
        started = time.monotonic()
        with anyio.fail_after(5), pytest.raises(ServerError):  # the last error, not a timeout
            await account.read_live(deadline=started + 0.5)
    assert time.monotonic() - started < 1.0
    assert handler.calls == (2 if api == "community" else 1)


async def test_backoff_waits_stop_at_the_callers_deadline(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    handler = Counting(server_error)
    settings = with_(
        fast, deadline=300.0, retry_attempts=1000, retry_wait_initial=0.1, retry_wait_max=0.1
    )
    clock = FakeClock()  # the backoffs are slept, on virtual time
    with waits_skipped(False):
        async with mock_account(
            handler, api="enterprise", settings=settings, clock=clock
        ) as account:
            started = clock.now()
            with anyio.fail_after(5), pytest.raises(ServerError):
                await account.read_live(deadline=started + 0.5)
    elapsed = clock.now() - started
    assert 0.25 <= elapsed < 1.0
    assert 2 <= handler.calls < 20


async def test_a_passed_deadline_still_makes_one_attempt(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    handler = Counting(server_error)
    async with mock_account(handler, settings=with_(fast, retry_attempts=6)) as account:
        with pytest.raises(ServerError):
            await account.read_live(deadline=time.monotonic() - 1)
    # One attempt, no retry. The other listing request is cancelled by the first one's
    # failure if that comes before it is sent (this handler answers without yielding).
    assert handler.by_endpoint[wire.FINETUNE_LIST] == 1
    assert handler.by_endpoint[wire.MODEL_LIST] <= 1


async def test_the_spam_window_may_not_hold_a_read_past_the_deadline(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    sent: list[float] = []
    clock = FakeClock()  # the spam window is waited out on virtual time: exact spacing

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now())
        return ok(request)

    settings = with_(fast, spam_window=0.4)
    async with mock_account(handler, api="enterprise", settings=settings, clock=clock) as account:
        await account.read_live()
        with anyio.fail_after(5), pytest.raises(ApiUnreachable, match="deadline passed") as caught:
            await account.read_live(deadline=clock.now() + 0.1)
        assert len(sent) == 1
        assert caught.value.answer_lost is False
        assert (caught.value.account, caught.value.endpoint) == (
            "acct",
            wire.ENTERPRISE_GET_ALL_MODELS,
        )
        await account.read_live()  # the refused wait booked no turn: this one is not pushed back
    first, second = sent
    assert 0.39 <= second - first < 0.7


async def test_the_settings_deadline_still_applies_when_it_is_sooner(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    handler = Counting(server_error)
    settings = with_(fast, spam_window=30.0, deadline=0.3, retry_attempts=6)
    async with mock_account(handler, api="enterprise", settings=settings) as account:
        with anyio.fail_after(5), pytest.raises(ServerError):
            await account.read_live(deadline=time.monotonic() + 600)
    assert handler.calls == 1


# -- what read-side failures report ----------------------------------------------------------------


def rate_limited(request: httpx.Request) -> httpx.Response:
    return httpx.Response(429, json={"status": "error", "message": "Rate limit exceeded"})


@pytest.mark.parametrize(
    "respond",
    [
        server_error,
        lambda r: httpx.Response(200, content=b"<html>", headers={"content-type": "text/html"}),
        rate_limited,
        refused,
    ],
    ids=["server-error", "malformed", "rate-limited", "unreachable"],
)
async def test_a_failed_read_reports_api_unreachable(
    mock_account: MockAccount,
    respond: Callable[[httpx.Request], httpx.Response],
) -> None:
    """Not ``apply-failed``: a listing that could not be read applied nothing.

    A refusal by the rate limits is ``rate-limited`` (issue 9): the API answered.
    """
    async with mock_account(Counting(respond), api="enterprise") as account:
        with pytest.raises(ApiError) as caught:
            await account.read_live()
    expected = "rate-limited" if respond is rate_limited else "api-unreachable"
    assert caught.value.failure_reason == expected


def _queue_full(request: httpx.Request) -> httpx.Response:
    body = {
        "status": "error",
        "message": "Rate limit exceeded. Maximum 5 queued requests allowed.",
        "retry_after": 30,
    }
    return httpx.Response(429, json=body)


async def test_a_refused_load_is_not_retried_past_the_callers_deadline(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    """apply passes its deadline: a load the queue keeps refusing ends with the run."""
    handler = Counting(_queue_full)
    clock = FakeClock()
    with waits_skipped(False):
        async with mock_account(handler, settings=fast, clock=clock) as account:
            started = clock.now()
            with anyio.fail_after(5), pytest.raises(RateLimited):
                await account.load("m1", SPEC, deadline=started + 40)
    assert clock.now() - started <= 40
    assert handler.calls == 2  # at once, then after retry_after; a third would end at ~60 s


async def test_an_accepted_load_says_when_the_accepted_attempt_started(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    """Refused attempts before it are not part of the load's time (apply learns from it)."""
    answers = iter([_queue_full, _queue_full])
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, ok)(request)

    with waits_skipped(False):
        async with mock_account(handler, settings=fast, clock=clock) as account:
            started = clock.now()
            accepted = await account.load("m1", SPEC, deadline=started + 300)
    assert accepted.sent_at >= started + 60  # two refusals, 30 s each at least
    assert accepted.sent_at == clock.now()  # the in-process answer takes no virtual time


@pytest.mark.parametrize("api", ["community", "enterprise"])
async def test_a_listing_says_when_its_answered_attempt_was_written(
    mock_account: MockAccount, api: Api
) -> None:
    """apply learns load times from it: the poll's start would make one learnt after a retry
    too short (here by 5 s), and every later listing too early."""
    clock = FakeClock()
    started = clock.now()
    failed: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        endpoint = endpoint_of(request)
        if endpoint in (wire.MODEL_LIST, wire.ENTERPRISE_GET_ALL_MODELS) and not failed:
            failed.add(endpoint)
            clock.advance(5.0)  # the first attempt takes 5 s, then fails
            return httpx.Response(500, json={"status": "error", "message": "Server Error"})
        return httpx.Response(200, json=OK_BODIES[endpoint])

    async with mock_account(handler, api=api, clock=clock) as account:
        live = await account.read_live()
    assert live.asked_at == pytest.approx(started + 5.0)
    assert sorted(live.models) == (["m1"] if api == "community" else ["e1"])
