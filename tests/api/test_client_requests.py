"""What the client sends: request counts, bodies, limits, the spam window, logs and policies."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from reconciler.api import wire
from reconciler.api.client import (
    DEFAULT_API_BASE,
    AccountClient,
    ApiClient,
    ClientSettings,
    mutation_backoff,
    read_backoff,
    resolve_api_base,
)
from reconciler.api.secret import ApiKey
from reconciler.clock import FakeClock
from reconciler.core.live import Condition
from reconciler.errors import (
    ApiError,
    ApiUnreachable,
    ConfigError,
    InvalidKey,
    MalformedResponse,
    ModelNotFound,
    RateLimited,
    ServerError,
    ValidationFailed,
)

from .api_support import SPEC, MockAccount, endpoint_of


class FakeApi:
    """A MockTransport handler with ``models`` owned ids, half of them loaded."""

    def __init__(self, models: int = 0) -> None:
        self.ids = [f"m{i}" for i in range(models)]
        self.calls: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        endpoint = endpoint_of(request)
        self.calls[endpoint] += 1
        self.bodies.append(json.loads(request.content))
        return httpx.Response(200, json=self.answer(endpoint))

    def answer(self, endpoint: str) -> Any:
        loaded = self.ids[::2]
        return {
            wire.FINETUNE_LIST: {"status": "success", "data": self.ids},
            wire.MODEL_LIST: [
                {"model_id": "midjourney", "status": "model_ready"},
                *({"model_id": i, "status": "model_ready"} for i in loaded),
            ],
            wire.ENTERPRISE_GET_ALL_MODELS: {
                "status": "success",
                "models": [{"model_id": i, "load_data": "01/25/2023 11:52:22"} for i in self.ids],
            },
        }.get(endpoint, {"status": "success", "message": "ok"})


# -- request counts ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("models", [0, 1, 50])
async def test_read_live_costs_two_requests_per_community_account_and_one_per_enterprise(
    fast: ClientSettings, canary: str, models: int
) -> None:
    api = FakeApi(models)
    async with ApiClient(fast, httpx.MockTransport(api)) as client:
        accounts = [
            client.account(f"c{n}", "community", ApiKey(f"{canary}{n}"), "http://a/api/")
            for n in range(3)
        ] + [
            client.account(f"e{n}", "enterprise", ApiKey(f"{canary}{n}"), "http://a/api/")
            for n in range(2)
        ]
        async with anyio.create_task_group() as group:
            for account in accounts:
                group.start_soon(account.read_live)
        assert client.requests_sent == 3 * 2 + 2 * 1
    assert api.calls == {
        wire.FINETUNE_LIST: 3,
        wire.MODEL_LIST: 3,
        wire.ENTERPRISE_GET_ALL_MODELS: 2,
    }


@pytest.mark.anyio
@pytest.mark.parametrize("models", [0, 1, 50])
async def test_read_live_builds_the_live_state(mock_account: MockAccount, models: int) -> None:
    api = FakeApi(models)
    async with mock_account(api) as account:
        live = await account.read_live()
    assert sorted(live.models) == sorted(api.ids)
    assert "midjourney" not in live.models
    for n, model_id in enumerate(api.ids):
        expected = Condition.READY if n % 2 == 0 else Condition.EVICTED
        assert live.condition(model_id) is expected


@pytest.mark.anyio
async def test_enterprise_read_live(mock_account: MockAccount) -> None:
    async with mock_account(FakeApi(2), api="enterprise") as account:
        live = await account.read_live()
    assert {m: live.condition(m) for m in live.models} == {"m0": "ready", "m1": "ready"}
    assert live.models["m0"].loaded_at == "01/25/2023 11:52:22"


# -- request bodies ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_community_calls_send_the_documented_bodies(
    mock_account: MockAccount, canary: str
) -> None:
    api = FakeApi()
    async with mock_account(api) as account:
        await account.load("m1", {**SPEC, "revision": "fp16", "model_id": "ignored"})
        assert (await account.reload("m1")).message == "ok"
    assert api.calls == {wire.LOAD_MODEL: 1, wire.MODEL_RELOAD: 1}
    assert api.bodies == [
        {"key": canary, "model_id": "m1", "revision": "fp16", **SPEC},
        {"key": canary, "model_id": "m1"},
    ]


@pytest.mark.anyio
async def test_enterprise_calls_send_the_documented_bodies(
    mock_account: MockAccount, canary: str
) -> None:
    api = FakeApi()
    spec = {"url": "org/repo", "model_type": "huggingface", "webhook": "https://hook/"}
    async with mock_account(api, api="enterprise") as account:
        await account.load("e1", spec)
        assert await account.verify("e1") is True
        await account.delete("e1")
    assert api.calls == {
        wire.ENTERPRISE_LOAD_MODEL: 1,
        wire.ENTERPRISE_VERIFY_MODEL: 1,
        wire.ENTERPRISE_DELETE_MODEL: 1,
    }
    assert api.bodies == [
        {"key": canary, "model_id": "e1", **spec},
        {"key": canary, "model_id": "e1"},
        {"key": canary, "model_id": "e1"},
    ]
    assert all(b["key"] == canary for b in api.bodies)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "exists"),
    [
        ({"status": "success", "message": "Model exists on server"}, True),
        ({"status": "loading", "message": "Model is loading"}, False),
        ({"status": "error", "message": "Model not found on server"}, False),
    ],
)
async def test_verify(mock_account: MockAccount, body: dict[str, str], exists: bool) -> None:
    handler = lambda request: httpx.Response(200, json=body)  # noqa: E731
    async with mock_account(handler, api="enterprise") as account:
        assert await account.verify("e1") is exists


@pytest.mark.anyio
async def test_a_spec_the_wire_model_rejects_is_never_sent(mock_account: MockAccount) -> None:
    api = FakeApi()
    async with mock_account(api) as account:
        with pytest.raises(ValidationFailed) as caught:
            await account.load("m1", {**SPEC, "model_format": "zip"})
    async with mock_account(api, api="enterprise") as account:
        with pytest.raises(ValidationFailed) as enterprise:
            await account.load("e1", {"model_type": "huggingface"})
    assert set(caught.value.fields) == {"model_format"}
    assert caught.value.endpoint == wire.LOAD_MODEL
    assert set(enterprise.value.fields) == {"url"}
    assert api.calls == {}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("api", "call", "endpoint"),
    [
        ("enterprise", lambda a: a.reload("e1"), wire.MODEL_RELOAD),
        ("community", lambda a: a.delete("m1"), wire.ENTERPRISE_DELETE_MODEL),
        ("community", lambda a: a.verify("m1"), wire.ENTERPRISE_VERIFY_MODEL),
    ],
)
async def test_calls_an_api_does_not_have_fail_without_a_request(
    mock_account: MockAccount, api: str, call: Callable[[AccountClient], Any], endpoint: str
) -> None:
    fake = FakeApi()
    async with mock_account(fake, api=api) as account:
        with pytest.raises(ApiError) as caught:
            await call(account)
    assert type(caught.value) is ApiError
    assert caught.value.endpoint == endpoint
    assert fake.calls == {}


def test_delete_on_community_says_it_is_not_possible() -> None:
    account = ApiClient().account("a", "community", ApiKey("k"), "http://a/api/")
    with pytest.raises(ApiError, match="not possible through the community API"):
        anyio.run(account.delete, "m1")


@pytest.mark.anyio
async def test_a_client_used_outside_async_with_says_so() -> None:
    account = ApiClient().account("a", "enterprise", ApiKey("k"), "http://a/api/")
    with pytest.raises(RuntimeError, match="async with"):
        await account.read_live()


# -- base URL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "flag", "expected"),
    [
        (None, None, DEFAULT_API_BASE),
        (None, "http://flag/api", "http://flag/api/"),
        ("http://manifest/api/", "http://flag/api/", "http://manifest/api/"),
        ("", "http://flag/api/", "http://flag/api/"),
    ],
)
def test_resolve_api_base(manifest: str | None, flag: str | None, expected: str) -> None:
    assert resolve_api_base(manifest, flag) == expected


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://[::1]:8080/api", "http://[::1]:8080/api/"),
        ("HTTPS://Example.com/api/", "HTTPS://Example.com/api/"),
        ("http://127.0.0.1:65535/x/api", "http://127.0.0.1:65535/x/api/"),
    ],
)
def test_resolve_api_base_keeps_a_usable_base(base: str, expected: str) -> None:
    assert resolve_api_base(None, base) == expected


@pytest.mark.parametrize(
    ("base", "why"),
    [
        ("http://127.0.0.1:99999/api/", "port 99999 is not in 1-65535"),
        ("http://127.0.0.1:0/api/", "port 0 is not in 1-65535"),
        ("http://[::1/api/", "Invalid port"),
        ("http://h:abc/api/", "Invalid port"),
        ("ftp://h/api/", "scheme must be http or https, not 'ftp'"),
        ("h.example/api/", "scheme must be http or https, not 'none'"),
        ("http:///api/", "no host"),
        ("http://h/api/?debug=1", "query or fragment"),
        ("http://h/api#x", "query or fragment"),
    ],
)
@pytest.mark.parametrize("where", ["manifest", "flag"])
def test_resolve_api_base_refuses_an_unusable_base(base: str, why: str, where: str) -> None:
    """A config error naming the base and the problem, not a crash at the first request."""
    manifest, flag = (base, None) if where == "manifest" else (None, base)
    with pytest.raises(ConfigError) as caught:
        resolve_api_base(manifest, flag)
    assert str(caught.value).startswith(f"invalid API base URL {base!r}: ")
    assert why in str(caught.value)
    assert caught.value.failure_reason == "invalid-manifest"


@pytest.mark.anyio
async def test_requests_go_under_the_accounts_base(fast: ClientSettings) -> None:
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(200, json={"status": "success", "models": []})

    async with ApiClient(fast, httpx.MockTransport(handler)) as client:
        await client.account("a", "enterprise", ApiKey("k"), "http://h:8080/x/api").read_live()
    assert urls == ["http://h:8080/x/api/v1/enterprise/get_all_models"]
    assert DEFAULT_API_BASE == "https://modelslab.com/api/"


# -- concurrency -------------------------------------------------------------------------------


class Gauge:
    """An async handler that holds each request a moment and records the peak in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await anyio.sleep(0.02)
        self.in_flight -= 1
        return httpx.Response(200, json={"status": "success", "message": "model load started"})


