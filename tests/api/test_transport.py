"""The aiohttp wire over real sockets: what it sends, and which side of "sent" it fails on.

Each test serves one scripted answer from a raw TCP server on loopback, then checks what the
client made of it. The line that matters: a failure to connect is "never sent" (retried
freely), and any failure once the connection is up is "the answer was lost" (the engine
looks at the listing before it sends a load again).
"""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import aiohttp.abc
import aiohttp.connector
import anyio
import httpx
import pytest

from reconciler.api import transport
from reconciler.api.client import ApiClient, ClientSettings
from reconciler.api.responses import Reply, Where
from reconciler.api.secret import ApiKey
from reconciler.api.transport import AiohttpWire
from reconciler.errors import ApiUnreachable

from .test_client_unreachable import closed_port

pytestmark = pytest.mark.anyio

SETTINGS = ClientSettings(spam_window=0.0, retry_attempts=1, request_timeout=5.0, deadline=5.0)
OK = b'{"status": "success", "models": [{"model_id": "m1"}]}'

Script = Callable[[anyio.abc.SocketStream], Awaitable[None]]


async def _read_request(stream: anyio.abc.SocketStream) -> bytes:
    """Read one request (headers and a Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        body += await stream.receive()
    return data


@asynccontextmanager
async def serving(script: Script, seen: list[bytes] | None = None) -> AsyncIterator[str]:
    """A loopback server running ``script`` on each connection; yields its API base URL."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            request = await _read_request(stream)
            if seen is not None:
                seen.append(request)
            await script(stream)

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        try:
            yield f"http://127.0.0.1:{port}/api/"
        finally:
            group.cancel_scope.cancel()


def answer(body: bytes, *headers: str, status: str = "200 OK") -> Script:
    async def send(stream: anyio.abc.SocketStream) -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
        await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return send


async def read_once(base: str) -> list[str]:
    async with ApiClient(SETTINGS) as api:
        account = api.account("acct", "enterprise", ApiKey("sk-transport-test"), base)
        return sorted((await account.read_live()).models)


async def test_an_answer_comes_through_with_the_clients_own_headers() -> None:
    seen: list[bytes] = []
    async with serving(answer(OK, "Content-Type: application/json"), seen) as base:
        assert await read_once(base) == ["m1"]
    head = seen[0].split(b"\r\n\r\n")[0].decode().lower()
    assert "user-agent: reconciler" in head and "aiohttp" not in head
    assert "accept-encoding: gzip, deflate" in head
    assert json.loads(seen[0].split(b"\r\n\r\n", 1)[1]) == {"key": "sk-transport-test"}


async def test_a_compressed_answer_reaches_the_client_compressed_and_is_decoded_there() -> None:
    async with serving(answer(gzip.compress(OK), "Content-Encoding: gzip")) as base:
        assert await read_once(base) == ["m1"]


async def test_a_refused_connection_was_never_sent() -> None:
    with pytest.raises(ApiUnreachable) as caught:
        await read_once(f"http://127.0.0.1:{closed_port()}/api/")
    assert not caught.value.answer_lost


async def _close(stream: anyio.abc.SocketStream) -> None:
    await stream.aclose()


async def _garbage(stream: anyio.abc.SocketStream) -> None:
    await stream.send(b"this is not HTTP at all\r\n\r\n")


async def _cut_short(stream: anyio.abc.SocketStream) -> None:
    await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + OK[:10])


@pytest.mark.parametrize(
    "script", [_close, _garbage, _cut_short], ids=["closed", "not-http", "cut-short"]
)
async def test_a_failure_after_the_request_went_out_is_a_lost_answer(script: Script) -> None:
    async with serving(script) as base:
        with pytest.raises(ApiUnreachable) as caught:
            await read_once(base)
    assert caught.value.answer_lost, caught.value


