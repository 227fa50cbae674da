"""The control surface under ``/_emulator/``: what tests, scripts and the demo drive.

The names and fields are a contract (design.md §5): ``accounts``, ``state``, ``clock``,
``faults``, ``settings`` and ``reset``, plus ``requests`` (per-endpoint request counters).
Bodies are JSON in, JSON out; a bad body gets HTTP 400 with ``{"status":"error","message"}``.
The real API has no such paths, so the client never calls them.

Routes only; they call the state's methods.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.emulator.config import AccountConfig, ErrorMode
from reconciler.emulator.faults import FaultSettings
from reconciler.emulator.state import AccountConflict, EmulatorState
from reconciler.emulator.webhooks import WebhookSender

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]


class ClockAdvance(BaseModel):
    """The body of ``POST /_emulator/clock``."""

    model_config = ConfigDict(extra="forbid")

    advance_seconds: float = Field(ge=0)


class SettingsUpdate(BaseModel):
    """The body of ``POST /_emulator/settings``; only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    load_seconds: float | None = Field(default=None, ge=0)
    reload_seconds: float | None = Field(default=None, ge=0)
    spam_window_seconds: float | None = Field(default=None, ge=0)
    idle_evict_seconds: float | None = Field(default=None, gt=0)
    error_mode: ErrorMode | None = None


class BadControlRequest(Exception):
    """A control request whose body is not what its route takes."""


def control_routes(state: EmulatorState, webhooks: WebhookSender) -> list[Route]:
    """The ``/_emulator/`` routes over ``state``; due webhooks go out through ``webhooks``."""

    def settle() -> None:
        state.advance()
        webhooks.send(state.take_webhooks())

    async def add_account(request: Request) -> Response:
        account = await _parse(request, AccountConfig)
        try:
            state.add_account(account)
        except AccountConflict as exc:
            return _error(str(exc), 409)
        return JSONResponse({"status": "success", "account": _public(account)}, 201)

    async def get_state(request: Request) -> Response:
        settle()
        return JSONResponse(state.snapshot())

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            state.clock.advance((await _parse(request, ClockAdvance)).advance_seconds)
        settle()
        now = state.clock.now_datetime()
        body = {"now": now.isoformat(), "now_seconds": now.timestamp()}
        return JSONResponse(body | {"time_scale": state.clock.time_scale})

    async def faults(request: Request) -> Response:
        update = await _parse(request, FaultSettings)
        try:
            state.faults.configure(update, update.model_fields_set)
        except ValidationError as exc:
            return _error(_describe(exc), 400)
        return JSONResponse(state.faults.settings.model_dump(mode="json"))

    async def settings(request: Request) -> Response:
        update = await _parse(request, SettingsUpdate)
        for name, value in update.model_dump(exclude_none=True).items():
            setattr(state.settings, name, value)
        settle()
        return JSONResponse(state.settings.model_dump(mode="json", exclude={"accounts"}))

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"status": "success"})

    async def requests(request: Request) -> Response:
        return JSONResponse(state.counters.snapshot())

    routes: list[tuple[str, Endpoint, list[str]]] = [
        ("accounts", add_account, ["POST"]),
        ("state", get_state, ["GET"]),
        ("clock", clock, ["GET", "POST"]),
        ("faults", faults, ["POST"]),
        ("settings", settings, ["POST"]),
        ("reset", reset, ["POST"]),
        ("requests", requests, ["GET"]),
    ]
    return [
        Route(f"/_emulator/{name}", _guarded(endpoint), methods=methods)
        for name, endpoint, methods in routes
    ]


def _guarded(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except BadControlRequest as exc:
            return _error(str(exc), 400)

    return guarded


async def _parse(request: Request, model: type[M]) -> M:
    raw = await request.body()
    try:
        data: Any = json.loads(raw) if raw.strip() else {}
        return model.model_validate(data)
    except json.JSONDecodeError as exc:
        raise BadControlRequest(f"body is not JSON: {exc}") from exc
    except ValidationError as exc:
        raise BadControlRequest(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


def _error(message: str, code: int) -> Response:
    return JSONResponse({"status": "error", "message": message}, code)


def _public(account: AccountConfig) -> dict[str, Any]:
    return account.model_dump(exclude={"key"})
