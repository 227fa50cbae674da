"""The HTTP client of the ModelsLab model-management API: the only code that talks to it.

:class:`ApiClient` owns the connection pool (one :mod:`.transport` wire: aiohttp; tests inject
an ``httpx`` transport instead: the emulator in-process or an ``httpx.MockTransport``),
a global concurrency limit and the spam-window guard, and sends one request at a time through
them. :meth:`ApiClient.account` gives an :class:`AccountClient` per account with one method per
thing the engine does: read the live state, load, reload, delete, verify.

Every failure crosses one boundary (:meth:`ApiClient._exchange` and :mod:`.responses`) and leaves
it as one of the typed errors of :mod:`reconciler.errors`, carrying the account and endpoint.
Which failures are retried, how long a retry waits and when a call gives up is
:mod:`.retry`'s; the spacing of identical requests is :mod:`.spam`'s; which base URL applies
and whether it can work is :mod:`.urls`'s. No request runs past its call's deadline.

Answers are bounded: a body is streamed and decoded by :class:`~.responses.BodyReader` up to
``ClientSettings.max_body_bytes``, and each request, body included, must end within
``request_timeout`` (a total, not a gap between bytes). A refusal by the spam filter is waited
out (``retry_after``) and retried within the deadline; the refused request does not hold the
client's own spam-window turn, since the server did not count it.

This module must not decide what to change (that is the engine's), and must never put a key,
a request body or a response body into a log line, an exception or a ``repr``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

import anyio
import httpx
import pydantic

from reconciler.api import wire
from reconciler.api.gather import both
from reconciler.api.kinds import ApiKind
from reconciler.api.responses import (
    Where,
    check,
    parse,
    request_body,
    transport_error,
    unusable_url_cause,
    unusable_url_error,
)
from reconciler.api.retry import mutation_backoff, read_backoff, retrying
from reconciler.api.secret import ApiKey, redact_url_credentials
from reconciler.api.settings import (
    DEFAULT_SETTINGS,
    MAX_CONCURRENCY,
    MIN_CONCURRENCY,
    ClientSettings,
    concurrency_for,
)
from reconciler.api.spam import PastDeadline, SpamGuard
from reconciler.api.transport import AiohttpWire, HttpxWire, Wire
from reconciler.api.urls import DEFAULT_API_BASE, normalise_api_base, resolve_api_base
from reconciler.clock import SYSTEM_CLOCK, Clock
from reconciler.core.live import LiveState, community_live_state, enterprise_live_state
from reconciler.errors import ApiError, ApiUnreachable, ModelNotFound, RateLimited

#: Names that other modules and tests import from here; each is defined where its job is.
__all__ = [
    "DEFAULT_API_BASE",
    "MAX_CONCURRENCY",
    "MIN_CONCURRENCY",
    "AccountClient",
    "ApiClient",
    "ClientSettings",
    "concurrency_for",
    "mutation_backoff",
    "normalise_api_base",
    "read_backoff",
    "resolve_api_base",
]

log = logging.getLogger("reconciler.api")

M = TypeVar("M", bound=pydantic.BaseModel)

#: Seconds a request may take when its call's deadline is (nearly) over: a poll at the
#: deadline still sees a prompt answer, and a run ends at most this long after its deadline.
OVERTIME = 1.0


class Accepted(NamedTuple):
    """A change the API accepted: its message, and when the accepted request started.

    ``sent_at`` is an instant of the run's clock taken as the accepted attempt's request went
    to the wire (after any refused ones, after the waits for a turn and for the limits): the
    change started on the server after it, so a time measured from it is never shorter than
    the server's, and no longer than it has to be (apply learns load times from it).
    ``answered_at`` is when its answer came (the change had started by then), when known.
    """

    message: str
    sent_at: float
    answered_at: float | None = None


class ApiClient:
    """The connection to the API shared by every account: one wire (see :mod:`.transport`).

    Use it as an async context manager; :meth:`account` binds an account to it.
    """

    def __init__(
        self,
        settings: ClientSettings = DEFAULT_SETTINGS,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        #: The run's clock: retry deadlines, backoffs and spam-window waits read it.
        self.clock = clock
        self._transport = transport
        self._wire: Wire | None = None
        # fast_acquire: a free place is taken without a turn of the event loop (two per request)
        self._limiter = anyio.Semaphore(settings.max_concurrency, fast_acquire=True)
        self._account_limiters: dict[str, anyio.Semaphore] = {}
        self._spam = SpamGuard(settings.spam_window, clock)
        self._requests_sent = 0

    @property
    def requests_sent(self) -> int:
        """HTTP requests attempted so far (for tests and benchmarks)."""
        return self._requests_sent

    async def __aenter__(self) -> ApiClient:
        self._wire = self._new_wire()
        return self

    def _new_wire(self) -> Wire:
        settings = self.settings
        connect = min(settings.request_timeout, settings.unreachable_deadline)
        if self._transport is None:
            return AiohttpWire(settings.max_concurrency, connect, self.clock.now)
        return HttpxWire(self._transport, settings.request_timeout, connect, self.clock.now)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._wire is not None:
            wire_, self._wire = self._wire, None
            await wire_.aclose()

    def __repr__(self) -> str:
        return f"ApiClient(requests_sent={self._requests_sent}, settings={self.settings!r})"

    def account(
        self,
        name: str,
        api: ApiKind | str,
        key: ApiKey,
        base_url: str,
        queue_limit: int = 5,
    ) -> AccountClient:
        """A client for one account; ``queue_limit`` caps the account's requests in flight.

        Every client of the same account name shares one limit (the first ``queue_limit``).
        """
        base = normalise_api_base(base_url)
        limiter = self._account_limiters.get(name)
        if limiter is None:
            limiter = self._account_limiters[name] = anyio.Semaphore(queue_limit, fast_acquire=True)
        return AccountClient(self, name, api, key, base, queue_limit, limiter)

    async def _send(
        self,
        where: Where,
        url: str,
        payload: Mapping[str, Any],
        limiter: anyio.Semaphore,
        not_after: float,
        sent: list[float] | None = None,
    ) -> Any:
        """Send one request once: after its spam-window turn, within both limits.

        ``sent`` (when given) receives the instants the request went to the wire and its answer
        came (see :class:`Accepted`).

        The turn is given back when the request never left this machine (a refused connection,
        an unusable URL, a cancellation before sending), so its retry need not wait a window,
        and when the server refused it as rate limited: the server's window runs from the last
        request it *accepted* (api-spec §7.7a), so the retry waits ``retry_after``, not a
        whole window of this client's own.
        """
        booking = await self._spam.wait_turn(where, url, payload, not_after)
        exchanging = False
        try:
            async with limiter, self._limiter:
                exchanging = True
                return await self._exchange(where, url, payload, not_after, sent)
        except ApiUnreachable as exc:
            if not exc.answer_lost:
                self._spam.release(booking)
            raise
        except (RateLimited, PastDeadline):
            self._spam.release(booking)
            raise
        except BaseException:
            if not exchanging:
                self._spam.release(booking)
            raise

    async def _exchange(
        self,
        where: Where,
        url: str,
        payload: Mapping[str, Any],
        not_after: float,
        sent: list[float] | None,
    ) -> Any:
        """One request and its whole answer, within ``request_timeout`` and ``not_after``."""
        sender = self._wire
        if sender is None:
            raise RuntimeError("ApiClient must be used as `async with ApiClient(...)`")
        started = self.clock.now()
        timeout = min(self.settings.request_timeout, max(not_after - started, OVERTIME))
        self._requests_sent += 1
        content = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        try:
            # A total cap, body included: a trickling body must time out too. On the run's
            # clock: a fake one times a hung answer out in virtual time.
            with self.clock.fail_after(timeout):
                reply = await sender.post(
                    url, content.encode(), where, self.settings.max_body_bytes
                )
        except (httpx.RequestError, TimeoutError) as exc:
            _log(where, type(exc).__name__, self.clock.now() - started)
            raise transport_error(exc, where, timeout) from exc
        except Exception as exc:  # an unusable URL escapes httpx's own error tree
            cause = unusable_url_cause(exc)
            if cause is None:
                raise
            _log(where, type(cause).__name__, self.clock.now() - started)
            raise unusable_url_error(cause, where) from exc
        _log(where, f"HTTP {reply.status_code}", self.clock.now() - started)
        if sent is not None:
            sent[:] = [reply.sent_at, reply.answered_at]
        return check(reply, where, self.settings.spam_window)


def _log(where: Where, outcome: str, elapsed: float) -> None:
    log.debug("%s POST %s: %s in %.3fs", where.account, where.endpoint, outcome, elapsed)


class AccountClient:
    """One account's view of the API: the calls the engine makes, typed both ways."""

    __slots__ = ("_base_url", "_key", "_limiter", "_owner", "api", "name", "queue_limit")

    def __init__(
        self,
        owner: ApiClient,
        name: str,
        api: ApiKind | str,
        key: ApiKey,
        base_url: str,
        queue_limit: int,
        limiter: anyio.Semaphore,
    ) -> None:
        self.name = name
        self.api = ApiKind(api)  # the value as a plain string is accepted too
        self.queue_limit = queue_limit
        self._owner = owner
        self._key = key
        self._base_url = base_url
        self._limiter = limiter

    @property
    def spam_window(self) -> float:
        """Seconds before the API accepts an identical request again (the client's setting)."""
        return self._owner.settings.spam_window

    @property
    def clock(self) -> Clock:
        """The run's clock, shared by every account of the :class:`ApiClient`."""
        return self._owner.clock

    def __repr__(self) -> str:
        base = redact_url_credentials(self._base_url)
        return f"AccountClient({self.name!r}, api={self.api.value!r}, base_url={base!r})"

    # -- reads ------------------------------------------------------------------------------

    async def read_live(self, *, deadline: float | None = None) -> LiveState:
        """The account's live state from one listing pass: 2 requests (community) or 1.

        ``deadline`` is an instant of the run's clock, such as the end of ``apply --timeout``,
        after which no retry starts and no spam-window wait ends: the last error is raised
        instead. Without it only ``ClientSettings.deadline`` bounds the retries, which could
        outlast the run's own limit. A request is cut at the deadline, but is always given at
        least :data:`OVERTIME` (so a poll at the deadline still sees a prompt answer); the
        first one is always made unless the spam window holds it past the deadline.

        The state's ``asked_at`` is when the request that says which models are loaded
        (``model_list``, ``get_all_models``) was written, in its answered attempt.
        """
        sent = [self._owner.clock.now()] * 2  # the answered attempt's (see Accepted)
        if wire.ENTERPRISE_GET_ALL_MODELS in self.api.caps.list_endpoints:
            listing = await self._read(
                wire.ENTERPRISE_GET_ALL_MODELS,
                wire.GetAllModelsResponse,
                deadline=deadline,
                sent=sent,
            )
            return enterprise_live_state(self.name, listing, sent[0])
        owned, listed = await both(
            lambda: self._owned_ids(deadline), lambda: self._listed_models(deadline, sent)
        )
        return community_live_state(self.name, owned, listed, sent[0])

    async def verify(self, model_id: str) -> bool:
        """Whether an enterprise server has ``model_id`` loaded (``verify_model``)."""
        endpoint = self.api.caps.verify_endpoint
        if endpoint is None:
            raise self._unsupported(
                wire.ENTERPRISE_VERIFY_MODEL, f"there is no verify_model on {self.api} accounts"
            )
        try:
            answer = await self._read(endpoint, wire.StatusMessage, model_id=model_id)
        except ModelNotFound:
            return False
        return answer.status == "success"

    async def _owned_ids(self, deadline: float | None) -> list[str]:
        listing = await self._read(wire.FINETUNE_LIST, wire.FinetuneListResponse, deadline=deadline)
        return listing.model_ids()

    async def _listed_models(
        self, deadline: float | None, sent: list[float] | None = None
    ) -> list[wire.PublicModel]:
        listing = await self._read(
            wire.MODEL_LIST, wire.ModelListResponse, deadline=deadline, sent=sent
        )
        return listing.root

    # -- mutations --------------------------------------------------------------------------

    async def load(
        self, model_id: str, spec: Mapping[str, str], *, deadline: float | None = None
    ) -> Accepted:
        """Start loading ``model_id`` with the load fields of ``spec`` (all strings).

        ``deadline`` bounds the retries of a refused request as in :meth:`read_live`.
        """
        model, endpoint = self.api.caps.load_request, self.api.caps.load_endpoint
        fields = {**spec, "model_id": model_id, "key": self._key.reveal()}
        payload = request_body(model, fields, self._where(endpoint))
        return await self._mutate(endpoint, payload, deadline)

    async def reload(self, model_id: str, *, deadline: float | None = None) -> Accepted:
        """Reload an evicted community model; the API's message says whether it started."""
        endpoint = self.api.caps.reload_endpoint
        if endpoint is None:
            raise self._unsupported(
                wire.MODEL_RELOAD, f"there is no reload on {self.api}: reload is a load_model"
            )
        return await self._mutate(endpoint, self._body(model_id=model_id), deadline)

    async def delete(self, model_id: str, *, deadline: float | None = None) -> Accepted:
        """Delete ``model_id`` from an enterprise server."""
        endpoint = self.api.caps.delete_endpoint
        if endpoint is None:
            raise self._unsupported(
                wire.ENTERPRISE_DELETE_MODEL,
                f"deleting a model is not possible through the {self.api} API",
            )
        return await self._mutate(endpoint, self._body(model_id=model_id), deadline)

    # -- plumbing ---------------------------------------------------------------------------

    def _where(self, endpoint: str) -> Where:
        return Where(self.name, endpoint, self._key)

    def _unsupported(self, endpoint: str, message: str) -> ApiError:
        return ApiError(message, account=self.name, endpoint=endpoint)

    def _body(self, **fields: str) -> dict[str, str]:
        return {"key": self._key.reveal(), **fields}

    async def _read(
        self,
        endpoint: str,
        model: type[M],
        *,
        deadline: float | None = None,
        sent: list[float] | None = None,
        **fields: str,
    ) -> M:
        payload = self._body(**fields)
        return await retrying(
            read_backoff,
            lambda not_after: self._call(endpoint, payload, model, not_after, sent),
            self._where(endpoint),
            self._owner.settings,
            self._owner.clock,
            deadline,
        )

    async def _mutate(
        self, endpoint: str, payload: Mapping[str, Any], deadline: float | None
    ) -> Accepted:
        clock = self._owner.clock
        now = clock.now()
        sent = [now, now]  # each attempt sets them: refusals before the accepted one excluded

        async def attempt(not_after: float) -> wire.StatusMessage:
            return await self._call(endpoint, payload, wire.StatusMessage, not_after, sent)

        answer = await retrying(
            mutation_backoff,
            attempt,
            self._where(endpoint),
            self._owner.settings,
            clock,
            deadline,
        )
        return Accepted(answer.message, sent[0], sent[1])

    async def _call(
        self,
        endpoint: str,
        payload: Mapping[str, Any],
        model: type[M],
        not_after: float,
        sent: list[float] | None = None,
    ) -> M:
        where = self._where(endpoint)
        url = self._base_url + endpoint
        data = await self._owner._send(where, url, payload, self._limiter, not_after, sent)
        return parse(model, data, where)