@pytest.mark.anyio
async def test_an_accounts_requests_in_flight_stay_within_its_queue_limit(
    fast: ClientSettings,
) -> None:
    gauge = Gauge()
    async with ApiClient(fast, httpx.MockTransport(gauge)) as client:
        account = client.account("a", "community", ApiKey("k"), "http://a/api/", queue_limit=3)
        async with anyio.create_task_group() as group:
            for n in range(12):
                group.start_soon(account.load, f"m{n}", SPEC)
    assert gauge.peak == 3


@pytest.mark.anyio
async def test_clients_of_one_account_share_its_limit(fast: ClientSettings) -> None:
    gauge = Gauge()
    async with ApiClient(fast, httpx.MockTransport(gauge)) as client:
        twins = [
            client.account("a", "community", ApiKey("k"), "http://a/api/", queue_limit=2)
            for _ in range(3)
        ]
        async with anyio.create_task_group() as group:
            for n in range(9):
                group.start_soon(twins[n % 3].load, f"m{n}", SPEC)
    assert gauge.peak == 2


@pytest.mark.anyio
async def test_requests_in_flight_stay_within_the_global_limit(fast: ClientSettings) -> None:
    gauge = Gauge()
    settings = ClientSettings(**{**fast.__dict__, "max_concurrency": 4})
    async with ApiClient(settings, httpx.MockTransport(gauge)) as client:
        accounts = [
            client.account(f"a{n}", "community", ApiKey("k"), "http://a/api/", queue_limit=5)
            for n in range(4)
        ]
        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(accounts[n % 4].load, f"m{n}", SPEC)
    assert gauge.peak == 4


