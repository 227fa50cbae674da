"""An emulator in its own process, seeded with models, for the benchmarks.

``python -m benchmarks.emulator_main SEED.json`` serves the emulator app (the same
``create_app`` as ``reconciler emulator``) on a free loopback port, with the accounts and
ready models of SEED.json put in place in-process first (there is no HTTP way to seed models
that are already loaded, and the state file would be rewritten on every change, which would
make the emulator what a benchmark measures). It prints ``Emulator listening on URL`` and
serves until SIGTERM or SIGINT.

It adds one benchmark-only route, ``GET /_bench/timeline``: the arrival time (this process's
``time.monotonic()``) and path of every API request, so a runner can measure a tool's phase from
its first request to its last without trusting the tool's own clock.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.emulator import AccountConfig, EmulatorConfig, create_app


class Timeline:
    """ASGI wrapper: notes each ``/api/`` request's arrival, serves ``/_bench/timeline``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.arrivals: list[tuple[float, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/api/"):
                self.arrivals.append((time.monotonic(), path[5:]))
            elif path == "/_bench/timeline":
                body = json.dumps({"now": time.monotonic(), "arrivals": self.arrivals}).encode()
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def build(seed: dict[str, Any]) -> Timeline:
    """The app of ``seed``: accounts, settings, and every listed model ready."""
    accounts = [
        AccountConfig(name=a["name"], key=a["key"], api=a["api"], queue_limit=a["queue_limit"])
        for a in seed["accounts"]
    ]
    config = EmulatorConfig(accounts=accounts, seed=1, **seed.get("settings", {}))
    app = create_app(config)
    state = app.state.emulator
    for account in seed["accounts"]:
        for model in account.get("ready", []):
            state.seed_model(account["name"], model["model_id"], model["spec"])
    return Timeline(app)


def main(argv: list[str]) -> None:
    seed = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    server = uvicorn.Server(
        uvicorn.Config(build(seed), log_level="warning", log_config=None, lifespan="on")
    )
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    print(f"Emulator listening on http://127.0.0.1:{sock.getsockname()[1]}/api/", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
