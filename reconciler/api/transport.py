"""The client's way onto the network: one POST out, one bounded, decoded answer in.

A *wire* (:class:`Wire`) sends one request and returns its answer as a
:class:`~reconciler.api.responses.Reply`: the status, the headers, the body decoded by
:class:`~reconciler.api.responses.BodyReader` (bounded), and when the request was written and
its answer came. Two wires:

- :class:`AiohttpWire`, the client's own: aiohttp straight, with no httpx on the way. httpcore's
  pool and h11 parser cost about 0.65 ms of CPU per request, httpx over aiohttp 0.3, aiohttp
  alone about 0.1: over a 1,000-load apply that is most of the client's CPU, and the CPU is
  what spaces the loads of one wave (issue 11).
- :class:`HttpxWire`, for an injected ``httpx`` transport: the emulator in-process (ASGI) or
  an ``httpx.MockTransport`` in tests.

Both fail with the httpx errors the client already understands (:mod:`.responses` maps them),
and keep the line between "never sent" and "the answer was lost": only a failure to connect
(refused, timed out, a hung name lookup, TLS, proxy) is "never sent"; anything after the
connection is up may have reached the server, so the engine re-observes before resending.

What :class:`AiohttpWire` keeps of httpx's behaviour: the connect timeout, no redirects, no
decompression (``BodyReader`` decodes, bounded), httpx's TLS context (its CA bundle,
``SSL_CERT_FILE``; made on the first https request only: loading a CA bundle costs tens of
milliseconds a plan against loopback need not pay), and proxies from the environment
(``HTTPS_PROXY``, ``NO_PROXY``…), read here rather than by aiohttp's ``trust_env``, which
would also send ``~/.netrc`` credentials to the API host.

The instant a request was written is taken when aiohttp has its connection and writes it
(:class:`_TimedRequest`): one taken before the wait for a connection made a load time a tenth
of a second too long under a wave of hundreds of requests. (aiohttp's trace hooks gave the same
instant at about 20 µs of CPU per request, a seventh of aiohttp's own.) The answer's instant
is taken before the body is read and parsed (it still waits for its turn on a busy loop).
"""

from __future__ import annotations

import functools
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx
import yarl

from reconciler.api.responses import ACCEPT_ENCODING, BodyReader, Reply, Where
from reconciler.api.secret import redact_url_credentials

#: The headers of every request, on both wires.
HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": ACCEPT_ENCODING,  # only what BodyReader decodes, bounded
    "User-Agent": "reconciler",
    "Content-Type": "application/json",
}

Now = Callable[[], float]


class Wire(Protocol):
    """Sends one POST and returns its whole answer; see the module."""

    async def post(self, url: str, content: bytes, where: Where, limit: int) -> Reply:
        """``content`` (JSON) to ``url``; the body is decoded to at most ``limit`` bytes."""
        ...

    async def aclose(self) -> None:
        """Close the connections."""
        ...


@dataclass(frozen=True, slots=True)
class _Target:
    """A URL checked once: aiohttp's form of it, and the proxy and TLS it is reached with."""

    url: yarl.URL
    proxy: str | None
    tls: ssl.SSLContext | bool


class _TimedResponse(aiohttp.ClientResponse):
    """An answer that knows when its request was written (see :class:`_TimedRequest`)."""

    #: The instant (on the wire's clock) the request had its connection and was written.
    sent_at: float | None = None