async def test_a_proxy_from_the_environment_is_used_unless_no_proxy_exempts_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bytes] = []
    async with serving(answer(OK), seen) as proxy:
        origin = "http://api.invalid/api/"
        monkeypatch.setenv("HTTP_PROXY", proxy.removesuffix("/api/"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert await read_once(origin) == ["m1"]
        assert seen[-1].startswith(b"POST http://api.invalid/api/v1/enterprise/get_all_models ")
        monkeypatch.setenv("NO_PROXY", "api.invalid")
        with pytest.raises(ApiUnreachable):  # straight to the host, which does not exist
            await read_once(origin)
    assert len(seen) == 1


async def test_the_wire_refuses_other_schemes_and_ports_out_of_range() -> None:
    sender = AiohttpWire(max_connections=4, connect_timeout=1.0)
    where = Where("acct", "v3/load_model", ApiKey("sk-transport-test"))
    try:
        for url, error in [
            ("ftp://127.0.0.1/x", httpx.UnsupportedProtocol),
            ("http://127.0.0.1:70000/x", httpx.InvalidURL),
        ]:
            with pytest.raises(error):
                await sender.post(url, b"{}", where, 1000)
    finally:
        await sender.aclose()


async def test_an_accepted_load_says_when_it_was_written_and_when_its_answer_came() -> None:
    """apply learns load times from these two instants (issue 11)."""
    started = b'{"status": "success", "message": "model load started"}'

    async def slow(stream: anyio.abc.SocketStream) -> None:
        await anyio.sleep(0.3)  # the server works on it before it answers
        await answer(started)(stream)

    async with serving(slow) as base, ApiClient(SETTINGS) as api:
        account = api.account("acct", "enterprise", ApiKey("sk-transport-test"), base)
        before = api.clock.now()
        accepted = await account.load("m1", {"url": "org/m1", "model_type": "huggingface"})
        after = api.clock.now()
    assert accepted.answered_at is not None
    assert before <= accepted.sent_at < before + 0.25  # written at once, not when answered
    assert accepted.sent_at + 0.3 <= accepted.answered_at <= after


async def test_a_request_that_waits_for_a_connection_says_it_was_written_when_it_got_one() -> None:
    """The instant a request was written is taken once it has its connection: under a wave of
    hundreds, the wait for one made a learnt load time a tenth of a second too long."""
    started = b'{"status": "success", "message": "model load started"}'

    async def slow(stream: anyio.abc.SocketStream) -> None:
        await anyio.sleep(0.3)
        await answer(started, "Connection: close")(stream)

    sender = AiohttpWire(max_connections=1, connect_timeout=5.0)
    where = Where("acct", "v1/enterprise/load_model", ApiKey("sk-transport-test"))
    replies: list[Reply] = []

    async def post(url: str) -> None:
        replies.append(await sender.post(url, b"{}", where, 1000))

    try:
        async with serving(slow) as base, anyio.create_task_group() as group:
            before = time.monotonic()
            for _ in range(2):  # one connection: the second waits for the first's answer
                group.start_soon(post, base + "v1/enterprise/load_model")
    finally:
        await sender.aclose()
    first, second = sorted(replies, key=lambda reply: reply.sent_at)
    assert before <= first.sent_at < before + 0.25
    assert first.answered_at is not None and second.sent_at >= first.answered_at - 0.01


class HangingResolver(aiohttp.abc.AbstractResolver):
    """A name lookup that never answers."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        await anyio.sleep(3600)
        return []

    async def close(self) -> None:
        pass


async def test_a_hung_name_lookup_could_not_reach_the_api_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", HangingResolver)
    settings = ClientSettings(
        spam_window=0.0, retry_attempts=1, request_timeout=5.0, deadline=0.5,
        unreachable_deadline=0.3,
    )  # fmt: skip
    started = anyio.current_time()
    with pytest.raises(ApiUnreachable) as caught:
        async with ApiClient(settings) as api:
            account = api.account("acct", "enterprise", ApiKey("sk-t"), "http://api.test/api/")
            await account.read_live()
    assert not caught.value.answer_lost, caught.value  # nothing left: free to retry
    assert anyio.current_time() - started < 2.0  # the connect timeout, not the request's


async def test_a_proxy_that_refuses_the_tunnel_was_never_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(answer(b"", status="407 Proxy Authentication Required")) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.removesuffix("/api/"))
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(ApiUnreachable) as caught:
            await read_once("https://api.test/api/")
    assert not caught.value.answer_lost, caught.value


async def test_a_socks_proxy_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://user:pw-secret@127.0.0.1:1080")
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ApiUnreachable) as caught:
        await read_once("http://api.test/api/")
    assert "not an http(s) proxy" in str(caught.value)
    assert "pw-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "proxy",
    ["http://proxy.test:99999", "http://[bad", "http://:8080", "http://u:pw-secret@proxy.test:x"],
    ids=["port-out-of-range", "unparsable", "no-host", "bad-port-with-password"],
)
async def test_a_malformed_proxy_url_is_named_as_the_proxy_not_the_api_url(
    monkeypatch: pytest.MonkeyPatch, proxy: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    for name in ("http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ApiUnreachable) as caught:
        await read_once("http://api.test/api/")
    message = str(caught.value)
    assert "proxy for http:// from the environment is not a valid URL" in message
    assert "API URL" not in message and "pw-secret" not in message
    assert not caught.value.answer_lost


async def test_a_tls_setup_that_fails_is_could_not_reach_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A CA bundle that cannot be read (``SSL_CERT_FILE``) fails the request, never sent."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    transport._tls_context.cache_clear()
    try:
        with pytest.raises(ApiUnreachable) as caught:
            await read_once("https://127.0.0.1:9/api/")
    finally:
        transport._tls_context.cache_clear()
    assert "cannot set up TLS" in str(caught.value)
    assert not caught.value.answer_lost


@pytest.mark.parametrize(
    ("api", "proxy", "own_context"),
    [
        ("https://api.test/api/", None, True),
        ("http://api.test/api/", "HTTPS://proxy.test:3128", True),
        ("http://api.test/api/", "http://proxy.test:3128", False),
        ("http://api.test/api/", None, False),
    ],
)
def test_tls_to_the_api_or_an_https_proxy_uses_the_wires_own_context(
    monkeypatch: pytest.MonkeyPatch, api: str, proxy: str | None, own_context: bool
) -> None:
    """aiohttp's default contexts trust nothing (reconciler.startup): never left to them."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    if proxy is not None:
        monkeypatch.setenv("HTTP_PROXY", proxy)
    target = AiohttpWire(4, 5.0)._target(api)
    assert (target.tls is transport._tls_context()) is own_context
    assert own_context or target.tls is True  # plain HTTP end to end: no TLS at all
