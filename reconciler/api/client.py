"""The HTTP client of the ModelsLab model-management API: the only code that talks to it.

:class:`ApiClient` owns one ``httpx.AsyncClient`` (the network is injected as a transport, so
tests run the emulator in-process or an ``httpx.MockTransport``), a global concurrency limit
and the spam-window guard. :meth:`ApiClient.account` gives an :class:`AccountClient` per account
with one method per thing the engine does: read the live state, load, reload, delete, verify.

Every failure crosses one boundary (:meth:`ApiClient._exchange` and :mod:`.responses`) and leaves
it as one of the typed errors of :mod:`reconciler.errors`, carrying the account and endpoint.
Reads are retried on every transient error; mutations only when the request certainly had no
effect (rate limited, or never sent), because the engine re-observes the listing before it
resends a load whose answer was lost (design.md §3). A URL that cannot work (bad scheme, host or
port) is never retried, and no retry starts, nor spam-window wait ends, after a call's deadline;
no request runs past it either. An API that cannot be reached at all is given up on after
``ClientSettings.unreachable_deadline`` (15 s), whatever the call's deadline.

Answers are bounded: a body is streamed and decoded by :class:`~.responses.BodyReader` up to
``ClientSettings.max_body_bytes``, and each request, body included, must end within
``request_timeout`` (a total, not a gap between bytes). A refusal by the spam filter is waited
out (``retry_after``) and retried within the deadline; the refused request does not hold the
client's own spam-window turn, since the server did not count it.

This module must not decide what to change (that is the engine's), and must never put a key,
a request body or a response body into a log line, an exception or a ``repr``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx
import pydantic
import stamina

from reconciler.api import wire
from reconciler.api.kinds import ApiKind
from reconciler.api.responses import (
    ACCEPT_ENCODING,
    BodyReader,
    Where,
    check,
    parse,
    request_body,
    transport_error,
    unusable_url_cause,
    unusable_url_error,
)
from reconciler.api.secret import ApiKey, redact_url_credentials
from reconciler.clock import SYSTEM_CLOCK, Clock
from reconciler.core.live import LiveState, community_live_state, enterprise_live_state
from reconciler.errors import (
    AnswerOverLimit,
    ApiError,
    ApiUnreachable,
    ConfigError,
    ModelNotFound,
    RateLimited,
    TransientError,
)

log = logging.getLogger("reconciler.api")

DEFAULT_API_BASE = "https://modelslab.com/api/"

BackoffHook = Callable[[Exception], bool | float]
A = TypeVar("A")
B = TypeVar("B")
M = TypeVar("M", bound=pydantic.BaseModel)

#: Extra random wait on top of a rate limit's ``retry_after``: at most this many seconds, and
#: at most :data:`RATE_LIMIT_JITTER_SHARE` of the wait, so that a short wait (a spam window
#: about to open, a probe) still lands inside the opening another run leaves between polls.
RATE_LIMIT_JITTER = 1.0
RATE_LIMIT_JITTER_SHARE = 0.05

#: Seconds a request may take when its call's deadline is (nearly) over: a poll at the
#: deadline still sees a prompt answer, and a run ends at most this long after its deadline.
OVERTIME = 1.0


def resolve_api_base(manifest_base: str | None, flag_base: str | None) -> str:
    """The base URL of an account's API, checked, always ending in ``/``.

    The manifest's ``api_base`` wins, then the ``--api-base`` flag (which click also fills
    from ``RECONCILER_API_BASE``), then :data:`DEFAULT_API_BASE`. A base that cannot work is a
    :class:`~reconciler.errors.ConfigError` here, before any request, rather than a transport
    error (or a crash) at the first one: see :func:`normalise_api_base`.
    """
    return normalise_api_base(manifest_base or flag_base or DEFAULT_API_BASE)


def normalise_api_base(base: str) -> str:
    """``base`` checked and ending in ``/``; :class:`~reconciler.errors.ConfigError` if unusable.

    Endpoints are appended to the base as text, so it must be an absolute http(s) URL with a
    host, a port in 1-65535 if any, and no query or fragment (which would swallow the path).
    """
    why = _base_problem(base)
    if why:
        shown = redact_url_credentials(base)
        raise ConfigError(f"invalid API base URL {shown!r}: {redact_url_credentials(why)}")
    return base if base.endswith("/") else base + "/"


def _base_problem(base: str) -> str:
    """Why ``base`` cannot serve as an API base URL, or ``""`` if it can."""
    try:
        url = httpx.URL(base)
        scheme, host, port = url.scheme, url.host, url.port
    except (httpx.InvalidURL, ValueError, OverflowError) as exc:
        return str(exc) or type(exc).__name__
    if scheme not in ("http", "https"):
        return f"the scheme must be http or https, not {scheme or 'none'!r}"
    if not host:
        return "there is no host"
    if port is not None and not 1 <= port <= 65535:
        return f"the port {port} is not in 1-65535"
    if url.query or url.fragment or "?" in base or "#" in base:
        return "a query or fragment would swallow the endpoint paths"
    return ""


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts, retry budget, spam window and concurrency of an :class:`ApiClient`.

    The spam window also spaces the retries of one request, which is resent identically: with
    the defaults a failing read is retried about every 30 s, within ``deadline``.
    """

    request_timeout: float = 30.0  # per request, connect to last byte of the body
    deadline: float = 300.0  # overall time budget for the retries of one call
    #: How long a call keeps trying an API it cannot reach (refused, no route, connect timeout)
    #: before it gives up and says why; also the connect timeout of one request.
    unreachable_deadline: float = 15.0
    #: The largest answer read, counted after decompression: a listing of 100k models is
    #: about 25 MB; a bigger answer is an error for its account, not a memory spike.
    max_body_bytes: int = 64 * 1024 * 1024
    spam_window: float = 30.0  # an identical (endpoint, body) is never resent sooner
    retry_attempts: int = 6
    #: Rate-limit refusals one call waits out (the deadline bounds them too): enough probes of
    #: a legacy spam window (``responses.SPAM_PROBE_SHARE``) to span four windows.
    rate_limited_attempts: int = 50
    retry_wait_initial: float = 1.0  # also the bound of the random jitter
    retry_wait_max: float = 30.0
    max_concurrency: int = 16  # HTTP requests in flight, across every account


