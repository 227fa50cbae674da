"""Serving the emulator over real HTTP: in the foreground, or in a background thread.

:func:`serve` is what ``reconciler emulator`` runs: it prints the API's base URL once the
socket listens (so a script can wait for that line) and stops cleanly on Ctrl-C or SIGTERM.
:func:`running_emulator` runs the same app in a thread on a free port for the demo and the
end-to-end tests, which need a real socket (the CLI as a subprocess, webhooks, timeouts).

The socket is bound here rather than by uvicorn so that port 0 works and the chosen port is
known before anyone connects. A hung request is cancelled after a short grace period, so
shutting down never waits for the hang faults. Connections are accepted with TCP_NODELAY.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from reconciler.emulator.app import create_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.state import EmulatorState
from reconciler.errors import ConfigError

#: Real seconds in-flight requests get to finish when the server stops.
GRACEFUL_SHUTDOWN_SECONDS = 1
_STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator: where to reach it, and its app for in-process access."""

    base_url: str
    control_url: str
    app: Starlette
    host: str
    port: int

    @property
    def state(self) -> EmulatorState:
        """The emulator's state (``app.state.emulator``), e.g. to seed models."""
        state: EmulatorState = self.app.state.emulator
        return state


class _Stopped(Exception):
    """SIGINT or SIGTERM arrived: leave :func:`serve` normally."""


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve an emulator until SIGINT or SIGTERM; prints its base URL once listening."""
    sock = _listen(host, port)
    server = _server(create_app(config), foreground=True)
    url = _urls(host, sock.getsockname()[1])[0]
    print(f"Emulator listening on {url}", flush=True)
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in _SIGNALS}
    try:
        # uvicorn shuts down gracefully on the signal, then re-raises it to the handler
        # installed here, which ends the run without a traceback.
        server.run(sockets=[sock])
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    print("Emulator stopped.", file=sys.stderr, flush=True)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


@contextmanager
def running_emulator(
    config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> Iterator[EmulatorHandle]:
    """Run an emulator in a background thread (port 0: a free port) until the block ends."""
    app = create_app(config)
    sock = _listen(host, port)
    server = _server(app, foreground=False)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="emulator", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread)
        base_url, control_url = _urls(host, sock.getsockname()[1])
        yield EmulatorHandle(base_url, control_url, app, host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(_STARTUP_TIMEOUT)
        sock.close()


def _server(app: Starlette, *, foreground: bool) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        # In the foreground, uvicorn's own logging (access lines on stderr); in a thread, leave
        # the host process's logging alone and stay quiet.
        log_level="info" if foreground else "warning",
        log_config=uvicorn.config.LOGGING_CONFIG if foreground else None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="on",
    )
    return uvicorn.Server(config)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit TCP_NODELAY (Linux, macOS): a small answer is sent at once
    # instead of waiting up to 40 ms for the client's delayed ACK (Nagle), which a benchmark
    # of the client would otherwise measure. asyncio sets it on its transports too; this makes
    # it hold whatever event loop uvicorn picks.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"the emulator cannot listen on {host}:{port}: {exc}") from exc
    sock.listen(128)
    return sock


def _urls(host: str, port: int) -> tuple[str, str]:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"http://{authority}/api/", f"http://{authority}/_emulator/"


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the emulator did not start")
        time.sleep(0.01)
