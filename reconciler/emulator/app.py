"""The emulator's ASGI app: the API under ``/api/``, the control surface under ``/_emulator/``.

Every API request goes through one pipeline, in the order a real gateway and app would apply
them: count it; draw its fault (latency, then a 5xx or ``Failed, Try Again`` answer *before*
processing); settle the clock's due transitions; check content type, JSON and key (``Invalid Api
Key``, also for a key of the other API); the spam filter; the endpoint's handler (validation,
queue limit, effect); then a hung or malformed answer *after* processing (the effect happened,
the answer is lost). The error mode is applied last, when the reply becomes an HTTP response.

A background ticker in the lifespan settles transitions without requests, so webhooks fire on
time; without a lifespan (httpx's ``ASGITransport``), every request still settles them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.emulator import assumptions as assumed
from reconciler.emulator import replies
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.control import control_routes
from reconciler.emulator.faults import FaultKind, error_body, malformed_text
from reconciler.emulator.handlers import ENDPOINTS, Handler, prerender
from reconciler.emulator.replies import Reply
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.traffic import fingerprint
from reconciler.emulator.validation import Invalid
from reconciler.emulator.webhooks import WebhookSender

#: Real seconds between checks of a hung request's connection.
_HANG_POLL = 0.05


def create_app(
    config: EmulatorConfig,
    real_clock: Callable[[], float] = time.monotonic,
    real_sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> Starlette:
    """A new emulator; its state is ``app.state.emulator`` (an :class:`EmulatorState`).

    ``real_clock`` is the time the emulated clock scales, and ``real_sleep`` how injected
    latency and hung answers wait: a test that runs the client on a fake clock passes that
    clock's ``now`` and ``sleep``, so both sides of the API share one time (a hung answer is
    held, and timed out by the client, in virtual time).
    """
    state = EmulatorState(config, real_clock)
    webhooks = WebhookSender(state.webhook_log)
    clock = _RealTime(real_clock, real_sleep)

    async def api(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        endpoint = _route_path(scope).removeprefix("/api/")
        try:
            response = await _serve_api(request, endpoint, state, webhooks, clock)
        except ClientDisconnect:  # gone before its body was in: never processed, nobody to answer
            return
        await response(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.for_each_account(prerender)  # before the first request, not during it
        ticker = asyncio.get_running_loop().create_task(_tick(state, webhooks))
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await webhooks.aclose()
            state.save()

    app = _EmulatorApp(api, routes=control_routes(state, webhooks), lifespan=lifespan)
    app.state.emulator = state
    return app


class _EmulatorApp(Starlette):
    """The control surface through Starlette; a ``POST /api/…`` straight to the API pipeline.

    Starlette's middleware and router cost a request tens of microseconds, and every await in
    the pipeline (the injected latency) resumes through each of their frames: under a burst
    of hundreds of loads that was what a benchmark measured, not the client (issue 11). Any
    other method on ``/api/`` gets the 405 Starlette's router gave it.
    """

    def __init__(self, api: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _route_path(scope).startswith("/api/"):
            if scope["method"] == "POST":
                await self._api(scope, receive, send)
            else:
                await _NOT_ALLOWED(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The request's path below the server's root path (as Starlette's router matches it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path.removeprefix(root) if root and path.startswith(root) else path


#: What Starlette answers a method a route does not take.
_NOT_ALLOWED = PlainTextResponse("Method Not Allowed", 405, headers={"Allow": "POST"})


class _RealTime:
    """The real time the emulator waits in: latency and hung answers (injectable for tests)."""

    def __init__(self, now: Callable[[], float], sleep: Callable[[float], Awaitable[None]]) -> None:
        self.now = now
        self.sleep = sleep


async def _tick(state: EmulatorState, webhooks: WebhookSender) -> None:
    while True:
        await anyio.sleep(state.settings.tick_seconds)
        state.advance()
        webhooks.send(state.take_webhooks())


async def _serve_api(
    request: Request,
    endpoint: str,
    state: EmulatorState,
    webhooks: WebhookSender,
    clock: _RealTime,
) -> Response:
    state.counters.count(endpoint)
    target = ENDPOINTS.get(endpoint)
    if target is None:
        return JSONResponse(assumed.UNKNOWN_PATH, 404)
    fault = state.faults.draw()
    if state.faults.settings.latency_ms:
        await clock.sleep(state.faults.settings.latency_ms / 1000)
    if fault.kind is FaultKind.ERROR:
        return JSONResponse(error_body(fault.error_code), fault.error_code)
    if fault.kind is FaultKind.FAILED:
        return replies.failed_try_again().render(state.settings.error_mode)
    raw = await request.body()
    state.advance()
    reply = _process(state, endpoint, target, request.headers.get("content-type", ""), raw)
    webhooks.send(state.take_webhooks())
    if fault.kind is FaultKind.HANG:
        await _hold(request, state.settings.hang_seconds, clock)
    if fault.kind is FaultKind.MALFORMED:
        text, media_type = malformed_text(fault, reply.text())
        return Response(text, 200, media_type=media_type)
    return reply.render(state.settings.error_mode)


def _process(
    state: EmulatorState, endpoint: str, handle: Handler, content_type: str, raw: bytes
) -> Reply:
    body = _json_object(content_type, raw)
    account = state.account_for_key(body.get("key")) if body is not None else None
    if body is None or account is None or endpoint not in account.config.api.caps.endpoints:
        return replies.invalid_key()
    state.counters.attribute(account.name, endpoint)
    now, window = state.clock.now(), state.settings.spam_window_seconds
    identity = fingerprint(endpoint, body)
    seconds_left = state.spam.check(identity, now, window)
    if seconds_left > 0:
        return replies.spam_limited(seconds_left, state.settings.error_mode, state.clock.time_scale)
    try:
        reply = handle(state, account, body)
    except Invalid as exc:
        reply = replies.validation_failed(exc.fields)
    if reply.kind != "rate_limited":  # a load refused by the queue limit was not taken
        state.spam.accept(identity, now, window)
    return reply


def _json_object(content_type: str, raw: bytes) -> dict[str, Any] | None:
    """The body if it is a JSON object sent as ``application/json``; else ``None``."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        return None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def _hold(request: Request, seconds: float, clock: _RealTime) -> None:
    """Keep a hung answer back until the client gives up, ``seconds`` pass, or shutdown."""
    end = clock.now() + seconds
    while (left := end - clock.now()) > 0 and not await request.is_disconnected():
        await clock.sleep(min(_HANG_POLL, left))