# -- spam window -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_identical_request_waits_out_the_spam_window(fast: ClientSettings) -> None:
    """On a fake clock: the spacing checked is the guard's own, not how busy the machine is."""
    api = FakeApi(1)
    sent: list[float] = []
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now())
        return api(request)

    settings = ClientSettings(**{**fast.__dict__, "spam_window": 0.25})
    async with ApiClient(settings, httpx.MockTransport(handler), clock) as client:
        account = client.account("a", "enterprise", ApiKey("k"), "http://a/api/")
        other = client.account("b", "enterprise", ApiKey("other"), "http://a/api/")
        await account.read_live()
        await other.read_live()  # another body: no wait
        await account.verify("m0")  # another endpoint: no wait
        assert sent[-1] - sent[0] < 0.2
        await account.read_live()  # identical to the first: waits
        async with anyio.create_task_group() as group:  # two more at once: spaced too
            group.start_soon(account.read_live)
            group.start_soon(account.read_live)
    first, _, _, again, *more = sent
    assert again - first >= 0.24
    assert sorted(more)[0] - again >= 0.24
    assert sorted(more)[1] - sorted(more)[0] >= 0.24


# -- retry policies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "read", "mutation"),
    [
        (ServerError("x"), True, False),
        (MalformedResponse("x"), True, False),
        (ApiUnreachable("x", answer_lost=True), True, False),
        (ApiUnreachable("x", answer_lost=False), True, True),
        (RateLimited("x"), True, True),
        (InvalidKey("x"), False, False),
        (ModelNotFound("x"), False, False),
        (ValidationFailed({"a": ["b"]}), False, False),
        (ApiError("x"), False, False),
        (ValueError("a bug"), False, False),
    ],
)
def test_which_errors_are_retried(exc: Exception, read: bool, mutation: bool) -> None:
    assert read_backoff(exc) is read
    assert mutation_backoff(exc) is mutation


