"""The client's way onto the network: an ``httpx`` transport that sends with ``aiohttp``.

The client speaks ``httpx`` (requests, responses, the error tree, injected transports in tests);
this transport only carries each request over the wire. httpcore's pool and h11 parser cost
about 0.65 ms of CPU per request, aiohttp (a C parser, a pool without a scan of every
connection) about 0.1: over a 1,000-load apply that is most of the client's CPU, and the
CPU is what spaces the loads of one wave (issue 11).

What is kept of httpx's behaviour: the connect timeout (``Timeout.connect``), no redirects,
no decompression (the client's ``BodyReader`` decodes, bounded), httpx's TLS context (its CA
bundle, ``SSL_CERT_FILE``; made on the first https request only: loading a CA bundle costs
tens of milliseconds a plan against loopback need not pay), and proxies from the environment
(``HTTPS_PROXY``, ``NO_PROXY``…), read here rather than by aiohttp's ``trust_env``, which
would also send ``~/.netrc`` credentials to the API host.

Each response says when its request was written to the socket and when its answer's headers
were in (:data:`SENT_AT`, :data:`ANSWERED_AT` in its extensions, on the clock given): apply
learns load times from them. An instant taken before the wait for a connection made a load
time a tenth of a second too long under a wave of hundreds of requests; the answer's instant
is taken before the body is read and parsed (it still waits for its turn on a busy loop).

Every aiohttp error leaves as the httpx error the client already understands, and the line
between "never sent" and "the answer was lost" is kept: only a failure to connect (refused,
timed out, TLS, proxy) is "never sent"; anything after the connection is up may have reached
the server, so the engine re-observes before resending.
"""

from __future__ import annotations

import functools
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import aiohttp
import httpx

#: Keys of a response's extensions: instants (on the transport's clock) the request was
#: written to the socket, and the answer's headers came.
SENT_AT, ANSWERED_AT = "reconciler.sent_at", "reconciler.answered_at"


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session for every request of a client; made on first use (it needs a loop)."""

    def __init__(self, max_connections: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_connections = max_connections
        self._now = clock
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            tracing = aiohttp.TraceConfig()
            tracing.on_request_headers_sent.append(self._note_sent)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[tracing],
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"unsupported protocol {url.scheme!r}: http or https only"
            )
        if url.port is not None and not 0 < url.port < 1 << 16:
            raise httpx.InvalidURL(f"the port {url.port} is out of range")
        timeouts = request.extensions.get("timeout", {})
        session = self._open()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        stamps: dict[str, float] = {}
        with _as_httpx_errors():
            answer = await session.request(
                request.method,
                str(url),
                headers=headers,
                data=request.content or None,
                allow_redirects=False,
                proxy=self._proxy_for(url.scheme, url.host),
                ssl=_tls_context() if url.scheme == "https" else True,
                trace_request_ctx=stamps,
                # ``connect`` covers the name lookup, TCP and TLS (as httpx's connect timeout
                # does): a hung resolver is "could not reach", never "the answer was lost".
                timeout=aiohttp.ClientTimeout(total=None, connect=timeouts.get("connect")),
            )
        return httpx.Response(
            status_code=answer.status,
            headers=answer.raw_headers,
            stream=_Body(answer),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                SENT_AT: stamps.get(SENT_AT),
                ANSWERED_AT: self._now(),
            },
        )

    async def _note_sent(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestHeadersSentParams,
    ) -> None:
        context.trace_request_ctx[SENT_AT] = self._now()

    def _proxy_for(self, scheme: str, host: str) -> str | None:
        """The proxy the environment names for ``scheme://host`` (None: ``NO_PROXY``, or none)."""
        where = (scheme, host)
        if where not in self._proxies:
            proxies = urllib.request.getproxies_environment()
            proxy = proxies.get(scheme) or proxies.get("all")
            if not proxy or urllib.request.proxy_bypass(host):
                proxy = None
            elif "://" not in proxy:
                proxy = f"http://{proxy}"
            elif proxy.split("://", 1)[0].lower() not in ("http", "https"):
                raise httpx.ProxyError(
                    f"the proxy for {scheme}:// from the environment is not an http(s) proxy "
                    "(SOCKS is not supported); set HTTPS_PROXY/HTTP_PROXY, or NO_PROXY"
                )
            self._proxies[where] = proxy
        return self._proxies[where]

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class _Body(httpx.AsyncByteStream):
    """A response body as it arrives, still encoded; closing it frees (or drops) the connection."""

    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._answer.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A body read to its end gives the connection back to the pool; any other is closed.
        self._answer.release()


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