DEFAULT_SETTINGS = ClientSettings()
#: Bounds of :func:`concurrency_for`: the old fixed cap, and a number of sockets that stays well
#: inside the usual limit of 1024 open files.
MIN_CONCURRENCY, MAX_CONCURRENCY = 16, 512


def concurrency_for(queue_limits: Iterable[int]) -> int:
    """The default cap on requests in flight for a run over accounts with these queue limits.

    Enough for every account to fill its queue at once (the per-account limit still holds each
    one to its queue limit), so a run over 100 accounts is not held to 16 loads in flight.
    """
    return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, sum(queue_limits)))


# ---------------------------------------------------------------------------------------------
# Retry policies (stamina backoff hooks: False = raise, True = exponential backoff, float = wait)
# ---------------------------------------------------------------------------------------------


def read_backoff(exc: Exception) -> bool | float:
    """Reads change nothing: retry every transient error, a rate limit after ``retry_after``.

    A URL that cannot work is the exception: it fails the same way every time, so it is raised
    at once instead of spending the whole retry budget on it.
    """
    if unusable_url_cause(exc) is not None or isinstance(exc, AnswerOverLimit):
        return False
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        jitter = min(RATE_LIMIT_JITTER, RATE_LIMIT_JITTER_SHARE * exc.retry_after)
        return exc.retry_after + random.uniform(0, jitter)
    return isinstance(exc, TransientError)


def mutation_backoff(exc: Exception) -> bool | float:
    """Mutations are retried only when the request certainly had no effect.

    A rate limit refused the request, and a connection that never opened sent nothing; any
    other failure (an answer lost after sending, a 5xx, a malformed body) may hide a load that
    did start, so it is raised for the caller to re-observe the listing first.
    """
    if isinstance(exc, RateLimited):
        return read_backoff(exc)
    return isinstance(exc, ApiUnreachable) and not exc.answer_lost and read_backoff(exc) is True


