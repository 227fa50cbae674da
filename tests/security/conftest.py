"""Fixtures of the attack tests: a listener standing in for the attacker, and a CLI runner.

The attacker's host is a plain HTTP server on loopback that records everything it receives.
Loopback is an allowed base, so to play a *foreign* host the tests route every host name to
it (``socket.getaddrinfo`` patched in-process): ``http://attacker.example:PORT/api/`` then
really reaches the listener, as it would reach a real attacker; a test passes only if nothing
ever arrives. Canary keys are random per test and must appear in no output.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import run

from .security_support import Cli, Listener, Result

#: Variables of the operator and of proxies that would change where requests go.
_CLEARED = (
    "RECONCILER_API_BASE",
    "RECONCILER_ALLOWED_API_BASES",
    "RECONCILER_KEY_ENV_PATTERN",
    "RECONCILER_LEDGER",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture
def listener() -> Iterator[Listener]:
    """The attacker's server: answers every request, records its line, headers and body."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    record = Listener(server.server_address[1])
    server.record = record  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        record: Listener = self.server.record  # type: ignore[attr-defined]
        record.received.append(f"{self.requestline}\n{self.headers}\n{body}")
        answer = json.dumps({"status": "success", "data": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the record is the log."""


@pytest.fixture
def any_host_is_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve every host name to 127.0.0.1, so a foreign URL reaches the listener."""
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and not name.replace(".", "").isdigit() and ":" not in name:
            host = "127.0.0.1"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture
def canary() -> str:
    """A random key that must never reach a listener nor any output."""
    return f"sk_canary_{secrets.token_hex(12)}"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, with no operator setting or proxy in the environment."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def cli(workdir: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli("plan", "manifests")`` runs reconciler in-process (fast client settings)."""

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run(["--request-timeout", "2", "--spam-window", "0", *args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke
