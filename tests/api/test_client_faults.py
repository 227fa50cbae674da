"""The client against ``httpx.MockTransport`` faults: every failure becomes its typed error.

Reads retry every transient fault; mutations retry only faults that certainly had no effect
(rate limits, connections that never opened) and raise the ambiguous ones at the first try.
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx
import pytest

from reconciler.api import wire
from reconciler.api.client import AccountClient, ApiClient, ClientSettings
from reconciler.api.responses import MIN_SPAM_PROBE, SPAM_PROBE_SHARE
from reconciler.api.secret import ApiKey
from reconciler.apply import SHARE_MARGIN
from reconciler.core.live import Condition
from reconciler.errors import (
    ApiError,
    ApiUnreachable,
    InvalidKey,
    MalformedResponse,
    ModelNotFound,
    RateLimited,
    ServerError,
    ValidationFailed,
)

from .api_support import SPEC, MockAccount, endpoint_of

Respond = Callable[[httpx.Request], httpx.Response]
Kind = Literal["ambiguous", "no-effect", "permanent"]

pytestmark = pytest.mark.anyio

CANARY = "CANARY-9f8e7d-SECRET"  # the conftest's canary, for tables built at import
SPAM_TIPS = (
    "you are sending same request multiple times, spam filter is enabled, please wait for 30 "
    "seconds and try again"
)
OK_BODIES: Mapping[str, Any] = {
    wire.FINETUNE_LIST: {"status": "success", "messege": "model list", "data": ["m1"]},
    wire.MODEL_LIST: [{"model_id": "m1", "status": "model_ready"}],
    wire.LOAD_MODEL: {"status": "success", "message": "model load started"},
    wire.MODEL_RELOAD: {"status": "success", "message": "model reload started"},
    wire.ENTERPRISE_GET_ALL_MODELS: {"status": "success", "models": [{"model_id": "e1"}]},
    wire.ENTERPRISE_LOAD_MODEL: {"status": "success", "message": "model load started"},
    wire.ENTERPRISE_VERIFY_MODEL: {"status": "success", "message": "Model exists on server"},
    wire.ENTERPRISE_DELETE_MODEL: {"status": "success", "message": "Model deleted on server"},
}


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=OK_BODIES[endpoint_of(request)])


def answer(status: int, body: Any, **headers: str) -> Respond:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def raw(status: int, content: bytes, content_type: str = "text/html") -> Respond:
    return lambda request: httpx.Response(
        status, content=content, headers={"content-type": content_type}
    )


def raising(exc_type: type[httpx.TransportError], text: str) -> Respond:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exc_type(text, request=request)

    return respond


class Script:
    """A handler that answers ``faults`` in turn, then ``then``; counts calls per endpoint."""

    def __init__(self, *faults: Respond, then: Respond | None = ok) -> None:
        self.faults = list(faults)
        self.then = then
        self.calls: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls[endpoint_of(request)] += 1
        if self.faults:
            return self.faults.pop(0)(request)
        assert self.then is not None, "more requests than the script allows"
        return self.then(request)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True)
class Fault:
    name: str
    respond: Respond
    error: type[ApiError]
    kind: Kind

    def __str__(self) -> str:
        return self.name


FAULTS = (
    Fault("http-500", answer(500, {"status": "error", "message": "Server Error"}), ServerError,
          "ambiguous"),
    Fault("http-502-html", raw(502, b"<html><h1>502 Bad Gateway</h1></html>"), ServerError,
          "ambiguous"),
    Fault("http-503", raw(503, b"Service Unavailable", "text/plain"), ServerError, "ambiguous"),
    Fault("read-timeout", raising(httpx.ReadTimeout, "timed out"), ApiUnreachable, "ambiguous"),
    Fault("dropped", raising(httpx.RemoteProtocolError, "Server disconnected"), ApiUnreachable,
          "ambiguous"),
    Fault("read-error", raising(httpx.ReadError, "reset by peer"), ApiUnreachable, "ambiguous"),
    Fault("malformed-json", raw(200, b'{"status": "success", "data": [', "application/json"),
          MalformedResponse, "ambiguous"),
    Fault("html-200", raw(200, b"<!DOCTYPE html><html><body>Oops</body></html>"),
          MalformedResponse, "ambiguous"),
    Fault("wrong-shape", answer(200, {"unexpected": True}), MalformedResponse, "ambiguous"),
    Fault("failed-try-again-legacy",
          answer(200, {"status": "failed", "id": "", "message": "Failed, Try Again", "output": ""}),
          ServerError, "ambiguous"),
    Fault("failed-try-again-modern",
          answer(500, {"status": "failed", "id": "", "message": "Failed, Try Again", "output": ""}),
          ServerError, "ambiguous"),
    Fault("spam-filter-legacy",
          answer(200, {"status": "error", "message": "Rate limit exceeded", "tips": SPAM_TIPS}),
          RateLimited, "no-effect"),
    Fault("spam-filter-modern",
          answer(429, {"status": "error", "message": "Rate limit exceeded", "tips": SPAM_TIPS}),
          RateLimited, "no-effect"),
    Fault("queue-429-retry-after",
          answer(429, {"status": "error", "retry_after": 30,
                       "message": "Rate limit exceeded. Maximum 5 queued requests allowed."}),
          RateLimited, "no-effect"),
    Fault("connect-refused", raising(httpx.ConnectError, "Connection refused"), ApiUnreachable,
          "no-effect"),
    Fault("invalid-key-legacy",
          answer(200, {"status": "error", "message": "Invalid Api Key", "tip": "valid API key"}),
          InvalidKey, "permanent"),
    Fault("invalid-key-modern",
          answer(401, {"status": "error", "message": "Invalid Api Key", "tip": "valid API key"}),
          InvalidKey, "permanent"),
    Fault("validation-legacy",
          answer(200, {"status": "error",
                       "messege": {"model_format": ["The selected model format is invalid."]}}),
          ValidationFailed, "permanent"),
    Fault("validation-modern",
          answer(400, {"status": "error",
                       "message": {"model_format": ["The selected model format is invalid."]}}),
          ValidationFailed, "permanent"),
    Fault("not-found-legacy", answer(200, {"status": "error", "message": "Model id not found"}),
          ModelNotFound, "permanent"),
    Fault("not-found-modern", answer(404, {"status": "error", "message": "Model id not found"}),
          ModelNotFound, "permanent"),
)  # fmt: skip
TRANSIENT = [f for f in FAULTS if f.kind != "permanent"]
AMBIGUOUS = [f for f in FAULTS if f.kind == "ambiguous"]
NO_EFFECT = [f for f in FAULTS if f.kind == "no-effect"]
PERMANENT = [f for f in FAULTS if f.kind == "permanent"]


# -- reads -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", TRANSIENT, ids=str)
async def test_a_read_retries_a_transient_fault(mock_account: MockAccount, fault: Fault) -> None:
    script = Script(fault.respond)
    async with mock_account(script, api="enterprise") as account:
        live = await account.read_live()
    assert live.condition("e1") is Condition.READY
    assert script.calls == {wire.ENTERPRISE_GET_ALL_MODELS: 2}


@pytest.mark.parametrize("fault", TRANSIENT, ids=str)
async def test_a_read_gives_up_after_its_attempts(
    mock_account: MockAccount, fault: Fault, fast: ClientSettings
) -> None:
    script = Script(then=fault.respond)
    async with mock_account(script, api="enterprise") as account:
        with pytest.raises(fault.error) as caught:
            await account.read_live()
    # A refusal by a rate limit is not a failure: it has its own, larger budget (issue 9).
    limited = fault.error is RateLimited
    assert script.total == (1 + fast.rate_limited_attempts if limited else fast.retry_attempts)
    # A failed read applied nothing; a refusal by the rate limits says so (issue 9).
    expected = "rate-limited" if limited else "api-unreachable"
    assert caught.value.failure_reason == expected
    assert caught.value.account == "acct"
    assert caught.value.endpoint == wire.ENTERPRISE_GET_ALL_MODELS


@pytest.mark.parametrize("fault", PERMANENT, ids=str)
async def test_a_read_never_retries_a_permanent_fault(
    mock_account: MockAccount, fault: Fault
) -> None:
    script = Script(then=fault.respond)
    async with mock_account(script) as account:
        with pytest.raises(fault.error):
            await account.read_live()
    assert script.total in (1, 2)  # both listings run at once; the second may have left too
    assert all(count == 1 for count in script.calls.values())


async def test_a_failing_listing_cancels_the_other_and_raises_plainly(
    mock_account: MockAccount,
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if endpoint_of(request) == wire.MODEL_LIST:
            await anyio.sleep(10)  # cancelled when finetune_list fails
        return httpx.Response(401, json={"status": "error", "message": "Invalid Api Key"})

    with anyio.fail_after(5):
        async with mock_account(handler) as account:
            with pytest.raises(InvalidKey):  # not an ExceptionGroup
                await account.read_live()


# -- mutations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", AMBIGUOUS, ids=str)
@pytest.mark.parametrize("api", ["community", "enterprise"])
async def test_a_load_whose_outcome_is_unknown_is_not_resent(
    mock_account: MockAccount, fault: Fault, api: Literal["community", "enterprise"]
) -> None:
    script = Script(fault.respond)
    spec = SPEC if api == "community" else {"url": "org/repo", "model_type": "huggingface"}
    async with mock_account(script, api=api) as account:
        with pytest.raises(fault.error):
            await account.load("m1", spec)
    assert script.total == 1


@pytest.mark.parametrize("fault", AMBIGUOUS, ids=str)
async def test_reload_and_delete_whose_outcome_is_unknown_are_not_resent(
    mock_account: MockAccount, fault: Fault
) -> None:
    reload_script, delete_script = Script(fault.respond), Script(fault.respond)
    async with mock_account(reload_script) as account:
        with pytest.raises(fault.error):
            await account.reload("m1")
    async with mock_account(delete_script, api="enterprise") as account:
        with pytest.raises(fault.error):
            await account.delete("e1")
    assert reload_script.total == delete_script.total == 1


@pytest.mark.parametrize("fault", NO_EFFECT, ids=str)
async def test_a_mutation_refused_without_effect_is_retried(
    mock_account: MockAccount, fault: Fault
) -> None:
    script = Script(fault.respond)
    async with mock_account(script) as account:
        await account.load("m1", SPEC)
        assert (await account.reload("m1")).message == "model reload started"
    assert script.calls == {wire.LOAD_MODEL: 2, wire.MODEL_RELOAD: 1}


@pytest.mark.parametrize("fault", PERMANENT, ids=str)
async def test_a_mutation_with_a_permanent_fault_is_raised_at_once(
    mock_account: MockAccount, fault: Fault
) -> None:
    script = Script(then=fault.respond)
    async with mock_account(script) as account:
        with pytest.raises(fault.error):
            await account.load("m1", SPEC)
    assert script.total == 1


# -- what the errors carry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("respond", "retry_after"),
    [
        (answer(429, {"status": "error", "message": "Rate limit exceeded", "retry_after": 12}), 12),
        (answer(429, {"status": "error", "message": "Rate limit exceeded"}, **{"Retry-After": "7"}),
         7),
        (answer(200, {"status": "error", "message": "Rate limit exceeded", "tips": SPAM_TIPS}),
         42 * SPAM_PROBE_SHARE),
        (raw(429, b"Too Many Requests", "text/plain"), None),
        (lambda r: httpx.Response(429, text="slow down", headers={"Retry-After": "3"}), 3),
        (lambda r: httpx.Response(429, text="slow down", headers={"Retry-After": "soon"}), None),
    ],
)  # fmt: skip
async def test_rate_limits_carry_retry_after(
    mock_account: MockAccount, fast: ClientSettings, respond: Respond, retry_after: float | None
) -> None:
    settings = ClientSettings(
        **{**fast.__dict__, "spam_window": 42.0, "retry_attempts": 1, "rate_limited_attempts": 0}
    )
    async with mock_account(Script(then=respond), settings=settings) as account:
        with pytest.raises(RateLimited) as caught:
            await account.reload("m1")
    assert caught.value.retry_after == retry_after


async def test_a_spam_refusal_is_probed_no_faster_than_the_floor_without_a_window(
    mock_account: MockAccount, fast: ClientSettings
) -> None:
    """``--spam-window 0``: the probe wait has a floor, so a refusal is no burst."""
    body = {"status": "error", "message": "Rate limit exceeded", "tips": SPAM_TIPS}
    settings = ClientSettings(**{**fast.__dict__, "spam_window": 0.0, "rate_limited_attempts": 0})
    async with mock_account(Script(then=answer(200, body)), settings=settings) as account:
        with pytest.raises(RateLimited) as caught:
            await account.reload("m1")
    assert caught.value.retry_after == MIN_SPAM_PROBE


async def test_error_attributes(mock_account: MockAccount) -> None:
    body = {"status": "error", "messege": "Invalid Api Key", "tips": "check the key"}
    async with mock_account(Script(then=answer(401, body)), api="enterprise") as account:
        with pytest.raises(InvalidKey) as caught:
            await account.verify("e1")
    err = caught.value
    assert (err.account, err.endpoint, err.status_code) == (
        "acct",
        "v1/enterprise/verify_model",
        401,
    )
    assert (err.message, err.tip) == ("Invalid Api Key", "check the key")
    assert str(err) == "acct v1/enterprise/verify_model: Invalid Api Key (HTTP 401)"


async def test_legacy_errors_carry_no_status_code(mock_account: MockAccount) -> None:
    body = {"status": "error", "message": "Model id not found"}
    async with mock_account(Script(then=answer(200, body))) as account:
        with pytest.raises(ModelNotFound) as caught:
            await account.reload("ghost")
    assert caught.value.status_code is None
    assert str(caught.value) == "acct v4/dreambooth/model_reload: Model id not found"


async def test_validation_fields(mock_account: MockAccount) -> None:
    fields = {"url": ["The url field is required."], "model_name": ["Too long.", "Bad."]}
    async with mock_account(Script(then=answer(400, {"status": "error", "message": fields}))) as a:
        with pytest.raises(ValidationFailed) as caught:
            await a.load("m1", SPEC)
    assert caught.value.fields == {k: tuple(v) for k, v in fields.items()}
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("exc_type", "lost"),
    [
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
        (httpx.PoolTimeout, False),
        (httpx.ReadTimeout, True),
        (httpx.WriteTimeout, True),
        (httpx.ReadError, True),
        (httpx.WriteError, True),
        (httpx.RemoteProtocolError, True),
    ],
)
async def test_transport_errors_say_whether_the_answer_was_lost(
    mock_account: MockAccount, exc_type: type[httpx.TransportError], lost: bool
) -> None:
    script = Script(then=raising(exc_type, "boom"))
    async with mock_account(script, api="enterprise") as account:
        with pytest.raises(ApiUnreachable) as caught:
            await account.delete("e1")
    assert caught.value.answer_lost is lost
    assert isinstance(caught.value.__cause__, exc_type)
    assert script.total == (1 if lost else 4)


@pytest.mark.parametrize(
    ("respond", "error"),
    [
        (raw(404, b"<html>Not Found</html>"), ApiError),  # a wrong path, not a missing model
        (answer(404, {"status": "error", "message": "Not Found"}), ApiError),
        (answer(404, {"status": "error", "message": "Model not found: m1"}), ModelNotFound),
        (raw(401, b"Unauthorized", "text/plain"), InvalidKey),
        (raw(400, b"Bad Request", "text/plain"), ApiError),
        (answer(418, {"status": "success"}), ApiError),
        (answer(200, {"status": "error", "message": ["a list?"]}), MalformedResponse),
        (answer(500, {"status": "error", "message": ["a list?"]}), ServerError),
        (answer(200, {"status": "error", "message": "Something odd"}), ApiError),
        (lambda r: httpx.Response(302, headers={"Location": "https://elsewhere/"}), ApiError),
        (
            lambda r: httpx.Response(200, content=b"garbage", headers={"content-encoding": "gzip"}),
            MalformedResponse,
        ),
    ],
)
async def test_odd_answers(
    mock_account: MockAccount, respond: Respond, error: type[ApiError]
) -> None:
    async with mock_account(Script(then=respond)) as account:
        with pytest.raises(error) as caught:
            await account.reload("m1")
    assert type(caught.value) is error


# -- hangs -------------------------------------------------------------------------------------


class HangingApp:
    """An ASGI app that never answers in time; counts the requests it got."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await anyio.sleep(30)


@pytest.mark.parametrize("api", ["community", "enterprise"])
async def test_a_hang_past_the_timeout_is_an_unreachable_api(
    fast: ClientSettings, canary: str, api: Literal["community", "enterprise"]
) -> None:
    app = HangingApp()
    settings = ClientSettings(**{**fast.__dict__, "request_timeout": 0.05})
    async with ApiClient(settings, httpx.ASGITransport(app=app)) as client:
        account = client.account("acct", api, ApiKey(canary), "http://emulator/api")
        with anyio.fail_after(5), pytest.raises(ApiUnreachable) as caught:
            await account.read_live()
        assert caught.value.answer_lost
        assert "no answer within 0.05s" in str(caught.value)
        reads = app.calls
        assert reads == fast.retry_attempts * (2 if api == "community" else 1)
        with anyio.fail_after(5), pytest.raises(ApiUnreachable):
            await account.load(
                "m1",
                SPEC if api == "community" else {"url": "org/repo", "model_type": "huggingface"},
            )
        assert app.calls == reads + 1  # the load is not resent


# -- the canary key ----------------------------------------------------------------------------


def leaks(err: BaseException, canary: str) -> list[str]:
    """Every text of ``err`` (and its chain) a user or a log could see that holds the canary."""
    texts = [str(err), repr(err), *map(repr, err.args), repr(vars(err))]
    texts.append("".join(traceback.format_exception(err)))
    return [text for text in texts if canary in text]