def caused_by(cause: BaseException) -> ApiUnreachable:
    """An :class:`ApiUnreachable` raised ``from cause``, as the client raises it."""
    try:
        raise ApiUnreachable("x", answer_lost=False) from cause
    except ApiUnreachable as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (caused_by(httpx.UnsupportedProtocol("ftp")), False),
        (caused_by(httpx.InvalidURL("bad")), False),
        (caused_by(ExceptionGroup("g", [OverflowError("port")])), False),
        (caused_by(UnicodeError("idna")), False),
        (caused_by(httpx.ConnectError("Connection refused")), True),
    ],
)
def test_an_unusable_url_is_never_retried(exc: ApiUnreachable, retried: bool) -> None:
    assert read_backoff(exc) is retried
    assert mutation_backoff(exc) is retried


@pytest.mark.parametrize("policy", [read_backoff, mutation_backoff])
def test_a_rate_limit_waits_at_least_retry_after(policy: Callable[[Exception], object]) -> None:
    waits = [policy(RateLimited("x", retry_after=30)) for _ in range(50)]
    assert all(isinstance(w, float) and 30 <= w <= 31 for w in waits)
    assert len(set(waits)) > 1  # jittered


@pytest.mark.anyio
async def test_a_rate_limit_longer_than_the_deadline_is_raised(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    body = {"status": "error", "message": "Rate limit exceeded", "retry_after": 600}
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(429, json=body)

    async with mock_account(handler, api="enterprise") as account:
        with pytest.raises(RateLimited):
            await account.read_live()
    assert calls == 1


# -- logging -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_each_request_is_logged_at_debug_without_bodies(
    mock_account: MockAccount, caplog: pytest.LogCaptureFixture, canary: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="reconciler.api")
    async with mock_account(FakeApi(1)) as account:
        await account.load("m1", SPEC)
    [record] = [r for r in caplog.records if r.name == "reconciler.api"]
    assert record.levelno == logging.DEBUG
    message = record.getMessage()
    assert message.startswith("acct POST v3/load_model: HTTP 200 in ")
    assert canary not in message
    assert "org/repo" not in message
