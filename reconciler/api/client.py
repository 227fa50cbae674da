"""The HTTP client of the ModelsLab model-management API: the only code that talks to it.

:class:`ApiClient` owns one ``httpx.AsyncClient`` (the network is injected as a transport, so
tests run the emulator in-process or an ``httpx.MockTransport``), a global concurrency limit
and the spam-window guard. :meth:`ApiClient.account` gives an :class:`AccountClient` per account
with one method per thing the engine does: read the live state, load, reload, delete, verify.

Every failure crosses one boundary (:meth:`ApiClient._exchange` and :mod:`.responses`) and leaves
it as one of the typed errors of :mod:`reconciler.errors`, carrying the account and endpoint.
Reads are retried on every transient error; mutations only when the request certainly had no
effect (rate limited, or never sent), because the engine re-observes the listing before it
resends a load whose answer was lost (design.md §3).

This module must not decide what to change (that is the engine's), and must never put a key,
a request body or a response body into a log line, an exception or a ``repr``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio
import httpx
import pydantic
import stamina

from reconciler.api import wire
from reconciler.api.responses import Where, check, parse, request_body, transport_error
from reconciler.api.secret import ApiKey
from reconciler.core.live import LiveState, community_live_state, enterprise_live_state
from reconciler.errors import (
    ApiError,
    ApiUnreachable,
    ModelNotFound,
    RateLimited,
    TransientError,
)

log = logging.getLogger("reconciler.api")

DEFAULT_API_BASE = "https://modelslab.com/api/"

ApiKind = Literal["community", "enterprise"]
BackoffHook = Callable[[Exception], bool | float]
A = TypeVar("A")
B = TypeVar("B")
M = TypeVar("M", bound=pydantic.BaseModel)

#: Extra random wait, in seconds, on top of a rate limit's ``retry_after``.
RATE_LIMIT_JITTER = 1.0


def resolve_api_base(manifest_base: str | None, flag_base: str | None) -> str:
    """The base URL of an account's API, always ending in ``/``.

    The manifest's ``api_base`` wins, then the ``--api-base`` flag (which click also fills
    from ``RECONCILER_API_BASE``), then :data:`DEFAULT_API_BASE`.
    """
    base = manifest_base or flag_base or DEFAULT_API_BASE
    return base if base.endswith("/") else base + "/"


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts, retry budget, spam window and concurrency of an :class:`ApiClient`.

    The spam window also spaces the retries of one request, which is resent identically: with
    the defaults a failing read is retried about every 30 s, within ``deadline``.
    """

    request_timeout: float = 30.0  # per request, connect to last byte
    deadline: float = 300.0  # overall time budget for the retries of one call
    spam_window: float = 30.0  # an identical (endpoint, body) is never resent sooner
    retry_attempts: int = 6
    retry_wait_initial: float = 1.0  # also the bound of the random jitter
    retry_wait_max: float = 30.0
    max_concurrency: int = 16  # HTTP requests in flight, across every account


DEFAULT_SETTINGS = ClientSettings()


# ---------------------------------------------------------------------------------------------
# Retry policies (stamina backoff hooks: False = raise, True = exponential backoff, float = wait)
# ---------------------------------------------------------------------------------------------


def read_backoff(exc: Exception) -> bool | float:
    """Reads change nothing: retry every transient error, a rate limit after ``retry_after``."""
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return exc.retry_after + random.uniform(0, RATE_LIMIT_JITTER)
    return isinstance(exc, TransientError)


def mutation_backoff(exc: Exception) -> bool | float:
    """Mutations are retried only when the request certainly had no effect.

    A rate limit refused the request, and a connection that never opened sent nothing; any
    other failure (an answer lost after sending, a 5xx, a malformed body) may hide a load that
    did start, so it is raised for the caller to re-observe the listing first.
    """
    if isinstance(exc, RateLimited):
        return read_backoff(exc)
    return isinstance(exc, ApiUnreachable) and not exc.answer_lost


def _within(deadline_at: float, hook: BackoffHook) -> BackoffHook:
    """``hook``, except that a wait ending after ``deadline_at`` raises instead."""

    def bounded(exc: Exception) -> bool | float:
        verdict = hook(exc)
        if isinstance(verdict, bool):
            return verdict
        return verdict if time.monotonic() + verdict <= deadline_at else False

    return bounded


# ---------------------------------------------------------------------------------------------
# The spam-window guard
# ---------------------------------------------------------------------------------------------