def caught_texts(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in caplog.records)


async def every_call(mock_account: MockAccount, script: Script, canary: str) -> list[BaseException]:
    """Run every call of both APIs against ``script``; return what each raised."""
    calls: list[tuple[Literal["community", "enterprise"], Callable[[AccountClient], Any]]] = [
        ("community", lambda a: a.read_live()),
        ("community", lambda a: a.load("m1", SPEC)),
        ("community", lambda a: a.load("m1", {**SPEC, "model_format": "zip"})),
        ("community", lambda a: a.reload("m1")),
        ("community", lambda a: a.delete("m1")),
        ("community", lambda a: a.verify("m1")),
        ("enterprise", lambda a: a.read_live()),
        ("enterprise", lambda a: a.load("e1", {"url": "org/repo", "model_type": "huggingface"})),
        ("enterprise", lambda a: a.load("e1", {"model_type": "bogus"})),
        ("enterprise", lambda a: a.verify("e1")),
        ("enterprise", lambda a: a.delete("e1")),
        ("enterprise", lambda a: a.reload("e1")),
    ]
    raised: list[BaseException] = []
    for api, call in calls:
        async with mock_account(script, api=api) as account:
            try:
                await call(account)
            except ApiError as exc:
                raised.append(exc)
            assert canary not in repr(account) + str(account) + repr(account._owner)
    return raised