def _within(
    deadline_at: float,
    hook: BackoffHook,
    longest_backoff: Callable[[], float],
    unreachable_at: float = float("inf"),
    attempts: int = ClientSettings.retry_attempts,
    rate_limited_attempts: int = ClientSettings.rate_limited_attempts,
    now: Callable[[], float] = SYSTEM_CLOCK.now,
) -> BackoffHook:
    """``hook``, except that a retry whose wait would end after ``deadline_at`` raises instead.

    A transport error (:class:`ApiUnreachable`) has the earlier bound ``unreachable_at``: an
    API that cannot be reached is given up on sooner than one that answers "not now".

    ``attempts`` bounds the failures; rate limits have their own, larger budget
    ``rate_limited_attempts``: the API answered "not now", and a legacy spam window is probed
    several times (see ``responses.SPAM_PROBE_SHARE``).

    A float verdict is the wait itself; ``True`` (stamina's exponential backoff) is judged by
    ``longest_backoff()``, the longest wait :func:`_backoff` may pick next. The deadline is
    enforced here rather than with stamina's ``timeout``, which only stops once a wait has
    already overrun it, and which stamina's test mode ignores. ``now`` is the run's clock.
    """

    failures = refusals = 0

    def bounded(exc: Exception) -> bool | float:
        nonlocal failures, refusals
        verdict = hook(exc)
        if verdict is False:
            return False
        if isinstance(exc, RateLimited):
            refusals += 1
        else:
            failures += 1
        if failures >= attempts or refusals > rate_limited_attempts:
            return False
        wait = longest_backoff() if verdict is True else verdict
        until = min(deadline_at, unreachable_at) if isinstance(exc, ApiUnreachable) else deadline_at
        return verdict if now() + wait <= until else False

    return bounded


def _longest_backoff(settings: ClientSettings, attempt: int) -> float:
    """The longest wait :func:`_backoff` picks after failed attempt number ``attempt``."""
    exponential = settings.retry_wait_initial * 2.0 ** min(attempt - 1, 64)
    return min(settings.retry_wait_max, exponential + settings.retry_wait_initial)


def _backoff(settings: ClientSettings, attempt: int) -> float:
    """The exponential backoff after failed attempt number ``attempt``, with its jitter.

    stamina's own formula (``wait_initial * 2 ** (attempt - 1)`` plus up to ``wait_initial``
    of jitter, capped at ``wait_max``), computed here because the client sleeps its waits
    itself, on the run's clock (see :meth:`AccountClient._retrying`).
    """
    exponential = settings.retry_wait_initial * 2.0 ** min(attempt - 1, 64)
    jitter = random.uniform(0, settings.retry_wait_initial)
    return min(settings.retry_wait_max, exponential + jitter)


# ---------------------------------------------------------------------------------------------
# The spam-window guard
# ---------------------------------------------------------------------------------------------


class _PastDeadline(Exception):
    """The spam window would hold a request past its call's deadline; it was not sent.

    Private and not an :class:`ApiError`, so that no retry policy retries it:
    :meth:`AccountClient._retrying` turns it into the call's last error.
    """

    def __init__(self, where: Where, wait: float) -> None:
        self.where = where
        self.wait = wait
        super().__init__(f"{where.account} {where.endpoint}: next turn in {wait:.1f}s")


@dataclass(frozen=True)
class _Booking:
    """A turn booked in the spam window, kept so that it can be undone if nothing was sent."""

    digest: str
    booked_until: float  # the digest's next turn that this booking set
    previous: float | None  # the digest's next turn before it


class _SpamGuard:
    """Spaces identical requests at least ``window`` seconds apart (api-spec §7.7a).

    Only a digest of each (url, body) is kept, never the body, which holds the key.
    """

    _PRUNE_AT = 4096

    def __init__(self, window: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self._window = window
        self._clock = clock
        self._next_turn: dict[str, float] = {}

    async def wait_turn(
        self, where: Where, url: str, payload: Mapping[str, Any], not_after: float
    ) -> _Booking | None:
        """Wait until ``payload`` may be sent to ``url`` again, and book that turn.

        If that turn comes after ``not_after`` (an instant of the run's clock), raise
        :class:`_PastDeadline` at once, booking nothing: sleeping until then would only start a
        request its caller no longer waits for.
        """
        if self._window <= 0:
            return None
        digest = _digest(url, payload)
        now = self._clock.now()
        self._prune(now)
        previous = self._next_turn.get(digest)
        turn = now if previous is None else max(now, previous)
        if turn > now and turn > not_after:
            raise _PastDeadline(where, turn - now)
        booking = _Booking(digest, turn + self._window, previous)
        self._next_turn[digest] = booking.booked_until  # booked before sleeping: no race
        if turn > now:
            try:
                await self._clock.sleep(turn - now)
            except BaseException:  # cancelled while waiting: nothing was sent
                self.release(booking)
                raise
        return booking

    def release(self, booking: _Booking | None) -> None:
        """Undo ``booking``, whose request never left this machine.

        The server saw nothing, so its spam filter has nothing to hold against the next
        identical request: without this, every retry of a refused connection waited out the
        whole window. Only the latest booking of a digest can be undone; one that later
        bookings queue behind stays (they keep their turns: a wait too long, never too short).
        """
        if booking is None or self._next_turn.get(booking.digest) != booking.booked_until:
            return
        if booking.previous is None:
            del self._next_turn[booking.digest]
        else:
            self._next_turn[booking.digest] = booking.previous

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
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        #: The run's clock: retry deadlines, backoffs and spam-window waits read it.
        self.clock = clock
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._pools: dict[str, httpx.AsyncClient] = {}
        self._limiter = anyio.Semaphore(settings.max_concurrency)
        self._account_limiters: dict[str, anyio.Semaphore] = {}
        self._spam = _SpamGuard(settings.spam_window, clock)
        self._requests_sent = 0

    @property
    def requests_sent(self) -> int:
        """HTTP requests attempted so far (for tests and benchmarks)."""
        return self._requests_sent

    async def __aenter__(self) -> ApiClient:
        self._http = self._new_http()
        return self

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(
                self.settings.request_timeout,
                connect=min(self.settings.request_timeout, self.settings.unreachable_deadline),
            ),
            limits=httpx.Limits(max_connections=self.settings.max_concurrency),
            headers={
                "Accept": "application/json",
                "Accept-Encoding": ACCEPT_ENCODING,  # only what BodyReader decodes, bounded
                "User-Agent": "reconciler",
            },
            follow_redirects=False,
            verify=_ssl_context(),
        )

    def _http_for(self, account: str) -> httpx.AsyncClient:
        """The account's own connection pool; the shared one when a transport was injected.

        httpcore hands a request a connection by scanning every connection of its pool, for
        every queued request: with one pool for a run of 100 accounts (hundreds of
        connections) that scan was most of apply's CPU. A pool per account stays as small as
        the account's queue limit. The pools share everything else (settings, TLS context).
        """
        if self._http is None:
            raise RuntimeError("ApiClient must be used as `async with ApiClient(...)`")
        if self._transport is not None:
            return self._http
        pool = self._pools.get(account)
        if pool is None:
            pool = self._pools[account] = self._new_http()
        return pool

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pools, self._pools = [*self._pools.values()], {}
        if self._http is not None:
            pools.append(self._http)
            self._http = None
        for pool in pools:
            await pool.aclose()

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
        limiter = self._account_limiters.setdefault(name, anyio.Semaphore(queue_limit))
        return AccountClient(self, name, api, key, base, queue_limit, limiter)

    async def _send(
        self,
        where: Where,
        url: str,
        payload: Mapping[str, Any],
        limiter: anyio.Semaphore,
        not_after: float,
    ) -> Any:
        """Send one request once: after its spam-window turn, within both limits.

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
                return await self._exchange(where, url, payload, not_after)
        except ApiUnreachable as exc:
            if not exc.answer_lost:
                self._spam.release(booking)
            raise
        except (RateLimited, _PastDeadline):
            self._spam.release(booking)
            raise
        except BaseException:
            if not exchanging:
                self._spam.release(booking)
            raise

    async def _exchange(
        self, where: Where, url: str, payload: Mapping[str, Any], not_after: float
    ) -> Any:
        """One request and its whole answer, within ``request_timeout`` and ``not_after``."""
        http = self._http_for(where.account)
        started = self.clock.now()
        timeout = min(self.settings.request_timeout, max(not_after - started, OVERTIME))
        self._requests_sent += 1
        try:
            # A total cap, body included: httpx times each phase (and each read) alone, so a
            # trickling body would otherwise never time out. On the run's clock: a fake one
            # times a hung answer out in virtual time.
            with self.clock.fail_after(timeout):
                async with http.stream("POST", url, json=payload) as response:
                    body = await _read_body(response, where, self.settings.max_body_bytes)
        except (httpx.RequestError, TimeoutError) as exc:
            _log(where, type(exc).__name__, self.clock.now() - started)
            raise transport_error(exc, where, timeout) from exc
        except Exception as exc:  # an unusable URL escapes httpx's own error tree
            cause = unusable_url_cause(exc)
            if cause is None:
                raise
            _log(where, type(cause).__name__, self.clock.now() - started)
            raise unusable_url_error(cause, where) from exc
        _log(where, f"HTTP {response.status_code}", self.clock.now() - started)
        return check(response, body, where, self.settings.spam_window)


async def _read_body(response: httpx.Response, where: Where, limit: int) -> bytes:
    """The decoded body of a streamed answer, at most ``limit`` bytes (see :class:`BodyReader`)."""
    if response.is_stream_consumed:  # made in memory (a MockTransport): httpx decoded it
        return BodyReader.decoded(response.content, where, limit)
    reader = BodyReader(response, where, limit)
    async for chunk in response.aiter_raw():
        reader.feed(chunk)
    return reader.finish()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every pool: building one loads the CA bundle (milliseconds)."""
    return httpx.create_ssl_context()


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
        """
        if wire.ENTERPRISE_GET_ALL_MODELS in self.api.caps.list_endpoints:
            listing = await self._read(
                wire.ENTERPRISE_GET_ALL_MODELS, wire.GetAllModelsResponse, deadline=deadline
            )
            return enterprise_live_state(self.name, listing)
        owned, listed = await _both(
            lambda: self._owned_ids(deadline), lambda: self._listed_models(deadline)
        )
        return community_live_state(self.name, owned, listed)

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

    async def _listed_models(self, deadline: float | None) -> list[wire.PublicModel]:
        return (await self._read(wire.MODEL_LIST, wire.ModelListResponse, deadline=deadline)).root

    # -- mutations --------------------------------------------------------------------------

    async def load(self, model_id: str, spec: Mapping[str, str]) -> None:
        """Start loading ``model_id`` with the load fields of ``spec`` (all strings)."""
        model, endpoint = self.api.caps.load_request, self.api.caps.load_endpoint
        fields = {**spec, "model_id": model_id, "key": self._key.reveal()}
        payload = request_body(model, fields, self._where(endpoint))
        await self._mutate(endpoint, payload)

    async def reload(self, model_id: str) -> str:
        """Reload an evicted community model; the API's message says whether it started."""
        endpoint = self.api.caps.reload_endpoint
        if endpoint is None:
            raise self._unsupported(
                wire.MODEL_RELOAD, f"there is no reload on {self.api}: reload is a load_model"
            )
        answer = await self._mutate(endpoint, self._body(model_id=model_id))
        return answer.message

    async def delete(self, model_id: str) -> None:
        """Delete ``model_id`` from an enterprise server."""
        endpoint = self.api.caps.delete_endpoint
        if endpoint is None:
            raise self._unsupported(
                wire.ENTERPRISE_DELETE_MODEL,
                f"deleting a model is not possible through the {self.api} API",
            )
        await self._mutate(endpoint, self._body(model_id=model_id))

    # -- plumbing ---------------------------------------------------------------------------

    def _where(self, endpoint: str) -> Where:
        return Where(self.name, endpoint, self._key)

    def _unsupported(self, endpoint: str, message: str) -> ApiError:
        return ApiError(message, account=self.name, endpoint=endpoint)

    def _body(self, **fields: str) -> dict[str, str]:
        return {"key": self._key.reveal(), **fields}

    async def _read(
        self, endpoint: str, model: type[M], *, deadline: float | None = None, **fields: str
    ) -> M:
        payload = self._body(**fields)
        return await self._retrying(
            read_backoff,
            lambda not_after: self._call(endpoint, payload, model, not_after),
            self._where(endpoint),
            deadline,
        )

    async def _mutate(self, endpoint: str, payload: Mapping[str, Any]) -> wire.StatusMessage:
        return await self._retrying(
            mutation_backoff,
            lambda not_after: self._call(endpoint, payload, wire.StatusMessage, not_after),
            self._where(endpoint),
        )

    async def _call(
        self, endpoint: str, payload: Mapping[str, Any], model: type[M], not_after: float
    ) -> M:
        where = self._where(endpoint)
        url = self._base_url + endpoint
        data = await self._owner._send(where, url, payload, self._limiter, not_after)
        return parse(model, data, where)

    async def _retrying(
        self,
        hook: BackoffHook,
        call: Callable[[float], Awaitable[A]],
        where: Where,
        deadline: float | None = None,
    ) -> A:
        """``call(deadline_at)`` retried as ``hook`` says, until ``deadline_at`` at the latest.

        ``deadline_at`` is the earlier of ``ClientSettings.deadline`` from now and the caller's
        ``deadline``; no retry starts after it, and a spam-window wait that would end after it
        raises the last error (or, if there is none yet, a "deadline passed" error) at once.

        stamina decides and counts the retries (and its test mode still zeroes the waits), but
        the waits are slept here on the run's clock: the hook tells stamina to wait nothing and
        keeps the wait it chose for the top of the next attempt.
        """
        settings = self._owner.settings
        clock = self._owner.clock
        started = clock.now()
        deadline_at = started + settings.deadline
        if deadline is not None:
            deadline_at = min(deadline_at, deadline)
        attempt_no = 0
        next_wait = 0.0
        last: ApiError | None = None
        bounded = _within(
            deadline_at,
            hook,
            lambda: _longest_backoff(settings, attempt_no),
            started + settings.unreachable_deadline,
            settings.retry_attempts,
            settings.rate_limited_attempts,
            clock.now,
        )

        def on(exc: Exception) -> bool | float:
            nonlocal next_wait
            verdict = bounded(exc)
            if verdict is False:
                return False
            wait = _backoff(settings, attempt_no) if verdict is True else float(verdict)
            next_wait = 0.0 if stamina.is_testing() else wait
            return 0.0  # stamina waits nothing; the wait is slept below, on the clock

        try:
            async for attempt in stamina.retry_context(
                on=on,
                attempts=None,  # counted by `on`, which does not count rate limits
                timeout=None,  # the deadline is `on`'s, see _within
            ):
                if next_wait > 0:
                    wait, next_wait = next_wait, 0.0
                    await clock.sleep(wait)
                with attempt:
                    attempt_no = attempt.num
                    try:
                        return await call(deadline_at)
                    except ApiError as exc:
                        last = exc
                        raise
        except _PastDeadline as exc:
            held = exc.wait
        except ApiUnreachable as exc:
            raise _gave_up(exc, attempt_no, clock.now() - started) from exc.__cause__
        else:
            raise AssertionError("unreachable: stamina re-raises the last error")
        if isinstance(last, ApiUnreachable):
            raise _gave_up(last, attempt_no, clock.now() - started) from last.__cause__
        if last is not None:
            raise last
        raise ApiUnreachable(
            f"deadline passed: the spam window holds this request {held:.1f}s more",
            answer_lost=False,
            account=where.account,
            endpoint=where.endpoint,
        )


def _gave_up(exc: ApiUnreachable, attempts: int, elapsed: float) -> ApiUnreachable:
    """``exc`` with how long the call tried, so that the user sees why it gave up when it did."""
    tries = "1 attempt" if attempts <= 1 else f"{attempts} attempts"
    return ApiUnreachable(
        f"{exc.message} (gave up after {tries} in {elapsed:.1f}s)",
        answer_lost=exc.answer_lost,
        account=exc.account,
        endpoint=exc.endpoint,
    )


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