class _SpamGuard:
    """Spaces identical requests at least ``window`` seconds apart (api-spec §7.7a).

    Only a digest of each (url, body) is kept, never the body, which holds the key.
    """

    _PRUNE_AT = 4096

    def __init__(self, window: float) -> None:
        self._window = window
        self._next_turn: dict[str, float] = {}

    async def wait_turn(self, url: str, payload: Mapping[str, Any]) -> None:
        """Wait until ``payload`` may be sent to ``url`` again, and book that turn."""
        if self._window <= 0:
            return
        digest = _digest(url, payload)
        now = time.monotonic()
        self._prune(now)
        turn = max(now, self._next_turn.get(digest, now))
        self._next_turn[digest] = turn + self._window  # booked before sleeping: no race
        if turn > now:
            await anyio.sleep(turn - now)

    def _prune(self, now: float) -> None:
        if len(self._next_turn) >= self._PRUNE_AT:
            self._next_turn = {d: t for d, t in self._next_turn.items() if t > now}


def _digest(url: str, payload: Mapping[str, Any]) -> str:
    canonical = json.dumps([url, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# The clients
# ---------------------------------------------------------------------------------------------


class ApiClient:
    """The connection to the API shared by every account: one ``httpx.AsyncClient``.

    Use it as an async context manager; :meth:`account` binds an account to it.
    """

    def __init__(
        self,
        settings: ClientSettings = DEFAULT_SETTINGS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._limiter = anyio.Semaphore(settings.max_concurrency)
        self._account_limiters: dict[str, anyio.Semaphore] = {}
        self._spam = _SpamGuard(settings.spam_window)
        self._requests_sent = 0

    @property
    def requests_sent(self) -> int:
        """HTTP requests attempted so far (for tests and benchmarks)."""
        return self._requests_sent

    async def __aenter__(self) -> ApiClient:
        self._http = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(self.settings.request_timeout),
            limits=httpx.Limits(max_connections=self.settings.max_concurrency),
            headers={"Accept": "application/json", "User-Agent": "reconciler"},
            follow_redirects=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def __repr__(self) -> str:
        return f"ApiClient(requests_sent={self._requests_sent}, settings={self.settings!r})"

    def account(
        self,
        name: str,
        api: ApiKind,
        key: ApiKey,
        base_url: str,
        queue_limit: int = 5,
    ) -> AccountClient:
        """A client for one account; ``queue_limit`` caps the account's requests in flight.

        Every client of the same account name shares one limit (the first ``queue_limit``).
        """
        limiter = self._account_limiters.setdefault(name, anyio.Semaphore(queue_limit))
        base = resolve_api_base(base_url, None)
        return AccountClient(self, name, api, key, base, queue_limit, limiter)

    async def _send(
        self, where: Where, url: str, payload: Mapping[str, Any], limiter: anyio.Semaphore
    ) -> Any:
        """Send one request once: after its spam-window turn, within both limits."""
        await self._spam.wait_turn(url, payload)
        async with limiter, self._limiter:
            return await self._exchange(where, url, payload)

    async def _exchange(self, where: Where, url: str, payload: Mapping[str, Any]) -> Any:
        http = self._http
        if http is None:
            raise RuntimeError("ApiClient must be used as `async with ApiClient(...)`")
        self._requests_sent += 1
        started = time.monotonic()
        timeout = self.settings.request_timeout
        try:
            with anyio.fail_after(timeout):  # a total cap: httpx times each phase alone
                response = await http.post(url, json=payload)
        except (httpx.RequestError, TimeoutError) as exc:
            _log(where, type(exc).__name__, started)
            raise transport_error(exc, where, timeout) from exc
        _log(where, f"HTTP {response.status_code}", started)
        return check(response, where, self.settings.spam_window)


def _log(where: Where, outcome: str, started: float) -> None:
    elapsed = time.monotonic() - started
    log.debug("%s POST %s: %s in %.3fs", where.account, where.endpoint, outcome, elapsed)


class AccountClient:
    """One account's view of the API: the calls the engine makes, typed both ways."""

    __slots__ = ("_base_url", "_key", "_limiter", "_owner", "api", "name", "queue_limit")

    def __init__(
        self,
        owner: ApiClient,
        name: str,
        api: ApiKind,
        key: ApiKey,
        base_url: str,
        queue_limit: int,
        limiter: anyio.Semaphore,
    ) -> None:
        self.name = name
        self.api: ApiKind = api
        self.queue_limit = queue_limit
        self._owner = owner
        self._key = key
        self._base_url = base_url
        self._limiter = limiter

    def __repr__(self) -> str:
        return f"AccountClient({self.name!r}, api={self.api!r}, base_url={self._base_url!r})"

    # -- reads ------------------------------------------------------------------------------

    async def read_live(self) -> LiveState:
        """The account's live state from one listing pass: 2 requests (community) or 1."""
        if self.api == "enterprise":
            listing = await self._read(wire.ENTERPRISE_GET_ALL_MODELS, wire.GetAllModelsResponse)
            return enterprise_live_state(self.name, listing)
        owned, listed = await _both(self._owned_ids, self._listed_models)
        return community_live_state(self.name, owned, listed)

    async def verify(self, model_id: str) -> bool:
        """Whether an enterprise server has ``model_id`` loaded (``verify_model``)."""
        if self.api != "enterprise":
            raise self._unsupported(wire.ENTERPRISE_VERIFY_MODEL, "verify_model is enterprise-only")
        try:
            answer = await self._read(
                wire.ENTERPRISE_VERIFY_MODEL, wire.StatusMessage, model_id=model_id
            )
        except ModelNotFound:
            return False
        return answer.status == "success"

    async def _owned_ids(self) -> list[str]:
        return (await self._read(wire.FINETUNE_LIST, wire.FinetuneListResponse)).model_ids()

    async def _listed_models(self) -> list[wire.PublicModel]:
        return (await self._read(wire.MODEL_LIST, wire.ModelListResponse)).root

    # -- mutations --------------------------------------------------------------------------

    async def load(self, model_id: str, spec: Mapping[str, str]) -> None:
        """Start loading ``model_id`` with the load fields of ``spec`` (all strings)."""
        model: type[wire.KeyRequest] = wire.CommunityLoadRequest
        endpoint = wire.LOAD_MODEL
        if self.api == "enterprise":
            model, endpoint = wire.EnterpriseLoadRequest, wire.ENTERPRISE_LOAD_MODEL
        fields = {**spec, "model_id": model_id, "key": self._key.reveal()}
        payload = request_body(model, fields, self._where(endpoint))
        await self._mutate(endpoint, payload)

    async def reload(self, model_id: str) -> str:
        """Reload an evicted community model; the API's message says whether it started."""
        if self.api == "enterprise":
            raise self._unsupported(
                wire.MODEL_RELOAD, "there is no reload on enterprise: reload is a load_model"
            )
        answer = await self._mutate(wire.MODEL_RELOAD, self._body(model_id=model_id))
        return answer.message

    async def delete(self, model_id: str) -> None:
        """Delete ``model_id`` from an enterprise server."""
        if self.api != "enterprise":
            raise self._unsupported(
                wire.ENTERPRISE_DELETE_MODEL,
                "deleting a model is not possible through the community API",
            )
        await self._mutate(wire.ENTERPRISE_DELETE_MODEL, self._body(model_id=model_id))

    # -- plumbing ---------------------------------------------------------------------------

    def _where(self, endpoint: str) -> Where:
        return Where(self.name, endpoint, self._key)

    def _unsupported(self, endpoint: str, message: str) -> ApiError:
        return ApiError(message, account=self.name, endpoint=endpoint)

    def _body(self, **fields: str) -> dict[str, str]:
        return {"key": self._key.reveal(), **fields}

    async def _read(self, endpoint: str, model: type[M], **fields: str) -> M:
        payload = self._body(**fields)
        return await self._retrying(read_backoff, lambda: self._call(endpoint, payload, model))

    async def _mutate(self, endpoint: str, payload: Mapping[str, Any]) -> wire.StatusMessage:
        return await self._retrying(
            mutation_backoff, lambda: self._call(endpoint, payload, wire.StatusMessage)
        )

    async def _call(self, endpoint: str, payload: Mapping[str, Any], model: type[M]) -> M:
        where = self._where(endpoint)
        data = await self._owner._send(where, self._base_url + endpoint, payload, self._limiter)
        return parse(model, data, where)

    async def _retrying(self, hook: BackoffHook, call: Callable[[], Awaitable[A]]) -> A:
        settings = self._owner.settings
        on = _within(time.monotonic() + settings.deadline, hook)
        async for attempt in stamina.retry_context(
            on=on,
            attempts=settings.retry_attempts,
            timeout=settings.deadline,
            wait_initial=settings.retry_wait_initial,
            wait_max=settings.retry_wait_max,
            wait_jitter=settings.retry_wait_initial,
        ):
            with attempt:
                return await call()
        raise AssertionError("unreachable: stamina re-raises the last error")


async def _both(
    first: Callable[[], Awaitable[A]], second: Callable[[], Awaitable[B]]
) -> tuple[A, B]:
    """Run two calls concurrently; the first :class:`ApiError` cancels the other and is raised."""
    firsts: list[A] = []
    seconds: list[B] = []
    failures: list[ApiError] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_collect, first, firsts, failures, group.cancel_scope)
        group.start_soon(_collect, second, seconds, failures, group.cancel_scope)
    if failures:
        raise failures[0]
    return firsts[0], seconds[0]


async def _collect(
    call: Callable[[], Awaitable[A]],
    box: list[A],
    failures: list[ApiError],
    scope: anyio.CancelScope,
) -> None:
    try:
        box.append(await call())
    except ApiError as exc:
        failures.append(exc)
        scope.cancel()
