"""TLS on the aiohttp wire, in a process started as the command line starts.

:mod:`reconciler.startup` imports aiohttp without loading the CA bundle into its two default
contexts (40 ms at every start). That is safe only because the wire never uses them: every
request that speaks TLS carries the wire's own context. Each test runs a fresh interpreter
(the test process has imported aiohttp already) against a loopback TLS server whose
self-signed certificate is trusted through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSListener

pytestmark = pytest.mark.anyio

OK = b'{"status": "success", "models": []}'

# Run by the child: the command line's start-up first, then one POST through the wire.
CHILD = textwrap.dedent(
    """
    import sys
    import reconciler.startup
    import aiohttp.connector
    import anyio
    from reconciler.api.responses import Where
    from reconciler.api.secret import ApiKey
    from reconciler.api.transport import AiohttpWire

    defaults = aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]
    print("aiohttp default CAs", defaults, flush=True)

    async def main() -> None:
        wire = AiohttpWire(4, 5.0)
        try:
            where = Where("acct", "v3/finetune_list", ApiKey("sk-tls-test"))
            reply = await wire.post(sys.argv[1], b"{}", where, 1 << 16)
            print("status", reply.status_code, reply.body, flush=True)
        finally:
            await wire.aclose()

    anyio.run(main)
    """
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, and its key (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@asynccontextmanager
async def serving_tls(cert: Path, key: Path, seen: list[bytes]) -> AsyncIterator[str]:
    """A loopback HTTPS server answering every request with ``OK``; yields its URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            seen.append(data)
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(OK)}\r\nConnection: close\r\n\r\n"
            await stream.send(head.encode() + OK)

    async def serve() -> None:
        # A client that refuses the certificate ends its handshake: that is not this server's
        # failure, so each connection is handled on its own and its errors dropped.
        async def guarded(stream: anyio.abc.ByteStream) -> None:
            with suppress(anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError, OSError):
                await handle(stream)

        await TLSListener(tcp, context, standard_compatible=False).serve(guarded)

    async with tcp, anyio.create_task_group() as group:
        group.start_soon(serve)
        try:
            yield f"https://127.0.0.1:{port}/api/v3/finetune_list"
        finally:
            group.cancel_scope.cancel()


async def _child(url: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process(
        [sys.executable, "-c", CHILD, url], env=env, check=False, stderr=subprocess.STDOUT
    )


async def test_https_works_with_aiohttp_defaults_left_without_a_ca(
    certificate: tuple[Path, Path],
) -> None:
    seen: list[bytes] = []
    async with serving_tls(*certificate, seen) as url:
        done = await _child(url, os.environ | {"SSL_CERT_FILE": str(certificate[0])})
    output = done.stdout.decode()
    assert done.returncode == 0, output
    assert "aiohttp default CAs 0" in output  # the start-up skipped the bundle...
    assert "status 200" in output and "success" in output  # ...and TLS still works
    assert seen and seen[0].startswith(b"POST /api/v3/finetune_list")


async def test_a_certificate_nobody_trusts_is_refused(certificate: tuple[Path, Path]) -> None:
    """Without ``SSL_CERT_FILE`` the self-signed certificate is not trusted: no request."""
    seen: list[bytes] = []
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    async with serving_tls(*certificate, seen) as url:
        done = await _child(url, env)
    output = done.stdout.decode()
    assert done.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in output or "certificate verify failed" in output
    assert not seen