def _timed_request(now: Now) -> type[aiohttp.ClientRequest]:
    """aiohttp's request, stamping its answer with ``now()`` when it is written."""

    class _TimedRequest(aiohttp.ClientRequest):
        async def send(self, conn: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
            sent = now()  # the connection is ready: the request goes out now
            response = await super().send(conn)
            if isinstance(response, _TimedResponse):
                response.sent_at = sent
            return response

    return _TimedRequest


class AiohttpWire:
    """One aiohttp session for every request of a client; made on first use (it needs a loop)."""

    def __init__(
        self, max_connections: int, connect_timeout: float | None, clock: Now = time.monotonic
    ) -> None:
        self._max_connections = max_connections
        # ``connect`` covers the name lookup, TCP and TLS (as httpx's connect timeout does):
        # a hung resolver is "could not reach", never "the answer was lost". The total is
        # the client's (its clock's ``fail_after``).
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout)
        self._now = clock
        self._session: aiohttp.ClientSession | None = None
        self._targets: dict[str, _Target] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=HEADERS,
                request_class=_timed_request(self._now),
                response_class=_TimedResponse,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def post(self, url: str, content: bytes, where: Where, limit: int) -> Reply:
        target = self._targets.get(url) or self._target(url)
        session = self._open()
        started = self._now()
        with _as_httpx_errors():
            answer = await session.request(
                "POST",
                target.url,
                data=content,
                allow_redirects=False,
                proxy=target.proxy,
                ssl=target.tls,
                timeout=self._timeout,
            )
            answered = self._now()
            assert isinstance(answer, _TimedResponse)  # the session's response class
            try:
                body = await BodyReader.read(
                    answer.headers, answer.content.iter_any(), where, limit
                )
            finally:
                # A body read to its end gives the connection back to the pool; any other
                # (over the limit, cut short, cancelled) is closed.
                answer.release()
        return Reply(
            status_code=answer.status,
            reason_phrase=httpx.codes.get_reason_phrase(answer.status),
            headers=answer.headers,
            body=body,
            sent_at=started if answer.sent_at is None else answer.sent_at,
            answered_at=answered,
        )

    def _target(self, url: str) -> _Target:
        """``url`` checked as httpx would (scheme, port), with its proxy: once per URL."""
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"unsupported protocol {parsed.scheme!r}: http or https only"
            )
        if parsed.port is not None and not 0 < parsed.port < 1 << 16:
            raise httpx.InvalidURL(f"the port {parsed.port} is out of range")
        try:
            aiohttp_url = yarl.URL(str(parsed), encoded=True)
        except ValueError as exc:
            raise httpx.InvalidURL(str(exc) or "the URL is not valid") from exc
        proxy = _proxy_for(parsed.scheme, parsed.host)
        try:
            # Our context wherever TLS is spoken, to the API or to an https proxy: aiohttp's
            # defaults trust no certificate (reconciler.startup skips their CA bundle).
            needs_tls = parsed.scheme == "https" or (proxy or "").lower().startswith("https:")
            tls = _tls_context() if needs_tls else True
        except (OSError, ssl.SSLError) as exc:  # a CA bundle that cannot be read: nothing sent
            raise httpx.ConnectError(f"cannot set up TLS: {exc}") from exc
        target = _Target(url=aiohttp_url, proxy=proxy, tls=tls)
        self._targets[url] = target
        return target

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class HttpxWire:
    """Requests through an ``httpx`` transport: the emulator in-process, a MockTransport."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        request_timeout: float,
        connect_timeout: float,
        clock: Now = time.monotonic,
    ) -> None:
        self._now = clock
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            headers=HEADERS,
            follow_redirects=False,
            trust_env=False,
        )

    async def post(self, url: str, content: bytes, where: Where, limit: int) -> Reply:
        started = self._now()
        async with self._http.stream("POST", url, content=content) as response:
            answered = self._now()
            if response.is_stream_consumed:  # made in memory (a MockTransport): decoded
                body = BodyReader.decoded(response.content, where, limit)
            else:
                body = await BodyReader.read(response.headers, response.aiter_raw(), where, limit)
        return Reply(
            status_code=response.status_code,
            reason_phrase=response.reason_phrase,
            headers=response.headers,
            body=body,
            sent_at=started,
            answered_at=answered,
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for ``scheme://host`` (None: ``NO_PROXY``, or none)."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    if proxy.split("://", 1)[0].lower() not in ("http", "https"):
        raise httpx.ProxyError(
            f"the proxy for {scheme}:// from the environment is not an http(s) proxy "
            "(SOCKS is not supported); set HTTPS_PROXY/HTTP_PROXY, or NO_PROXY"
        )
    try:  # else aiohttp's error would blame the API URL
        parsed = yarl.URL(proxy)
        valid = bool(parsed.host) and parsed.port is not None and 0 < parsed.port < 1 << 16
    except ValueError:
        valid = False
    if not valid:
        raise httpx.ProxyError(
            f"the proxy for {scheme}:// from the environment is not a valid URL "
            f"({redact_url_credentials(proxy)}); fix HTTPS_PROXY/HTTP_PROXY, or set NO_PROXY"
        )
    return proxy


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """aiohttp's errors as httpx's, on the right side of "never sent" (see the module)."""
    try:
        yield
    except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as exc:
        # the proxy could not be reached, or refused to open the tunnel: the API saw nothing
        raise httpx.ProxyError(str(exc) or "the proxy could not be reached") from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc) or "the connection failed") from exc
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "the connection timed out") from exc
    except aiohttp.NonHttpUrlClientError as exc:
        raise httpx.UnsupportedProtocol(str(exc)) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.InvalidURL(str(exc) or "the URL is not valid") from exc
    except aiohttp.SocketTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "the answer stopped coming") from exc
    except aiohttp.ClientPayloadError as exc:
        raise httpx.ReadError(str(exc) or "the body was cut short") from exc
    except aiohttp.ClientResponseError as exc:  # not HTTP, or headers over aiohttp's limits
        raise httpx.RemoteProtocolError(exc.message or "the answer is not valid HTTP") from exc
    except (aiohttp.ClientError, OSError) as exc:  # dropped, reset: after the connection was up
        raise httpx.ReadError(str(exc) or type(exc).__name__) from exc


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's TLS context (certifi's CA bundle, ``SSL_CERT_FILE``), made once when first needed."""
    return httpx.create_ssl_context()
