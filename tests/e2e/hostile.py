"""A hostile API server on loopback for the end-to-end tests of issue 14.

:func:`hostile_server` serves one misbehaviour for every POST: a body of 100,000 nested ``[``,
a gzip bomb (about 1 MB that inflates to 1 GiB), or no answer at all. It runs an
``http.server`` in a thread on a free port and stops when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Mode = Literal["nested", "bomb", "hang"]

#: How much the gzip bomb inflates to.
BOMB_INFLATED = 1 << 30


@functools.cache
def gzip_bomb() -> bytes:
    """:data:`BOMB_INFLATED` zero bytes, gzip-compressed (about 1 MB); made once per session."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(BOMB_INFLATED >> 20)]
    return b"".join([*parts, packer.flush()])


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.server.mode == "hang":
            self.server.stopping.wait()
            return
        if self.server.mode == "nested":
            body, extra = b"[" * 100_000, {}
        else:
            body, extra = gzip_bomb(), {"Content-Encoding": "gzip"}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stops reading at its limit
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read the client's output, not the server's."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: Mode) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.stopping = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up is expected here."""


@contextmanager
def hostile_server(mode: Mode) -> Iterator[str]:
    """Serve ``mode`` on a free loopback port; yields the API base URL (ending in ``/api/``)."""
    if mode == "bomb":
        gzip_bomb()  # made before serving (seconds), so no client waits for it
    server = _Server(mode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/"
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