@pytest.mark.parametrize("fault", FAULTS, ids=str)
async def test_the_key_never_shows_in_errors_logs_or_reprs(
    mock_account: MockAccount, caplog: pytest.LogCaptureFixture, canary: str, fault: Fault
) -> None:
    caplog.set_level(logging.DEBUG)
    raised = await every_call(mock_account, Script(then=fault.respond), canary)
    assert len(raised) >= 7  # each faulty request, bad spec and unsupported call raised
    assert {type(e) for e in raised} >= {fault.error, ValidationFailed}
    assert [leaks(err, canary) for err in raised if leaks(err, canary)] == []
    assert canary not in caught_texts(caplog)
    assert any(r.name == "reconciler.api" for r in caplog.records)
    assert canary not in repr(ApiKey(canary)) + str(ApiKey(canary)) + f"{ApiKey(canary)}"


ECHOES: list[Respond] = [
    answer(401, {"status": "error", "message": f"Invalid Api Key {CANARY}", "tip": CANARY}),
    answer(200, {"status": "error", "messege": {"key": [f"The key {CANARY} is invalid."]}}),
    answer(429, {"status": "error", "message": f"Rate limit exceeded for {CANARY}"}),
    answer(200, {"status": "failed", "message": f"Failed, Try Again ({CANARY})"}),
    answer(404, {"status": "error", "message": f"Model id not found for key {CANARY}"}),
    raising(httpx.ConnectError, f"refused for {CANARY}"),
    raising(httpx.ReadTimeout, f"timed out for {CANARY}"),
]


@pytest.mark.parametrize("respond", ECHOES)
async def test_a_key_the_server_echoes_is_masked(
    mock_account: MockAccount, canary: str, respond: Respond
) -> None:
    async with mock_account(Script(then=respond)) as account:
        with pytest.raises(ApiError) as caught:
            await account.reload("m1")
    err = caught.value
    texts = [str(err), repr(err), repr(err.args), repr(vars(err))]
    assert not [t for t in texts if canary in t]
    assert "****" in " ".join(texts)


def test_a_legacy_spam_probe_fits_in_the_opening_an_apply_leaves() -> None:
    """The client probes a refused request more often than apply's polls leave an opening."""
    assert SPAM_PROBE_SHARE < SHARE_MARGIN - 1
